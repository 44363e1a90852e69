// ReadSpecFile (spec_loader.h): reading a spec file, bounded, apart from parsing it.
#include "spec/spec_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "spec/spec_bounds.h"

namespace trainerd {

absl::StatusOr<std::string> ReadSpecFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    return (err == ENOENT ? absl::NotFoundError : absl::InvalidArgumentError)(
        absl::StrCat("spec file ", path, ": cannot be read: ", std::strerror(err)));
  }
  struct stat st {};
  std::string text;
  absl::Status status;
  if (::fstat(fd, &st) != 0) {
    status = absl::InvalidArgumentError(absl::StrCat("spec file ", path, ": cannot be read: ", std::strerror(errno)));
  } else if (S_ISDIR(st.st_mode)) {
    status = absl::InvalidArgumentError(absl::StrCat("spec file ", path, ": is a folder; give the spec file in it"));
  } else if (!S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(
        absl::StrCat("spec file ", path, ": is not a regular file (a device, pipe or socket)"));
  } else if (static_cast<uint64_t>(st.st_size) > kMaxSpecBytes) {
    status = absl::InvalidArgumentError(
        absl::StrCat("spec file ", path, ": is ", st.st_size, " bytes; at most ", kMaxSpecBytes, " are accepted"));
  } else {
    // Read at most one byte past the bound: a file that grows meanwhile is refused too.
    text.resize(kMaxSpecBytes + 1);
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = absl::InvalidArgumentError(absl::StrCat("spec file ", path, ": read failed: ", std::strerror(errno)));
        break;
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    text.resize(got);
    if (status.ok() && got > kMaxSpecBytes) {
      status = absl::InvalidArgumentError(absl::StrCat("spec file ", path, ": is larger than ", kMaxSpecBytes,
                                                       " bytes, the most accepted"));
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

}  // namespace trainerd
