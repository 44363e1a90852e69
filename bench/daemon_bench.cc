// trainerd under load, on loopback, against a real daemon started by this program:
//  - SubmitJob throughput (10,000 jobs into a daemon with no free slots, so they stay
//    queued), then ListJobs latency over those 10,000 stored jobs;
//  - GetJob p50/p99 with 200 concurrent clients;
//  - time from SubmitJob to the worker's first training step (and the part of it that
//    is the worker process starting and loading LibTorch and the data);
//  - log throughput to 50 followers of one job;
//  - the cost of authentication: GetJob over loopback beside the token check alone
//    (AccessControl::Authenticate against a database of 1,000 users), measured in one
//    run; the check's share of a GetJob is the figure that matters.
//
//   daemon_bench [--jobs N]
#include <algorithm>
#include <atomic>
#include <numeric>
#include <cstdio>
#include <thread>

#include <grpcpp/test/server_context_test_spouse.h>

#include "bench/bench_flags.h"
#include "spec/spec_loader.h"
#include "server/api/status_util.h"
#include "server/auth/access_control.h"
#include "server/auth/access_token.h"
#include "storage/user_store.h"
#include "tests/daemon_test_util.h"
#include "tests/log_followers.h"

namespace trainerd {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

trainer::v1::JobSpec TinySpec(int64_t steps, int64_t logging_steps) {
  const std::string d = testing::kFashionDir;
  return *ParseJobSpec(absl::StrCat(
      "training_args: {max_steps: ", steps, ", logging_steps: ", logging_steps,
      ", per_device_train_batch_size: 32, save_strategy: 'no'}\nmodel: {type: mlp, hidden_sizes: [16]}\n",
      "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
      "/train-labels-idx1-ubyte.gz, limit: 500}}\n"));
}

void QueueAndList(int jobs) {
  testing::TempDir dir;
  // One slot, held by a worker that only sleeps: every job after it stays queued, and
  // the CPUs stay free for trainerd.
  std::filesystem::create_directories(dir / "workers");
  // Named trainer-worker, not exec'ing: the Daemon's cleanup finds and kills it by name.
  testing::WriteFile(dir / "workers/trainer-worker", "#!/bin/sh\nwhile :; do sleep 1; done\n");
  std::filesystem::permissions(dir / "workers/trainer-worker", std::filesystem::perms::owner_all);
  testing::Daemon d(dir / "root", {"--cpu-slots", "1", "--allow-worker-dir", dir / "workers", "--heartbeat-timeout",
                                   "100000"});
  {
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    trainer::v1::SubmitJobRequest req;
    *req.mutable_spec() = TinySpec(10, 5);
    req.set_worker_program(dir / "workers/trainer-worker");
    trainer::v1::SubmitJobResponse resp;
    if (!d.stub().SubmitJob(&ctx, req, &resp).ok()) std::abort();
  }
  const auto spec = TinySpec(10, 5);
  const auto start = Clock::now();
  std::atomic<int> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (next.fetch_add(1) < jobs) testing::Submit(d, spec);
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = Ms(Clock::now() - start) / 1000;
  std::printf("SubmitJob: %d jobs in %.1f s = %.0f jobs/s (8 concurrent clients)\n", jobs, seconds, jobs / seconds);

  std::vector<double> list_ms, filtered_ms;
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext ctx;
    d.Authorize(&ctx);
    trainer::v1::ListJobsRequest req;
    req.set_page_size(50);
    trainer::v1::ListJobsResponse resp;
    auto t0 = Clock::now();
    d.stub().ListJobs(&ctx, req, &resp);
    list_ms.push_back(Ms(Clock::now() - t0));
    grpc::ClientContext ctx2;
    d.Authorize(&ctx2);
    req.add_states(trainer::v1::QUEUED);
    req.set_page_token(resp.next_page_token());
    t0 = Clock::now();
    d.stub().ListJobs(&ctx2, req, &resp);
    filtered_ms.push_back(Ms(Clock::now() - t0));
  }
  std::printf("ListJobs over %d stored jobs (page of 50): p50 %.2f ms, p99 %.2f ms; by state, 2nd page: p50 %.2f ms, p99 %.2f ms\n",
              jobs, Percentile(list_ms, 0.5), Percentile(list_ms, 0.99), Percentile(filtered_ms, 0.5),
              Percentile(filtered_ms, 0.99));

