// The worker's two log streams for training progress:
//  - one human line per record on stderr (step/total, epoch, loss, lr, grad_norm,
//    samples/s), via spdlog;
//  - one JSON object per line (JSONL) for machines: a file in output_dir and/or an
//    inherited file descriptor that trainerd reads.
// The JSON record is protocol/training_record.h's, the format trainerd reads.
#ifndef TRAINERD_WORKER_TRAINER_TRAINING_LOG_H_
#define TRAINERD_WORKER_TRAINER_TRAINING_LOG_H_

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/status/statusor.h"
#include "worker/trainer/metrics_map.h"

namespace trainerd {

struct Progress {
  int64_t step = 0;
  int64_t max_steps = 0;
  double epoch = 0;
};

class TrainingLog {
 public:
  // Opens the JSONL sinks: `jsonl_path` (appended to, or emptied first unless `append`;
  // empty for none) and `fd` (an open, writable descriptor the log takes over; -1 for none).
  static absl::StatusOr<std::unique_ptr<TrainingLog>> Open(const std::string& jsonl_path, int fd,
                                                           bool append = true);
  ~TrainingLog();

  // Writes one record to every sink. `text` adds string fields (e.g. a checkpoint's
  // "path"). Thread-safe.
  void Record(const std::string& kind, const Progress& progress, const Metrics& metrics,
              const std::map<std::string, std::string>& text = {});

  // The human-readable line for a record.
  static std::string ToHumanLine(const std::string& kind, const Progress& progress,
                                 const Metrics& metrics);

 private:
  // Where records go; a failed write is reported once per sink.
  struct Sink {
    const char* name;
    std::FILE* file = nullptr;
    bool failed = false;
  };

  TrainingLog() = default;
  absl::Mutex mu_;  // one record at a time (the checkpoint writer's thread records too)
  Sink file_ ABSL_GUARDED_BY(mu_){"trainer_log.jsonl"};
  Sink fd_stream_ ABSL_GUARDED_BY(mu_){"the stream to trainerd"};
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_TRAINING_LOG_H_
