// Gzip for the HTTP side's bodies. cpp-httplib compresses a few exact content types by
// itself, with Brotli at its slowest, highest setting when the browser offers it: 7 s
// for a 5 MB GetMetrics on these machines. trainerd compresses its JSON and the chart
// library with zlib instead, fast for what is made per request and once for what is
// built in, and sends them under content types cpp-httplib leaves alone.
#ifndef TRAINERD_SERVER_HTTP_GZIP_BODY_H_
#define TRAINERD_SERVER_HTTP_GZIP_BODY_H_

#include <optional>
#include <string>
#include <string_view>

namespace trainerd {

// `body` as a gzip stream at zlib `level` (1 fastest .. 9 smallest); nullopt if zlib
// failed (the caller sends the body as it is).
std::optional<std::string> Gzip(std::string_view body, int level);
// Whether an Accept-Encoding header value offers gzip (not refused with q=0).
bool AcceptsGzip(std::string_view accept_encoding);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_HTTP_GZIP_BODY_H_
