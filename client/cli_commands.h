// trainer-cli's subcommands: one function each, over the parsed command line.
#ifndef TRAINERD_CLIENT_CLI_COMMANDS_H_
#define TRAINERD_CLIENT_CLI_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "client/trainer_client.h"

namespace trainerd {

// trainer-cli's exit statuses.
enum CliExit { kOk = 0, kError = 1, kUsage = 2, kNotFound = 3, kInvalidSpec = 4, kUnreachable = 5,
               kJobFailed = 6, kJobCancelled = 7, kDenied = 8 };

// Every flag and argument of every subcommand (each reads the ones it has).
struct CliArgs {
  ClientOptions options;
  int timeout_s = 10;
  bool json = false;
  std::string spec_path, name, job_id, level, metric_name, split, time_limit;
  std::vector<std::string> sets, states;
  int priority = 0, max_restarts = -1, limit = 20, rank = -1, ranks = 1, gpus_per_rank = 0, tail = 0;
  int64_t since = 1, checkpoint = 0, before = 0, stop_at_step = 0;
  bool follow = false, plot = false, csv = false, delete_files = false, mine = false, validate_only = false;
  // upload, download, files
  std::string local_path, file_name, dest, user;
  bool delete_file = false, quiet = false, best = false;
};

// Prints `s`'s message and returns the exit status its code means.
int Report(const absl::Status& s);

// Each returns the exit status.
int RunValidate(TrainerClient& client, const CliArgs& args);
int RunSubmit(TrainerClient& client, const CliArgs& args);
int RunList(TrainerClient& client, const CliArgs& args);
int RunStatus(TrainerClient& client, const CliArgs& args);
int RunWhoAmI(TrainerClient& client, const CliArgs& args);
int RunAudit(TrainerClient& client, const CliArgs& args);
int RunLogs(TrainerClient& client, const CliArgs& args);
int RunWatch(TrainerClient& client, const CliArgs& args);
int RunMetrics(TrainerClient& client, const CliArgs& args);
int RunCancel(TrainerClient& client, const CliArgs& args);
int RunResume(TrainerClient& client, const CliArgs& args);
int RunDelete(TrainerClient& client, const CliArgs& args);
int RunCheckpoints(TrainerClient& client, const CliArgs& args);
int RunWait(TrainerClient& client, const CliArgs& args);
// file_commands.cc: each user's storage area.
int RunUpload(TrainerClient& client, const CliArgs& args);
int RunDownload(TrainerClient& client, const CliArgs& args);
int RunFiles(TrainerClient& client, const CliArgs& args);
// sweep_commands.cc: hyperparameter sweeps.
int RunSweepSubmit(TrainerClient& client, const CliArgs& args);
int RunSweepList(TrainerClient& client, const CliArgs& args);
int RunSweepStatus(TrainerClient& client, const CliArgs& args);
int RunSweepCancel(TrainerClient& client, const CliArgs& args);

}  // namespace trainerd

#endif  // TRAINERD_CLIENT_CLI_COMMANDS_H_
