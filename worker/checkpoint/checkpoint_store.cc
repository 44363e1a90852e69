#include "worker/checkpoint/checkpoint_store.h"

#include <signal.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

uint32_t Crc32(const std::string& data) {
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t offset = 0;
  while (offset < data.size()) {  // zlib takes uInt lengths
    const uInt n = static_cast<uInt>(std::min<size_t>(data.size() - offset, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data() + offset), n);
    offset += n;
  }
  return static_cast<uint32_t>(crc);
}

absl::StatusOr<std::string> ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// WriteFolder's temporary siblings of `final_path`: .<name>.tmp-<pid> (being written)
// and .<name>.old-<pid> (the copy it replaces, moved aside). RecoverInterruptedWrites
// parses the same names.
constexpr char kWritingTag[] = ".tmp-";
constexpr char kReplacedTag[] = ".old-";

fs::path Sibling(const fs::path& final_path, const char* tag, pid_t pid) {
  return final_path.parent_path() / absl::StrCat(".", final_path.filename().string(), tag, pid);
}

// Splits ".<name><tag><pid>" into name and pid; false for any other name.
bool ParseSibling(const std::string& file_name, const char* tag, std::string* name, pid_t* pid) {
  const size_t at = file_name.rfind(tag);
  if (file_name.size() < 2 || file_name[0] != '.' || at == std::string::npos || at < 2) return false;
  int64_t value;
  if (!absl::SimpleAtoi(file_name.substr(at + std::strlen(tag)), &value) || value <= 0) return false;
  *name = file_name.substr(1, at - 1);
  *pid = static_cast<pid_t>(value);
  return true;
}

bool ProcessIsAlive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// Writes `files` into `dir` (created), each fsynced; returns their manifest entries.
absl::StatusOr<json> WriteFiles(const fs::path& dir, const CheckpointFiles& files) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", dir.string(), ": ", ec.message()));
  json entries = json::object();
  for (const auto& [name, contents] : files) {
    // A name may hold a folder (a LoRA job's merged/model.safetensors, a rank's shard).
    if (name.find('/') != std::string::npos) fs::create_directories((dir / name).parent_path(), ec);
    if (ec) return absl::InternalError(absl::StrCat("create ", (dir / name).parent_path().string(), ": ", ec.message()));
    if (absl::Status s = WriteFileSynced((dir / name).string(), contents); !s.ok()) return s;
    entries[name] = {{"size", contents.size()}, {"crc32", Crc32(contents)}};
  }
  return entries;
}

// Writes MANIFEST.json over `entries` (last, fsynced) and fsyncs the folder and its
// sub-folders.
absl::Status WriteManifest(const fs::path& dir, const json& entries) {
  const json manifest = {{"format", 1}, {"files", entries}};
  if (absl::Status s = WriteFileSynced((dir / kManifestFile).string(), manifest.dump(2)); !s.ok()) return s;
  std::set<fs::path> folders = {dir};
  for (const auto& [name, entry] : entries.items()) folders.insert((dir / name).parent_path());
  for (const fs::path& folder : folders) {
    if (absl::Status s = SyncPath(folder.string()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Renames the written folder `tmp` to `final_path`, replacing an existing folder of the
// same name (e.g. re-saving a step after resume): that one is moved aside first so that
// a crash leaves one valid copy.
absl::Status CommitFolder(const fs::path& tmp, const fs::path& final_path) {
  std::error_code ec;
  const fs::path old = Sibling(final_path, kReplacedTag, ::getpid());
  if (fs::exists(final_path)) {
    fs::rename(final_path, old, ec);
    if (ec) return absl::InternalError(absl::StrCat("rename ", final_path.string(), ": ", ec.message()));
  }
  fs::rename(tmp, final_path, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename to ", final_path.string(), ": ", ec.message()));
  if (absl::Status s = SyncPath(final_path.parent_path().string()); !s.ok()) return s;
  fs::remove_all(old, ec);
  return absl::OkStatus();
}

// A status as one rank tells it to the others, and back.
json StatusToJson(const absl::Status& s) {
  return {{"code", static_cast<int>(s.code())}, {"message", std::string(s.message())}};
}
absl::Status StatusFromJson(const json& j) {
  if (!j.is_object()) return absl::InternalError("a rank's checkpoint report is malformed");
  return absl::Status(static_cast<absl::StatusCode>(j.value("code", 13)), j.value("message", std::string()));
}

}  // namespace

std::vector<std::string> CheckpointStore::RecoverInterruptedWrites(const std::string& dir) {
  std::vector<std::string> done;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string file_name = entry.path().filename().string();
    std::string name;
    pid_t pid;
    const bool writing = ParseSibling(file_name, kWritingTag, &name, &pid);
    if (!writing && !ParseSibling(file_name, kReplacedTag, &name, &pid)) continue;
    if (!entry.is_directory(ec) || pid == ::getpid() || ProcessIsAlive(pid)) continue;
    const fs::path final_path = fs::path(dir) / name;
    std::error_code op;
    if (!writing && !fs::exists(final_path, op)) {
      fs::rename(entry.path(), final_path, op);  // the only copy: it takes its name back
      done.push_back(absl::StrCat("restored ", final_path.string(), " from ", file_name,
                                  op ? absl::StrCat(" failed: ", op.message()) : ""));
      continue;
    }
    fs::remove_all(entry.path(), op);
    done.push_back(absl::StrCat("removed ", entry.path().string(), " (left by process ", pid, ")",
                                op ? absl::StrCat(" failed: ", op.message()) : ""));
  }
  return done;
}

CheckpointStore::CheckpointStore(std::string output_dir, int64_t save_total_limit, CheckpointWriters* writers)
    : output_dir_(std::move(output_dir)), save_total_limit_(save_total_limit), writers_(writers) {
  writer_ = std::thread([this] { WriterLoop(); });
}

CheckpointStore::~CheckpointStore() {
  // A failed write was reported by Save or Flush already; nothing is left to tell here.
  Flush().IgnoreError();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();
}

absl::StatusOr<std::string> CheckpointStore::Save(int64_t step, CheckpointProducer produce,
                                                  std::set<std::string> keep, CheckpointDone on_done) {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &CheckpointStore::Idle));
  if (!error_.ok()) return error_;
  pending_ = Job{step, std::move(produce), std::move(keep), std::move(on_done)};
  return (fs::path(output_dir_) / absl::StrCat(kCheckpointPrefix, step)).string();
}

absl::Status CheckpointStore::Flush() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &CheckpointStore::Idle));
  return error_;
}

