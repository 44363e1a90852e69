#include "client/trainer_client.h"

#include <cstdlib>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/access_token_source.h"
#include "common/data_root.h"
#include "protocol/call_metadata.h"

namespace trainerd {

TrainerClient::TrainerClient(ClientOptions options) : options_(std::move(options)) {
  server_ = options_.server;
  if (server_.empty()) {
    const char* env = std::getenv("TRAINER_SERVER");
    server_ = env != nullptr && *env != '\0' ? env : kDefaultServer;
  }
  absl::StatusOr<std::string> token =
      FindAccessToken(options_.token, options_.data_root.empty() ? DefaultDataRoot() : options_.data_root);
  if (token.ok()) {
    absl::MutexLock lock(&token_mu_);
    token_ = *token;
  } else {
    setup_status_ = token.status();
  }
  TlsClientFiles tls = options_.tls;
  if (const char* ca = std::getenv("TRAINER_TLS_CA"); tls.ca.empty() && ca != nullptr) tls.ca = ca;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) {
    if (setup_status_.ok()) setup_status_ = credentials.status();
    // Calls never go out (setup_status_); the channel only has to exist.
    credentials = grpc::SslCredentials(grpc::SslCredentialsOptions());
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(server_, *credentials, args);
  stub_ = trainer::v1::JobService::NewStub(channel_);
  sweep_stub_ = trainer::v1::SweepService::NewStub(channel_);
}

std::string TrainerClient::Token() const {
  absl::MutexLock lock(&token_mu_);
  if (token_.empty() && options_.token.empty()) {
    absl::StatusOr<std::string> found =
        FindAccessToken("", options_.data_root.empty() ? DefaultDataRoot() : options_.data_root);
    if (found.ok()) token_ = *found;
  }
  return token_;
}

std::unique_ptr<grpc::ClientContext> TrainerClient::Context(bool streaming) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!streaming) ctx->set_deadline(std::chrono::system_clock::now() + options_.deadline);
  if (const std::string token = Token(); !token.empty()) ctx->AddMetadata(kAuthorizationMetadata, "Bearer " + token);
  return ctx;
}

absl::Status TrainerClient::Explain(const grpc::Status& s) const {
  if (s.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::string why = s.error_message();
    if (absl::StrContains(why, "onnection refused") || absl::StrContains(why, "failed to connect")) {
      why = "connection refused";
    }
    return absl::UnavailableError(absl::StrCat("cannot reach trainerd at ", server_, ": ", why,
                                               " - is it running? (set --server or TRAINER_SERVER)"));
  }
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(absl::StrCat("trainerd at ", server_, " did not answer within ",
                                                    options_.deadline.count(), " ms"));
  }
  if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED && Token().empty()) {
    // No token was found at all: say where trainer-cli looked, since a trainerd started
    // with --data-root DIR keeps the first admin's token in DIR/admin.token.
    const std::string data_root = options_.data_root.empty() ? DefaultDataRoot() : options_.data_root;
    return absl::UnauthenticatedError(absl::StrCat(
        "no access token: pass --token, set TRAINER_TOKEN or write it to ~/.config/trainerd/token. On trainerd's "
        "machine, as its account, trainer-cli also reads the first admin's token from the data root: it looked for ",
        AdminTokenPath(data_root), "; for a trainerd started with --data-root DIR, set TRAINERD_DATA_ROOT=DIR"));
  }
  return absl::Status(code, s.error_message());
}

template <typename Call>
absl::Status TrainerClient::Unary(bool idempotent, Call&& call) {
  if (!setup_status_.ok()) return setup_status_;
  // 0.25 + 0.5 + 1 s: a trainerd started a moment ago (`trainerd &` then a command) is
  // waited for, one that is down is reported within two seconds.
  std::chrono::milliseconds backoff(250);
  grpc::Status s;
  for (int attempt = 1; attempt <= (idempotent ? options_.max_attempts : 1); ++attempt) {
    auto ctx = Context();
    s = call(ctx.get());
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    if (attempt < options_.max_attempts) {
      // Waiting for the channel (not sleeping) makes it try to connect again now: a
      // channel left in its failure state would answer the next call at once.
      channel_->WaitForConnected(std::chrono::system_clock::now() + backoff);
      backoff *= 2;
    }
  }
  return Explain(s);
}

