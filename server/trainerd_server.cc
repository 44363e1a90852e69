#include "server/trainerd_server.h"

#include <filesystem>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/exposer.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/data_root.h"
#include "server/api/file_service_impl.h"
#include "server/api/job_service_impl.h"
#include "server/api/sweep_operations.h"
#include "server/api/sweep_service_impl.h"
#include "server/files/user_file_store.h"
#include "server/api/reflection_v1_service.h"
#include "server/api/worker_service_impl.h"
#include "server/auth/user_admin.h"
#include "server/daemon_metrics.h"
#include "server/http/http_server.h"
#include "common/listen_address.h"
#include "server/process_collector.h"
#include "server/launch/local_launcher.h"
#include "storage/audit_log.h"
#include "storage/job_store.h"
#include "storage/sweep_store.h"
#include "storage/user_store.h"

namespace trainerd {
namespace {

namespace fs = std::filesystem;

// Uploads travel in chunks of this size (under gRPC's message limit, set below).
constexpr int64_t kUploadChunkBytes = int64_t{1} << 20;


}  // namespace

TrainerdServer::TrainerdServer(TrainerdOptions options) : options_(std::move(options)) {}

TrainerdServer::~TrainerdServer() {
  if (http_) http_->Stop();
  if (server_) server_->Shutdown(std::chrono::system_clock::now());
  sweeps_.reset();      // it calls the supervisor
  supervisor_.reset();  // before the stores it writes to
}

absl::StatusOr<std::unique_ptr<TrainerdServer>> TrainerdServer::BuildAndStart(TrainerdOptions options) {
  if (options.launcher != "local" && options.launcher != "slurm") {
    return absl::InvalidArgumentError(absl::StrCat("--launcher ", options.launcher, ": must be local or slurm"));
  }
  const bool tls = !options.tls.cert.empty();
  if (absl::Status s = CheckPlaintext("--listen", options.listen, tls, options.allow_plaintext); !s.ok()) return s;
  if (!options.http_listen.empty()) {
    if (absl::Status s = CheckPlaintext("--http-listen", options.http_listen, tls, options.allow_plaintext); !s.ok()) {
      return s;
    }
  }
  // Workers verify trainerd with the CA file; they start in their attempt's folder.
  std::string& worker_ca = options.jobs.worker_tls_ca;
  if (!options.tls.cert.empty() && worker_ca.empty()) worker_ca = options.tls.cert;
  if (!worker_ca.empty()) worker_ca = fs::absolute(worker_ca).string();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  std::unique_ptr<TrainerdServer> server(new TrainerdServer(std::move(options)));
  if (absl::Status s = server->Open(); !s.ok()) return s;
  if (absl::Status s = server->Serve(*credentials); !s.ok()) return s;
  return server;
}

absl::Status TrainerdServer::Open() {
  const JobOptions& m = options_.jobs;
  std::error_code ec;
  fs::create_directories(m.data_root, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("--data-root ", m.data_root, ": ", ec.message()));
  fs::create_directories(fs::path(m.data_root) / "jobs", ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("--data-root ", m.data_root, ": ", ec.message()));
  fs::create_directories(m.spec_policy.registry_dir, ec);
  const std::string db = m.data_root + "/trainerd.db";
  absl::StatusOr<std::unique_ptr<JobStore>> store = JobStore::Open(db);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  absl::StatusOr<std::unique_ptr<UserStore>> users = UserStore::Open(db);
  if (!users.ok()) return users.status();
  users_ = std::move(*users);
  absl::StatusOr<std::unique_ptr<SweepStore>> sweep_store = SweepStore::Open(db);
  if (!sweep_store.ok()) return sweep_store.status();
  sweep_store_ = std::move(*sweep_store);
  absl::StatusOr<std::unique_ptr<AuditLog>> audit = AuditLog::Open(db);
  if (!audit.ok()) return audit.status();
  audit_ = std::move(*audit);
  absl::StatusOr<bool> created = EnsureFirstAdmin(users_.get(), audit_.get(), m.data_root, options_.admin_token_file);
  if (!created.ok()) {
    return absl::Status(created.status().code(),
                        absl::StrCat("cannot create the first admin: ", created.status().message()));
  }
  if (*created) {
    spdlog::info("created user {}; its token is in {}", kFirstAdminName,
                 options_.admin_token_file.empty() ? AdminTokenPath(m.data_root) + " (trainer-cli reads it there)"
                                                   : options_.admin_token_file);
  }
  metrics_ = std::make_shared<DaemonMetrics>(m.cpu_slots, m.gpus, TRAINERD_VERSION);
  registry_ = std::make_unique<JobRegistry>(store_.get());
  registry_->Subscribe({[metrics = metrics_](const trainer::v1::Job& j) { metrics->OnJobChanged(j); },
                        [metrics = metrics_](const trainer::v1::Job& j) { metrics->OnJobFinished(j); }});
  tailer_ = std::make_unique<OutputTailer>(m.data_root, registry_.get(), store_.get());
  if (options_.launcher == "slurm") {
    SlurmLauncherOptions slurm = options_.slurm;
    slurm.cpus_per_rank = m.threads_per_slot;
    slurm.grace_period_s = m.grace_period_s;
    launcher_ = std::make_unique<SlurmLauncher>(slurm);
  } else {
    launcher_ = std::make_unique<LocalLauncher>(m.cpu_slots, m.gpus, m.advertise_host);
  }
  supervisor_ = std::make_unique<AttemptSupervisor>(m, registry_.get(), tailer_.get(), launcher_.get(),
                                                    [metrics = metrics_] { metrics->OnRestart(); });
  if (absl::Status s = supervisor_->Recover(); !s.ok()) return s;
  sweeps_ = std::make_unique<SweepCoordinator>(sweep_store_.get(), registry_.get(), store_.get(), supervisor_.get(),
                                               [metrics = metrics_](const SweepCounts& c) {
                                                 metrics->OnSweeps(c.by_state, c.trials_running);
                                               });
  return sweeps_->Recover();
}

absl::Status TrainerdServer::Serve(const std::shared_ptr<grpc::ServerCredentials>& credentials) {
  if (!options_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen);
      exposer_->RegisterCollectable(metrics_->registry());
      process_metrics_ = std::make_shared<ProcessCollector>();
      exposer_->RegisterCollectable(process_metrics_);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat("--metrics-listen ", options_.metrics_listen, ": ", e.what()));
    }
  }
  options_.access.require_client_certificate = !options_.tls.client_ca.empty();
  access_ = std::make_unique<AccessControl>(users_.get(), options_.access);
  job_operations_ =
      std::make_unique<JobOperations>(registry_.get(), store_.get(), supervisor_.get(), access_.get(), audit_.get());
  const RpcObserver observe = [metrics = metrics_](const std::string& method, grpc::StatusCode code, double seconds,
                                                   bool streamed) { metrics->OnRpc(method, code, seconds, streamed); };
  job_service_ = std::make_unique<JobServiceImpl>(job_operations_.get(), registry_.get(), observe);
  sweep_operations_ = std::make_unique<SweepOperations>(sweeps_.get(), access_.get(), audit_.get());
  sweep_service_ = std::make_unique<SweepServiceImpl>(sweep_operations_.get(), observe);
  worker_service_ = std::make_unique<WorkerServiceImpl>(supervisor_.get(), audit_.get());
  user_files_ = std::make_unique<UserFileStore>(options_.jobs.data_root, kUploadChunkBytes);
  file_service_ =
      std::make_unique<FileServiceImpl>(user_files_.get(), registry_.get(), access_.get(), audit_.get(),
                                        options_.user_quota_bytes);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, credentials, &port_);
  // A spec is at most 1 MiB; larger messages are refused by gRPC before they are parsed.
  // The limit leaves room for a request whose oversized field the handler names.
  builder.SetMaxReceiveMessageSize(8 << 20);
  builder.RegisterService(job_service_.get());
  builder.RegisterService(sweep_service_.get());
  builder.RegisterService(worker_service_.get());
  builder.RegisterService(file_service_.get());
  reflection_v1_ = std::make_unique<ReflectionV1Service>(std::vector<std::string>{
      trainer::v1::JobService::service_full_name(), trainer::v1::WorkerService::service_full_name(),
      trainer::v1::FileService::service_full_name(), trainer::v1::SweepService::service_full_name(),
      "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
      grpc::reflection::v1::ServerReflection::service_full_name()});
  builder.RegisterService(reflection_v1_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) return absl::UnavailableError(absl::StrCat("--listen ", options_.listen, ": cannot listen there"));
  // Health by service name too (grpc_health_probe -service, Kubernetes' grpc.service).
  for (const char* service : {trainer::v1::JobService::service_full_name(),
                              trainer::v1::WorkerService::service_full_name(),
                              trainer::v1::SweepService::service_full_name()}) {
    server_->GetHealthCheckService()->SetServingStatus(service, true);
  }
  if (!options_.http_listen.empty()) {
    HttpOptions http;
    http.listen = options_.http_listen;
    http.tls = options_.tls;
    http.allow_plaintext = options_.allow_plaintext;
    absl::StatusOr<std::unique_ptr<HttpServer>> started =
        HttpServer::Start(http, job_operations_.get(), sweep_operations_.get(), registry_.get());
    if (!started.ok()) return started.status();
    http_ = std::move(*started);
  }
  const JobOptions& m = options_.jobs;
  supervisor_->Start(m.advertise_host + ":" + std::to_string(port_));
  sweeps_->Start();
  const TlsServerFiles& tls = options_.tls;
  spdlog::info(
      "trainerd listening on {} (port {}, {}), metrics on {}, web console on {}, data in {}, {} CPU slots, {} GPUs, "
      "worker {}",
      options_.listen, port_,
      tls.cert.empty() ? "plaintext" : (tls.client_ca.empty() ? "TLS" : "TLS with client certificates"),
      options_.metrics_listen.empty() ? "off" : options_.metrics_listen,
      http_ ? absl::StrCat(tls.cert.empty() ? "http://" : "https://", options_.http_listen) : "off", m.data_root,
               m.cpu_slots, m.gpus, m.worker_program);
  return absl::OkStatus();
}

int TrainerdServer::http_port() const { return http_ ? http_->port() : 0; }

void TrainerdServer::Shutdown() {
  // Probes see NOT_SERVING while the workers checkpoint.
  server_->GetHealthCheckService()->SetServingStatus(false);
  sweeps_->Stop();  // no trial is submitted, resumed or judged while the workers stop
  supervisor_->Shutdown();
  job_service_->StopFollowers();  // log and watch streams end now (clients reconnect)
  if (http_) http_->Stop();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_.reset();
  supervisor_.reset();
}

}  // namespace trainerd
