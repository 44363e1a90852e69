// trainerd: the coordinator daemon. Flags -> options -> start -> wait for SIGTERM.
//
// Shutdown order (SIGTERM or SIGINT): stop accepting jobs, stop workers gracefully (they
// save a checkpoint; their jobs resume at the next start), stop the gRPC server, close
// the store. Exit status 0.
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <limits>
#include <filesystem>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/data_root.h"
#include "server/trainerd_server.h"
#include "server/auth/user_admin.h"
#include "storage/audit_log.h"
#include "storage/user_store.h"

namespace {

namespace fs = std::filesystem;
using trainerd::SpecPolicy;

// trainer-worker beside trainerd (installed), or in the build tree's worker/.
std::string DefaultWorkerProgram() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (const fs::path& p : {self / "trainer-worker", self.parent_path() / "worker" / "trainer-worker"}) {
    if (fs::exists(p)) return p.string();
  }
  return "trainer-worker";
}

// "512M", "4G", "1048576": a size in bytes with an optional K, M, G or T suffix.
bool ParseSize(const std::string& text, int64_t* bytes) {
  if (text.empty()) return false;
  int64_t unit = 1;
  std::string digits = text;
  switch (std::toupper(static_cast<unsigned char>(text.back()))) {
    case 'K': unit = int64_t{1} << 10; break;
    case 'M': unit = int64_t{1} << 20; break;
    case 'G': unit = int64_t{1} << 30; break;
    case 'T': unit = int64_t{1} << 40; break;
    default: unit = 0; break;
  }
  if (unit != 0) digits.pop_back(); else unit = 1;
  int64_t n = 0;
  if (!absl::SimpleAtoi(digits, &n) || n <= 0 || n > std::numeric_limits<int64_t>::max() / unit) return false;
  *bytes = n * unit;
  return true;
}

int64_t PhysicalMemoryBytes() {
  return static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

// The folders jobs read from unless the operator names others (--data-dir): Debian's
// data sets and fortunes. Never a home folder wholesale: it holds the daemon account's
// own files, and whoever runs trainerd says which of their folders jobs may read.
std::vector<std::string> DefaultDataDirs() { return {"/usr/share/datasets", "/usr/share/games/fortunes"}; }

// What jobs must never read, whatever the data folders are: trainerd's data root, the
// daemon account's own trainer-cli token folder, and the files holding its secrets.
std::vector<std::string> PrivatePaths(const trainerd::TrainerdOptions& server_options) {
  std::vector<std::string> paths = {server_options.jobs.data_root};
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    paths.push_back(std::string(home) + "/.config/trainerd");
  }
  for (const std::string& file : {server_options.admin_token_file, server_options.tls.key, server_options.tls.cert,
                                  server_options.tls.client_ca}) {
    if (!file.empty()) paths.push_back(fs::absolute(file).lexically_normal().string());
  }
  return paths;
}

struct UserCommand {
  CLI::App* add = nullptr;
  CLI::App* list = nullptr;
  CLI::App* rotate = nullptr;
  CLI::App* revoke = nullptr;
  CLI::App* quota = nullptr;
  std::string name, size;
  bool admin = false;
};

