// FollowPump: the one thread that wakes the streams following jobs (StreamLogs,
// WatchJob) when something may have changed, instead of a server thread per follower.
// A stream with nothing to send registers as idle; on every change notice of the
// JobRegistry (and at least every 500 ms) the pump pokes each one, and a stream that
// finds something new writes it from gRPC's callback threads until it is idle again.
#ifndef TRAINERD_SERVER_API_FOLLOW_PUMP_H_
#define TRAINERD_SERVER_API_FOLLOW_PUMP_H_

#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/jobs/job_registry.h"

namespace trainerd {

// How a follower finds what is new: appends it to *out, and sets *done when the stream
// ends once those are sent. A non-OK status ends the stream with that status (after what
// was already sent). Transport-free: the gRPC streams and the HTTP event streams run the
// same ones (job_operations.h makes them).
template <typename Item>
using FollowFetch = std::function<absl::Status(std::deque<Item>* out, bool* done)>;

// What the pump wakes.
class Pokeable {
 public:
  virtual ~Pokeable() = default;
  // Looks for something new to send; called on the pump's thread, never under its lock.
  virtual void Poke() = 0;
  // trainerd is shutting down: end the stream (UNAVAILABLE, so that clients reconnect).
  virtual void Stop() = 0;
};

class FollowPump {
 public:
  // `registry` outlives the pump. Starts the thread.
  explicit FollowPump(JobRegistry* registry);
  // Stops the thread (Stop() first for a graceful end of the streams).
  ~FollowPump();

  // Registers an idle follower; false (nothing registered) once the pump is stopping.
  // Never calls the follower, so it may be called under the follower's own lock.
  bool Add(std::shared_ptr<Pokeable> follower) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(const std::shared_ptr<Pokeable>& follower) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends every stream and stops waking them.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  size_t size() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);

  JobRegistry* const registry_;
  absl::Mutex mu_;
  std::set<std::shared_ptr<Pokeable>> followers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_API_FOLLOW_PUMP_H_
