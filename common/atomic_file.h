// Crash-safe file writes: write a temporary file beside the target, fsync it, rename it
// over the target, fsync the folder. A reader sees the old file or the new one, never a
// torn mix, even after a power cut or kill -9.
#ifndef TRAINERD_COMMON_ATOMIC_FILE_H_
#define TRAINERD_COMMON_ATOMIC_FILE_H_

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace trainerd {

// Replaces `path` with `contents` atomically and durably. `mode` is the new file's
// permission bits (before the umask): 0600 for a secret, which is then never readable
// by others, not even for a moment.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents, mode_t mode = 0644);

// Writes `contents` to a new file `path` (replacing any file there) and fsyncs it, not
// atomically: for files inside a temporary folder that is renamed once complete. Errors
// name the path and errno's text ("No space left on device").
absl::Status WriteFileSynced(const std::string& path, std::string_view contents, mode_t mode = 0644);

// fsyncs a file or folder.
absl::Status SyncPath(const std::string& path);

}  // namespace trainerd

#endif  // TRAINERD_COMMON_ATOMIC_FILE_H_