// `trainerd user ...`: works on the data root's database, beside a running daemon.
int RunUserCommand(const UserCommand& command, const std::string& data_root) {
  const std::string db = data_root + "/trainerd.db";
  if (!fs::exists(db)) {
    std::cerr << "no trainerd database in " << data_root << " (start trainerd once, or pass --data-root)\n";
    return 1;
  }
  auto users = trainerd::UserStore::Open(db);
  auto audit = users.ok() ? trainerd::AuditLog::Open(db) : users.status();
  if (!users.ok() || !audit.ok()) {
    std::cerr << (users.ok() ? audit.status() : users.status()).message() << "\n";
    return 1;
  }
  absl::Status s;
  if (*command.add || *command.rotate) {
    absl::StatusOr<std::string> token =
        *command.add ? trainerd::AddUser(users->get(), audit->get(), command.name, command.admin)
                     : trainerd::RotateToken(users->get(), audit->get(), command.name);
    if (token.ok()) {
      std::cout << *token << std::endl;  // before the note on stderr
      std::cerr << "user " << command.name << (*command.add ? " added" : ": new token; the old ones no longer work")
                << (command.admin ? " (admin)" : "")
                << "; the token above is shown once: give it to them for ~/.config/trainerd/token (mode 0600)\n";
    }
    s = token.status();
  } else if (*command.revoke) {
    s = trainerd::RevokeUser(users->get(), audit->get(), command.name);
    if (s.ok()) std::cerr << "user " << command.name << " revoked: its tokens no longer work\n";
  } else if (*command.quota) {
    int64_t bytes = 0;
    if (command.size != "0" && !ParseSize(command.size, &bytes)) {
      std::cerr << "size: \"" << command.size << "\" is not a size such as 500G (or 0)\n";
      return 2;
    }
    s = trainerd::SetUserQuota(users->get(), audit->get(), command.name, bytes);
    if (s.ok()) std::cerr << "user " << command.name << ": quota " << (bytes == 0 ? "trainerd's default" : command.size) << "\n";
  } else {
    s = trainerd::ListUsers(users->get(), std::cout);
  }
  if (!s.ok()) std::cerr << s.message() << "\n";
  return s.ok() ? 0 : 1;
}

int DetectGpus() {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev", ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 6 && name.rfind("nvidia", 0) == 0 &&
        name.find_first_not_of("0123456789", 6) == std::string::npos) {
      ++n;
    }
  }
  return n;
}

// The flags that are not options fields: they need work after parsing.
struct ServerFlags {
  int gpus = -1;
  std::string log_level = "info";
  std::vector<std::string> data_dirs;
  std::string registry_dir;
  std::string max_job_memory;
  std::string user_quota;
  std::string slurm_extra_args;
  int metrics_port = -1;  // -1: not given
  int http_port = -1;     // -1: not given
};

