#include "server/files/user_file_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/atomic_file.h"
#include "common/sha256.h"
#include "spec/spec_policy.h"
#include "spec/user_files.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr size_t kMaxFileNameBytes = 1024;
constexpr size_t kMaxFileNameDepth = 32;
constexpr char kUploadsDir[] = ".uploads";
constexpr char kStateFile[] = "state.json";
constexpr char kDataFile[] = "data";

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// An upload under way, as state.json records it.
struct UploadState {
  std::string name, sha256;
  int64_t size = 0, chunk_bytes = 0;
  std::set<int64_t> received;

  int64_t chunks() const { return chunk_bytes == 0 ? 0 : (size + chunk_bytes - 1) / chunk_bytes; }
  int64_t ChunkSize(int64_t index) const { return std::min(chunk_bytes, size - index * chunk_bytes); }
};

absl::StatusOr<UploadState> ReadState(const fs::path& dir) {
  std::error_code ec;
  const std::string path = (dir / kStateFile).string();
  std::string text;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return absl::NotFoundError("no such upload (it finished, or was never begun)");
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) text.append(buf, static_cast<size_t>(n));
    ::close(fd);
  }
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.value("name", json()).is_string() || !j.value("sha256", json()).is_string() ||
      !j.value("size", json()).is_number_integer() || !j.value("chunk_bytes", json()).is_number_integer() ||
      !j.value("received", json()).is_array()) {
    return absl::DataLossError(absl::StrCat(path, ": not an upload's state"));
  }
  UploadState s;
  s.name = j["name"].get<std::string>();
  s.sha256 = j["sha256"].get<std::string>();
  s.size = j["size"].get<int64_t>();
  s.chunk_bytes = j["chunk_bytes"].get<int64_t>();
  for (const json& index : j["received"]) {
    if (index.is_number_integer()) s.received.insert(index.get<int64_t>());
  }
  return s;
}

absl::Status WriteState(const fs::path& dir, const UploadState& s) {
  const json j = {{"name", s.name},
                  {"size", s.size},
                  {"sha256", s.sha256},
                  {"chunk_bytes", s.chunk_bytes},
                  {"received", std::vector<int64_t>(s.received.begin(), s.received.end())}};
  return WriteFileAtomically((dir / kStateFile).string(), j.dump());
}

UploadProgress Progress(const std::string& id, const UploadState& s) {
  UploadProgress p{id, s.chunk_bytes, s.chunks(), {}};
  for (int64_t i = 0; i < s.chunks(); ++i) {
    if (!s.received.count(i)) p.missing.push_back(i);
  }
  return p;
}

// The id of the upload of (name, size, sha256): the same for every try.
std::string UploadId(const std::string& name, int64_t size, const std::string& sha256) {
  return Sha256Hex(absl::StrCat(name, "\n", size, "\n", sha256)).substr(0, 32);
}

int64_t ModifiedMs(const fs::path& path) {
  std::error_code ec;
  const auto time = fs::last_write_time(path, ec);
  if (ec) return 0;
  const auto system = std::chrono::time_point_cast<std::chrono::milliseconds>(
      time - fs::file_time_type::clock::now() + std::chrono::system_clock::now());
  return system.time_since_epoch().count();
}

}  // namespace

UserFileStore::UserFileStore(std::string data_root, int64_t chunk_bytes)
    : data_root_(std::move(data_root)), chunk_bytes_(chunk_bytes) {}

absl::Status UserFileStore::CheckName(std::string_view name) {
  if (name.empty() || name.size() > kMaxFileNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("name: must be 1 to ", kMaxFileNameBytes, " bytes"));
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(absl::string_view(name.data(), name.size()), '/');
  if (parts.size() > kMaxFileNameDepth) {
    return absl::InvalidArgumentError(absl::StrCat("name: at most ", kMaxFileNameDepth, " folders deep"));
  }
  for (absl::string_view part : parts) {
    if (!IsPlainName(std::string(part)) || part[0] == '.') {
      return absl::InvalidArgumentError(
          "name: each part between slashes must be letters, digits, '.', '_' or '-', not start with '.' "
          "(no absolute paths, no \"..\")");
    }
  }
  return absl::OkStatus();
}

