#include "server/launch/slurm_launcher.h"

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/atomic_file.h"

namespace trainerd {
namespace {

constexpr char kNode[] = "slurm";

struct CommandOutput {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a Slurm command line (its arguments quoted by the caller).
CommandOutput RunSlurm(const std::string& command) {
  CommandOutput r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// "gpu:4", "gpu:a100:4(S:0-1)": the GPUs a node's GRES names; 0 for "(null)".
int32_t GpusOf(const std::string& gres) {
  int32_t total = 0;
  for (absl::string_view item : absl::StrSplit(gres, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(item.substr(0, item.find('(')), ':');
    int32_t n = 0;
    if (parts.size() >= 2 && parts[0] == "gpu" && absl::SimpleAtoi(parts.back(), &n)) total += n;
  }
  return total;
}

}  // namespace

SlurmLauncher::SlurmLauncher(SlurmLauncherOptions options) : options_(std::move(options)) {}

std::vector<NodeSlots> SlurmLauncher::Nodes() {
  absl::MutexLock lock(&mu_);
  const auto now = Clock::now();
  if (nodes_read_ != Clock::time_point() && now - nodes_read_ < std::chrono::seconds(10)) return nodes_;
  const std::string partition = options_.partition.empty() ? "" : " -p " + ShellQuote(options_.partition);
  CommandOutput r = RunSlurm("sinfo -h -N" + partition + " -o '%N %G'");
  nodes_read_ = now;  // asked at most every 10 s, answered or not
  if (r.exit_code != 0) {
    spdlog::warn("sinfo failed ({}): {}", r.exit_code, std::string(absl::StripAsciiWhitespace(r.output)));
    return nodes_;  // the last answer, if any
  }
  // One rank per node: a gang can have as many ranks as the partition has nodes.
  std::set<std::string> names;
  int32_t gpus = 0;
  for (absl::string_view line : absl::StrSplit(r.output, '\n', absl::SkipEmpty())) {
    std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cells.empty()) continue;
    names.insert(cells[0]);
    if (cells.size() > 1) gpus = std::max(gpus, GpusOf(cells[1]));
  }
  nodes_ = {NodeSlots{kNode, static_cast<int32_t>(names.size()), gpus}};
  return nodes_;
}

std::string SlurmLauncher::NodeAddress(const std::string&) { return ""; }  // the rank script's

absl::StatusOr<StartedRanks> SlurmLauncher::Start(const std::vector<RankStart>& ranks) {
  if (ranks.empty()) return StartedRanks{};
  const RankStart& first = ranks.front();
  const std::string dir = first.launch.working_dir;
  SlurmJobOptions job;
  job.partition = options_.partition;
  job.account = options_.account;
  job.extra_args = options_.extra_args;
  job.cpus_per_rank = options_.cpus_per_rank;
  job.gpus_per_rank = first.gpus_per_rank;
  job.time_limit_s = first.time_limit_s;
  job.signal_ahead_s = static_cast<int32_t>(std::ceil(options_.grace_period_s));
  const std::string rank_script = dir + "/slurm-ranks.sh";
  const std::string batch_script = dir + "/slurm-batch.sh";
  if (absl::Status s = WriteFileAtomically(rank_script, SlurmRankScript(ranks), 0700); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(batch_script, SlurmBatchScript(ranks, job, rank_script), 0700); !s.ok()) {
    return s;
  }
  CommandOutput r = RunSlurm("sbatch --parsable " + ShellQuote(batch_script));
  std::string id(absl::StripAsciiWhitespace(r.output));
  id = id.substr(0, id.find(';'));  // "123;cluster"
  uint64_t numeric = 0;
  if (r.exit_code != 0 || !absl::SimpleAtoi(id, &numeric)) {
    return absl::UnavailableError(absl::StrCat("sbatch refused the job: ", absl::StripAsciiWhitespace(r.output)));
  }
  spdlog::info("job={} attempt {}: Slurm job {} ({} rank(s))", first.id.job_id, first.id.attempt, id, ranks.size());
  absl::MutexLock lock(&mu_);
  SlurmJob& job_record = jobs_[{first.id.job_id, first.id.attempt}];
  job_record.slurm_id = id;
  job_record.dir = dir;
  job_record.ranks = static_cast<int32_t>(ranks.size());
  return StartedRanks{std::vector<pid_t>(ranks.size(), 0), id};
}

void SlurmLauncher::Signal(const std::string& job_id, int32_t attempt, int signal) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find({job_id, attempt});
  if (it == jobs_.end()) return;
  // SIGTERM reaches every rank (they checkpoint and exit); SIGKILL ends the Slurm job,
  // as any signal does to a job still waiting in the queue (it has no ranks to save).
  const bool waiting = absl::StartsWith(it->second.state, "PENDING");
  if (absl::Status s = WriteFileAtomically(absl::StrCat(it->second.dir, "/", kSlurmStopRequestedName), "", 0600);
      !s.ok()) {
    spdlog::warn("Slurm job {}: {}", it->second.slurm_id, std::string(s.message()));
  }
  const std::string command = signal == SIGKILL || waiting ? "scancel " + it->second.slurm_id
                                                : absl::StrCat("scancel --signal=", signal, " ", it->second.slurm_id);
  CommandOutput r = RunSlurm(command);
  if (r.exit_code != 0) spdlog::warn("{} failed: {}", command, std::string(absl::StripAsciiWhitespace(r.output)));
}

bool SlurmLauncher::Adopt(const RecordedRank& rank) {
  if (rank.node != kNode) return false;
  uint64_t numeric = 0;
  if (!absl::SimpleAtoi(rank.cluster_job_id, &numeric)) {
    // One Slurm job holds the attempt's ranks: rank 0's call ends it for all of them.
    if (rank.id.rank == 0) CancelByName(rank.id);
    return false;
  }
  // Followed again from the next poll: queued, running, or ended while trainerd was
  // down (then its ranks' exit files say how).
  absl::MutexLock lock(&mu_);
  SlurmJob& job = jobs_[{rank.id.job_id, rank.id.attempt}];
  job.slurm_id = rank.cluster_job_id;
  job.dir = rank.working_dir;
  job.ranks = std::max(job.ranks, rank.id.rank + 1);
  return true;
}

void SlurmLauncher::CancelByName(const RankId& id) {
  // SIGTERM first (the ranks checkpoint), so that the attempt that replaces it is the
  // only one writing the job's folder.
  const std::string name = ShellQuote(SlurmJobName(id.job_id, id.attempt));
  CommandOutput r = RunSlurm("scancel --name=" + name);
  if (r.exit_code != 0) spdlog::warn("scancel --name={} failed: {}", name, std::string(absl::StripAsciiWhitespace(r.output)));
  for (int i = 0; i < 300; ++i) {
    CommandOutput queue = RunSlurm("squeue -h -o %i --name=" + name);
    if (queue.exit_code != 0 || absl::StripAsciiWhitespace(queue.output).empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

std::vector<RankEvent> SlurmLauncher::TakeEvents(bool*) {
  absl::MutexLock lock(&mu_);
  std::vector<RankEvent> events;
  const auto now = Clock::now();
  if (jobs_.empty() || now - last_poll_ < std::chrono::milliseconds(static_cast<int64_t>(options_.poll_interval_s * 1000))) {
    return events;
  }
  last_poll_ = now;
  PollJobs(&events);
  return events;
}

void SlurmLauncher::PollJobs(std::vector<RankEvent>* events) {
  // The followed jobs only, one line each ("12|RUNNING|None|n[1-3]|0|"): ended ones stay
  // listed for MinJobAge (300 s by default), so an end is seen with its state; a job no
  // longer listed ended long ago.
  std::string ids;
  for (const auto& [key, job] : jobs_) absl::StrAppend(&ids, ids.empty() ? "" : ",", job.slurm_id);
  CommandOutput queue =
      RunSlurm("squeue -h -t all -j " + ids + " -O 'JobID:|,State:|,Reason:|,NodeList:|,RestartCnt:|'");
  // Slurm refuses a list of which it knows no job; any other failure means the
  // controller is away: ask again later.
  if (queue.exit_code != 0 && !absl::StrContains(queue.output, "Invalid job id")) return;
  struct Listed {
    std::string state, reason, nodes;
    int32_t restarts = 0;
  };
  std::map<std::string, Listed> listed;
  for (absl::string_view line : absl::StrSplit(queue.output, '\n', absl::SkipEmpty())) {
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    if (cells.size() < 5) continue;
    Listed& l = listed[cells[0]];
    l.state = cells[1];
    l.reason = cells[2];
    l.nodes = cells[3];
    (void)absl::SimpleAtoi(cells[4], &l.restarts);
  }
  static const std::set<std::string> kActive = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED",
                                                "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STOPPED",
                                                "SIGNALING", "STAGE_OUT"};
  // States in which the ranks run (and so send heartbeats).
  static const std::set<std::string> kRanksRun = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"};
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    SlurmJob& job = it->second;
    const Listed& l = listed[job.slurm_id];
    const std::string& state = l.state;
    const std::string& reason = l.reason;
    if (!kActive.count(state)) {
      ReportEnd(it->first, job, state, reason, events);
      spdlog::info("Slurm job {} ended: {} {}", job.slurm_id, state.empty() ? "(no longer listed)" : state, reason);
      it = jobs_.erase(it);
      continue;
    }
    const int32_t restarts = l.restarts;
    std::string text = state;
    if (!reason.empty() && reason != "None") absl::StrAppend(&text, " (", reason, ")");
    if (kRanksRun.count(state)) absl::StrAppend(&text, " on ", l.nodes);
    const bool preempted = restarts > job.restarts;
    if (text != job.state || preempted) {
      RankEvent e;
      e.kind = RankEvent::Kind::kClusterState;
      e.id = RankId{it->first.first, it->first.second, 0};
      e.reason = text;
      e.queued = !kRanksRun.count(state);
      e.preempted = preempted;
      events->push_back(std::move(e));
      job.state = text;
      job.restarts = restarts;
    }
    ++it;
  }
}

void SlurmLauncher::ReportEnd(const JobKey& key, const SlurmJob& job, const std::string& state,
                              const std::string& reason, std::vector<RankEvent>* events) {
  // Ranks that ended on their own first, in the order they ended (their exit files'
  // times): the first failure among them is the cause; the ones Slurm killed follow.
  std::vector<std::pair<struct timespec, RankEvent>> exited;
  std::vector<RankEvent> killed;
  for (int32_t rank = 0; rank < job.ranks; ++rank) {
    RankEvent ended;
    ended.id = RankId{key.first, key.second, rank};
    ended.time_limit = state == "TIMEOUT";  // Slurm's --time (the ranks had --signal's warning)
    const std::string path = absl::StrCat(job.dir, "/", RankExitName(rank));
    std::ifstream exit_file(path);
    int code = -1;
    struct stat st {};
    if (exit_file >> code && ::stat(path.c_str(), &st) == 0) {
      exit_file >> ended.where;
      // The rank script's status: 128 + N when signal N killed the worker.
      if (code > 128) {
        ended.exit.signal = code - 128;
      } else {
        ended.exit.exit_code = code;
      }
      exited.emplace_back(st.st_mtim, std::move(ended));
    } else {
      ended.exit.signal = SIGKILL;  // it never ended on its own
      ended.node_lost = state == "NODE_FAIL";
      ended.reason = absl::StrCat("rank ", rank, ": Slurm job ", job.slurm_id, " ended ",
                                  state.empty() ? "(state unknown)" : state,
                                  reason.empty() || reason == "None" ? "" : " (" + reason + ")");
      killed.push_back(std::move(ended));
    }
  }
  std::stable_sort(exited.begin(), exited.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.tv_sec, a.first.tv_nsec) < std::tie(b.first.tv_sec, b.first.tv_nsec);
  });
  for (auto& [when, e] : exited) events->push_back(std::move(e));
  for (RankEvent& e : killed) events->push_back(std::move(e));
}

}  // namespace trainerd
