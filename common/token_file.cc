#include "common/token_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace trainerd {

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, TokenFileReaders readers) {
  const mode_t forbidden = readers == TokenFileReaders::kOwnerOnly ? 077 : 007;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == EACCES || errno == ENOTDIR) return absl::NotFoundError(path);
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  std::string text(kMaxTokenBytes + 1, '\0');
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & forbidden) == 0) n = ::read(fd, text.data(), text.size());
  const int read_errno = errno;
  ::close(fd);
  if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  if ((st.st_mode & forbidden) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s: %s may read it (mode %04o); a token is a password: chmod %s %s", path,
        readers == TokenFileReaders::kOwnerOnly ? "group or others" : "others", st.st_mode & 07777,
        readers == TokenFileReaders::kOwnerOnly ? "600" : "o-rwx", path));
  }
  if (n < 0) return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(read_errno)));
  text.resize(static_cast<size_t>(n));
  text = text.substr(0, text.find('\n'));
  absl::StripAsciiWhitespace(&text);
  if (text.empty() || text.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected one token of at most ", kMaxTokenBytes,
                                                   " bytes on its first line"));
  }
  return text;
}

}  // namespace trainerd
