// Token files: the admin token trainerd writes, a user's ~/.config/trainerd/token, and
// a token an operator hands trainerd (a Kubernetes Secret). One reader for all of them.
#ifndef TRAINERD_COMMON_TOKEN_FILE_H_
#define TRAINERD_COMMON_TOKEN_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace trainerd {

// The longest token accepted, in a file or in a call's metadata.
inline constexpr size_t kMaxTokenBytes = 256;

// Who besides the owner may read a token file that is still accepted.
enum class TokenFileReaders {
  kOwnerOnly,  // a user's token: mode 0600 or stricter
  kGroup,      // a mounted Secret (Kubernetes adds the pod's fsGroup): not others
};

// Reads a token file: its first line, at most 256 bytes. A file that more than
// `readers` may read is refused with the reason (a token is a password). NOT_FOUND when
// the file does not exist or this user may not open it.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, TokenFileReaders readers);

}  // namespace trainerd

#endif  // TRAINERD_COMMON_TOKEN_FILE_H_