void DefineServerFlags(CLI::App& app, trainerd::TrainerdOptions& server_options, ServerFlags& flags) {
  trainerd::JobOptions& options = server_options.jobs;
  app.add_option("--listen", server_options.listen, "gRPC address (loopback by default)")->capture_default_str();
  app.add_option("--metrics-listen", server_options.metrics_listen,
                 "Prometheus /metrics address, e.g. 0.0.0.0:9464 in a container (off: none)")
      ->capture_default_str();
  app.add_option("--metrics-port", flags.metrics_port, "Short for --metrics-listen 127.0.0.1:PORT (0: off)");
  app.add_option("--http-listen", server_options.http_listen,
                 "Web console and JSON API address (off: none; TLS and plaintext as for --listen)")
      ->capture_default_str();
  app.add_option("--http-port", flags.http_port, "Short for --http-listen 127.0.0.1:PORT (0: off)");
  app.add_option("--data-root", options.data_root, "Database and job folders")->capture_default_str();
  app.add_option("--cpu-slots", options.cpu_slots, "CPU slots (one per rank)")->capture_default_str();
  app.add_option("--gpus", flags.gpus, "GPUs to schedule (-1: count /dev/nvidiaN)")->capture_default_str();
  app.add_option("--worker-program", options.worker_program, "The trainer-worker binary")->capture_default_str();
  app.add_option("--allow-worker-dir", options.allowed_worker_dirs,
                 "A folder whose programs jobs may name as worker_program (repeatable)");
  app.add_option("--max-restarts", options.default_max_restarts, "Default restarts of a failing job")
      ->capture_default_str();
  app.add_option("--max-user-priority", options.max_user_priority,
                 "The highest job priority a user who is not an admin may ask for (admins: any)")
      ->capture_default_str();
  app.add_option("--heartbeat-timeout", options.heartbeat_timeout_s,
                 "Seconds without progress before a worker counts as hung and is killed")->capture_default_str();
  app.add_option("--grace-period", options.grace_period_s,
                 "Seconds a worker has after SIGTERM (to save a checkpoint) before SIGKILL")->capture_default_str();
  app.add_option("--log-level", flags.log_level, "debug, info, warning or error")->capture_default_str();
  app.add_option("--advertise-host", options.advertise_host,
                 "The address ranks on other machines reach this one at (with --launcher slurm; also bind "
                 "--listen there)")
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dirs,
                 "A folder jobs may read data and models from (repeatable; default: /usr/share/datasets and "
                 "/usr/share/games/fortunes). trainerd's own data root and credentials stay unreadable in any case");
  app.add_option("--registry-dir", flags.registry_dir, "Where jobs may export models (hub_dir; default: DATA_ROOT/registry)");
  app.add_option("--user-quota", flags.user_quota,
                 "What each user's uploaded files may hold, e.g. 500G (default: 100G)");
  app.add_option("--max-job-memory", flags.max_job_memory,
                 "The most memory one job may need, e.g. 8G (default: this machine's memory / --cpu-slots)");
  trainerd::TlsServerFiles& tls = server_options.tls;
  app.add_option("--tls-cert", tls.cert, "PEM certificate to serve TLS with (required off loopback)");
  app.add_option("--tls-key", tls.key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", tls.client_ca, "Require clients to present a certificate this CA signed");
  app.add_option("--tls-ca", options.worker_tls_ca,
                 "The CA that signed --tls-cert, for trainerd's workers to verify it (default: --tls-cert, "
                 "right for a self-signed certificate)");
  app.add_flag("--allow-plaintext", server_options.allow_plaintext,
               "Listen off loopback without TLS (tokens then cross the network in clear text)");
  app.add_option("--admin-token-file", server_options.admin_token_file,
                 "On first start, the admin's token is the one in this file (e.g. a Kubernetes Secret) instead of "
                 "a new one in DATA_ROOT/admin.token");
  app.add_flag("--share-read", server_options.access.share_read, "Let every user read (not change) every job");
  app.add_option("--launcher", server_options.launcher,
                 "Where ranks run: local (processes on this machine) or slurm (one batch job per attempt; "
                 "SLURM_CONF is honoured)")
      ->capture_default_str();
  app.add_option("--slurm-partition", server_options.slurm.partition, "The partition jobs are submitted to");
  app.add_option("--slurm-account", server_options.slurm.account, "The account jobs are charged to");
  app.add_option("--slurm-extra-args", flags.slurm_extra_args, "More sbatch options, e.g. \"--qos=high --exclusive\"");
}

CLI::App* DefineUserCommand(CLI::App& app, std::string& data_root, UserCommand& command) {
  CLI::App* user_cmd = app.add_subcommand("user", "Manage users and their access tokens (on the data root's database)");
  user_cmd->require_subcommand(1);
  user_cmd->add_option("--data-root", data_root, "Database and job folders")->capture_default_str();
  command.add = user_cmd->add_subcommand("add", "Add a user and print its new token (once)");
  command.add->add_option("name", command.name, "User name")->required();
  command.add->add_flag("--admin", command.admin, "The user may act on every job and read the audit log");
  command.list = user_cmd->add_subcommand("list", "List users");
  command.rotate = user_cmd->add_subcommand("rotate", "Give a user a new token (shown once); the old ones stop working "
                                                      "and the user keeps their jobs");
  command.rotate->add_option("name", command.name, "User name")->required();
  command.revoke = user_cmd->add_subcommand("revoke", "Revoke a user's tokens (its jobs stay, for admins; the name "
                                                      "added again is a new account)");
  command.revoke->add_option("name", command.name, "User name")->required();
  command.quota = user_cmd->add_subcommand("quota", "Set what a user's uploaded files may hold (0: trainerd's "
                                                    "--user-quota); takes effect within a second");
  command.quota->add_option("name", command.name, "User name")->required();
  command.quota->add_option("size", command.size, "e.g. 500G, 0 for the default")->required();
  // --data-root may come after the verb too: `trainerd user list --data-root DIR`.
  for (CLI::App* verb : {command.add, command.list, command.rotate, command.revoke, command.quota}) verb->fallthrough();
  return user_cmd;
}

