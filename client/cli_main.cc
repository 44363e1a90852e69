// trainer-cli: submit, follow and manage trainerd jobs. Flags -> CliArgs -> the
// subcommand's function (client/cli_commands.h), whose result is the exit status.
//
// Exit status: 0 success; 1 other error; 2 usage error; 3 not found; 4 invalid spec;
// 5 trainerd unreachable; 6 the followed job failed; 7 the followed job was cancelled;
// 8 not authenticated or not allowed.
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "client/cli_commands.h"

namespace trainerd {
namespace {

using Runner = int (*)(TrainerClient&, const CliArgs&);

struct Subcommands {
  std::vector<std::pair<CLI::App*, Runner>> with_client;
};

CLI::App* DefineSubmit(CLI::App& app, CliArgs& args) {
  auto* submit = app.add_subcommand("submit", "Submit a job spec; prints the job id.\n"
                                              "Example: trainer-cli submit examples/fashion-mnist-cnn.yaml --follow");
  submit->add_option("spec", args.spec_path, "Job spec (YAML or JSON)")->required();
  submit->add_option("--name", args.name, "Job name");
  submit->add_option("--priority", args.priority, "Higher runs first");
  submit->add_option("--set", args.sets, "Override a spec field: dotted.path=value (repeatable)");
  submit->add_option("--max-restarts", args.max_restarts, "Restarts from checkpoint on failure (default: trainerd's)");
  submit->add_option("--ranks", args.ranks, "Data-parallel ranks, started together (one CPU slot each)")
      ->capture_default_str();
  submit->add_option("--gpus-per-rank", args.gpus_per_rank, "GPUs each rank needs")->capture_default_str();
  submit->add_option("--time-limit", args.time_limit,
                     "Longest run of one attempt, e.g. 90m or 2h30m (SIGTERM and a checkpoint the grace period "
                     "before it; then the job fails and `resume` continues it)");
  submit->add_flag("--follow,-f", args.follow, "Follow the logs and exit with the job's outcome");
  submit->add_flag("--json", args.json, "Print the submitted job as JSON");
  return submit;
}

CLI::App* DefineList(CLI::App& app, CliArgs& args) {
  auto* list = app.add_subcommand("list", "List jobs, newest first.\nExample: trainer-cli list --state RUNNING");
  list->add_option("--state", args.states, "Only jobs in this state (repeatable, any case): queued, starting, running, succeeded, failed, ...");
  list->add_option("--limit", args.limit, "At most this many")->capture_default_str();
  list->add_flag("--mine", args.mine, "Only my jobs");
  list->add_flag("--json", args.json, "JSON: {\"jobs\": [Job...]}");
  return list;
}

CLI::App* DefineMetrics(CLI::App& app, CliArgs& args) {
  auto* metrics = app.add_subcommand("metrics", "A job's metric history.\nExample: trainer-cli metrics j1a2b3c --name loss --plot");
  metrics->add_option("job", args.job_id)->required();
  metrics->add_option("--name", args.metric_name, "Only this metric (loss, learning_rate, eval_accuracy, ...)");
  metrics->add_option("--split", args.split, "train, eval or test");
  metrics->add_flag("--plot", args.plot, "Draw the curve in the terminal");
  metrics->add_flag("--csv", args.csv, "CSV: name,split,step,epoch,value");
  metrics->add_flag("--json", args.json, "JSON: {\"points\": [MetricPoint...]}");
  return metrics;
}

// Every subcommand with its flags, bound to `args`.
Subcommands DefineSubcommands(CLI::App& app, CliArgs& args) {
  CLI::App* submit = DefineSubmit(app, args);
  CLI::App* list = DefineList(app, args);
  auto* status = app.add_subcommand("status", "Everything about one job.\nExample: trainer-cli status j1a2b3c");
  status->add_option("job", args.job_id)->required();
  status->add_flag("--json", args.json, "The Job as JSON");

  auto* logs = app.add_subcommand("logs", "Print a job's logs.\nExample: trainer-cli logs j1a2b3c -f --level warning");
  logs->add_option("job", args.job_id)->required();
  logs->add_flag("-f,--follow", args.follow, "Keep printing until the job ends");
  logs->add_option("--rank", args.rank, "Only this rank");
  logs->add_option("--since", args.since, "From this sequence number");
  logs->add_option("--level", args.level, "Minimum level: debug, info, warning, error");
  logs->add_option("--tail", args.tail, "Start at the last N lines (that pass --rank and --level)")
      ->check(CLI::PositiveNumber);
  logs->add_flag("--json", args.json, "One LogLine JSON object per line");

  auto* watch = app.add_subcommand("watch", "A live progress bar until the job ends.\nExample: trainer-cli watch j1a2b3c");
  watch->add_option("job", args.job_id)->required();
  CLI::App* metrics = DefineMetrics(app, args);

  auto* cancel = app.add_subcommand("cancel", "Cancel a job (its worker saves a checkpoint first).\nExample: trainer-cli cancel j1a2b3c");
  cancel->add_option("job", args.job_id)->required();
  auto* resume = app.add_subcommand("resume", "Run a finished job again from a checkpoint.\nExample: trainer-cli resume j1a2b3c --checkpoint 500");
  resume->add_option("job", args.job_id)->required();
  resume->add_option("--checkpoint", args.checkpoint, "Checkpoint step (default: the latest)");
  resume->add_option("--stop-at-step", args.stop_at_step,
                     "Stop again at this step, with a checkpoint (default: train to the end)");
  auto* del = app.add_subcommand("delete", "Delete a finished job's records.\nExample: trainer-cli delete j1a2b3c --files");
  del->add_option("job", args.job_id)->required();
  del->add_flag("--files", args.delete_files, "Also delete its output folder");
  auto* checkpoints = app.add_subcommand("checkpoints", "List a job's checkpoints.\nExample: trainer-cli checkpoints j1a2b3c");
  checkpoints->add_option("job", args.job_id)->required();
  checkpoints->add_flag("--json", args.json, "JSON: {\"checkpoints\": [Checkpoint...]}");
  auto* wait = app.add_subcommand("wait", "Wait for a job to end; exit with its outcome.\nExample: trainer-cli wait j1a2b3c");
  wait->add_option("job", args.job_id)->required();
  auto* whoami = app.add_subcommand("whoami", "Print the user the access token belongs to");
  auto* audit = app.add_subcommand("audit", "The audit log, newest first (admins).\nExample: trainer-cli audit --limit 50");
  audit->add_option("--limit", args.limit, "At most this many")->capture_default_str();
  audit->add_option("--before", args.before, "Only events older than this sequence number");
  audit->add_flag("--json", args.json, "JSON: {\"events\": [AuditEvent...]}");
  auto* validate = app.add_subcommand(
      "validate", "Check a spec as trainerd checks a submission (its folders, GPUs and limits; on this machine "
                  "when trainerd is not reachable), listing every bad field; queues nothing.\n"
                  "Example: trainer-cli validate job.yaml --gpus-per-rank 1");
  validate->add_option("spec", args.spec_path)->required();
  validate->add_option("--set", args.sets, "Override a spec field (repeatable)");
  validate->add_option("--priority", args.priority, "As submit's");
  validate->add_option("--ranks", args.ranks, "As submit's")->capture_default_str();
  validate->add_option("--gpus-per-rank", args.gpus_per_rank, "As submit's")->capture_default_str();
  validate->add_option("--time-limit", args.time_limit, "As submit's");

  auto* upload = app.add_subcommand(
      "upload", "Send a file or folder (a dataset, a model folder) to your storage area on trainerd; resumes an "
                "interrupted upload. Prints how job specs name it (user://USER/NAME).\n"
                "Example: trainer-cli upload ~/models/qwen2-0.5b");
  upload->add_option("path", args.local_path, "The local file or folder")->required();
  upload->add_option("name", args.file_name, "Its name in your area (default: its own name)");
  upload->add_flag("--json", args.json, "JSON: {\"files\": [FileInfo...]}");
  upload->add_flag("--quiet", args.quiet, "No progress line");
  auto* download = app.add_subcommand(
      "download", "Fetch a job's final model folder (or one checkpoint), or a file or folder of your storage area; "
                  "resumes an interrupted download, checks each file's SHA-256.\n"
                  "Example: trainer-cli download j1a2b3c --best ./model");
  download->add_option("name", args.file_name, "A job, or a file or folder in your area")->required();
  download->add_option("dest", args.dest, "Where to put it (default: JOB[-checkpoint-N], or here)");
  download->add_option("--checkpoint", args.checkpoint, "The job's checkpoint of this step");
  download->add_flag("--best", args.best, "The job's best checkpoint (metric_for_best_model)");
  download->add_flag("--quiet", args.quiet, "No progress line");
  auto* files = app.add_subcommand("files", "List (or delete) the files of your storage area, or list a job's.\n"
                                            "Example: trainer-cli files models --delete");
  files->add_option("name", args.file_name, "Only this file or folder, or a job");
  files->add_flag("--delete", args.delete_file, "Delete the file or folder named");
  files->add_option("--user", args.user, "Another user's area (admins)");
  files->add_flag("--json", args.json, "JSON: ListFilesResponse");

  auto* sweep = app.add_subcommand("sweep", "Hyperparameter sweeps: trials run as jobs, stopped early by ASHA.\n"
                                            "Example: trainer-cli sweep submit examples/sweep-asha.yaml");
  sweep->require_subcommand(1);
  auto* sweep_submit = sweep->add_subcommand("submit", "Submit a sweep spec; prints the sweep id.\n"
                                                       "Example: trainer-cli sweep submit examples/sweep-asha.yaml");
  sweep_submit->add_option("spec", args.spec_path, "Sweep spec (YAML or JSON)")->required();
  sweep_submit->add_option("--name", args.name, "Sweep name (its trials are NAME-1, NAME-2, ...)");
  sweep_submit->add_option("--priority", args.priority, "Every trial's priority");
  sweep_submit->add_option("--max-restarts", args.max_restarts, "Every trial's restarts after a failure");
  sweep_submit->add_option("--ranks", args.ranks, "Every trial's worker processes")->capture_default_str();
  sweep_submit->add_option("--gpus-per-rank", args.gpus_per_rank, "GPUs for each of a trial's ranks");
  sweep_submit->add_option("--time-limit", args.time_limit, "Each trial attempt's longest run (90m, 2h)");
  sweep_submit->add_flag("--validate", args.validate_only, "Check the sweep and its first trial; start nothing");
  sweep_submit->add_flag("--json", args.json, "JSON: SubmitSweepResponse");
  auto* sweep_list = sweep->add_subcommand("list", "List sweeps, newest first.\nExample: trainer-cli sweep list --mine");
  sweep_list->add_flag("--mine", args.mine, "Only your own sweeps");
  sweep_list->add_option("--limit", args.limit, "At most this many")->capture_default_str();
  sweep_list->add_flag("--json", args.json, "JSON: ListSweepsResponse");
  auto* sweep_status = sweep->add_subcommand(
      "status", "A sweep's trials sorted by the objective, its best trial, and the steps early stopping saved.\n"
                "Example: trainer-cli sweep status s1a2b3c --plot");
  sweep_status->add_option("sweep", args.job_id, "Sweep id")->required();
  sweep_status->add_flag("--plot", args.plot, "Also plot the objective against each parameter");
  sweep_status->add_flag("--wait", args.follow, "Wait for the sweep to end first");
  sweep_status->add_flag("--json", args.json, "JSON: the Sweep");
  auto* sweep_cancel = sweep->add_subcommand("cancel", "Cancel a sweep and its running trials (each checkpoints).\n"
                                                       "Example: trainer-cli sweep cancel s1a2b3c");
  sweep_cancel->add_option("sweep", args.job_id, "Sweep id")->required();
  sweep_cancel->add_flag("--json", args.json, "JSON: the Sweep");

  Subcommands out;
  out.with_client = {
      {sweep_submit, RunSweepSubmit},
      {sweep_list, RunSweepList},
      {sweep_status, RunSweepStatus},
      {sweep_cancel, RunSweepCancel},
      {validate, RunValidate},
      {submit, RunSubmit},
      {list, RunList},
      {status, RunStatus},
      {whoami, RunWhoAmI},
      {audit, RunAudit},
      {logs, RunLogs},
      {watch, RunWatch},
      {metrics, RunMetrics},
      {cancel, RunCancel},
      {resume, RunResume},
      {del, RunDelete},
      {checkpoints, RunCheckpoints},
      {wait, RunWait},
      {upload, RunUpload},
      {download, RunDownload},
      {files, RunFiles},
  };
  return out;
}

}  // namespace
}  // namespace trainerd

