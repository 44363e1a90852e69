#include "worker/app/worker_reporter.h"

#include <cstdlib>

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "common/tls_credentials.h"
#include "protocol/call_metadata.h"
#include "protocol/worker_environment.h"
#include "trainer/v1/job_service.grpc.pb.h"

namespace trainerd {

struct WorkerReporter::Rpc {
  std::string secret;
  std::unique_ptr<trainer::v1::WorkerService::Stub> stub;

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata(kWorkerSecretMetadata, secret);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    return ctx;
  }
};

std::shared_ptr<WorkerReporter> WorkerReporter::FromEnvironment(StopHandler on_stop) {
  const char* address = std::getenv(kEnvAddress);
  const char* secret = std::getenv(kEnvWorkerSecret);
  const char* job = std::getenv(kEnvJobId);
  const char* attempt = std::getenv(kEnvAttempt);
  const char* rank = std::getenv(kEnvRank);
  if (!address || !*address || !secret || !job || !attempt) return nullptr;
  return std::shared_ptr<WorkerReporter>(new WorkerReporter(address, secret, job, std::atoi(attempt),
                                                            rank ? std::atoi(rank) : 0, std::move(on_stop)));
}

WorkerReporter::WorkerReporter(std::string address, std::string secret, std::string job_id, int32_t attempt,
                               int32_t rank, StopHandler on_stop)
    : job_id_(std::move(job_id)), attempt_(attempt), rank_(rank), on_stop_(std::move(on_stop)),
      rpc_(std::make_unique<Rpc>()) {
  rpc_->secret = std::move(secret);
  // With TLS the worker sends its secret only to a trainerd whose certificate verifies.
  TlsClientFiles tls;
  if (const char* ca = std::getenv(kEnvTlsCa)) tls.ca = ca;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) {
    // Never plaintext then: TLS against the system's roots fails to verify trainerd, and
    // the worker trains on, reporting through its files only.
    spdlog::error("cannot reach trainerd: {}", std::string(credentials.status().message()));
    credentials = grpc::SslCredentials(grpc::SslCredentialsOptions());
  }
  rpc_->stub = trainer::v1::WorkerService::NewStub(grpc::CreateChannel(address, *credentials));
  thread_ = std::thread([this] { Loop(); });
}

WorkerReporter::~WorkerReporter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void WorkerReporter::Loop() {
  while (true) {
    trainer::v1::HeartbeatRequest req;
    req.set_job_id(job_id_);
    req.set_attempt(attempt_);
    req.set_rank(rank_);
    req.set_step(step_.load());
    trainer::v1::HeartbeatResponse resp;
    auto ctx = rpc_->Context();
    grpc::Status s = rpc_->stub->Heartbeat(ctx.get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
        s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      spdlog::warn("trainerd refused this worker's heartbeat: {}", s.error_message());
    }
    if (s.ok() && resp.stop() && !stop_signalled_) {
      stop_signalled_ = true;
      spdlog::warn("trainerd asks this worker to stop ({}): saving a checkpoint", resp.reason());
      if (on_stop_) on_stop_(resp.reason());
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(2))) return;
  }
}

}  // namespace trainerd