// Fills the options that follow from other flags and from this machine. False (the
// reason printed) for a flag whose value is not valid.
bool FinishOptions(trainerd::TrainerdOptions& server_options, const ServerFlags& flags, int cpus) {
  trainerd::JobOptions& options = server_options.jobs;
  server_options.slurm.extra_args = absl::StrSplit(flags.slurm_extra_args, ' ', absl::SkipEmpty());
  options.gpus = flags.gpus >= 0 ? flags.gpus : DetectGpus();
  // Absolute: workers start in their attempt's folder and are given paths under it.
  options.data_root = fs::absolute(options.data_root).lexically_normal().string();
  for (auto [port, name, listen] : {std::tuple{flags.metrics_port, "--metrics-port", &server_options.metrics_listen},
                                     std::tuple{flags.http_port, "--http-port", &server_options.http_listen}}) {
    if (port > 65535) {
      std::cerr << name << ": " << port << " is not a port\n";
      return false;
    }
    if (port >= 0) *listen = port == 0 ? "" : "127.0.0.1:" + std::to_string(port);
    if (*listen == "off") listen->clear();
  }
  options.threads_per_slot = std::max(1, cpus / std::max(1, options.cpu_slots));
  SpecPolicy& policy = options.spec_policy;
  policy.data_dirs = flags.data_dirs.empty() ? DefaultDataDirs() : flags.data_dirs;
  policy.registry_dir = flags.registry_dir.empty() ? options.data_root + "/registry" : flags.registry_dir;
  policy.private_paths = PrivatePaths(server_options);
  policy.limits.max_threads = options.threads_per_slot;
  policy.limits.max_job_memory_bytes = PhysicalMemoryBytes() / std::max(1, options.cpu_slots);
  if (!flags.max_job_memory.empty() && !ParseSize(flags.max_job_memory, &policy.limits.max_job_memory_bytes)) {
    std::cerr << "--max-job-memory: \"" << flags.max_job_memory << "\" is not a size such as 8G or 512M\n";
    return false;
  }
  if (!flags.user_quota.empty() && !ParseSize(flags.user_quota, &server_options.user_quota_bytes)) {
    std::cerr << "--user-quota: \"" << flags.user_quota << "\" is not a size such as 500G\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trainerd: the trainerd coordinator daemon. It queues training jobs, runs each as\n"
               "trainer-worker processes on free slots, restarts failed attempts from their latest\n"
               "checkpoint, and serves jobs, logs and metrics over gRPC and Prometheus.\n\n"
               "Example:\n  trainerd --listen 127.0.0.1:50051 --metrics-listen 127.0.0.1:9464 --cpu-slots 2\n",
               "trainerd"};
  app.set_version_flag("--version", std::string("trainerd ") + TRAINERD_VERSION);
  trainerd::TrainerdOptions server_options;
  trainerd::JobOptions& options = server_options.jobs;
  options.data_root = trainerd::DefaultDataRoot();
  options.worker_program = DefaultWorkerProgram();
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.cpu_slots = std::max(1, cpus / 2);
  ServerFlags flags;
  DefineServerFlags(app, server_options, flags);
  UserCommand user_command;
  CLI::App* user_cmd = DefineUserCommand(app, options.data_root, user_command);
  CLI11_PARSE(app, argc, argv);
  if (*user_cmd) return RunUserCommand(user_command, options.data_root);
  if (!FinishOptions(server_options, flags, cpus)) return 2;

  spdlog::set_default_logger(spdlog::stderr_logger_mt("trainerd"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  spdlog::set_level(spdlog::level::from_str(flags.log_level == "warning" ? "warn" : flags.log_level));

  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<trainerd::TrainerdServer>> server = trainerd::TrainerdServer::BuildAndStart(server_options);
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  spdlog::info("trainerd stopped");
  return 0;
}
