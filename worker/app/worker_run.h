// The body of trainer-worker: from a spec file to a trained, evaluated, saved model.
#ifndef TRAINERD_WORKER_APP_WORKER_RUN_H_
#define TRAINERD_WORKER_APP_WORKER_RUN_H_

#include <cstdint>
#include <string>
#include <vector>

namespace trainerd {

struct WorkerOptions {
  std::string spec_path;
  std::vector<std::string> overrides;
  int metrics_fd = -1;
  bool validate_only = false;
  // Touched at least every few seconds while the job makes progress (steps,
  // evaluation batches); trainerd kills a worker whose file goes stale.
  std::string heartbeat_file;
  // When > 0: training stops at this step, with a checkpoint saved there (trainerd's
  // Job.stop_at_step); the run then ends as a finished one.
  int64_t stop_at_step = 0;
  // --consolidate: write this checkpoint's weights as a Hugging Face folder in
  // consolidate_output, instead of running the spec.
  std::string consolidate_checkpoint;
  std::string consolidate_output;
};

// Exit status when SIGTERM stopped training (after saving a checkpoint).
inline constexpr int kExitStopped = 3;

// Runs the job. Returns the process exit status: 0 success, 1 the run failed, 2 the
// spec is invalid (every problem is printed, one per line, naming its field),
// kExitStopped when SIGTERM stopped it.
int RunWorker(const WorkerOptions& options);

// Writes options.consolidate_checkpoint's weights to options.consolidate_output as the
// final folder of its run (one process, whatever number of ranks saved it). The job's
// model and data must still be where its spec says. Returns the exit status.
int ConsolidateCheckpoint(const WorkerOptions& options);

// "out of memory (limit N MB)" with the process's address-space limit, when it has one.
std::string OutOfMemoryMessage();

}  // namespace trainerd

#endif  // TRAINERD_WORKER_APP_WORKER_RUN_H_
