#include "server/http/gzip_body.h"

#include <zlib.h>

#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace trainerd {

std::optional<std::string> Gzip(std::string_view body, int level) {
  if (body.size() > (std::numeric_limits<uInt>::max() >> 1)) return std::nullopt;  // zlib counts in uInt
  z_stream stream{};
  // 15 + 16: a gzip header and trailer around the deflate stream.
  if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out(deflateBound(&stream, body.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) return std::nullopt;
  return out;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  for (absl::string_view part : absl::StrSplit(absl::string_view(accept_encoding.data(), accept_encoding.size()), ',')) {
    std::vector<absl::string_view> fields = absl::StrSplit(part, ';');
    if (absl::StripAsciiWhitespace(fields[0]) != "gzip") continue;
    for (size_t i = 1; i < fields.size(); ++i) {
      const absl::string_view q = absl::StripAsciiWhitespace(fields[i]);
      if (q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000") return false;
    }
    return true;
  }
  return false;
}

}  // namespace trainerd