bool CheckpointStore::Idle() const { return !pending_ && !busy_; }

bool CheckpointStore::HasWork() const { return pending_.has_value() || stopping_; }

void CheckpointStore::WriterLoop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &CheckpointStore::HasWork));
      if (!pending_) return;
      job = std::move(*pending_);
      pending_.reset();
      busy_ = true;
    }
    const std::string dest = (fs::path(output_dir_) / absl::StrCat(kCheckpointPrefix, job.step)).string();
    absl::StatusOr<CheckpointFiles> files = job.produce();
    absl::Status status;
    if (writers_ != nullptr) {
      status = WriteTogether(dest, files);
    } else {
      status = files.ok() ? WriteFolder(dest, *files) : files.status();
    }
    const bool main = writers_ == nullptr || writers_->rank() == 0;
    // Rotation comes before on_done, whose "checkpoint" record tells trainerd which
    // folders exist: the ones rotated away are gone by the time it reads it.
    if (status.ok()) {
      if (main) Rotate(job.keep);
    } else {
      spdlog::error("saving {} failed: {}", dest, std::string(status.message()));
    }
    if (job.on_done && main) job.on_done(status, files.ok() ? *files : CheckpointFiles{});
    absl::MutexLock lock(&mu_);
    if (!status.ok() && error_.ok()) error_ = status;
    busy_ = false;
  }
}

absl::Status CheckpointStore::WriteFolder(const std::string& dest, const CheckpointFiles& files) {
  const fs::path final_path(dest);
  const fs::path tmp = Sibling(final_path, kWritingTag, ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  absl::StatusOr<json> entries = WriteFiles(tmp, files);
  absl::Status s = entries.ok() ? WriteManifest(tmp, *entries) : entries.status();
  if (!s.ok()) {
    fs::remove_all(tmp, ec);  // what was written goes, and with it the space (a full disk)
    return s;
  }
  return CommitFolder(tmp, final_path);
}

absl::Status CheckpointStore::WriteTogether(const std::string& dest, const absl::StatusOr<CheckpointFiles>& files) {
  const bool main = writers_->rank() == 0;
  const fs::path final_path(dest);
  std::error_code ec;
  // 1. The folder is named after rank 0's process, which clears a stale one first; the
  //    exchange is the barrier that keeps the others from writing before that.
  if (main) fs::remove_all(Sibling(final_path, kWritingTag, ::getpid()), ec);
  auto pids = writers_->AllGather(main ? std::to_string(::getpid()) : "");
  if (!pids.ok()) return pids.status();
  int64_t pid0 = 0;
  if (pids->empty() || !absl::SimpleAtoi(pids->front(), &pid0) || pid0 <= 0) {
    return absl::InternalError("checkpoint writers: rank 0 sent no folder name");
  }
  const fs::path tmp = Sibling(final_path, kWritingTag, static_cast<pid_t>(pid0));
  // 2. Each rank writes its own files, then tells the others how it went.
  absl::StatusOr<json> entries = files.ok() ? WriteFiles(tmp, *files) : absl::StatusOr<json>(files.status());
  const json report = entries.ok() ? json{{"files", *entries}} : json{{"error", StatusToJson(entries.status())}};
  auto reports = writers_->AllGather(report.dump());
  if (!reports.ok()) return reports.status();
  // 3. Rank 0 commits the folder when every rank wrote its files, and tells the others.
  absl::Status outcome;
  if (main) {
    json all = json::object();
    for (size_t r = 0; r < reports->size() && outcome.ok(); ++r) {
      const json got = json::parse((*reports)[r], nullptr, /*allow_exceptions=*/false);
      if (got.is_object() && got.contains("files") && got["files"].is_object()) {
        all.update(got["files"]);
      } else {
        const absl::Status failed = StatusFromJson(got.is_object() ? got.value("error", json()) : json());
        outcome = absl::Status(failed.code(), absl::StrCat("rank ", r, ": ", failed.message()));
      }
    }
    if (outcome.ok()) outcome = WriteManifest(tmp, all);
    if (outcome.ok()) outcome = CommitFolder(tmp, final_path);
    if (!outcome.ok()) fs::remove_all(tmp, ec);
  }
  auto committed = writers_->AllGather(main ? StatusToJson(outcome).dump() : "");
  if (!committed.ok()) return committed.status();
  if (main) return outcome;
  return StatusFromJson(json::parse(committed->front(), nullptr, /*allow_exceptions=*/false));
}

int64_t CheckpointStore::StepOf(const std::string& dir) {
  const std::string name = fs::path(dir).filename().string();
  if (name.rfind(kCheckpointPrefix, 0) != 0) return -1;
  int64_t step;
  return absl::SimpleAtoi(name.substr(sizeof(kCheckpointPrefix) - 1), &step) ? step : -1;
}

std::vector<std::string> CheckpointStore::List(const std::string& output_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(output_dir, ec)) {
    const int64_t step = StepOf(entry.path().string());
    if (step >= 0 && entry.is_directory()) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& [step, path] : found) out.push_back(path);
  return out;
}

