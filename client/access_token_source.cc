#include "client/access_token_source.h"

#include <cstdlib>

#include "common/data_root.h"
#include "common/token_file.h"

namespace trainerd {
namespace {

std::string UserTokenPath() {
  if (const char* v = std::getenv("XDG_CONFIG_HOME"); v != nullptr && *v != '\0') {
    return std::string(v) + "/trainerd/token";
  }
  if (const char* v = std::getenv("HOME"); v != nullptr && *v != '\0') return std::string(v) + "/.config/trainerd/token";
  return "";
}

}  // namespace

absl::StatusOr<std::string> FindAccessToken(const std::string& explicit_token, const std::string& data_root) {
  if (!explicit_token.empty()) return explicit_token;
  if (const char* v = std::getenv("TRAINER_TOKEN"); v != nullptr && *v != '\0') return std::string(v);
  for (const std::string& path : {UserTokenPath(), AdminTokenPath(data_root)}) {
    if (path.empty()) continue;
    absl::StatusOr<std::string> token = ReadTokenFile(path, TokenFileReaders::kOwnerOnly);
    if (token.ok() || !absl::IsNotFound(token.status())) return token;
  }
  return std::string();
}

}  // namespace trainerd