  // GetJob with 200 concurrent clients: 200 calls always in flight, driven by one
  // completion queue (200 client threads would measure this 2-core machine's scheduler).
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::ListJobsRequest req;
  trainer::v1::ListJobsResponse some;
  d.stub().ListJobs(&ctx, req, &some);
  struct Call {
    std::unique_ptr<grpc::ClientContext> ctx;
    trainer::v1::Job job;
    grpc::Status status;
    Clock::time_point start;
    std::unique_ptr<grpc::ClientAsyncResponseReader<trainer::v1::Job>> reader;
  };
  constexpr int kClients = 200, kCallsPerClient = 50;
  grpc::CompletionQueue cq;
  std::vector<Call> calls(kClients);
  std::vector<int> done(kClients, 0);
  std::vector<double> all;
  auto start_call = [&](int c) {
    Call& call = calls[c];
    call.ctx = std::make_unique<grpc::ClientContext>();
    d.Authorize(call.ctx.get());
    trainer::v1::GetJobRequest r;
    r.set_job_id(some.jobs((c + done[c]) % some.jobs_size()).id());
    call.start = Clock::now();
    call.reader = d.stub().AsyncGetJob(call.ctx.get(), r, &cq);
    call.reader->Finish(&call.job, &call.status, reinterpret_cast<void*>(static_cast<intptr_t>(c)));
  };
  for (int c = 0; c < kClients; ++c) start_call(c);
  void* tag;
  bool ok;
  int remaining = kClients * kCallsPerClient;
  while (remaining > 0 && cq.Next(&tag, &ok)) {
    const int c = static_cast<int>(reinterpret_cast<intptr_t>(tag));
    all.push_back(Ms(Clock::now() - calls[c].start));
    --remaining;
    if (++done[c] < kCallsPerClient) start_call(c);
  }
  std::printf("GetJob, %d clients calling back to back (saturation): p50 %.2f ms, p99 %.2f ms, %.0f calls/s\n",
              kClients, Percentile(all, 0.5), Percentile(all, 0.99),
              all.size() / (std::accumulate(all.begin(), all.end(), 0.0) / kClients / 1000));

  // The same 200 clients as people's tools use trainerd: each polls every 100 ms.
  all.clear();
  std::fill(done.begin(), done.end(), 0);
  std::vector<Clock::time_point> due(kClients, Clock::now());
  for (int c = 0; c < kClients; ++c) due[c] += std::chrono::microseconds(c * 500);  // spread over 100 ms
  std::vector<bool> in_flight(kClients, false);
  remaining = kClients * kCallsPerClient;
  while (remaining > 0) {
    const auto now = Clock::now();
    for (int c = 0; c < kClients; ++c) {
      if (!in_flight[c] && done[c] < kCallsPerClient && now >= due[c]) {
        in_flight[c] = true;
        due[c] += std::chrono::milliseconds(100);
        start_call(c);
      }
    }
    const auto status = cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() + std::chrono::milliseconds(1));
    if (status != grpc::CompletionQueue::GOT_EVENT) continue;
    const int c = static_cast<int>(reinterpret_cast<intptr_t>(tag));
    all.push_back(Ms(Clock::now() - calls[c].start));
    in_flight[c] = false;
    ++done[c];
    --remaining;
  }
  std::printf("GetJob, %d clients each polling every 100 ms (2,000 calls/s): p50 %.2f ms, p99 %.2f ms\n",
              kClients, Percentile(all, 0.5), Percentile(all, 0.99));
}

