#include "server/jobs/output_tailer.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "spec/spec_policy.h"
#include "protocol/job_layout.h"
#include "server/jobs/worker_log_parsing.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;
using trainer::v1::Job;

// The CRC-32 of the checkpoint's manifest, which lists every file's CRC-32: it
// identifies the checkpoint's contents. "" when there is no manifest.
std::string ManifestChecksum(const std::string& checkpoint_dir) {
  std::ifstream manifest(absl::StrCat(checkpoint_dir, "/", kManifestFile), std::ios::binary);
  std::stringstream text;
  text << manifest.rdbuf();
  const std::string bytes = text.str();
  if (bytes.empty()) return "";
  const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size()));
  return absl::StrCat("crc32:", absl::Hex(crc, absl::kZeroPad8));
}

// The checkpoint a "checkpoint" record announces, with the job's latest evaluation;
// updates the job's best checkpoint from the trainer state saved in it. Which checkpoint
// is the best is the job's to say when they are listed (it changes after this one).
trainer::v1::Checkpoint CheckpointFromRecord(const TrainingRecord& record, const std::string& path, int64_t now_ms,
                                             Job* job) {
  trainer::v1::Checkpoint c;
  c.set_step(record.step);
  c.set_path(path);
  auto bytes = record.metrics.find(kCheckpointBytesField);
  c.set_size_bytes(bytes == record.metrics.end() ? 0 : static_cast<int64_t>(bytes->second));
  c.set_created_unix_ms(now_ms);
  for (const auto& [name, value] : job->progress().eval_metrics()) (*c.mutable_metrics())[name] = value;
  std::ifstream state(absl::StrCat(path, "/", kTrainerStateFile));
  nlohmann::json j = nlohmann::json::parse(state, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("best_model_checkpoint") && j["best_model_checkpoint"].is_string()) {
    job->set_best_checkpoint(j["best_model_checkpoint"].get<std::string>());
  }
  c.set_checksum(ManifestChecksum(path));
  return c;
}

}  // namespace

OutputTailer::OutputTailer(std::string data_root, JobRegistry* registry, JobStore* store)
    : data_root_(std::move(data_root)), registry_(registry), store_(store) {}

int64_t& OutputTailer::Offset(const std::string& tail_key) {
  auto it = offsets_.find(tail_key);
  if (it == offsets_.end()) {
    it = offsets_.emplace(tail_key, store_->TailOffset(tail_key).value_or(0)).first;
  }
  return it->second;
}

absl::Status OutputTailer::Tail(const std::string& job_id, int32_t attempt, int32_t ranks) {
  absl::MutexLock lock(&mu_);
  const int64_t now = NowMs();
  absl::Status result;
  for (int32_t rank = 0; rank < ranks; ++rank) result.Update(TailRankLog(job_id, attempt, rank, now));
  result.Update(TailTrainingLog(job_id, now));
  return result;
}

void OutputTailer::Forget(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  const std::string prefix = job_id + "/";
  for (auto it = offsets_.lower_bound(prefix); it != offsets_.end() && it->first.rfind(prefix, 0) == 0;) {
    it = offsets_.erase(it);
  }
}

absl::Status OutputTailer::TailRankLog(const std::string& job_id, int32_t attempt, int32_t rank, int64_t now_ms) {
  OutputBatch logs;
  logs.job_id = job_id;
  logs.tail_key = absl::StrCat(job_id, "/", AttemptDirName(attempt), "/", RankLogName(rank));
  int64_t& offset = Offset(logs.tail_key);
  const int64_t before = offset;
  const std::string path = absl::StrCat(AttemptDir(data_root_, job_id, attempt), "/", RankLogName(rank));
  for (const std::string& line : ReadNewLines(path, &offset)) {
    logs.lines.push_back(ParseLogLine(line, rank, attempt, now_ms));
  }
  logs.new_offset = offset;
  if (logs.lines.empty()) return absl::OkStatus();
  absl::Status s = store_->AppendOutput(&logs);
  if (!s.ok()) {
    spdlog::error("job={} logs: {}", job_id, std::string(s.message()));
    offset = before;  // read again next time: lines not stored are not skipped
  }
  registry_->NoteOutput(job_id, s);
  return s;
}

absl::Status OutputTailer::TailTrainingLog(const std::string& job_id, int64_t now_ms) {
  absl::StatusOr<Job> job = registry_->Get(job_id);  // the in-memory copy: this runs every poll
  if (!job.ok()) return absl::OkStatus();  // deleted
  OutputBatch metrics;
  metrics.job_id = job_id;
  metrics.tail_key = absl::StrCat(job_id, "/", kTrainingLogFile);
  int64_t& offset = Offset(metrics.tail_key);
  const int64_t before = offset;
  absl::Status s;
  // The records are the running attempt's (the last one; none before the first).
  trainer::v1::Attempt* attempt = job->attempts().empty() ? nullptr : job->mutable_attempts(job->attempts_size() - 1);
  for (const std::string& line : ReadNewLines(absl::StrCat(job->output_dir(), "/", kTrainingLogFile), &offset)) {
    std::optional<TrainingRecord> record = ParseTrainingRecord(line);
    if (!record) continue;
    UpdateProgress(*record, job->mutable_progress());
    for (trainer::v1::MetricPoint& m : MetricPoints(*record)) {
      m.set_attempt(attempt ? attempt->number() : 0);
      metrics.metrics.push_back(std::move(m));
    }
    // Folders the worker names are taken only inside the job's output_dir.
    auto inside = [&](const std::string& path) {
      std::error_code ec;
      const bool ok = IsWithin(fs::weakly_canonical(path, ec), fs::weakly_canonical(job->output_dir(), ec)) && !ec;
      if (!ok) spdlog::warn("job={} ignores a {} record naming a folder outside its output_dir", job_id, record->kind);
      return ok;
    };
    if (record->kind == kRecordTrainBegin && attempt != nullptr) {
      const std::string& from = record->text[kResumedFromField];
      attempt->set_start_step(record->step);
      if (!from.empty() && inside(from)) attempt->set_resumed_from(from);
      continue;
    }
    if (record->kind != kRecordCheckpoint) continue;
    const std::string path = record->text[kCheckpointPathField];
    if (!inside(path)) continue;
    s = store_->PutCheckpoint(job_id, CheckpointFromRecord(*record, path, now_ms, &*job));
    if (!s.ok()) break;
  }
  if (offset == before) return absl::OkStatus();
  metrics.new_offset = offset;
  if (s.ok()) s = store_->AppendOutput(&metrics);
  if (!s.ok()) {
    // Read again next time, progress and checkpoints included: nothing is skipped.
    spdlog::error("job={} training log: {}", job_id, std::string(s.message()));
    offset = before;
    registry_->NoteOutput(job_id, s);
    return s;
  }
  registry_->NoteOutput(job_id, s);
  registry_->Put(*job);  // a progress change the store refuses is the registry's to retry
  return absl::OkStatus();
}

}  // namespace trainerd