absl::Status CheckpointStore::Verify(const std::string& dir) {
  auto text = ReadWholeFile(fs::path(dir) / kManifestFile);
  if (!text.ok()) return absl::DataLossError(absl::StrCat(dir, ": no ", kManifestFile, " (incomplete write?)"));
  json manifest = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || !manifest.contains("files") || !manifest["files"].is_object()) {
    return absl::DataLossError(absl::StrCat(dir, ": ", kManifestFile, " is malformed"));
  }
  for (const auto& [name, entry] : manifest["files"].items()) {
    auto contents = ReadWholeFile(fs::path(dir) / name);
    if (!contents.ok()) return absl::DataLossError(absl::StrCat(dir, ": ", name, " is missing"));
    if (contents->size() != entry.value("size", uint64_t{0})) {
      return absl::DataLossError(absl::StrCat(dir, ": ", name, " has ", contents->size(),
                                              " bytes, the manifest says ", entry.value("size", uint64_t{0})));
    }
    if (Crc32(*contents) != entry.value("crc32", uint32_t{0})) {
      return absl::DataLossError(absl::StrCat(dir, ": ", name, " fails its checksum"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckpointFiles> CheckpointStore::Read(const std::string& dir, bool with_folders) {
  if (absl::Status s = Verify(dir); !s.ok()) return s;
  CheckpointFiles files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory()) {
      if (!with_folders) it.disable_recursion_pending();
      continue;
    }
    const std::string name = fs::relative(it->path(), dir).string();
    if (name == kManifestFile) continue;
    auto contents = ReadWholeFile(it->path());
    if (!contents.ok()) return contents.status();
    files[name] = std::move(*contents);
  }
  if (ec) return absl::DataLossError(absl::StrCat(dir, ": ", ec.message()));
  return files;
}

absl::StatusOr<std::string> CheckpointStore::LatestValid(
    const std::string& output_dir, const std::function<void(const std::string&)>& warn) {
  std::vector<std::string> all = List(output_dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    absl::Status s = Verify(*it);
    if (s.ok()) return *it;
    if (warn) warn(absl::StrCat("skipping invalid checkpoint: ", s.message()));
  }
  return absl::NotFoundError(absl::StrCat("no valid checkpoint in ", output_dir));
}

void CheckpointStore::Rotate(const std::set<std::string>& keep) {
  if (save_total_limit_ <= 0) return;
  std::vector<std::string> all = List(output_dir_);
  int64_t excess = static_cast<int64_t>(all.size()) - save_total_limit_;
  // Oldest first; the newest is never a candidate (it was just written).
  for (size_t i = 0; i + 1 < all.size() && excess > 0; ++i) {
    const std::string name = fs::path(all[i]).filename().string();
    if (keep.count(all[i]) || keep.count(name)) continue;
    std::error_code ec;
    fs::remove_all(all[i], ec);
    if (ec) {
      spdlog::warn("rotation: cannot delete {}: {}", all[i], ec.message());
    } else {
      spdlog::info("Deleting older checkpoint {} (save_total_limit {})", all[i], save_total_limit_);
      --excess;
    }
  }
}

}  // namespace trainerd