std::string UserFileStore::UserDir(const std::string& user) const { return UserAreaDir(data_root_, user); }

absl::StatusOr<std::string> UserFileStore::PathOf(const std::string& user, const std::string& name) const {
  if (!IsPlainName(user)) return absl::InvalidArgumentError("user: not a user name");
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  return absl::StrCat(UserFilesDir(data_root_, user), "/", name);
}

absl::StatusOr<int64_t> UserFileStore::Usage(const std::string& user) const {
  if (!IsPlainName(user)) return absl::InvalidArgumentError("user: not a user name");
  int64_t bytes = 0;
  std::error_code ec;
  const fs::path files = UserFilesDir(data_root_, user);
  if (fs::exists(files, ec)) {
    for (auto it = fs::recursive_directory_iterator(files, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_regular_file(ec)) bytes += static_cast<int64_t>(it->file_size(ec));
    }
  }
  const fs::path uploads = fs::path(UserDir(user)) / kUploadsDir;
  if (fs::exists(uploads, ec)) {
    for (const auto& entry : fs::directory_iterator(uploads, ec)) {
      absl::StatusOr<UploadState> s = ReadState(entry.path());
      if (s.ok()) bytes += s->size;
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("reading ", user, "'s files: ", ec.message()));
  return bytes;
}

absl::StatusOr<UploadProgress> UserFileStore::BeginUpload(const std::string& user, const std::string& name,
                                                          int64_t size, const std::string& sha256,
                                                          int64_t quota_bytes) {
  if (!IsPlainName(user)) return absl::InvalidArgumentError("user: not a user name");
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  if (size < 0) return absl::InvalidArgumentError("size: must not be negative");
  if (!IsSha256Hex(sha256)) return absl::InvalidArgumentError("sha256: must be 64 lower-case hex digits");
  const std::string id = UploadId(name, size, sha256);
  const fs::path dir = fs::path(UserDir(user)) / kUploadsDir / id;
  absl::MutexLock lock(&mu_);
  if (absl::StatusOr<UploadState> existing = ReadState(dir); existing.ok()) return Progress(id, *existing);
  absl::StatusOr<int64_t> usage = Usage(user);
  if (!usage.ok()) return usage.status();
  if (*usage + size > quota_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("uploading ", name, " (", size, " bytes) would take ", user,
                                                     "'s files to ", *usage + size, " bytes, over the quota of ",
                                                     quota_bytes));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", dir.string(), ": ", ec.message()));
  const std::string data = (dir / kDataFile).string();
  const int fd = ::open(data.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Errno("create", data);
  const bool sized = ::ftruncate(fd, size) == 0;
  ::close(fd);
  if (!sized) return Errno("size", data);
  UploadState state{name, sha256, size, chunk_bytes_, {}};
  if (absl::Status s = WriteState(dir, state); !s.ok()) {
    fs::remove_all(dir, ec);
    return s;
  }
  return Progress(id, state);
}

absl::Status UserFileStore::WriteChunk(const std::string& user, const std::string& id, int64_t index,
                                       std::string_view data) {
  if (!IsPlainName(user) || !IsPlainName(id)) return absl::InvalidArgumentError("upload: not an upload id");
  const fs::path dir = fs::path(UserDir(user)) / kUploadsDir / id;
  absl::StatusOr<UploadState> state = ReadState(dir);
  if (!state.ok()) return state.status();
  if (index < 0 || index >= state->chunks()) {
    return absl::InvalidArgumentError(absl::StrCat("chunk: ", index, " is not a chunk of this upload"));
  }
  if (static_cast<int64_t>(data.size()) != state->ChunkSize(index)) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", index, ": ", data.size(), " bytes, expected ",
                                                   state->ChunkSize(index)));
  }
  const std::string path = (dir / kDataFile).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Errno("open", path);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                               static_cast<off_t>(index * state->chunk_bytes + static_cast<int64_t>(done)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("write", path);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) return Errno("close", path);
  absl::MutexLock lock(&mu_);
  unsynced_[user + "/" + id].push_back(index);
  return absl::OkStatus();
}

