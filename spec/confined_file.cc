#include "spec/confined_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;

ABSL_CONST_INIT absl::Mutex roots_mu(absl::kConstInit);
std::unique_ptr<ReadRoots> confined_roots ABSL_GUARDED_BY(roots_mu);  // null: not confined

bool Allowed(const fs::path& resolved, const ReadRoots* roots) {
  if (roots != nullptr) return roots->Allows(resolved);
  absl::MutexLock lock(&roots_mu);
  return confined_roots == nullptr || confined_roots->Allows(resolved);
}

absl::Status Refused(const std::string& path) {
  return absl::PermissionDeniedError(absl::StrCat(path, ": ", ReadRoots::kRefusal));
}

}  // namespace

void ConfineReads(const ReadRoots& roots) {
  absl::MutexLock lock(&roots_mu);
  confined_roots = std::make_unique<ReadRoots>(roots);
}

ConfinedFile::~ConfinedFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string ConfinedFile::path() const { return absl::StrCat("/proc/self/fd/", fd_); }

absl::StatusOr<ConfinedFile> OpenConfined(const std::string& path, const ReadRoots* roots) {
  // Checked before opening too: a refused path is refused the same way whether or not
  // it exists (the open's error would tell).
  std::error_code ec;
  const fs::path before = ResolvePath(fs::absolute(path, ec), &ec);
  if (ec || !Allowed(before, roots)) return Refused(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  ConfinedFile file(fd);
  const fs::path opened = fs::read_symlink(file.path(), ec);
  if (ec || !Allowed(opened, roots)) return Refused(path);
  return file;
}

absl::StatusOr<std::string> ReadConfined(const std::string& path, const ReadRoots* roots, size_t limit) {
  absl::StatusOr<ConfinedFile> file = OpenConfined(path, roots);
  if (!file.ok()) return file.status();
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(file->fd(), buf, sizeof(buf))) > 0) {
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > limit) return absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", limit, " bytes"));
  }
  if (n < 0) return absl::DataLossError(absl::StrCat(path, ": read failed: ", std::strerror(errno)));
  return text;
}

}  // namespace trainerd
