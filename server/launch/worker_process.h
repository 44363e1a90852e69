// Starting and signalling worker processes (POSIX).
//
// A worker runs in its own session and process group (so that signals reach all of
// its threads and children), with stdout and stderr appended to a log file that
// trainerd tails: the output survives a restart of trainerd, and a worker never dies
// of a broken pipe because trainerd went away.
#ifndef TRAINERD_SERVER_WORKER_PROCESS_H_
#define TRAINERD_SERVER_WORKER_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "protocol/worker_command_line.h"

namespace trainerd {

struct WorkerLaunch {
  std::string program;
  WorkerCommandLine command;           // its arguments (protocol/worker_command_line.h)
  std::string working_dir;
  std::string log_path;                // stdout + stderr, appended
  std::map<std::string, std::string> env;  // added to trainerd's environment
  // RLIMIT_AS for the worker (0: none), so that a job that grows too large fails with
  // "out of memory" instead of taking the machine down.
  int64_t address_space_limit_bytes = 0;
  // RLIMIT_NPROC for the worker (0: none). Linux counts every thread of the user, so the
  // limit is what the user runs now plus room (ProcessLimitWithRoom): it stops a fork
  // bomb, not a job. Root is exempt by the kernel.
  int64_t process_limit = 0;
};

// The threads the real user of this process runs now (from /proc), plus `room`.
int64_t ProcessLimitWithRoom(int64_t room);

// Forks and execs the worker. Returns its pid (= its process group id).
absl::StatusOr<pid_t> SpawnWorker(const WorkerLaunch& launch);

// Sends `signal` to the worker's whole process group.
void SignalWorker(pid_t pid, int signal);

// True while a process with this pid exists and its command line mentions `marker`
// (guards against pid reuse when re-attaching after a trainerd restart).
bool WorkerAlive(pid_t pid, const std::string& marker);

// A TCP port on this machine that is free now (for a job's rendezvous store).
absl::StatusOr<int> PickFreePort();

// How a worker ended.
struct ExitInfo {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal killed it
  // Set for a worker trainerd could not wait for (one a previous trainerd started): it
  // is gone, but how it ended is not known.
  bool status_unknown = false;
  // SIGKILL while the kernel's OOM killer ran (OomKillCount rose during the worker's life).
  bool oom_killed = false;
};

// How many processes the kernel's OOM killer has killed since boot, on the whole machine
// and in memory-limited cgroups alike (/proc/vmstat's oom_kill); -1 when unknown.
int64_t OomKillCount();

// Reaps child `pid` without blocking: nullopt while it runs. Only that child is
// reaped, so that other children of trainerd (a scheduler's commands) keep theirs.
std::optional<ExitInfo> ReapWorker(pid_t pid);

}  // namespace trainerd

#endif  // TRAINERD_SERVER_WORKER_PROCESS_H_
