#include "server/launch/worker_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace trainerd {

int64_t ProcessLimitWithRoom(int64_t room) {
  const std::string uid = std::to_string(::getuid());
  int64_t threads = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream status(entry.path() / "status");
    std::string line;
    bool mine = false;
    while (std::getline(status, line)) {
      // "Uid:\t<real>\t<effective>...", then "Threads:\t<n>".
      if (line.rfind("Uid:", 0) == 0) {
        std::vector<std::string> fields = absl::StrSplit(line, absl::ByAnyChar("\t "), absl::SkipEmpty());
        mine = fields.size() > 1 && fields[1] == uid;
      }
      if (mine && line.rfind("Threads:", 0) == 0) threads += std::atoll(line.c_str() + 8);
    }
  }
  return threads + room;
}

absl::StatusOr<pid_t> SpawnWorker(const WorkerLaunch& launch) {
  // Everything the child needs is prepared before fork: between fork and exec only
  // async-signal-safe calls are allowed (trainerd has many threads).
  std::vector<std::string> argv_storage = {launch.program};
  const std::vector<std::string> args = launch.command.Args();
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    const std::string key = entry.substr(0, entry.find('='));
    if (!launch.env.count(key)) env_storage.push_back(entry);
  }
  for (const auto& [k, v] : launch.env) env_storage.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int log_fd = ::open(launch.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("open ", launch.log_path, ": ", std::strerror(errno)));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::setsid();
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    if (!launch.working_dir.empty() && ::chdir(launch.working_dir.c_str()) != 0) ::_exit(126);
    if (launch.address_space_limit_bytes > 0) {
      const rlim_t bytes = static_cast<rlim_t>(launch.address_space_limit_bytes);
      const struct rlimit limit = {bytes, bytes};
      if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(126);
    }
    if (launch.process_limit > 0) {
      const rlim_t n = static_cast<rlim_t>(launch.process_limit);
      const struct rlimit limit = {n, n};
      if (::setrlimit(RLIMIT_NPROC, &limit) != 0) ::_exit(126);
    }
    // Default signal dispositions for the worker.
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(launch.program.c_str(), argv.data(), envp.data());
    const char msg[] = "trainerd: cannot execute the worker program\n";
    (void)!::write(2, msg, sizeof(msg) - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  return pid;
}

void SignalWorker(pid_t pid, int signal) {
  if (pid > 0) ::kill(-pid, signal);
}

bool WorkerAlive(pid_t pid, const std::string& marker) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  std::string cmdline = s.str();
  // A zombie (exited, not yet reaped) has an empty command line.
  return !cmdline.empty() && cmdline.find(marker) != std::string::npos;
}

absl::StatusOr<int> PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int error = errno;
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("no free port: ", std::strerror(error)));
  return static_cast<int>(ntohs(addr.sin_port));
}

int64_t OomKillCount() {
  std::ifstream in("/proc/vmstat");
  std::string name;
  int64_t value;
  while (in >> name >> value) {
    if (name == "oom_kill") return value;
  }
  return -1;
}

std::optional<ExitInfo> ReapWorker(pid_t pid) {
  int status = 0;
  const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
  if (reaped == 0) return std::nullopt;  // still running
  ExitInfo info;
  if (reaped < 0) {  // not our child (any more): its status is lost
    info.status_unknown = true;
    return info;
  }
  if (WIFEXITED(status)) {
    info.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
  }
  return info;
}

}  // namespace trainerd
