#include "server/launch/slurm_batch_script.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "protocol/worker_environment.h"
#include "protocol/worker_exit_codes.h"

namespace trainerd {

std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string SlurmJobName(const std::string& job_id, int32_t attempt) {
  return absl::StrCat("trainerd-", job_id, "-", attempt);
}

std::string RankExitName(int32_t rank) { return "rank" + std::to_string(rank) + ".exit"; }

std::string SlurmBatchScript(const std::vector<RankStart>& ranks, const SlurmJobOptions& options,
                             const std::string& rank_script) {
  const RankStart& first = ranks.front();
  const std::string dir = first.launch.working_dir;
  std::string s = "#!/bin/sh\n";
  absl::StrAppend(&s, "#SBATCH --job-name=", ShellQuote(SlurmJobName(first.id.job_id, first.id.attempt)), "\n");
  absl::StrAppend(&s, "#SBATCH --nodes=", ranks.size(), "\n#SBATCH --ntasks=", ranks.size(),
                  "\n#SBATCH --ntasks-per-node=1\n#SBATCH --cpus-per-task=", options.cpus_per_rank, "\n");
  if (options.gpus_per_rank > 0) absl::StrAppend(&s, "#SBATCH --gpus-per-task=", options.gpus_per_rank, "\n");
  absl::StrAppend(&s, "#SBATCH --output=", dir, "/slurm-%j.out\n#SBATCH --open-mode=append\n");
  // Preempted jobs go back to the queue and resume from their checkpoint.
  s += "#SBATCH --requeue\n";
  if (options.time_limit_s > 0) {
    // Slurm counts in minutes and may signal up to a minute early: the signal goes at
    // most 65535 s ahead (sbatch's limit).
    absl::StrAppend(&s, "#SBATCH --time=", (options.time_limit_s + 59) / 60, "\n#SBATCH --signal=TERM@",
                    std::min<int32_t>(std::max<int32_t>(options.signal_ahead_s, 1), 65535), "\n");
  }
  if (!options.partition.empty()) absl::StrAppend(&s, "#SBATCH --partition=", options.partition, "\n");
  if (!options.account.empty()) absl::StrAppend(&s, "#SBATCH --account=", options.account, "\n");
  for (const std::string& arg : options.extra_args) absl::StrAppend(&s, "#SBATCH ", arg, "\n");
  // A requeued run starts from a clean slate: the exit files are this run's.
  absl::StrAppend(&s, "rm -f ", ShellQuote(dir), "/rank*.exit ", ShellQuote(absl::StrCat(dir, "/", kSlurmStopRequestedName)),
                  "\n");
  // Rank 0's machine by the address Slurm reaches it at (NodeAddr; the node's name
  // where none is set), which need not resolve as a host name.
  absl::StrAppend(&s, "first=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n", kEnvMasterAddr,
                  "=$(scontrol -o show node \"$first\" | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p')\n",
                  kEnvMasterAddr, "=${", kEnvMasterAddr, ":-$first}\n");
  absl::StrAppend(&s, "export ", kEnvMasterAddr, "\n");
  absl::StrAppend(&s, "exec srun --kill-on-bad-exit=1 /bin/sh ", ShellQuote(rank_script), "\n");
  return s;
}

std::string SlurmRankScript(const std::vector<RankStart>& ranks) {
  // SIGTERM (a cancel, a preemption) reaches the worker straight from Slurm, which
  // signals every process of the task; this shell waits for it to record its status (a
  // trap, unlike an ignored signal, is not inherited by the worker).
  std::string s = "#!/bin/sh\n# One task of the gang: rank $SLURM_PROCID.\ntrap ':' TERM\ncase \"$SLURM_PROCID\" in\n";
  for (const RankStart& r : ranks) {
    const WorkerLaunch& l = r.launch;
    absl::StrAppend(&s, r.id.rank, ")\n");
    for (const auto& [key, value] : l.env) {
      // Slurm's: where it placed the rank, and the GPUs it gave the task.
      if (key == kEnvMasterAddr || key == kEnvLocalRank || key == kEnvLocalWorldSize || key == "CUDA_VISIBLE_DEVICES") {
        continue;
      }
      absl::StrAppend(&s, "  export ", key, "=", ShellQuote(value), "\n");
    }
    absl::StrAppend(&s, "  export ", kEnvLocalRank, "=\"$SLURM_LOCALID\" ", kEnvLocalWorldSize,
                    "=\"${SLURM_NTASKS_PER_NODE:-1}\"\n");
    if (l.address_space_limit_bytes > 0) absl::StrAppend(&s, "  ulimit -v ", l.address_space_limit_bytes / 1024, "\n");
    if (l.process_limit > 0) absl::StrAppend(&s, "  ulimit -u ", l.process_limit, "\n");
    // A run Slurm requeued after a preemption continues from the newest checkpoint,
    // which its ranks saved when Slurm signalled them.
    std::string args;
    for (const std::string& arg : l.command.Args(/*with_resume=*/false)) absl::StrAppend(&args, " ", ShellQuote(arg));
    absl::StrAppend(&s, "  resume=", ShellQuote(l.command.resume_from), "\n  if [ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ]; then resume=",
                    kResumeFromLatest, "; fi\n");
    absl::StrAppend(&s, "  cd ", ShellQuote(l.working_dir), " || exit 127\n  ", ShellQuote(l.program), args,
                    " ${resume:+", kWorkerFlagResume, " \"$resume\"}");
    absl::StrAppend(&s, " >> ", ShellQuote(l.log_path), " 2>&1\n");
    absl::StrAppend(&s, "  status=$?\n  echo \"$status $SLURMD_NODENAME\" > ",
                    ShellQuote(absl::StrCat(l.working_dir, "/", RankExitName(r.id.rank))), "\n");
    // A SIGTERM trainerd did not send is Slurm's own: a preemption. The rank saved a
    // checkpoint; the task waits for Slurm to end it after GraceTime, since Slurm
    // requeues only a job it preempted to the end, not one that failed meanwhile.
    absl::StrAppend(&s, "  if [ \"$status\" = ", kWorkerExitStopped, " ] && [ ! -e ",
                    ShellQuote(absl::StrCat(l.working_dir, "/", kSlurmStopRequestedName)),
                    " ]; then sleep 86400 & wait; fi\n  exit \"$status\"\n  ;;\n");
  }
  s += "*)\n  exit 127\n  ;;\nesac\n";
  return s;
}

}  // namespace trainerd
