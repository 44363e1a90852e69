// Many clients following one job's logs (StreamLogs, follow) from one completion queue,
// as a test or bench needs hundreds of them without a thread each; and what a process
// holds (threads, resident memory) from /proc.
#ifndef TRAINERD_TESTS_LOG_FOLLOWERS_H_
#define TRAINERD_TESTS_LOG_FOLLOWERS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd::testing {

struct ProcessUse {
  int64_t threads = 0, rss_kb = 0;
};

inline ProcessUse Use(pid_t pid) {
  ProcessUse u;
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  while (in >> key) {
    if (key == "Threads:") in >> u.threads;
    if (key == "VmRSS:") in >> u.rss_kb;
  }
  return u;
}

class LogFollowers {
 public:
  // Starts `count` follows of `job_id` over `stubs` in turn, each authorized by `authorize`.
  template <typename Authorize>
  LogFollowers(const std::vector<trainer::v1::JobService::Stub*>& stubs, const std::string& job_id, int count,
               Authorize authorize) {
    trainer::v1::StreamLogsRequest req;
    req.set_job_id(job_id);
    req.set_follow(true);
    for (int f = 0; f < count; ++f) {
      all_.push_back(std::make_unique<Follower>());
      authorize(&all_[f]->ctx);
      all_[f]->reader = stubs[f % stubs.size()]->AsyncStreamLogs(&all_[f]->ctx, req, &cq_, Tag(f, false));
    }
  }
  ~LogFollowers() {
    for (auto& f : all_) f->ctx.TryCancel();
    Drain(std::chrono::seconds(10));
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // Waits until every stream has started (each then keeps reading); how many did.
  int WaitStarted(std::chrono::seconds timeout) {
    int started = 0;
    void* tag;
    bool ok;
    const auto until = std::chrono::system_clock::now() + timeout;
    while (started < static_cast<int>(all_.size()) &&
           cq_.AsyncNext(&tag, &ok, until) == grpc::CompletionQueue::GOT_EVENT) {
      if (!ok) continue;
      Follower& f = *all_[Index(tag)];
      started += f.line.seq() == 0;
      lines_ += f.line.seq() > 0;
      f.reader->Read(&f.line, tag);
    }
    return started;
  }

  // Reads until every stream has ended (or `timeout`); how many ended with OK.
  int Drain(std::chrono::seconds timeout) {
    void* tag;
    bool ok;
    const auto until = std::chrono::system_clock::now() + timeout;
    while (finished_ < static_cast<int>(all_.size()) &&
           cq_.AsyncNext(&tag, &ok, until) == grpc::CompletionQueue::GOT_EVENT) {
      const size_t i = Index(tag);
      Follower& f = *all_[i];
      if (IsFinish(tag)) {
        ++finished_;
        ended_ok_ += f.status.ok();
      } else if (ok) {
        lines_ += f.line.seq() > 0;
        f.reader->Read(&f.line, tag);
      } else {
        f.reader->Finish(&f.status, Tag(i, true));
      }
    }
    return ended_ok_;
  }

  int64_t lines() const { return lines_; }

 private:
  struct Follower {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReader<trainer::v1::LogLine>> reader;
    trainer::v1::LogLine line;
    grpc::Status status;
  };
  static void* Tag(size_t i, bool finish) { return reinterpret_cast<void*>(static_cast<intptr_t>(i * 2 + finish)); }
  static size_t Index(void* tag) { return static_cast<size_t>(reinterpret_cast<intptr_t>(tag) / 2); }
  static bool IsFinish(void* tag) { return reinterpret_cast<intptr_t>(tag) % 2 == 1; }

  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Follower>> all_;
  int finished_ = 0, ended_ok_ = 0;
  int64_t lines_ = 0;
};

}  // namespace trainerd::testing

#endif  // TRAINERD_TESTS_LOG_FOLLOWERS_H_
