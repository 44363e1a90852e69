// UserFileStore: each user's own storage area on trainerd's disk, for the datasets and
// model folders they upload and their jobs read (job specs name them user://USER/NAME,
// spec/user_files.h). Layout, under the data root:
//
//   users/<user>/files/<name>            uploaded files, by the name the user gave
//   users/<user>/.uploads/<id>/data      an upload under way, its full size reserved
//   users/<user>/.uploads/<id>/state.json  its name, size, SHA-256, chunk size and which
//                                        chunks are on disk (fsynced before recorded)
//
// An upload is resumable: its id follows from (name, size, SHA-256), so a client that was
// interrupted asks again and is told which chunks are still missing; the file appears
// under its name only when every chunk is there and the whole file's SHA-256 matches
// (fsynced, renamed into place). Names are relative paths of plain components; nothing
// can point outside the area. Sizes count against the user's quota from the moment an
// upload begins.
#ifndef TRAINERD_SERVER_FILES_USER_FILE_STORE_H_
#define TRAINERD_SERVER_FILES_USER_FILE_STORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace trainerd {

struct StoredFile {
  std::string name;  // relative to the user's area
  int64_t size = 0;
  int64_t modified_ms = 0;
};

struct UploadProgress {
  std::string id;
  int64_t chunk_bytes = 0;
  int64_t chunks = 0;                  // of the whole file
  std::vector<int64_t> missing;        // chunk indices still to send, ascending
};

class UserFileStore {
 public:
  // `data_root`: trainerd's (the areas are created under it when needed, see
  // spec/user_files.h). `chunk_bytes`: the size of every chunk but the last.
  UserFileStore(std::string data_root, int64_t chunk_bytes);

  // INVALID_ARGUMENT naming the problem unless `name` is a relative path of 1-32 plain
  // components (letters, digits, '.', '_', '-'; none "." or ".." or starting with '.'),
  // at most 1024 bytes.
  static absl::Status CheckName(std::string_view name);

  // The bytes the user's area holds: files, and uploads under way at their full size.
  absl::StatusOr<int64_t> Usage(const std::string& user) const;

  // Starts the upload of `size` bytes whose SHA-256 is `sha256` (hex) as `name`, or finds
  // the one under way for the same three. RESOURCE_EXHAUSTED when it would take the
  // user's usage over `quota_bytes`, before anything is written.
  absl::StatusOr<UploadProgress> BeginUpload(const std::string& user, const std::string& name, int64_t size,
                                             const std::string& sha256, int64_t quota_bytes);
  // Writes chunk `index` of upload `id` (its size must be the chunk's). The chunk counts
  // as received once Sync records it.
  absl::Status WriteChunk(const std::string& user, const std::string& id, int64_t index, std::string_view data);
  // Flushes the chunks written since the last Sync to disk and records them.
  absl::Status Sync(const std::string& user, const std::string& id);
  // Checks that every chunk is there and the file's SHA-256 is the one announced, then
  // puts it under its name (replacing an earlier file of that name). FAILED_PRECONDITION
  // with the missing chunks' count; DATA_LOSS when the checksum differs (the upload is
  // dropped: it must start again).
  absl::StatusOr<StoredFile> FinishUpload(const std::string& user, const std::string& id);

  // Files under `prefix` (a name, or "" for all), by name.
  absl::StatusOr<std::vector<StoredFile>> List(const std::string& user, const std::string& prefix) const;
  // Removes the file or folder `name`; NOT_FOUND when there is none.
  absl::Status Delete(const std::string& user, const std::string& name);
  // Where the file `name` of `user` lives (checked name; it need not exist).
  absl::StatusOr<std::string> PathOf(const std::string& user, const std::string& name) const;

 private:
  std::string UserDir(const std::string& user) const;

  const std::string data_root_;
  const int64_t chunk_bytes_;
  // Begin's quota check and reservation are one step, and an upload's chunks are
  // recorded one writer at a time.
  mutable absl::Mutex mu_;
  // Chunks written but not yet synced, by upload id.
  std::map<std::string, std::vector<int64_t>> unsynced_ ABSL_GUARDED_BY(mu_);
};

// The regular files under `root`/`prefix` (a file or a folder; "" for all), by name
// relative to `root`; symlinks and names CheckName refuses (hidden, temporary) are left
// out. For a user's area and a job's output_dir alike.
absl::StatusOr<std::vector<StoredFile>> ListFolder(const std::string& root, const std::string& prefix);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_FILES_USER_FILE_STORE_H_
