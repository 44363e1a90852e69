// Opening the files a spec names, confined at the moment of opening (the worker's reads,
// and trainerd's look at a job's files when it is submitted).
//
// The spec's paths were checked at submission and again when the worker started, but a
// symlink can be retargeted in between those checks and the open. OpenConfined opens
// the file first and then checks where the opened file really is (/proc/self/fd/N), so
// what is read is what was checked. Readers then read through the descriptor's path.
#ifndef TRAINERD_SPEC_CONFINED_FILE_H_
#define TRAINERD_SPEC_CONFINED_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "spec/spec_policy.h"

namespace trainerd {

// Sets the places files may be opened from, once, before any reader runs (the worker's
// start). Until then nothing is confined (a worker run by hand, and tests).
void ConfineReads(const ReadRoots& roots);

class ConfinedFile {
 public:
  ConfinedFile(ConfinedFile&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ConfinedFile& operator=(ConfinedFile&&) = delete;
  ~ConfinedFile();

  int fd() const { return fd_; }
  // "/proc/self/fd/N": opening it opens this same file, for libraries that take a path.
  std::string path() const;

 private:
  explicit ConfinedFile(int fd) : fd_(fd) {}
  friend absl::StatusOr<ConfinedFile> OpenConfined(const std::string& path, const ReadRoots* roots);

  int fd_;
};

// Opens `path` read-only, confined to `roots` (nullptr: the process's, ConfineReads).
// A path outside the allowed places, before or after opening, is PERMISSION_DENIED
// "<path>: <ReadRoots::kRefusal>", whether or not it exists; a path inside them that
// cannot be opened is NOT_FOUND "<path>: cannot open". trainerd passes a job's roots
// when it checks the job's files at submission.
absl::StatusOr<ConfinedFile> OpenConfined(const std::string& path, const ReadRoots* roots);
inline absl::StatusOr<ConfinedFile> OpenConfined(const std::string& path) { return OpenConfined(path, nullptr); }
inline absl::StatusOr<ConfinedFile> OpenConfined(const std::string& path, const ReadRoots& roots) {
  return OpenConfined(path, &roots);
}

// The whole of a small file opened by OpenConfined: INVALID_ARGUMENT when it holds more
// than `limit` bytes, DATA_LOSS when reading fails (with errno's text).
absl::StatusOr<std::string> ReadConfined(const std::string& path, const ReadRoots* roots, size_t limit);
inline absl::StatusOr<std::string> ReadConfined(const std::string& path, size_t limit) {
  return ReadConfined(path, nullptr, limit);
}
inline absl::StatusOr<std::string> ReadConfined(const std::string& path, const ReadRoots& roots, size_t limit) {
  return ReadConfined(path, &roots, limit);
}

}  // namespace trainerd

#endif  // TRAINERD_SPEC_CONFINED_FILE_H_