void FirstStepAndFollowers() {
  testing::TempDir dir;
  testing::Daemon d(dir.path().string(), {"--cpu-slots", "1"});
  std::vector<double> total_ms, worker_ms;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    const std::string id = testing::Submit(d, TinySpec(20, 1));
    trainer::v1::Job job;
    while (true) {
      grpc::ClientContext ctx;
      d.Authorize(&ctx);
      trainer::v1::GetJobRequest r;
      r.set_job_id(id);
      d.stub().GetJob(&ctx, r, &job);
      if (job.progress().step() >= 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    total_ms.push_back(Ms(Clock::now() - t0));
    const int64_t submitted = job.created_unix_ms(), started = job.attempts(0).started_unix_ms();
    worker_ms.push_back(total_ms.back() - static_cast<double>(started - submitted));
    while (job.state() != trainer::v1::SUCCEEDED && job.state() != trainer::v1::FAILED) {
      grpc::ClientContext ctx;
      d.Authorize(&ctx);
      trainer::v1::GetJobRequest r;
      r.set_job_id(id);
      d.stub().GetJob(&ctx, r, &job);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::printf("SubmitJob to first step: median %.0f ms, of which scheduling and spawning %.0f ms "
              "(the rest is the worker loading LibTorch and the data)\n",
              Percentile(total_ms, 0.5), Percentile(total_ms, 0.5) - Percentile(worker_ms, 0.5));

  // 50 followers of one chatty job (a log line per step).
  const std::string id = testing::Submit(d, TinySpec(3000, 1));
  std::atomic<int64_t> lines{0};
  std::vector<int64_t> last_seq(50, 0);
  std::vector<std::thread> followers;
  const auto t0 = Clock::now();
  for (int f = 0; f < 50; ++f) {
    followers.emplace_back([&, f] {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto stub = trainer::v1::JobService::NewStub(grpc::CreateCustomChannel(
          absl::StrCat("127.0.0.1:", d.port()), grpc::InsecureChannelCredentials(), args));
      grpc::ClientContext ctx;
      d.Authorize(&ctx);
      trainer::v1::StreamLogsRequest req;
      req.set_job_id(id);
      req.set_follow(true);
      auto reader = stub->StreamLogs(&ctx, req);
      trainer::v1::LogLine line;
      while (reader->Read(&line)) {
        if (line.seq() != last_seq[f] + 1) std::fprintf(stderr, "follower %d: gap at %lld\n", f, (long long)line.seq());
        last_seq[f] = line.seq();
        lines.fetch_add(1);
      }
      reader->Finish();
    });
  }
  for (auto& t : followers) t.join();
  const double seconds = Ms(Clock::now() - t0) / 1000;
  const auto [lo, hi] = std::minmax_element(last_seq.begin(), last_seq.end());
  std::printf("Logs to 50 followers of one job: %lld lines delivered in %.1f s = %.0f lines/s; "
              "every follower got %lld..%lld lines, no gaps\n",
              static_cast<long long>(lines.load()), seconds, lines.load() / seconds, static_cast<long long>(*lo),
              static_cast<long long>(*hi));
}

// `followers` clients following one running job's logs (StreamLogs, follow), driven by
// one completion queue on 10 channels: trainerd's threads and memory beside none.
void FollowerCost(int followers) {
  testing::TempDir dir;
  testing::Daemon d(dir.path().string(), {"--cpu-slots", "1"});
  const std::string id = testing::Submit(d, TinySpec(1000000, 200));
  testing::WaitFor(d, id, [](const trainer::v1::Job& j) { return j.progress().step() > 0; });
  const testing::ProcessUse before = testing::Use(d.pid());
  std::vector<std::unique_ptr<trainer::v1::JobService::Stub>> stubs;
  std::vector<trainer::v1::JobService::Stub*> stub_ptrs;
  for (int c = 0; c < 10; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(trainer::v1::JobService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", d.port()), grpc::InsecureChannelCredentials(), args)));
    stub_ptrs.push_back(stubs.back().get());
  }
  testing::LogFollowers all(stub_ptrs, id, followers, [&d](grpc::ClientContext* c) { d.Authorize(c); });
  const int started = all.WaitStarted(std::chrono::seconds(15));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // following
  const testing::ProcessUse with = testing::Use(d.pid());
  std::printf("%d log followers of one running job (%d streams started): trainerd threads %lld -> %lld, "
              "resident memory %.1f -> %.1f MB (%.1f KB per follower)\n",
              followers, started, static_cast<long long>(before.threads), static_cast<long long>(with.threads),
              before.rss_kb / 1024.0, with.rss_kb / 1024.0, static_cast<double>(with.rss_kb - before.rss_kb) / followers);
}

void AuthenticationCost() {
  testing::TempDir dir;
  testing::Daemon d(dir.path().string(), {"--cpu-slots", "1"});
  const std::string id = testing::Submit(d, TinySpec(10, 5));
  testing::WaitFor(d, id, testing::Finished);  // its worker would compete for the CPUs
  const std::string token = d.admin_token();
  constexpr int kCalls = 3000;
  std::vector<double> rpc_us, check_us;
  for (int i = 0; i < kCalls; ++i) {
    grpc::ClientContext ctx;
    testing::Daemon::AuthorizeAs(token, &ctx);
    trainer::v1::GetJobRequest r;
    r.set_job_id(id);
    trainer::v1::Job job;
    const auto t0 = Clock::now();
    d.stub().GetJob(&ctx, r, &job);
    rpc_us.push_back(Ms(Clock::now() - t0) * 1000);
  }
  // The same check trainerd makes per call, on its own: a SQLite file with 1,000 users.
  auto users = UserStore::Open(dir / "users.db");
  if (!users.ok()) std::abort();
  std::string last;
  for (int u = 0; u < 1000; ++u) {
    last = *NewAccessToken();
    if (!(*users)->AddUser(absl::StrCat("user", u), false, TokenSha256(last)).ok()) std::abort();
  }
  grpc::ServerContext context;
  grpc::testing::ServerContextTestSpouse spouse(&context);
  spouse.AddClientMetadata(kAuthorizationMetadata, "Bearer " + last);
  // As trainerd checks a token it checked within the last second (the common case: a
  // client polling), and as it checks one it has not seen (a fresh AccessControl).
  AccessControl access(users->get(), AccessOptions{});
  std::vector<double> uncached_us;
  for (int i = 0; i < kCalls; ++i) {
    auto t0 = Clock::now();
    if (!access.Authenticate(CallOriginOf(context)).ok()) std::abort();
    check_us.push_back(Ms(Clock::now() - t0) * 1000);
    AccessControl fresh(users->get(), AccessOptions{});
    t0 = Clock::now();
    if (!fresh.Authenticate(CallOriginOf(context)).ok()) std::abort();
    uncached_us.push_back(Ms(Clock::now() - t0) * 1000);
  }
  const double rpc50 = Percentile(rpc_us, 0.5), rpc99 = Percentile(rpc_us, 0.99);
  const double check50 = Percentile(check_us, 0.5), check99 = Percentile(check_us, 0.99);
  const double miss50 = Percentile(uncached_us, 0.5), miss99 = Percentile(uncached_us, 0.99);
  std::printf("GetJob with its token check, one client back to back: p50 %.0f us, p99 %.0f us; "
              "without the check (the check subtracted): p50 %.0f us, p99 %.0f us\n",
              rpc50, rpc99, rpc50 - check50, rpc99 - check99);
  std::printf("The token check alone, token checked within the last second: p50 %.1f us, p99 %.1f us = %.1f%% of a "
              "GetJob at p50, %.1f%% at p99; a token not seen before (SHA-256 + SQLite lookup among 1,000 users): "
              "p50 %.1f us, p99 %.1f us = %.1f%% / %.1f%%\n",
              check50, check99, 100 * check50 / rpc50, 100 * check99 / rpc99, miss50, miss99, 100 * miss50 / rpc50,
              100 * miss99 / rpc99);
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  const trainerd::bench::Flags flags(argc, argv, "daemon_bench [--jobs N] [--followers F]   (run from the build folder)",
                                     {{"--jobs", 10000}, {"--followers", 1000}});
  const int jobs = flags.Int("--jobs");
  trainerd::FollowerCost(flags.Int("--followers"));
  trainerd::AuthenticationCost();
  trainerd::QueueAndList(jobs);
  trainerd::FirstStepAndFollowers();
  return 0;
}
