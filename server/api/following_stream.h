// FollowingStream<Item>: a server-streaming call that follows a job (StreamLogs,
// WatchJob) on gRPC's callback API. It holds no thread: it writes what its Fetch finds,
// one message at a time from gRPC's callback threads, and while there is nothing new it
// waits in the FollowPump, which pokes it when the job registry changes.
//
// Its state lives in a shared Follower (the pump holds it too), guarded by one mutex;
// gRPC's StartWrite and Finish are called outside that mutex, by whichever thread took
// the decision to, so that a reaction gRPC runs inline cannot deadlock. Once Finish is
// called nothing touches the reactor again; gRPC deletes it through OnDone.
#ifndef TRAINERD_SERVER_API_FOLLOWING_STREAM_H_
#define TRAINERD_SERVER_API_FOLLOWING_STREAM_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/api/follow_pump.h"
#include "server/api/status_util.h"

namespace trainerd {

template <typename Item>
class FollowingStream : public grpc::ServerWriteReactor<Item> {
 public:
  using Fetch = FollowFetch<Item>;
  // Told the stream's final status once gRPC is done with it.
  using OnEnd = std::function<void(const grpc::Status& status)>;

  // A stream that sends what `fetch` finds until it is done. `pump` outlives it.
  static FollowingStream* Start(FollowPump* pump, Fetch fetch, OnEnd on_end) {
    auto* stream = new FollowingStream(pump, std::move(fetch), std::move(on_end));
    stream->follower_->Advance(/*write_done=*/false, /*write_ok=*/true);
    return stream;
  }
  // A call refused before it streams (not authenticated, no such job).
  static FollowingStream* Refuse(grpc::Status status, OnEnd on_end) {
    auto* stream = new FollowingStream(nullptr, nullptr, std::move(on_end));
    stream->follower_->FinishNow(std::move(status));
    return stream;
  }

  void OnWriteDone(bool ok) override { follower_->Advance(/*write_done=*/true, ok); }
  void OnCancel() override { follower_->FinishNow(grpc::Status(grpc::StatusCode::CANCELLED, "client went away")); }
  void OnDone() override {
    if (pump_ != nullptr) pump_->Remove(follower_);
    if (on_end_) on_end_(follower_->final_status());
    delete this;
  }

 private:
  class Follower : public Pokeable {
   public:
    Follower(FollowingStream* stream, Fetch fetch) : stream_(stream), fetch_(std::move(fetch)) {}

    void Poke() override { Advance(/*write_done=*/false, /*write_ok=*/true); }
    void Stop() override {
      FinishNow(grpc::Status(grpc::StatusCode::UNAVAILABLE, "trainerd is shutting down; reconnect to continue"));
    }

    // After a write (or a poke): sends the next item, finishes, or waits in the pump.
    void Advance(bool write_done, bool write_ok) ABSL_LOCKS_EXCLUDED(mu_) {
      const Item* next = nullptr;
      std::optional<grpc::Status> finish;
      {
        absl::MutexLock lock(&mu_);
        if (write_done) {
          writing_ = false;
          if (!queue_.empty()) queue_.pop_front();
          if (!write_ok && !pending_finish_) pending_finish_ = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        }
        if (finished_ || writing_) return;
        finish = pending_finish_;
        if (!finish && queue_.empty() && !done_) {
          absl::Status s = fetch_(&queue_, &done_);
          if (!s.ok()) finish = ToGrpcStatus(s);
        }
        if (!finish && !queue_.empty()) {
          writing_ = true;
          next = &queue_.front();  // stays put until OnWriteDone pops it
        } else if (!finish && done_) {
          finish = grpc::Status::OK;
        } else if (!finish && !in_pump_) {
          in_pump_ = true;  // wait for a poke
          if (!stream_->pump_->Add(self.lock())) {
            finish = grpc::Status(grpc::StatusCode::UNAVAILABLE, "trainerd is shutting down; reconnect to continue");
          }
        }
        if (finish) {
          finished_ = true;
          final_status_ = *finish;
        }
      }
      // Outside the lock: a reaction gRPC runs inline must not find it held.
      if (next != nullptr) stream_->StartWrite(next);
      if (finish) stream_->Finish(*finish);
    }

    // Ends the stream with `status`: now, or when the write in flight is done.
    void FinishNow(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
      {
        absl::MutexLock lock(&mu_);
        if (finished_) return;
        if (writing_) {
          if (!pending_finish_) pending_finish_ = std::move(status);
          return;  // OnWriteDone finishes it
        }
        finished_ = true;
        final_status_ = status;
      }
      stream_->Finish(std::move(status));
    }

    grpc::Status final_status() ABSL_LOCKS_EXCLUDED(mu_) {
      absl::MutexLock lock(&mu_);
      return final_status_;
    }

    std::weak_ptr<Follower> self;  // set right after construction

   private:

    FollowingStream* const stream_;  // valid until Finish is called
    const Fetch fetch_;
    absl::Mutex mu_;
    std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
    bool done_ ABSL_GUARDED_BY(mu_) = false;      // Fetch said the end is in queue_
    bool writing_ ABSL_GUARDED_BY(mu_) = false;   // a StartWrite awaits its OnWriteDone
    bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was (or is being) called
    bool in_pump_ ABSL_GUARDED_BY(mu_) = false;
    std::optional<grpc::Status> pending_finish_ ABSL_GUARDED_BY(mu_);  // once the write in flight is done
    grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  };

  FollowingStream(FollowPump* pump, Fetch fetch, OnEnd on_end)
      : pump_(pump), on_end_(std::move(on_end)), follower_(std::make_shared<Follower>(this, std::move(fetch))) {
    follower_->self = follower_;
  }

  FollowPump* const pump_;
  const OnEnd on_end_;
  const std::shared_ptr<Follower> follower_;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_API_FOLLOWING_STREAM_H_
