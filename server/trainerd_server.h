// TrainerdServer: the daemon, wired. It owns the stores over the one SQLite file, the
// job registry, the output tailer, the launchers, the attempt supervisor, the sweep
// coordinator, the access
// control, the gRPC services and server, and the Prometheus
// exposer; trainerd's main only turns flags into TrainerdOptions, calls BuildAndStart,
// waits for a signal and calls Shutdown (as tensorflow/serving's main does).
#ifndef TRAINERD_SERVER_TRAINERD_SERVER_H_
#define TRAINERD_SERVER_TRAINERD_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tls_credentials.h"
#include "server/auth/access_control.h"
#include "server/jobs/attempt_supervisor.h"
#include "server/jobs/job_options.h"
#include "server/jobs/job_registry.h"
#include "server/jobs/output_tailer.h"
#include "server/launch/slurm_launcher.h"

namespace grpc {
class Server;
class ServerCredentials;
}
namespace prometheus {
class Exposer;
}

namespace trainerd {

class AuditLog;
class DaemonMetrics;
class FileServiceImpl;
class HttpServer;
class JobOperations;
class JobServiceImpl;
class JobStore;
class ProcessCollector;
class ReflectionV1Service;
class SweepCoordinator;
class SweepOperations;
class SweepServiceImpl;
class SweepStore;
class UserFileStore;
class UserStore;
class WorkerServiceImpl;

struct TrainerdOptions {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";  // Prometheus /metrics; "": off
  std::string http_listen = "127.0.0.1:8080";     // web console and JSON API; "": off
  JobOptions jobs;
  std::string launcher = "local";  // "local" (this machine's processes) or "slurm"
  SlurmLauncherOptions slurm;
  TlsServerFiles tls;
  bool allow_plaintext = false;  // listen off loopback without TLS
  AccessOptions access;
  std::string admin_token_file;  // the first admin's token (default: a new one in the data root)
  // What each user's storage area (uploads) may hold.
  int64_t user_quota_bytes = int64_t{100} << 30;
};

class TrainerdServer {
 public:
  // Checks the options (plaintext off loopback is refused before anything is created),
  // opens the data root, creates the first admin on a new one, and starts serving.
  static absl::StatusOr<std::unique_ptr<TrainerdServer>> BuildAndStart(TrainerdOptions options);
  ~TrainerdServer();

  int port() const { return port_; }
  // The HTTP side's port (0: off).
  int http_port() const;
  // Stops accepting jobs, stops the workers gracefully (they checkpoint), stops the gRPC
  // server and the HTTP side. Called once.
  void Shutdown();

 private:
  explicit TrainerdServer(TrainerdOptions options);
  absl::Status Open();
  absl::Status Serve(const std::shared_ptr<grpc::ServerCredentials>& credentials);

  TrainerdOptions options_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<UserStore> users_;
  std::unique_ptr<SweepStore> sweep_store_;
  std::unique_ptr<AuditLog> audit_;
  std::shared_ptr<DaemonMetrics> metrics_;
  std::shared_ptr<ProcessCollector> process_metrics_;
  std::unique_ptr<JobRegistry> registry_;
  std::unique_ptr<OutputTailer> tailer_;
  std::unique_ptr<Launcher> launcher_;  // this machine's processes, or Slurm's jobs
  std::unique_ptr<AttemptSupervisor> supervisor_;
  std::unique_ptr<SweepCoordinator> sweeps_;  // runs the sweeps' trials through the supervisor
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<AccessControl> access_;
  std::unique_ptr<JobOperations> job_operations_;  // what the API's front doors call
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<SweepOperations> sweep_operations_;
  std::unique_ptr<SweepServiceImpl> sweep_service_;
  std::unique_ptr<UserFileStore> user_files_;  // DATA_ROOT/users
  std::unique_ptr<FileServiceImpl> file_service_;
  std::unique_ptr<WorkerServiceImpl> worker_service_;
  std::unique_ptr<ReflectionV1Service> reflection_v1_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;  // the web console and JSON API (null: off)
  int port_ = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_SERVER_TRAINERD_SERVER_H_
