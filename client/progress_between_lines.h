// trainer-cli submit --follow: while the job's logs are printed, a progress line
// whenever no log line came for a while, so that loading and the first log steps are
// not silent. One thread of its own, stopped by the destructor.
#ifndef TRAINERD_CLIENT_PROGRESS_BETWEEN_LINES_H_
#define TRAINERD_CLIENT_PROGRESS_BETWEEN_LINES_H_

#include <chrono>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "client/trainer_client.h"

namespace trainerd {

class ProgressBetweenLines {
 public:
  // Prints `id`'s progress line (from GetJob) whenever `quiet` passes without SawLine.
  ProgressBetweenLines(TrainerClient& client, std::string id, std::chrono::seconds quiet);
  ~ProgressBetweenLines();
  // A log line was printed just now.
  void SawLine();

 private:
  void Run();

  TrainerClient& client_;
  const std::string id_;
  const std::chrono::seconds quiet_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_line_ ABSL_GUARDED_BY(mu_) = std::chrono::steady_clock::now();
  std::thread thread_;
};

}  // namespace trainerd

#endif  // TRAINERD_CLIENT_PROGRESS_BETWEEN_LINES_H_