int main(int argc, char** argv) {
  using namespace trainerd;
  CLI::App app{"trainer-cli: submit, follow and manage trainerd training jobs.\n"
               "Exit status: 0 ok, 1 error, 2 usage, 3 not found, 4 invalid spec, 5 trainerd\n"
               "unreachable, 6 followed job failed, 7 followed job cancelled, 8 not authenticated\n"
               "or not allowed.\n"
               "The access token comes from --token, else $TRAINER_TOKEN, else ~/.config/trainerd/token,\n"
               "else the data root's admin.token when readable.",
               "trainer-cli"};
  app.set_version_flag("--version", std::string("trainer-cli ") + TRAINERD_VERSION);
  app.require_subcommand(1);
  CliArgs args;
  ClientOptions& options = args.options;
  app.add_option("--server", options.server, "trainerd address (default $TRAINER_SERVER or 127.0.0.1:50051)");
  app.add_option("--token", options.token, "Access token (default: see above)");
  app.add_option("--tls-ca", options.tls.ca, "CA certificate to verify trainerd with (default $TRAINER_TLS_CA)");
  app.add_option("--tls-cert", options.tls.cert, "Client certificate, for a trainerd that requires one");
  app.add_option("--tls-key", options.tls.key, "The client certificate's key");
  app.add_option("--timeout", args.timeout_s, "Deadline of each call, seconds")->capture_default_str();

  const Subcommands subcommands = DefineSubcommands(app, args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  options.deadline = std::chrono::milliseconds(args.timeout_s * 1000);

  TrainerClient client(options);
  for (const auto& [command, run] : subcommands.with_client) {
    if (command->parsed()) return run(client, args);
  }
  return kUsage;
}
