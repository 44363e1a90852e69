#include "server/api/file_service_impl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "server/api/status_util.h"

namespace trainerd {
namespace {

using namespace trainer::v1;

// Chunks are made durable (fsynced and recorded) this often while they arrive.
constexpr int kChunksPerSync = 16;
// The pieces a download is sent in.
constexpr size_t kDownloadChunkBytes = size_t{1} << 20;

}  // namespace

std::string UserFileUri(const std::string& user, const std::string& name) {
  return absl::StrCat("user://", user, "/", name);
}

absl::StatusOr<std::string> FileServiceImpl::JobFolder(const Caller& caller, const std::string& id) const {
  absl::StatusOr<Job> job = registry_->Get(id);
  if (!job.ok()) return job.status();
  if (absl::Status allowed = access_->CheckRead(caller, *job); !allowed.ok()) return allowed;
  return job->output_dir();
}

absl::StatusOr<std::string> FileServiceImpl::FilePath(const Caller& caller, const std::string& job_id,
                                                      const std::string& name) const {
  if (job_id.empty()) return store_->PathOf(caller.user, name);
  absl::StatusOr<std::string> folder = JobFolder(caller, job_id);
  if (!folder.ok()) return folder.status();
  if (absl::Status s = UserFileStore::CheckName(name); !s.ok()) return s;
  return absl::StrCat(*folder, "/", name);
}

grpc::Status FileServiceImpl::BeginUpload(grpc::ServerContext* context, const BeginUploadRequest* req,
                                          BeginUploadResponse* resp) {
  return Run("BeginUpload", true, context, req->name(), [&](const Caller& caller) {
    absl::StatusOr<UploadProgress> p =
        store_->BeginUpload(caller.user, req->name(), req->size(), req->sha256(), QuotaOf(caller));
    if (!p.ok()) return ToGrpcStatus(p.status());
    resp->set_upload_id(p->id);
    resp->set_chunk_bytes(p->chunk_bytes);
    for (int64_t index : p->missing) resp->add_missing_chunks(index);
    return grpc::Status::OK;
  });
}

grpc::Status FileServiceImpl::UploadChunks(grpc::ServerContext* context, grpc::ServerReader<UploadChunk>* reader,
                                           UploadChunksResponse* resp) {
  return Run("UploadChunks", false, context, "", [&](const Caller& caller) {
    std::set<std::string> uploads;  // to sync at the end
    UploadChunk chunk;
    int64_t written = 0;
    absl::Status status;
    while (status.ok() && reader->Read(&chunk)) {
      status = store_->WriteChunk(caller.user, chunk.upload_id(), chunk.index(), chunk.data());
      if (!status.ok()) break;
      uploads.insert(chunk.upload_id());
      if (++written % kChunksPerSync == 0) status = store_->Sync(caller.user, chunk.upload_id());
    }
    // What arrived whole is kept, also when the stream broke off.
    for (const std::string& id : uploads) {
      absl::Status synced = store_->Sync(caller.user, id);
      if (status.ok()) status = synced;
    }
    resp->set_chunks_written(written);
    return ToGrpcStatus(status);
  });
}

grpc::Status FileServiceImpl::FinishUpload(grpc::ServerContext* context, const FinishUploadRequest* req,
                                           FileInfo* resp) {
  return Run("FinishUpload", true, context, req->upload_id(), [&](const Caller& caller) {
    absl::StatusOr<StoredFile> file = store_->FinishUpload(caller.user, req->upload_id());
    if (!file.ok()) return ToGrpcStatus(file.status());
    resp->set_name(file->name);
    resp->set_size(file->size);
    resp->set_modified_ms(file->modified_ms);
    resp->set_path(UserFileUri(caller.user, file->name));
    return grpc::Status::OK;
  });
}

grpc::Status FileServiceImpl::ListFiles(grpc::ServerContext* context, const ListFilesRequest* req,
                                        ListFilesResponse* resp) {
  const std::string detail = req->job_id().empty() ? req->prefix() : req->job_id();
  return Run("ListFiles", false, context, detail, [&](const Caller& caller) {
    if (!req->job_id().empty()) {
      absl::StatusOr<std::string> folder = JobFolder(caller, req->job_id());
      if (!folder.ok()) return ToGrpcStatus(folder.status());
      absl::StatusOr<std::vector<StoredFile>> files = ListFolder(*folder, req->prefix());
      if (!files.ok()) return ToGrpcStatus(files.status());
      for (const StoredFile& f : *files) {
        FileInfo* info = resp->add_files();
        info->set_name(f.name);
        info->set_size(f.size);
        info->set_modified_ms(f.modified_ms);
      }
      return grpc::Status::OK;
    }
    const std::string user = req->user().empty() ? caller.user : req->user();
    if (user != caller.user && !caller.admin) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "only admins list another user's files");
    }
    absl::StatusOr<std::vector<StoredFile>> files = store_->List(user, req->prefix());
    if (!files.ok()) return ToGrpcStatus(files.status());
    absl::StatusOr<int64_t> used = store_->Usage(user);
    if (!used.ok()) return ToGrpcStatus(used.status());
    for (const StoredFile& f : *files) {
      FileInfo* info = resp->add_files();
      info->set_name(f.name);
      info->set_size(f.size);
      info->set_modified_ms(f.modified_ms);
      info->set_path(UserFileUri(user, f.name));
    }
    resp->set_used_bytes(*used);
    // An admin listing another user's area sees the daemon's default quota.
    resp->set_quota_bytes(user == caller.user ? QuotaOf(caller) : quota_bytes_);
    return grpc::Status::OK;
  });
}