absl::StatusOr<trainer::v1::SubmitJobResponse> TrainerClient::SubmitJob(const trainer::v1::SubmitJobRequest& request) {
  trainer::v1::SubmitJobResponse resp;
  // Not idempotent: a retried submit could queue the job twice.
  absl::Status s = Unary(false, [&](grpc::ClientContext* c) { return stub_->SubmitJob(c, request, &resp); });
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<trainer::v1::Job> TrainerClient::GetJob(const std::string& id) {
  trainer::v1::GetJobRequest req;
  req.set_job_id(id);
  trainer::v1::Job job;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return stub_->GetJob(c, req, &job); });
  if (!s.ok()) return s;
  return job;
}

absl::StatusOr<trainer::v1::ListJobsResponse> TrainerClient::ListJobs(const trainer::v1::ListJobsRequest& request) {
  trainer::v1::ListJobsResponse resp;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return stub_->ListJobs(c, request, &resp); });
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<trainer::v1::Job> TrainerClient::CancelJob(const std::string& id) {
  trainer::v1::CancelJobRequest req;
  req.set_job_id(id);
  trainer::v1::Job job;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return stub_->CancelJob(c, req, &job); });
  if (!s.ok()) return s;
  return job;
}

absl::StatusOr<trainer::v1::Job> TrainerClient::ResumeJob(const std::string& id, int64_t checkpoint_step,
                                                         int64_t stop_at_step) {
  trainer::v1::ResumeJobRequest req;
  req.set_job_id(id);
  req.set_checkpoint_step(checkpoint_step);
  req.set_stop_at_step(stop_at_step);
  trainer::v1::Job job;
  absl::Status s = Unary(false, [&](grpc::ClientContext* c) { return stub_->ResumeJob(c, req, &job); });
  if (!s.ok()) return s;
  return job;
}

absl::Status TrainerClient::DeleteJob(const std::string& id, bool delete_files) {
  trainer::v1::DeleteJobRequest req;
  req.set_job_id(id);
  req.set_delete_files(delete_files);
  trainer::v1::DeleteJobResponse resp;
  return Unary(false, [&](grpc::ClientContext* c) { return stub_->DeleteJob(c, req, &resp); });
}

absl::StatusOr<std::vector<trainer::v1::Checkpoint>> TrainerClient::ListCheckpoints(const std::string& id) {
  trainer::v1::ListCheckpointsRequest req;
  req.set_job_id(id);
  trainer::v1::ListCheckpointsResponse resp;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return stub_->ListCheckpoints(c, req, &resp); });
  if (!s.ok()) return s;
  return std::vector<trainer::v1::Checkpoint>(resp.checkpoints().begin(), resp.checkpoints().end());
}

absl::StatusOr<std::vector<trainer::v1::MetricPoint>> TrainerClient::GetMetrics(const std::string& id,
                                                                                 const std::string& name,
                                                                                 const std::string& split) {
  trainer::v1::GetMetricsRequest req;
  req.set_job_id(id);
  req.set_name(name);
  req.set_split(split);
  trainer::v1::GetMetricsResponse resp;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return stub_->GetMetrics(c, req, &resp); });
  if (!s.ok()) return s;
  return std::vector<trainer::v1::MetricPoint>(resp.points().begin(), resp.points().end());
}

