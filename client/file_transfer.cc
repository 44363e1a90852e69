#include "client/file_transfer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using namespace trainer::v1;

// Tries of one file's transfer while trainerd is unreachable or the stream breaks.
constexpr int kMaxTries = 5;

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

void Backoff(int attempt) { std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(attempt, 4))); }

}  // namespace

FileTransfer::FileTransfer(TrainerClient* client)
    : client_(client), stub_(FileService::NewStub(client->channel())) {}

absl::StatusOr<std::vector<FileInfo>> FileTransfer::Upload(const std::string& local, const std::string& name,
                                                           const Progress& progress) {
  if (!client_->setup_status().ok()) return client_->setup_status();
  std::vector<LocalFile> files;
  std::error_code ec;
  const fs::file_status st = fs::status(local, ec);
  if (fs::is_regular_file(st)) {
    files.push_back({local, name, static_cast<int64_t>(fs::file_size(local, ec))});
  } else if (fs::is_directory(st)) {
    for (auto it = fs::recursive_directory_iterator(local, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      const std::string relative = fs::relative(it->path(), local).string();
      files.push_back({it->path().string(), name + "/" + relative, static_cast<int64_t>(it->file_size(ec))});
    }
    std::sort(files.begin(), files.end(), [](const LocalFile& a, const LocalFile& b) { return a.name < b.name; });
  } else {
    return absl::NotFoundError(absl::StrCat(local, ": no such file or folder"));
  }
  if (ec) return absl::InternalError(absl::StrCat("reading ", local, ": ", ec.message()));
  int64_t total = 0, done = 0;
  for (const LocalFile& f : files) total += f.size;
  std::vector<FileInfo> out;
  for (const LocalFile& f : files) {
    absl::StatusOr<FileInfo> info = UploadFile(f, &done, total, progress);
    if (!info.ok()) return absl::Status(info.status().code(), absl::StrCat(f.path, ": ", info.status().message()));
    out.push_back(*std::move(info));
  }
  return out;
}

absl::StatusOr<FileInfo> FileTransfer::UploadFile(const LocalFile& file, int64_t* done, int64_t total,
                                                  const Progress& progress) {
  absl::StatusOr<std::string> sha = FileSha256Hex(file.path);
  if (!sha.ok()) return sha.status();
  const int64_t start = *done;
  for (int attempt = 0;; ++attempt) {
    BeginUploadRequest begin;
    begin.set_name(file.name);
    begin.set_size(file.size);
    begin.set_sha256(*sha);
    BeginUploadResponse plan;
    grpc::Status s = stub_->BeginUpload(client_->Context().get(), begin, &plan);
    if (!s.ok()) {
      if (Retryable(s) && attempt + 1 < kMaxTries) {
        Backoff(attempt);
        continue;
      }
      return client_->Explain(s);
    }
    // The chunks trainerd already has count as done.
    *done = start + file.size - std::min<int64_t>(file.size, plan.missing_chunks_size() * plan.chunk_bytes());
    if (plan.missing_chunks_size() > 0) {
      const int fd = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Errno("open", file.path);
      auto context = client_->Context(/*streaming=*/true);
      UploadChunksResponse written;
      std::unique_ptr<grpc::ClientWriter<UploadChunk>> writer = stub_->UploadChunks(context.get(), &written);
      std::string buffer(static_cast<size_t>(plan.chunk_bytes()), '\0');
      bool stopped = false;
      absl::Status read_error;
      for (int64_t index : plan.missing_chunks()) {
        const int64_t offset = index * plan.chunk_bytes();
        const size_t length = static_cast<size_t>(std::min(plan.chunk_bytes(), file.size - offset));
        const ssize_t n = ::pread(fd, buffer.data(), length, offset);
        if (n != static_cast<ssize_t>(length)) {
          read_error = absl::DataLossError(absl::StrCat("read ", file.path, ": it changed while being sent"));
          break;
        }
        UploadChunk chunk;
        chunk.set_upload_id(plan.upload_id());
        chunk.set_index(index);
        chunk.set_data(buffer.data(), length);
        if (!writer->Write(chunk)) break;  // the stream broke: Finish says why
        *done += static_cast<int64_t>(length);
        if (progress && !progress(*done, total)) {
          stopped = true;
          break;
        }
      }
      ::close(fd);
      writer->WritesDone();
      s = writer->Finish();
      if (!read_error.ok()) return read_error;
      if (stopped) return absl::CancelledError("stopped; run the same upload again to resume it");
      if (!s.ok()) {
        if (Retryable(s) && attempt + 1 < kMaxTries) {
          Backoff(attempt);
          continue;
        }
        return client_->Explain(s);
      }
    }
    FinishUploadRequest finish;
    finish.set_upload_id(plan.upload_id());
    FileInfo info;
    s = stub_->FinishUpload(client_->Context().get(), finish, &info);
    if (s.ok()) {
      *done = start + file.size;
      if (progress) progress(*done, total);
      return info;
    }
    // Chunks lost on the way (a trainerd restart): ask again which are missing.
    if ((Retryable(s) || s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) && attempt + 1 < kMaxTries) {
      Backoff(attempt);
      continue;
    }
    return client_->Explain(s);
  }
}

absl::StatusOr<ListFilesResponse> FileTransfer::List(const std::string& prefix, const std::string& user,
                                                     const std::string& job_id) {
  if (!client_->setup_status().ok()) return client_->setup_status();
  ListFilesRequest req;
  req.set_prefix(prefix);
  req.set_user(user);
  req.set_job_id(job_id);
  ListFilesResponse resp;
  grpc::Status s = stub_->ListFiles(client_->Context().get(), req, &resp);
  if (!s.ok()) return client_->Explain(s);
  return resp;
}

absl::Status FileTransfer::Delete(const std::string& name) {
  if (!client_->setup_status().ok()) return client_->setup_status();
  DeleteFileRequest req;
  req.set_name(name);
  DeleteFileResponse resp;
  return client_->Explain(stub_->DeleteFile(client_->Context().get(), req, &resp));
}

absl::Status FileTransfer::Download(const std::string& name, const std::string& dest, const Progress& progress,
                                    const std::string& job_id) {
  absl::StatusOr<ListFilesResponse> listed = List(name, "", job_id);
  if (!listed.ok()) return listed.status();
  std::vector<FileInfo> files;
  for (const FileInfo& f : listed->files()) {
    // A job's final folder: what is not in a checkpoint.
    if (!job_id.empty() && name.empty() && absl::StartsWith(f.name(), "checkpoint-")) continue;
    files.push_back(f);
  }
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(job_id.empty() ? "" : "job " + job_id + ": ",
                                            name.empty() ? "no files" : name + ": no such file or folder"));
  }
  int64_t total = 0, done = 0;
  for (const FileInfo& f : files) total += f.size();
  std::error_code ec;
  const bool single = files.size() == 1 && files[0].name() == name;
  for (const FileInfo& f : files) {
    fs::path target = dest;
    if (single) {
      if (fs::is_directory(dest, ec)) target /= fs::path(name).filename();
    } else {
      target /= name.empty() ? f.name() : f.name().substr(name.size() + 1);  // the folder's files under DEST
    }
    fs::create_directories(target.parent_path(), ec);
    if (absl::Status s = DownloadFile(f.name(), job_id, target.string(), &done, total, progress); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status FileTransfer::DownloadFile(const std::string& name, const std::string& job_id, const std::string& dest,
                                        int64_t* done, int64_t total, const Progress& progress) {
  const std::string part = dest + ".part";
  const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", part);
  std::string sha256;
  int64_t size = -1;
  const int64_t start = *done;
  for (int attempt = 0;; ++attempt) {
    const off_t offset = ::lseek(fd, 0, SEEK_END);  // what earlier tries brought
    DownloadRequest req;
    req.set_name(name);
    req.set_job_id(job_id);
    req.set_offset(offset);
    auto context = client_->Context(/*streaming=*/true);
    std::unique_ptr<grpc::ClientReader<DownloadChunk>> reader = stub_->Download(context.get(), req);
    DownloadChunk chunk;
    bool stopped = false;
    while (reader->Read(&chunk)) {
      if (!chunk.sha256().empty()) {
        // Resumed against another version of the file: start over.
        if (!sha256.empty() && sha256 != chunk.sha256()) {
          ::close(fd);
          ::unlink(part.c_str());
          return absl::AbortedError(absl::StrCat(name, " changed during the download; run it again"));
        }
        sha256 = chunk.sha256();
        size = chunk.size();
      }
      const std::string& data = chunk.data();
      if (::pwrite(fd, data.data(), data.size(), chunk.offset()) != static_cast<ssize_t>(data.size())) {
        absl::Status s = Errno("write", part);
        ::close(fd);
        return s;
      }
      *done = start + chunk.offset() + static_cast<int64_t>(data.size());
      if (progress && !progress(*done, total)) {
        stopped = true;
        context->TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (stopped) {
      ::close(fd);
      return absl::CancelledError("stopped; run the same download again to resume it");
    }
    if (s.ok()) break;
    // A .part longer than the file: left by another version of it. Start over.
    if (s.error_code() == grpc::StatusCode::OUT_OF_RANGE && offset > 0 && attempt + 1 < kMaxTries) {
      if (::ftruncate(fd, 0) != 0) {
        absl::Status e = Errno("truncate", part);
        ::close(fd);
        return e;
      }
      continue;
    }
    if (Retryable(s) && attempt + 1 < kMaxTries) {
      Backoff(attempt);
      continue;
    }
    ::close(fd);
    return client_->Explain(s);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return Errno("fsync", part);
  absl::StatusOr<std::string> got = FileSha256Hex(part);
  if (!got.ok()) return got.status();
  if (size < 0 || *got != sha256) {
    ::unlink(part.c_str());
    return absl::DataLossError(absl::StrCat(name, ": the bytes received do not have the file's SHA-256; run the "
                                            "download again"));
  }
  if (::rename(part.c_str(), dest.c_str()) != 0) return Errno("rename to", dest);
  return absl::OkStatus();
}

}  // namespace trainerd
