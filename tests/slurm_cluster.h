// SlurmCluster: a real Slurm 22.05 cluster on this machine for tests (Debian's Slurm has
// multiple-slurmd support, so one machine runs slurmctld and several slurmd, each one a
// node). Everything is private to one folder: its own munge key, socket and munged, a
// slurm.conf on free loopback ports, slurmctld and N slurmd. The destructor stops every
// daemon by its pid file. Needs root (munged --force, slurmd), as `make test` runs.
#ifndef TRAINERD_TESTS_SLURM_CLUSTER_H_
#define TRAINERD_TESTS_SLURM_CLUSTER_H_

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "tests/test_util.h"

namespace trainerd::testing {

class SlurmCluster {
 public:
  // Starts the cluster in `dir` (which must exist) with nodes n1..n<nodes>, each with
  // `cpus` CPUs, in partition "low" (default, preemptable with a 10 s grace time) and
  // "high" (preempts low). Returns null with `*error` set when a daemon does not start.
  static std::unique_ptr<SlurmCluster> Start(const std::string& dir, int nodes, int cpus, std::string* error) {
    std::unique_ptr<SlurmCluster> c(new SlurmCluster(dir, nodes));
    if (!c->StartDaemons(cpus, error)) return nullptr;
    return c;
  }

  ~SlurmCluster() {
    // The slurmd, then slurmctld, then munged: each by the pid it wrote.
    std::vector<std::string> slurmd;
    for (int n = 1; n <= nodes_; ++n) slurmd.push_back(Path(absl::StrCat("slurmd-n", n, ".pid")));
    Stop(slurmd);
    Stop({Path("slurmctld.pid")});
    Stop({Path("munge/munged.pid")});
  }

  // The slurm.conf clients must use (SLURM_CONF).
  const std::string& conf() const { return conf_; }
  // Runs a Slurm client command line (srun, sbatch, squeue, scontrol ...) against it.
  CommandResult Run(const std::string& command) const {
    return RunCommand(absl::StrCat("SLURM_CONF=", conf_, " ", command));
  }
  std::string Path(const std::string& name) const { return (std::filesystem::path(dir_) / name).string(); }

 private:
  // SIGTERM to every daemon whose pid is in `pid_files`, SIGKILL to those still there 5 s later.
  static void Stop(const std::vector<std::string>& pid_files) {
    std::vector<int> pids;
    for (const std::string& f : pid_files) {
      int pid = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(f)), &pid) && pid > 1 && ::kill(pid, SIGTERM) == 0) {
        pids.push_back(pid);
      }
    }
    for (int pid : pids) {
      for (int i = 0; i < 50 && ::kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
    }
  }

  SlurmCluster(std::string dir, int nodes) : dir_(std::move(dir)), nodes_(nodes), conf_(Path("slurm.conf")) {}

  std::string Config(int cpus) const {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    std::string h(host);
    h = h.substr(0, h.find('.'));
    const int node_port = FreePort();
    std::string conf = absl::StrCat(
        "ClusterName=trainerd\nSlurmctldHost=", h, "(127.0.0.1)\nSlurmctldPort=", FreePort(),
        "\nSlurmdPort=", FreePort(), "\nSlurmUser=root\nAuthType=auth/munge\nAuthInfo=socket=",
        Path("munge/munge.socket"), "\nStateSaveLocation=", Path("state"), "\nSlurmdSpoolDir=", Path("spool/%n"),
        "\nSlurmctldPidFile=", Path("slurmctld.pid"), "\nSlurmdPidFile=", Path("slurmd-%n.pid"),
        "\nSlurmctldLogFile=", Path("log/slurmctld.log"), "\nSlurmdLogFile=", Path("log/slurmd-%n.log"),
        "\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\n"
        "SelectTypeParameters=CR_Core\nSchedulerType=sched/backfill\nMpiDefault=none\nReturnToService=2\n"
        "KillWait=10\nPreemptType=preempt/partition_prio\nPreemptMode=REQUEUE\n");
    // Consecutive node ports from a free one (each slurmd listens on its own).
    absl::StrAppend(&conf, "NodeName=n[1-", nodes_, "] NodeHostname=", h, " NodeAddr=127.0.0.1 Port=[", node_port, "-",
                    node_port + nodes_ - 1, "] CPUs=", cpus, " RealMemory=4000 State=UNKNOWN\n",
                    "PartitionName=low Nodes=n[1-", nodes_, "] Default=YES PriorityTier=1 PreemptMode=REQUEUE ",
                    "GraceTime=10 State=UP\nPartitionName=high Nodes=n[1-", nodes_,
                    "] PriorityTier=10 PreemptMode=OFF State=UP\n");
    return conf;
  }

  bool StartDaemons(int cpus, std::string* error) {
    for (const char* sub : {"state", "spool", "log", "munge"}) std::filesystem::create_directories(Path(sub));
    std::filesystem::permissions(Path("munge"), std::filesystem::perms::owner_all);
    WriteFile(conf_, Config(cpus));
    const std::string key = Path("munge/munge.key");
    std::vector<std::string> steps = {
        absl::StrCat("dd if=/dev/urandom of=", key, " bs=1k count=1 status=none && chmod 0400 ", key),
        absl::StrCat("munged --force --key-file=", key, " --socket=", Path("munge/munge.socket"),
                     " --pid-file=", Path("munge/munged.pid"), " --log-file=", Path("log/munged.log"),
                     " --seed-file=", Path("munge/seed")),
        absl::StrCat("slurmctld -f ", conf_)};
    for (int n = 1; n <= nodes_; ++n) steps.push_back(absl::StrCat("slurmd -f ", conf_, " -N n", n));
    for (const std::string& step : steps) {
      CommandResult r = RunCommand(step);
      if (r.exit_code != 0) {
        *error = absl::StrCat("`", step, "` failed (", r.exit_code, "): ", r.output);
        return false;
      }
    }
    // Up when every node is idle.
    for (int i = 0; i < 100; ++i) {
      CommandResult r = Run("sinfo -h -p low -t idle -o %D");
      int idle = 0;
      if (r.exit_code == 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(r.output), &idle) && idle == nodes_) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    *error = absl::StrCat("the nodes did not become idle; slurmctld log:\n", ReadFile(Path("log/slurmctld.log")));
    return false;
  }

  const std::string dir_;
  const int nodes_;
  const std::string conf_;
};

}  // namespace trainerd::testing

#endif  // TRAINERD_TESTS_SLURM_CLUSTER_H_
