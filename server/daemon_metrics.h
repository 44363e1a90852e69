// trainerd's Prometheus metrics (one registry, every family registered once here), and
// the process's own (ProcessCollector) beside them.
#ifndef TRAINERD_SERVER_DAEMON_METRICS_H_
#define TRAINERD_SERVER_DAEMON_METRICS_H_

#include <map>
#include <memory>
#include <string>

#include <grpcpp/support/status_code_enum.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "trainer/v1/job_service.pb.h"

namespace trainerd {

class DaemonMetrics {
 public:
  // `version`: trainerd's, for trainerd_build_info.
  DaemonMetrics(int32_t cpu_slots, int32_t gpus, const std::string& version);

  std::shared_ptr<prometheus::Registry> registry() { return registry_; }

  // A finished call; `streamed`: a follower (StreamLogs, WatchJob), whose duration goes
  // to a histogram of its own, not the latency one.
  void OnRpc(const std::string& method, grpc::StatusCode code, double seconds, bool streamed);
  // A job was stored with a new state or progress.
  void OnJobChanged(const trainer::v1::Job& job);
  void OnJobFinished(const trainer::v1::Job& job);
  void OnRestart();
  // What the sweeps stand at: how many are in each state ("running", "completed",
  // "failed", "cancelling", "cancelled"), and the trials running in each running sweep.
  void OnSweeps(const std::map<std::string, int>& by_state, const std::map<std::string, int>& trials_running);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& jobs_;
  prometheus::Gauge& queue_length_;
  prometheus::Counter& submitted_;
  prometheus::Family<prometheus::Counter>& finished_;
  prometheus::Counter& restarts_;
  prometheus::Family<prometheus::Gauge>& slots_;
  prometheus::Family<prometheus::Gauge>& slots_in_use_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Histogram>& stream_duration_;
  prometheus::Family<prometheus::Gauge>& job_loss_;
  prometheus::Family<prometheus::Gauge>& job_lr_;
  prometheus::Family<prometheus::Gauge>& job_samples_;
  prometheus::Family<prometheus::Gauge>& job_step_;
  prometheus::Family<prometheus::Gauge>& sweeps_;
  prometheus::Family<prometheus::Gauge>& sweep_trials_running_;

  absl::Mutex mu_;
  struct Tracked {
    trainer::v1::JobState state;
    int32_t cpu_slots;
    int32_t gpus;
  };
  std::map<std::string, Tracked> jobs_seen_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> sweep_trials_seen_ ABSL_GUARDED_BY(mu_);  // the running sweeps last told
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_DAEMON_METRICS_H_
