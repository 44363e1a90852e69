// trainerd: the coordinator daemon. Flags -> options -> start -> wait for SIGTERM.
//
// Shutdown order (SIGTERM or SIGINT): stop accepting jobs, stop workers gracefully (they
// save a checkpoint; their jobs resume at the next start), stop the gRPC server, close
// the store. Exit status 0.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <regex>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/exposer.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "server/daemon_metrics.h"
#include "server/job_manager.h"
#include "server/job_service_impl.h"
#include "server/worker_service_impl.h"
#include "storage/job_store.h"

namespace {

namespace fs = std::filesystem;

std::string DefaultDataRoot() {
  if (const char* v = std::getenv("TRAINERD_DATA_ROOT")) return v;
  if (const char* v = std::getenv("XDG_STATE_HOME")) return std::string(v) + "/trainerd";
  if (const char* v = std::getenv("HOME")) return std::string(v) + "/.local/state/trainerd";
  return "/tmp/trainerd-" + std::to_string(::getuid());
}

// trainer-worker beside trainerd (installed), or in the build tree's worker/.
std::string DefaultWorkerProgram() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (const fs::path& p : {self / "trainer-worker", self.parent_path() / "worker" / "trainer-worker"}) {
    if (fs::exists(p)) return p.string();
  }
  return "trainer-worker";
}

int DetectGpus() {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev", ec)) {
    if (std::regex_match(e.path().filename().string(), std::regex("nvidia[0-9]+"))) ++n;
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trainerd: the trainerd coordinator daemon. It queues training jobs, runs each as\n"
               "trainer-worker processes on free slots, restarts failed attempts from their latest\n"
               "checkpoint, and serves jobs, logs and metrics over gRPC and Prometheus.\n\n"
               "Example:\n  trainerd --listen 127.0.0.1:50051 --metrics-port 9464 --cpu-slots 2\n",
               "trainerd"};
  std::string listen = "127.0.0.1:50051";
  int metrics_port = 9464;
  trainerd::JobManagerOptions options;
  options.data_root = DefaultDataRoot();
  options.worker_program = DefaultWorkerProgram();
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.cpu_slots = std::max(1, cpus / 2);
  int gpus = -1;
  std::string log_level = "info";
  app.add_option("--listen", listen, "gRPC address (loopback by default)")->capture_default_str();
  app.add_option("--metrics-port", metrics_port, "Prometheus /metrics port on 127.0.0.1 (0: off)")
      ->capture_default_str();
  app.add_option("--data-root", options.data_root, "Database and job folders")->capture_default_str();
  app.add_option("--cpu-slots", options.cpu_slots, "CPU slots (one per rank)")->capture_default_str();
  app.add_option("--gpus", gpus, "GPUs to schedule (-1: count /dev/nvidiaN)")->capture_default_str();
  app.add_option("--worker-program", options.worker_program, "The trainer-worker binary")->capture_default_str();
  app.add_option("--allow-worker-dir", options.allowed_worker_dirs,
                 "A folder whose programs jobs may name as worker_program (repeatable)");
  app.add_option("--max-restarts", options.default_max_restarts, "Default restarts of a failing job")
      ->capture_default_str();
  app.add_option("--heartbeat-timeout", options.heartbeat_timeout_s,
                 "Seconds without progress before a worker counts as hung and is killed")->capture_default_str();
  app.add_option("--grace-period", options.grace_period_s,
                 "Seconds a worker has after SIGTERM (to save a checkpoint) before SIGKILL")->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warning or error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.gpus = gpus >= 0 ? gpus : DetectGpus();
  options.threads_per_slot = std::max(1, cpus / std::max(1, options.cpu_slots));

  spdlog::set_default_logger(spdlog::stderr_logger_mt("trainerd"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  spdlog::set_level(spdlog::level::from_str(log_level == "warning" ? "warn" : log_level));

  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::error_code ec;
  fs::create_directories(options.data_root, ec);
  auto store = trainerd::JobStore::Open(options.data_root + "/trainerd.db");
  if (!store.ok()) {
    spdlog::critical("{}", std::string(store.status().message()));
    return 1;
  }
  auto metrics = std::make_shared<trainerd::DaemonMetrics>(options.cpu_slots, options.gpus);
  trainerd::JobManagerHooks hooks;
  hooks.on_job_changed = [metrics](const trainer::v1::Job& j) { metrics->OnJobChanged(j); };
  hooks.on_job_finished = [metrics](const trainer::v1::Job& j) { metrics->OnJobFinished(j); };
  hooks.on_restart = [metrics] { metrics->OnRestart(); };
  auto manager = trainerd::JobManager::Create(options, store->get(), hooks);
  if (!manager.ok()) {
    spdlog::critical("{}", std::string(manager.status().message()));
    return 1;
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  if (metrics_port > 0) {
    try {
      exposer = std::make_unique<prometheus::Exposer>("127.0.0.1:" + std::to_string(metrics_port));
      exposer->RegisterCollectable(metrics->registry());
    } catch (const std::exception& e) {
      spdlog::critical("--metrics-port {}: {}", metrics_port, e.what());
      return 1;
    }
  }

  trainerd::JobServiceImpl service(manager->get(), [metrics](const std::string& m, grpc::StatusCode c, double s) {
    metrics->OnRpc(m, c, s);
  });
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  trainerd::WorkerServiceImpl worker_service(manager->get());
  builder.RegisterService(&worker_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    spdlog::critical("--listen {}: cannot listen there", listen);
    return 1;
  }
  (*manager)->Start("127.0.0.1:" + std::to_string(bound_port));
  spdlog::info("trainerd listening on {} (port {}), metrics on {}, data in {}, {} CPU slots, {} GPUs, worker {}",
               listen, bound_port, metrics_port > 0 ? "127.0.0.1:" + std::to_string(metrics_port) : "off",
               options.data_root, options.cpu_slots, options.gpus, options.worker_program);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*manager)->Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  manager->reset();
  spdlog::info("trainerd stopped");
  return 0;
}
