#include "server/jobs/worker_log_parsing.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace trainerd {

std::vector<std::string> ReadNewLines(const std::string& path, int64_t* offset, int64_t max_bytes) {
  std::vector<std::string> lines;
  std::ifstream in(path, std::ios::binary);
  if (!in) return lines;
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  if (size < *offset) *offset = 0;  // the file was replaced
  if (size == *offset) return lines;
  const int64_t n = std::min(size - *offset, max_bytes);
  std::string chunk(n, '\0');
  in.seekg(*offset);
  in.read(chunk.data(), n);
  const size_t last_newline = chunk.rfind('\n');
  if (last_newline == std::string::npos) return lines;
  for (absl::string_view line : absl::StrSplit(absl::string_view(chunk).substr(0, last_newline), '\n')) {
    lines.emplace_back(line);
  }
  *offset += static_cast<int64_t>(last_newline) + 1;
  return lines;
}

trainer::v1::LogLine ParseLogLine(const std::string& line, int32_t rank, int32_t attempt, int64_t now_ms) {
  trainer::v1::LogLine l;
  l.set_rank(rank);
  l.set_attempt(attempt);
  l.set_time_unix_ms(now_ms);
  l.set_text(line);
  l.set_level("info");
  std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 2));
  if (parts.size() >= 2 && parts[0].size() >= 19 && parts[0][4] == '-' && parts[0][10] == 'T') {
    const std::string level(parts[1]);
    if (level == "debug" || level == "trace") l.set_level("debug");
    if (level == "warning" || level == "warn") l.set_level("warning");
    if (level == "error" || level == "critical") l.set_level("error");
  }
  return l;
}

std::string LastErrorMessage(const std::string& log_path, int64_t window) {
  std::ifstream in(log_path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  const int64_t start = std::max<int64_t>(0, size - window);
  std::string chunk(size - start, '\0');
  in.seekg(start);
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  std::string found;
  for (absl::string_view line : absl::StrSplit(chunk, '\n')) {
    const trainer::v1::LogLine parsed = ParseLogLine(std::string(line), 0, 0, 0);
    if (parsed.level() != "error") continue;
    // "2026-01-02T03:04:05.678 error [rank 1] text": the text.
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    found = std::string(parts.size() == 3 ? parts[2] : line);
  }
  if (found.size() > 300) found = found.substr(0, 297) + "...";
  return found;
}

std::vector<trainer::v1::MetricPoint> MetricPoints(const TrainingRecord& r) {
  std::vector<trainer::v1::MetricPoint> points;
  if (r.kind == kRecordCheckpoint) return points;
  const std::string split = r.kind == kRecordTrainEnd ? kRecordTrain : r.kind;
  for (const auto& [name, value] : r.metrics) {
    trainer::v1::MetricPoint m;
    m.set_name(name);
    m.set_split(split);
    m.set_step(r.step);
    m.set_epoch(r.epoch);
    m.set_value(value);
    m.set_time_unix_ms(static_cast<int64_t>(r.time * 1000));
    points.push_back(std::move(m));
  }
  return points;
}

void UpdateProgress(const TrainingRecord& r, trainer::v1::Progress* p) {
  // A run that begins again (a restart without a checkpoint) goes back to its step.
  if (r.step > 0 || r.kind == kRecordTrainBegin) p->set_step(r.step);
  if (r.max_steps > 0) p->set_max_steps(r.max_steps);
  if (r.epoch > 0) p->set_epoch(r.epoch);
  if (r.kind == kRecordTrain) p->set_logged_step(r.step);
  for (const auto& [name, value] : r.metrics) {
    if (r.kind == kRecordTrain && name == "loss") p->set_loss(value);
    if (r.kind == kRecordTrain && name == "learning_rate") p->set_learning_rate(value);
    if (r.kind == kRecordTrain && name == "samples_per_second") p->set_samples_per_second(value);
    const bool quality = !absl::EndsWith(name, "_runtime") && !absl::EndsWith(name, "_per_second");
    if (r.kind == kRecordEval && quality) (*p->mutable_eval_metrics())[name] = value;
    if (r.kind == kRecordTest && quality) (*p->mutable_test_metrics())[name] = value;
  }
}

}  // namespace trainerd
