// Runs a real trainerd on a free loopback port with a temporary data root.
#ifndef TRAINERD_TESTS_DAEMON_TEST_UTIL_H_
#define TRAINERD_TESTS_DAEMON_TEST_UTIL_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "spec/spec_loader.h"
#include "protocol/call_metadata.h"
#include "tests/test_util.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd::testing {

class Daemon {
 public:
  // `credentials`: how the test's channel connects (default: plaintext).
  explicit Daemon(std::string data_root, std::vector<std::string> extra_args = {},
                  std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr)
      : data_root_(std::move(data_root)), extra_args_(std::move(extra_args)), port_(FreePort()),
        metrics_port_(FreePort()),
        credentials_(credentials != nullptr ? std::move(credentials) : grpc::InsecureChannelCredentials()) {
    Start();
  }
  ~Daemon() {
    Stop(SIGKILL);
    KillWorkers();
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "---- trainerd.log ----\n%s", ReadFile(data_root_ + "/trainerd.log").c_str());
    }
  }

  // Workers run in their own sessions and outlive a killed daemon: end them, and wait
  // until they are gone (a zombie has an empty command line and counts as gone).
  void KillWorkers() {
    for (int round = 0; round < 500; ++round) {
      bool any = false;
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string cmdline = ReadFile(e.path().string() + "/cmdline");
        if (cmdline.find("trainer-worker") != std::string::npos && cmdline.find(data_root_) != std::string::npos) {
          ::kill(std::atoi(e.path().filename().c_str()), SIGKILL);
          any = true;
        }
      }
      if (!any) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void Start() {
    std::filesystem::create_directories(data_root_);
    std::vector<std::string> args = {BuildDir() + "/server/trainerd", "--listen",
                                     absl::StrCat("127.0.0.1:", port_), "--metrics-port",
                                     std::to_string(metrics_port_), "--data-root", data_root_};
    // The HTTP side only for the tests that ask for it (WithHttp): every free port a
    // test picks is one more that another test's process may take first.
    if (http_port() == 0 && std::find(extra_args_.begin(), extra_args_.end(), "--http-listen") == extra_args_.end()) {
      args.insert(args.end(), {"--http-port", "0"});
    }
    if (std::find(extra_args_.begin(), extra_args_.end(), "--grace-period") == extra_args_.end()) {
      args.insert(args.end(), {"--grace-period", "10"});
    }
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open((data_root_ + "/trainerd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // A fresh connection per start: the global subchannel pool would hand back the
    // connection to the daemon that was just killed.
    grpc::ChannelArguments channel_args;
    channel_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), credentials_, channel_args);
    channel_->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20));
    stub_ = trainer::v1::JobService::NewStub(channel_);
  }

  // Stops the daemon with `signal` and reaps it; returns its exit status (or 128+signal).
  int Stop(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  trainer::v1::JobService::Stub& stub() { return *stub_; }
  pid_t pid() const { return pid_; }
  // The first admin's token, which trainerd wrote to the data root on its first start.
  const std::string& admin_token() const {
    if (admin_token_.empty()) {
      admin_token_ = ReadFile(data_root_ + "/admin.token");
      admin_token_ = admin_token_.substr(0, admin_token_.find('\n'));
    }
    return admin_token_;
  }
  // Adds the admin's token to a call: the tests act as the one person of a fresh setup.
  void Authorize(grpc::ClientContext* context) const { AuthorizeAs(admin_token(), context); }
  static void AuthorizeAs(const std::string& token, grpc::ClientContext* context) {
    context->AddMetadata(kAuthorizationMetadata, "Bearer " + token);
  }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  // The HTTP side's port when the test gave one (WithHttp), else 0 (off).
  int http_port() const {
    auto it = std::find(extra_args_.begin(), extra_args_.end(), "--http-port");
    int port = 0;
    if (it != extra_args_.end() && it + 1 != extra_args_.end()) port = std::atoi((it + 1)->c_str());
    return port;
  }
  const std::string& data_root() const { return data_root_; }

 private:
  std::string data_root_;
  std::vector<std::string> extra_args_;
  int port_, metrics_port_;
  pid_t pid_ = 0;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  mutable std::string admin_token_;  // read on first use: it never changes for a data root
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<trainer::v1::JobService::Stub> stub_;
};

// The extra arguments that give a Daemon its HTTP side (web console, JSON API) on a
// free port, after `args`.
inline std::vector<std::string> WithHttp(std::vector<std::string> args = {}) {
  args.insert(args.end(), {"--http-port", std::to_string(FreePort())});
  return args;
}

// `trainerd user add NAME` against the daemon's data root; returns the printed token.
inline std::string AddUser(const Daemon& d, const std::string& name, bool admin = false) {
  auto r = RunCommand(absl::StrCat(BuildDir(), "/server/trainerd user add --data-root ", d.data_root(), " ", name,
                                   admin ? " --admin" : ""));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("trd_");  // stdout holds the token, stderr a note
  return at == std::string::npos ? "" : r.output.substr(at, r.output.find('\n', at) - at);
}

