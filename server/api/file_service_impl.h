// The gRPC FileService: each user's storage area (UserFileStore), uploaded in resumable
// chunks and read back. Every call is authenticated (AccessControl); uploads begun and
// finished, downloads, deletes and refused calls go to the audit log.
#ifndef TRAINERD_SERVER_API_FILE_SERVICE_IMPL_H_
#define TRAINERD_SERVER_API_FILE_SERVICE_IMPL_H_

#include <cstdint>
#include <string>

#include "server/api/call_auditor.h"
#include "server/api/status_util.h"
#include "server/auth/access_control.h"
#include "server/files/user_file_store.h"
#include "server/jobs/job_registry.h"
#include "trainer/v1/file_service.grpc.pb.h"

namespace trainerd {

class FileServiceImpl final : public trainer::v1::FileService::Service {
 public:
  // Every pointer outlives this object. `quota_bytes`: what each user's area may hold.
  FileServiceImpl(UserFileStore* store, JobRegistry* registry, const AccessControl* access, AuditLog* audit,
                  int64_t quota_bytes)
      : store_(store), registry_(registry), access_(access), auditor_(audit), quota_bytes_(quota_bytes) {}

  grpc::Status BeginUpload(grpc::ServerContext*, const trainer::v1::BeginUploadRequest*,
                           trainer::v1::BeginUploadResponse*) override;
  grpc::Status UploadChunks(grpc::ServerContext*, grpc::ServerReader<trainer::v1::UploadChunk>*,
                            trainer::v1::UploadChunksResponse*) override;
  grpc::Status FinishUpload(grpc::ServerContext*, const trainer::v1::FinishUploadRequest*,
                            trainer::v1::FileInfo*) override;
  grpc::Status ListFiles(grpc::ServerContext*, const trainer::v1::ListFilesRequest*,
                         trainer::v1::ListFilesResponse*) override;
  grpc::Status DeleteFile(grpc::ServerContext*, const trainer::v1::DeleteFileRequest*,
                          trainer::v1::DeleteFileResponse*) override;
  grpc::Status Download(grpc::ServerContext*, const trainer::v1::DownloadRequest*,
                        grpc::ServerWriter<trainer::v1::DownloadChunk>*) override;

 private:
  // RunAuthenticated (call_auditor.h) with this service's access control and auditor;
  // fn(caller) returns the call's grpc::Status.
  template <typename Fn>
  grpc::Status Run(const char* method, bool audited, grpc::ServerContext* context, const std::string& detail,
                   Fn&& fn) {
    return ToGrpcStatus(RunAuthenticated(*access_, auditor_, method, audited, CallOriginOf(*context), detail,
                                         [&](const Caller& caller) { return FromGrpcStatus(fn(caller)); }));
  }

  // The caller's own quota (trainerd user quota), else the default.
  int64_t QuotaOf(const Caller& caller) const { return caller.quota_bytes > 0 ? caller.quota_bytes : quota_bytes_; }
  // The output_dir of job `id` when `caller` may read the job.
  absl::StatusOr<std::string> JobFolder(const Caller& caller, const std::string& id) const;
  // Where file `name` of the caller's area, or of job `job_id`'s output_dir, lives.
  absl::StatusOr<std::string> FilePath(const Caller& caller, const std::string& job_id, const std::string& name) const;

  UserFileStore* store_;
  JobRegistry* registry_;
  const AccessControl* access_;
  CallAuditor auditor_;
  const int64_t quota_bytes_;
};

// How a job spec names a user's file: user://<user>/<name>.
std::string UserFileUri(const std::string& user, const std::string& name);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_API_FILE_SERVICE_IMPL_H_
