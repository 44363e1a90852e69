#include "server/worker_output.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace trainerd {

using nlohmann::json;

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

std::optional<TrainingRecord> ParseTrainingRecord(const std::string& line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string()) return std::nullopt;
  TrainingRecord r;
  r.kind = j["kind"].get<std::string>();
  r.step = j.value("step", int64_t{0});
  r.max_steps = j.value("max_steps", int64_t{0});
  if (j.contains("epoch") && j["epoch"].is_number()) r.epoch = j["epoch"].get<double>();
  const int64_t time_ms = static_cast<int64_t>(j.value("time", 0.0) * 1000);
  if (r.kind == "checkpoint") {
    r.checkpoint_path = j.value("path", "");
    r.checkpoint_bytes = static_cast<int64_t>(j.value("size_bytes", 0.0));
    return r;
  }
  const std::string split = r.kind == "train_end" ? "train" : r.kind;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_number() || key == "time" || key == "step" || key == "max_steps" || key == "epoch") continue;
    trainer::v1::MetricPoint m;
    m.set_name(key);
    m.set_split(split);
    m.set_step(r.step);
    m.set_epoch(r.epoch);
    m.set_value(value.get<double>());
    m.set_time_unix_ms(time_ms);
    r.metrics.push_back(m);
  }
  return r;
}

void UpdateProgress(const TrainingRecord& r, trainer::v1::Progress* p) {
  if (r.step > 0) p->set_step(r.step);
  if (r.max_steps > 0) p->set_max_steps(r.max_steps);
  if (r.epoch > 0) p->set_epoch(r.epoch);
  for (const auto& m : r.metrics) {
    if (r.kind == "train" && m.name() == "loss") p->set_loss(m.value());
    if (r.kind == "train" && m.name() == "learning_rate") p->set_learning_rate(m.value());
    if (r.kind == "train" && m.name() == "samples_per_second") p->set_samples_per_second(m.value());
    if (r.kind == "eval" && !absl::EndsWith(m.name(), "_runtime") && !absl::EndsWith(m.name(), "_per_second")) {
      (*p->mutable_eval_metrics())[m.name()] = m.value();
    }
  }
}

}  // namespace trainerd