absl::StatusOr<trainer::v1::WhoAmIResponse> TrainerClient::WhoAmI() {
  trainer::v1::WhoAmIRequest req;
  trainer::v1::WhoAmIResponse resp;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return stub_->WhoAmI(c, req, &resp); });
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<std::vector<trainer::v1::AuditEvent>> TrainerClient::ListAuditEvents(int limit, int64_t before_seq) {
  trainer::v1::ListAuditEventsRequest req;
  req.set_limit(limit);
  req.set_before_seq(before_seq);
  trainer::v1::ListAuditEventsResponse resp;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return stub_->ListAuditEvents(c, req, &resp); });
  if (!s.ok()) return s;
  return std::vector<trainer::v1::AuditEvent>(resp.events().begin(), resp.events().end());
}

absl::Status TrainerClient::Reconnecting(const std::function<grpc::Status(bool* progressed)>& stream) {
  if (!setup_status_.ok()) return setup_status_;
  std::chrono::milliseconds backoff(200);
  for (int failures = 1;; ++failures) {
    bool progressed = false;
    grpc::Status s = stream(&progressed);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return Explain(s);
    if (progressed) {
      failures = 1;
      backoff = std::chrono::milliseconds(200);
    }
    if (failures > kMaxReconnects) return Explain(s);
    channel_->WaitForConnected(std::chrono::system_clock::now() + backoff);  // trainerd restarting
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

absl::Status TrainerClient::StreamLogs(trainer::v1::StreamLogsRequest request,
                                       const std::function<void(const trainer::v1::LogLine&)>& on_line) {
  return Reconnecting([&](bool* progressed) {
    auto ctx = Context(/*streaming=*/true);
    auto reader = stub_->StreamLogs(ctx.get(), request);
    trainer::v1::LogLine line;
    while (reader->Read(&line)) {
      on_line(line);
      request.set_from_seq(line.seq() + 1);
      request.set_tail(0);  // from here on, every line after the last one seen
      *progressed = true;
    }
    return reader->Finish();
  });
}

absl::Status TrainerClient::WatchJob(const std::string& id,
                                     const std::function<void(const trainer::v1::JobEvent&)>& on_event) {
  trainer::v1::WatchJobRequest req;
  req.set_job_id(id);
  return Reconnecting([&](bool* progressed) {
    auto ctx = Context(/*streaming=*/true);
    auto reader = stub_->WatchJob(ctx.get(), req);
    trainer::v1::JobEvent event;
    while (reader->Read(&event)) {
      on_event(event);
      *progressed = true;
    }
    return reader->Finish();
  });
}

absl::StatusOr<trainer::v1::SubmitSweepResponse> TrainerClient::SubmitSweep(
    const trainer::v1::SubmitSweepRequest& request) {
  trainer::v1::SubmitSweepResponse resp;
  // Not idempotent: a retried submit could start the sweep twice.
  absl::Status s = Unary(false, [&](grpc::ClientContext* c) { return sweep_stub_->SubmitSweep(c, request, &resp); });
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<trainer::v1::Sweep> TrainerClient::GetSweep(const std::string& id) {
  trainer::v1::GetSweepRequest req;
  req.set_sweep_id(id);
  trainer::v1::Sweep sweep;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return sweep_stub_->GetSweep(c, req, &sweep); });
  if (!s.ok()) return s;
  return sweep;
}

absl::StatusOr<trainer::v1::ListSweepsResponse> TrainerClient::ListSweeps(const trainer::v1::ListSweepsRequest& request) {
  trainer::v1::ListSweepsResponse resp;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return sweep_stub_->ListSweeps(c, request, &resp); });
  if (!s.ok()) return s;
  return resp;
}

absl::StatusOr<trainer::v1::Sweep> TrainerClient::CancelSweep(const std::string& id) {
  trainer::v1::CancelSweepRequest req;
  req.set_sweep_id(id);
  trainer::v1::Sweep sweep;
  absl::Status s = Unary(true, [&](grpc::ClientContext* c) { return sweep_stub_->CancelSweep(c, req, &sweep); });
  if (!s.ok()) return s;
  return sweep;
}

}  // namespace trainerd
