#include "worker/trainer/training_log.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cmath>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "protocol/training_record.h"

namespace trainerd {
namespace {

// Human formatting: learning rates in scientific notation, counts as integers.
std::string HumanValue(const std::string& key, double v) {
  if (key.find("learning_rate") != std::string::npos) return absl::StrFormat("%.3e", v);
  if (key.find("per_second") != std::string::npos) return absl::StrFormat("%.0f", v);
  if (key.find("runtime") != std::string::npos) return absl::StrFormat("%.1fs", v);
  return absl::StrFormat("%.4f", v);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TrainingLog>> TrainingLog::Open(const std::string& jsonl_path, int fd, bool append) {
  std::unique_ptr<TrainingLog> log(new TrainingLog());
  absl::MutexLock lock(&log->mu_);  // nobody else has it yet; the lock satisfies the annotations
  if (!jsonl_path.empty()) {
    log->file_.file = std::fopen(jsonl_path.c_str(), append ? "a" : "w");
    if (log->file_.file == nullptr) {
      return absl::InternalError(absl::StrCat("cannot open ", jsonl_path, " for writing: ", std::strerror(errno)));
    }
  }
  if (fd >= 0) {
    log->fd_stream_.file = fdopen(fd, "a");
    if (log->fd_stream_.file == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--metrics-fd ", fd, ": not a writable descriptor"));
    }
  }
  return log;
}

TrainingLog::~TrainingLog() {
  for (Sink* sink : {&file_, &fd_stream_}) {
    if (sink->file != nullptr) std::fclose(sink->file);
  }
}

std::string TrainingLog::ToHumanLine(const std::string& kind, const Progress& p, const Metrics& metrics) {
  std::string line = absl::StrFormat("%-5s step %lld/%lld  epoch %.2f", kind,
                                     static_cast<long long>(p.step),
                                     static_cast<long long>(p.max_steps), p.epoch);
  for (const auto& [key, value] : metrics) {
    absl::StrAppend(&line, "  ", key, " ", HumanValue(key, value));
  }
  return line;
}

void TrainingLog::Record(const std::string& kind, const Progress& progress, const Metrics& metrics,
                         const std::map<std::string, std::string>& text) {
  if (kind != kRecordCheckpoint && kind != kRecordTrainBegin) spdlog::info("{}", ToHumanLine(kind, progress, metrics));
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  TrainingRecord record;
  record.kind = kind;
  record.time = now;
  record.step = progress.step;
  record.max_steps = progress.max_steps;
  record.epoch = progress.epoch;
  record.metrics = metrics;
  record.text = text;
  const std::string json = FormatTrainingRecord(record);
  {
    absl::MutexLock lock(&mu_);
    for (Sink* sink : {&file_, &fd_stream_}) {
      std::FILE* f = sink->file;
      if (f == nullptr) continue;
      if (std::fputs(json.c_str(), f) < 0 || std::fputc('\n', f) < 0 || std::fflush(f) != 0) {
        // Training goes on (checkpoints report their own failures); the first failure of
        // each sink is logged with its reason, e.g. a full disk.
        if (!sink->failed) spdlog::error("writing the training log to {} failed: {}", sink->name, std::strerror(errno));
        sink->failed = true;
        std::clearerr(f);
      }
    }
  }
}

}  // namespace trainerd
