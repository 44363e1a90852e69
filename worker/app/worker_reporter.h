// WorkerReporter: a worker's side of trainerd's WorkerService. When trainerd starts the
// worker it sets TRAINERD_ADDRESS, TRAINERD_WORKER_SECRET, TRAINERD_JOB_ID and
// TRAINERD_ATTEMPT; the reporter then sends a heartbeat (with the current step) every
// two seconds and calls `on_stop` when trainerd answers that the job must stop (cancel,
// shutdown). Calls that fail (trainerd restarting) are simply retried at the next beat.
// Everything else reaches trainerd through the job's files (protocol/job_layout.h).
#ifndef TRAINERD_WORKER_APP_WORKER_REPORTER_H_
#define TRAINERD_WORKER_APP_WORKER_REPORTER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "worker/trainer/trainer_callback.h"

namespace trainerd {

class WorkerReporter : public TrainerCallback {
 public:
  using StopHandler = std::function<void(const std::string& reason)>;
  // nullptr when the environment does not name a trainerd.
  static std::shared_ptr<WorkerReporter> FromEnvironment(StopHandler on_stop);
  ~WorkerReporter() override;

  void on_step_end(const TrainingArguments&, TrainerState& state, TrainerControl&) override {
    step_.store(state.global_step);
  }

 private:
  struct Rpc;
  WorkerReporter(std::string address, std::string secret, std::string job_id, int32_t attempt, int32_t rank,
                 StopHandler on_stop);
  void Loop();

  const std::string job_id_;
  const int32_t attempt_;
  const int32_t rank_;
  StopHandler on_stop_;
  std::unique_ptr<Rpc> rpc_;
  std::atomic<int64_t> step_{0};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_signalled_ = false;  // the reporter thread's own
  std::thread thread_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_APP_WORKER_REPORTER_H_
