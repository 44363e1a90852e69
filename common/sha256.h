// SHA-256 of bytes and of files, as lower-case hex: the checksum uploads and downloads
// agree on (trainer-cli computes it before sending, trainerd after receiving, and the
// other way round).
#ifndef TRAINERD_COMMON_SHA256_H_
#define TRAINERD_COMMON_SHA256_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace trainerd {

// A running SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view bytes);
  // The digest as 64 lower-case hex digits; the object is spent after.
  std::string HexDigest();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

std::string Sha256Hex(std::string_view bytes);
// The file's SHA-256, read in pieces (never whole); errors name the path and errno's text.
absl::StatusOr<std::string> FileSha256Hex(const std::string& path);
// Whether `text` is 64 lower-case hex digits.
bool IsSha256Hex(std::string_view text);

}  // namespace trainerd

#endif  // TRAINERD_COMMON_SHA256_H_
