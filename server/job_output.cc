// JobManager: following the ranks' logs and rank 0's JSON training log into the store.
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "proto/spec/spec_policy.h"
#include "protocol/job_layout.h"
#include "server/job_manager.h"
#include "server/worker_output.h"

namespace trainerd {

namespace fs = std::filesystem;

void JobManager::TailOutput(const std::string& job_id, Running& r) {
  const int64_t now = NowMs();
  r.output_stored = true;
  for (RankProc& p : r.ranks) {
    OutputBatch logs;
    logs.job_id = job_id;
    logs.tail_key = p.log_key;
    const int64_t before = p.log_offset;
    for (const std::string& line : ReadNewLines(p.log_path, &p.log_offset)) {
      logs.lines.push_back(ParseLogLine(line, p.rank, r.attempt, now));
    }
    logs.new_offset = p.log_offset;
    if (!logs.lines.empty()) {
      if (absl::Status s = store_->AppendOutput(&logs); !s.ok()) {
        // Read again next poll: lines not stored are not skipped.
        spdlog::error("job={} logs: {}", job_id, std::string(s.message()));
        p.log_offset = before;
        r.output_stored = false;
        NoteUnsaved(job_id, s);
        continue;
      }
      ++change_counter_;
    }
  }

  const std::string jsonl_key = absl::StrCat(job_id, "/", kTrainingLogFile);
  auto offset_it = jsonl_offsets_.find(jsonl_key);
  if (offset_it == jsonl_offsets_.end()) {
    offset_it = jsonl_offsets_.emplace(jsonl_key, store_->TailOffset(jsonl_key).value_or(0)).first;
  }
  auto job = Get(job_id);  // the in-memory copy: this runs every poll
  if (!job.ok()) return;
  const int64_t offset_before = offset_it->second;
  absl::Status checkpoint_failure;
  OutputBatch metrics;
  metrics.job_id = job_id;
  metrics.tail_key = jsonl_key;
  for (const std::string& line : ReadNewLines(absl::StrCat(job->output_dir(), "/", kTrainingLogFile), &offset_it->second)) {
    std::optional<TrainingRecord> record = ParseTrainingRecord(line);
    if (!record) continue;
    UpdateProgress(*record, job->mutable_progress());
    for (trainer::v1::MetricPoint& m : MetricPoints(*record)) metrics.metrics.push_back(std::move(m));
    if (record->kind == kRecordCheckpoint) {
      const std::string path = record->text[kCheckpointPathField];
      std::error_code ec;
      if (!IsWithin(fs::weakly_canonical(path, ec), fs::weakly_canonical(job->output_dir(), ec)) || ec) {
        spdlog::warn("job={} ignores a checkpoint record outside its output_dir", job_id);
        continue;
      }
      trainer::v1::Checkpoint c;
      c.set_step(record->step);
      c.set_path(path);
      c.set_size_bytes(static_cast<int64_t>(record->metrics[kCheckpointBytesField]));
      c.set_created_unix_ms(now);
      for (const auto& [name, value] : job->progress().eval_metrics()) (*c.mutable_metrics())[name] = value;
      std::ifstream state(absl::StrCat(path, "/", kTrainerStateFile));
      nlohmann::json j = nlohmann::json::parse(state, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("best_model_checkpoint") && j["best_model_checkpoint"].is_string()) {
        job->set_best_checkpoint(j["best_model_checkpoint"].get<std::string>());
      }
      c.set_is_best(job->best_checkpoint() == path);
      // The manifest lists every file's CRC-32: its own CRC-32 identifies the checkpoint.
      std::ifstream manifest(absl::StrCat(path, "/", kManifestFile), std::ios::binary);
      std::stringstream text;
      text << manifest.rdbuf();
      const std::string bytes = text.str();
      if (!bytes.empty()) {
        const uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size()));
        c.set_checksum(absl::StrCat("crc32:", absl::Hex(crc, absl::kZeroPad8)));
      }
      if (absl::Status s = store_->PutCheckpoint(job_id, c); !s.ok()) {
        spdlog::error("job={} checkpoint: {}", job_id, std::string(s.message()));
        checkpoint_failure = s;
        break;
      }
    }
  }
  metrics.new_offset = offset_it->second;
  if (metrics.new_offset != offset_before) {
    absl::Status s = checkpoint_failure;
    if (s.ok()) s = store_->AppendOutput(&metrics);
    if (!s.ok()) {
      // Read again next poll, progress and checkpoints included: nothing is skipped.
      if (checkpoint_failure.ok()) spdlog::error("job={} metrics: {}", job_id, std::string(s.message()));
      offset_it->second = offset_before;
      r.output_stored = false;
      NoteUnsaved(job_id, s);
      return;
    }
    PutJob(*job);
  }
}

}  // namespace trainerd
