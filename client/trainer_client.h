// TrainerClient: the C++ client of trainerd's JobService, used by trainer-cli and tests.
//
// Every call has a deadline; idempotent calls (reads, cancel) are retried with
// exponential backoff while trainerd is UNAVAILABLE. Errors come back as absl::Status
// with a message a person understands, e.g.
//   "cannot reach trainerd at 127.0.0.1:50051: connection refused - is it running?"
#ifndef TRAINERD_CLIENT_TRAINER_CLIENT_H_
#define TRAINERD_CLIENT_TRAINER_CLIENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/tls_credentials.h"
#include "trainer/v1/job_service.grpc.pb.h"
#include "trainer/v1/sweep_service.grpc.pb.h"

namespace trainerd {

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";

struct ClientOptions {
  std::string server;  // empty: $TRAINER_SERVER, else kDefaultServer
  // The access token; empty: found by FindAccessToken (client/access_token_source.h).
  std::string token;
  std::string data_root;  // where FindAccessToken looks for admin.token; empty: the default
  // TLS: `tls.ca` empty means $TRAINER_TLS_CA, and plaintext when that is unset too.
  // A client certificate (tls.cert, tls.key) is for a trainerd with --tls-client-ca.
  TlsClientFiles tls;
  std::chrono::milliseconds deadline{10000};
  int max_attempts = 4;  // for idempotent calls while UNAVAILABLE
};

class TrainerClient {
 public:
  explicit TrainerClient(ClientOptions options = {});

  const std::string& server() const { return server_; }
  // Not OK when the client could not be set up (an unreadable certificate, a token file
  // others can read); every call then returns this status.
  const absl::Status& setup_status() const { return setup_status_; }

  absl::StatusOr<trainer::v1::WhoAmIResponse> WhoAmI();
  absl::StatusOr<std::vector<trainer::v1::AuditEvent>> ListAuditEvents(int limit, int64_t before_seq);

  absl::StatusOr<trainer::v1::SubmitJobResponse> SubmitJob(const trainer::v1::SubmitJobRequest& request);
  absl::StatusOr<trainer::v1::Job> GetJob(const std::string& id);
  absl::StatusOr<trainer::v1::ListJobsResponse> ListJobs(const trainer::v1::ListJobsRequest& request);
  absl::StatusOr<trainer::v1::Job> CancelJob(const std::string& id);
  absl::StatusOr<trainer::v1::Job> ResumeJob(const std::string& id, int64_t checkpoint_step,
                                             int64_t stop_at_step = 0);
  absl::Status DeleteJob(const std::string& id, bool delete_files);
  absl::StatusOr<std::vector<trainer::v1::Checkpoint>> ListCheckpoints(const std::string& id);
  absl::StatusOr<std::vector<trainer::v1::MetricPoint>> GetMetrics(const std::string& id, const std::string& name,
                                                                    const std::string& split);
  // Streams log lines to `on_line` until the stream ends (with follow: the job ends).
  // Reconnects after a dropped connection, continuing from the last sequence number.
  absl::Status StreamLogs(trainer::v1::StreamLogsRequest request,
                          const std::function<void(const trainer::v1::LogLine&)>& on_line);
  // Streams job events until the job ends. Reconnects as StreamLogs does; after a
  // reconnect the job's current state comes again (and its metric points from the start).
  absl::Status WatchJob(const std::string& id, const std::function<void(const trainer::v1::JobEvent&)>& on_event);

  // The SweepService.
  absl::StatusOr<trainer::v1::SubmitSweepResponse> SubmitSweep(const trainer::v1::SubmitSweepRequest& request);
  absl::StatusOr<trainer::v1::Sweep> GetSweep(const std::string& id);
  absl::StatusOr<trainer::v1::ListSweepsResponse> ListSweeps(const trainer::v1::ListSweepsRequest& request);
  absl::StatusOr<trainer::v1::Sweep> CancelSweep(const std::string& id);

  // Turns a gRPC status into one a person understands (names the server for
  // connection problems).
  absl::Status Explain(const grpc::Status& status) const;

  // For the clients of trainerd's other services (file_transfer.h): the channel, and a
  // context that carries the token and, unless `streaming`, the call deadline.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const;

 private:
  template <typename Call>
  absl::Status Unary(bool idempotent, Call&& call);
  // Runs `stream` (one streaming call, which sets *progressed when it received
  // something) again while trainerd is unreachable (a restart), with a backoff of 0.2 s
  // doubling to 2 s, at most kMaxReconnects times in a row: about a minute.
  static constexpr int kMaxReconnects = 30;
  absl::Status Reconnecting(const std::function<grpc::Status(bool* progressed)>& stream);

  ClientOptions options_;
  absl::Status setup_status_;
  std::string server_;
  // The token calls carry. Found again when none was found at first: a trainerd started
  // a moment ago writes its admin.token when it starts, after this client was made.
  std::string Token() const ABSL_LOCKS_EXCLUDED(token_mu_);
  mutable absl::Mutex token_mu_;
  mutable std::string token_ ABSL_GUARDED_BY(token_mu_);
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<trainer::v1::JobService::Stub> stub_;
  std::unique_ptr<trainer::v1::SweepService::Stub> sweep_stub_;
};

}  // namespace trainerd

#endif  // TRAINERD_CLIENT_TRAINER_CLIENT_H_
