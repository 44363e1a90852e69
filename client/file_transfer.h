// FileTransfer: uploads to and downloads from a user's storage area on trainerd
// (FileService), file by file, each checked by its SHA-256, and resumable: an upload that
// was interrupted sends only the chunks trainerd does not have yet, and a download goes
// on from the bytes already in DEST.part. A folder is its files, under NAME/<relative>.
#ifndef TRAINERD_CLIENT_FILE_TRANSFER_H_
#define TRAINERD_CLIENT_FILE_TRANSFER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/trainer_client.h"
#include "trainer/v1/file_service.grpc.pb.h"

namespace trainerd {

class FileTransfer {
 public:
  // Told the bytes done and the total so far (of every file of the transfer); returns
  // false to stop (the transfer ends with CANCELLED and resumes next time).
  using Progress = std::function<bool(int64_t done, int64_t total)>;

  // `client` outlives this object.
  explicit FileTransfer(TrainerClient* client);

  // Uploads the file or folder `local` as `name` (a folder's files as name/<relative>).
  // Returns what trainerd now holds, one entry per file.
  absl::StatusOr<std::vector<trainer::v1::FileInfo>> Upload(const std::string& local, const std::string& name,
                                                            const Progress& progress = nullptr);
  // Downloads the file or folder `name` of the caller's area to `dest`; with `job_id`, of
  // that job's output_dir instead, where `name` "" is the final folder (every file but the
  // checkpoint-N/ folders) and "checkpoint-N" one checkpoint.
  absl::Status Download(const std::string& name, const std::string& dest, const Progress& progress = nullptr,
                        const std::string& job_id = "");
  // The files of the caller's area (admins: `user`'s), or of `job_id`'s output_dir.
  absl::StatusOr<trainer::v1::ListFilesResponse> List(const std::string& prefix, const std::string& user = "",
                                                      const std::string& job_id = "");
  absl::Status Delete(const std::string& name);

 private:
  struct LocalFile {
    std::string path, name;
    int64_t size = 0;
  };
  absl::StatusOr<trainer::v1::FileInfo> UploadFile(const LocalFile& file, int64_t* done, int64_t total,
                                                   const Progress& progress);
  absl::Status DownloadFile(const std::string& name, const std::string& job_id, const std::string& dest,
                            int64_t* done, int64_t total, const Progress& progress);

  TrainerClient* client_;
  std::unique_ptr<trainer::v1::FileService::Stub> stub_;
};

}  // namespace trainerd

#endif  // TRAINERD_CLIENT_FILE_TRANSFER_H_