// A small Fashion-MNIST job; `training_args` (YAML flow-map entries) override the defaults.
inline trainer::v1::JobSpec Spec(const std::string& training_args, const std::string& model = "{type: mlp, hidden_sizes: [32]}") {
  const std::string d = testing::kFashionDir;
  auto spec = ParseJobSpec(absl::StrCat(
      "training_args: {per_device_train_batch_size: 32, logging_steps: 5, learning_rate: 0.002}\n",
      "model: ", model, "\n",
      "data: {train: {path: ", d, "/train-images-idx3-ubyte.gz, labels_path: ", d,
      "/train-labels-idx1-ubyte.gz, limit: 1000}, mean: 0.286, std: 0.353, eval_split: 0.2}\n",
      "metrics: [accuracy]\n"));
  auto overrides = ParseJobSpec("training_args: {" + training_args + "}");
  EXPECT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(overrides.ok()) << overrides.status();
  spec->MergeFrom(*overrides);  // set (optional) fields of the overrides win
  return *spec;
}

inline std::string Submit(Daemon& d, const trainer::v1::JobSpec& spec, int priority = 0, const std::string& name = "",
                          int ranks = 1) {
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::SubmitJobRequest req;
  *req.mutable_spec() = spec;
  req.set_priority(priority);
  req.set_name(name);
  req.mutable_resources()->set_ranks(ranks);
  trainer::v1::SubmitJobResponse resp;
  grpc::Status s = d.stub().SubmitJob(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.job_id();
}

// GetMetrics as the admin: the job's history of metric `name` (in `split`, "" for all).
inline trainer::v1::GetMetricsResponse Metrics(Daemon& d, const std::string& id, const std::string& name,
                                               const std::string& split = "") {
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::GetMetricsRequest req;
  req.set_job_id(id);
  req.set_name(name);
  req.set_split(split);
  trainer::v1::GetMetricsResponse metrics;
  grpc::Status s = d.stub().GetMetrics(&ctx, req, &metrics);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return metrics;
}

// CancelJob as the admin; the job as the answer has it (CANCELLING for a running one).
inline trainer::v1::Job Cancel(Daemon& d, const std::string& id) {
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::CancelJobRequest req;
  req.set_job_id(id);
  trainer::v1::Job job;
  grpc::Status s = d.stub().CancelJob(&ctx, req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

inline trainer::v1::Job Get(Daemon& d, const std::string& id) {
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::GetJobRequest req;
  req.set_job_id(id);
  trainer::v1::Job job;
  grpc::Status s = d.stub().GetJob(&ctx, req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

// Polls until `done(job)` or the timeout; returns the last job seen.
template <typename Pred>
inline trainer::v1::Job WaitFor(Daemon& d, const std::string& id, Pred done, int seconds = 90) {
  trainer::v1::Job job;
  for (int i = 0; i < seconds * 20; ++i) {
    job = Get(d, id);
    if (done(job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "timed out; job is " << trainer::v1::JobState_Name(job.state()) << " " << job.error();
  return job;
}

inline bool Finished(const trainer::v1::Job& j) {
  return j.state() == trainer::v1::SUCCEEDED || j.state() == trainer::v1::FAILED || j.state() == trainer::v1::CANCELLED;
}

inline std::vector<trainer::v1::LogLine> Logs(Daemon& d, const std::string& id, bool follow, int64_t from = 1) {
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::StreamLogsRequest req;
  req.set_job_id(id);
  req.set_follow(follow);
  req.set_from_seq(from);
  auto reader = d.stub().StreamLogs(&ctx, req);
  std::vector<trainer::v1::LogLine> out;
  trainer::v1::LogLine line;
  while (reader->Read(&line)) out.push_back(line);
  EXPECT_TRUE(reader->Finish().ok());
  return out;
}

inline void ExpectContiguous(const std::vector<trainer::v1::LogLine>& lines) {
  for (size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(lines[i].seq(), static_cast<int64_t>(i + 1));
}

inline std::vector<trainer::v1::Checkpoint> Checkpoints(Daemon& d, const std::string& id) {
  grpc::ClientContext ctx;
  d.Authorize(&ctx);
  trainer::v1::ListCheckpointsRequest req;
  req.set_job_id(id);
  trainer::v1::ListCheckpointsResponse resp;
  EXPECT_TRUE(d.stub().ListCheckpoints(&ctx, req, &resp).ok());
  return {resp.checkpoints().begin(), resp.checkpoints().end()};
}

}  // namespace trainerd::testing

#endif  // TRAINERD_TESTS_DAEMON_TEST_UTIL_H_