grpc::Status FileServiceImpl::DeleteFile(grpc::ServerContext* context, const DeleteFileRequest* req,
                                         DeleteFileResponse*) {
  return Run("DeleteFile", true, context, req->name(), [&](const Caller& caller) {
    return ToGrpcStatus(store_->Delete(caller.user, req->name()));
  });
}

grpc::Status FileServiceImpl::Download(grpc::ServerContext* context, const DownloadRequest* req,
                                       grpc::ServerWriter<DownloadChunk>* writer) {
  const std::string detail = req->job_id().empty() ? req->name() : absl::StrCat(req->job_id(), "/", req->name());
  return Run("Download", true, context, detail, [&](const Caller& caller) {
    absl::StatusOr<std::string> path = FilePath(caller, req->job_id(), req->name());
    if (!path.ok()) return ToGrpcStatus(path.status());
    absl::StatusOr<std::string> sha = FileSha256Hex(*path);
    if (!sha.ok()) return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat(req->name(), ": no such file"));
    const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      if (fd >= 0) ::close(fd);
      return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat(req->name(), ": no such file"));
    }
    if (req->offset() < 0 || req->offset() > st.st_size) {
      ::close(fd);
      return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "offset: outside the file");
    }
    std::vector<char> buffer(kDownloadChunkBytes);
    int64_t offset = req->offset();
    DownloadChunk first;
    first.set_offset(offset);
    first.set_size(st.st_size);
    first.set_sha256(*sha);
    bool sent_first = false;
    while (!context->IsCancelled()) {
      const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), offset);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        return grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat("read ", req->name(), ": ", std::strerror(errno)));
      }
      if (n == 0 && sent_first) break;
      DownloadChunk chunk = sent_first ? DownloadChunk() : first;
      chunk.set_offset(offset);
      chunk.set_data(buffer.data(), static_cast<size_t>(n));
      sent_first = true;
      if (!writer->Write(chunk)) break;  // the client went away: it resumes from what it has
      offset += n;
      if (n == 0) break;
    }
    ::close(fd);
    return grpc::Status::OK;
  });
}

}  // namespace trainerd