absl::Status UserFileStore::Sync(const std::string& user, const std::string& id) {
  if (!IsPlainName(user) || !IsPlainName(id)) return absl::InvalidArgumentError("upload: not an upload id");
  const fs::path dir = fs::path(UserDir(user)) / kUploadsDir / id;
  absl::MutexLock lock(&mu_);
  auto it = unsynced_.find(user + "/" + id);
  if (it == unsynced_.end()) return absl::OkStatus();
  // The data first: a chunk is recorded only once it is on disk.
  if (absl::Status s = SyncPath((dir / kDataFile).string()); !s.ok()) return s;
  absl::StatusOr<UploadState> state = ReadState(dir);
  if (!state.ok()) return state.status();
  state->received.insert(it->second.begin(), it->second.end());
  unsynced_.erase(it);
  return WriteState(dir, *state);
}

absl::StatusOr<StoredFile> UserFileStore::FinishUpload(const std::string& user, const std::string& id) {
  if (absl::Status s = Sync(user, id); !s.ok()) return s;
  const fs::path dir = fs::path(UserDir(user)) / kUploadsDir / id;
  absl::StatusOr<UploadState> state = ReadState(dir);
  if (!state.ok()) return state.status();
  const UploadProgress progress = Progress(id, *state);
  if (!progress.missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(state->name, ": ", progress.missing.size(), " of ",
                                                      progress.chunks, " chunks are still missing"));
  }
  const std::string data = (dir / kDataFile).string();
  absl::StatusOr<std::string> sha = FileSha256Hex(data);
  if (!sha.ok()) return sha.status();
  std::error_code ec;
  if (*sha != state->sha256) {
    fs::remove_all(dir, ec);
    return absl::DataLossError(absl::StrCat(state->name, ": the bytes received do not have the SHA-256 announced; "
                                            "the upload was dropped, send it again"));
  }
  absl::StatusOr<std::string> target = PathOf(user, state->name);
  if (!target.ok()) return target.status();
  fs::create_directories(fs::path(*target).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", fs::path(*target).parent_path().string(), ": ", ec.message()));
  if (::rename(data.c_str(), target->c_str()) != 0) return Errno("rename to", *target);
  if (absl::Status s = SyncPath(fs::path(*target).parent_path().string()); !s.ok()) return s;
  fs::remove_all(dir, ec);
  return StoredFile{state->name, state->size, ModifiedMs(*target)};
}

absl::StatusOr<std::vector<StoredFile>> ListFolder(const std::string& root, const std::string& prefix) {
  if (!prefix.empty()) {
    if (absl::Status s = UserFileStore::CheckName(prefix); !s.ok()) return s;
  }
  const fs::path start = prefix.empty() ? fs::path(root) : fs::path(root) / prefix;
  std::vector<StoredFile> out;
  std::error_code ec;
  if (fs::is_regular_file(fs::symlink_status(start, ec))) {
    out.push_back({prefix, static_cast<int64_t>(fs::file_size(start, ec)), ModifiedMs(start)});
    return out;
  }
  if (!fs::is_directory(fs::symlink_status(start, ec))) return out;
  for (auto it = fs::recursive_directory_iterator(start, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    const std::string name = fs::relative(it->path(), root).string();
    if (!UserFileStore::CheckName(name).ok()) continue;  // a temporary file (.name.tmp-...), never a result
    out.push_back({name, static_cast<int64_t>(it->file_size(ec)), ModifiedMs(it->path())});
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", root, ": ", ec.message()));
  std::sort(out.begin(), out.end(), [](const StoredFile& a, const StoredFile& b) { return a.name < b.name; });
  return out;
}

absl::StatusOr<std::vector<StoredFile>> UserFileStore::List(const std::string& user, const std::string& prefix) const {
  if (!IsPlainName(user)) return absl::InvalidArgumentError("user: not a user name");
  return ListFolder(UserFilesDir(data_root_, user), prefix);
}

absl::Status UserFileStore::Delete(const std::string& user, const std::string& name) {
  absl::StatusOr<std::string> path = PathOf(user, name);
  if (!path.ok()) return path.status();
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(*path, ec))) return absl::NotFoundError(absl::StrCat(name, ": no such file"));
  fs::remove_all(*path, ec);
  if (ec) return absl::InternalError(absl::StrCat("delete ", name, ": ", ec.message()));
  return SyncPath(fs::path(*path).parent_path().string());
}

}  // namespace trainerd
