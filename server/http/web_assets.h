// The web console's files, built into trainerd (cmake/embed_files.cmake writes their
// bytes into a generated source), so that nothing needs installing beside the binary.
#ifndef TRAINERD_SERVER_HTTP_WEB_ASSETS_H_
#define TRAINERD_SERVER_HTTP_WEB_ASSETS_H_

#include <string_view>
#include <vector>

namespace trainerd {

struct WebAsset {
  std::string_view path;  // the URL path: "/index.html", "/app.js", ...
  std::string_view content_type;
  std::string_view data;
};

// Every file of the console (server/http/web/, and Debian's Chart.js).
const std::vector<WebAsset>& WebAssets();

}  // namespace trainerd

#endif  // TRAINERD_SERVER_HTTP_WEB_ASSETS_H_
