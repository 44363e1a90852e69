#include "client/access_token_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/data_root.h"

namespace trainerd {
namespace {

constexpr size_t kMaxTokenFileBytes = 256;

std::string UserTokenPath() {
  if (const char* v = std::getenv("XDG_CONFIG_HOME"); v != nullptr && *v != '\0') {
    return std::string(v) + "/trainerd/token";
  }
  if (const char* v = std::getenv("HOME"); v != nullptr && *v != '\0') return std::string(v) + "/.config/trainerd/token";
  return "";
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == EACCES || errno == ENOTDIR) return absl::NotFoundError(path);
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  std::string text(kMaxTokenFileBytes + 1, '\0');
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) == 0) n = ::read(fd, text.data(), text.size());
  const int read_errno = errno;
  ::close(fd);
  if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: group or others may read it (mode %04o); a token is a password: chmod 600 %s", path,
        st.st_mode & 07777, path));
  }
  if (n < 0) return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(read_errno)));
  text.resize(static_cast<size_t>(n));
  text = text.substr(0, text.find('\n'));
  absl::StripAsciiWhitespace(&text);
  if (text.empty() || text.size() > kMaxTokenFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected one token of at most ", kMaxTokenFileBytes,
                                                   " bytes on its first line"));
  }
  return text;
}

absl::StatusOr<std::string> FindAccessToken(const std::string& explicit_token, const std::string& data_root) {
  if (!explicit_token.empty()) return explicit_token;
  if (const char* v = std::getenv("TRAINER_TOKEN"); v != nullptr && *v != '\0') return std::string(v);
  for (const std::string& path : {UserTokenPath(), AdminTokenPath(data_root)}) {
    if (path.empty()) continue;
    absl::StatusOr<std::string> token = ReadTokenFile(path);
    if (token.ok() || !absl::IsNotFound(token.status())) return token;
  }
  return std::string();
}

}  // namespace trainerd
