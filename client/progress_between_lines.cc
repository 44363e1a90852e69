#include "client/progress_between_lines.h"

#include <iostream>

#include "client/cli_format.h"

namespace trainerd {

ProgressBetweenLines::ProgressBetweenLines(TrainerClient& client, std::string id, std::chrono::seconds quiet)
    : client_(client), id_(std::move(id)), quiet_(quiet), thread_([this] { Run(); }) {}

ProgressBetweenLines::~ProgressBetweenLines() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void ProgressBetweenLines::SawLine() {
  absl::MutexLock lock(&mu_);
  last_line_ = std::chrono::steady_clock::now();
}

void ProgressBetweenLines::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Seconds(1))) return;
      const auto now = std::chrono::steady_clock::now();
      if (now - last_line_ < quiet_) continue;
      last_line_ = now;
    }
    auto job = client_.GetJob(id_);  // outside the lock: the lines go on meanwhile
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    // One write: the log lines are printed by another thread.
    if (job.ok()) std::cout << ("  ... " + ProgressLine(*job, 0) + "\n") << std::flush;
  }
}

}  // namespace trainerd
