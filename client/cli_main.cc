// trainer-cli: submit, follow and manage trainerd jobs.
//
// Exit status: 0 success; 1 other error; 2 usage error; 3 not found; 4 invalid spec;
// 5 trainerd unreachable; 6 the followed job failed; 7 the followed job was cancelled.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli_format.h"
#include "client/trainer_client.h"
#include "proto/spec/spec_defaults.h"
#include "proto/spec/spec_loader.h"
#include "proto/spec/spec_validator.h"

namespace trainerd {
namespace {

enum Exit { kOk = 0, kError = 1, kUsage = 2, kNotFound = 3, kInvalidSpec = 4, kUnreachable = 5,
            kJobFailed = 6, kJobCancelled = 7, kDenied = 8 };

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

int Report(const absl::Status& s) {
  std::cerr << "trainer-cli: " << s.message() << "\n";
  switch (s.code()) {
    case absl::StatusCode::kNotFound: return kNotFound;
    case absl::StatusCode::kInvalidArgument: return kInvalidSpec;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return kUnreachable;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied: return kDenied;
    default: return kError;
  }
}

int OutcomeExit(const trainer::v1::Job& job) {
  if (job.state() == trainer::v1::SUCCEEDED) return kOk;
  if (job.state() == trainer::v1::CANCELLED) return kJobCancelled;
  return kJobFailed;
}

bool Finished(const trainer::v1::Job& j) {
  return j.state() == trainer::v1::SUCCEEDED || j.state() == trainer::v1::FAILED ||
         j.state() == trainer::v1::CANCELLED;
}

// Waits for the job to end (polling) and returns it.
absl::StatusOr<trainer::v1::Job> Wait(TrainerClient& client, const std::string& id) {
  while (true) {
    auto job = client.GetJob(id);
    if (!job.ok() || Finished(*job)) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

void PrintOutcome(const trainer::v1::Job& job) {
  std::cout << "job " << job.id() << " " << ShortState(job.state());
  if (!job.error().empty() && job.state() != trainer::v1::SUCCEEDED) std::cout << ": " << job.error();
  std::cout << "\n";
  if (!job.progress().eval_metrics().empty()) {
    std::cout << "evaluation:\n";
    for (const auto& [k, v] : std::map<std::string, double>(job.progress().eval_metrics().begin(),
                                                            job.progress().eval_metrics().end())) {
      std::cout << absl::StrFormat("  %-24s %.4f\n", k, v);
    }
  }
}

int FollowLogs(TrainerClient& client, const std::string& id, std::optional<int> rank, int64_t since,
               const std::string& level, bool follow) {
  trainer::v1::StreamLogsRequest req;
  req.set_job_id(id);
  req.set_follow(follow);
  req.set_from_seq(since);
  req.set_min_level(level);
  if (rank) req.set_rank(*rank);
  absl::Status s = client.StreamLogs(req, [](const trainer::v1::LogLine& l) { std::cout << l.text() << "\n" << std::flush; });
  return s.ok() ? kOk : Report(s);
}

int PrintAudit(TrainerClient& client, int limit, int64_t before, bool json) {
  auto events = client.ListAuditEvents(limit, before);
  if (!events.ok()) return Report(events.status());
  if (json) {
    trainer::v1::ListAuditEventsResponse resp;
    for (const auto& e : *events) *resp.add_events() = e;
    std::cout << ToJson(resp) << "\n";
    return kOk;
  }
  std::vector<std::vector<std::string>> rows = {{"SEQ", "AGE", "USER", "ACTION", "JOB", "CODE", "PEER", "DETAIL"}};
  const int64_t now = NowMs();
  for (const auto& e : *events) {
    rows.push_back({std::to_string(e.seq()), Age(e.time_unix_ms(), now), e.user().empty() ? "-" : e.user(), e.action(),
                    e.job_id().empty() ? "-" : e.job_id(), e.code(), e.peer(),
                    e.detail().empty() ? "-" : e.detail().substr(0, 80)});
  }
  std::cout << Table(rows);
  return kOk;
}

absl::StatusOr<trainer::v1::JobSpec> LoadSpec(const std::string& path, const std::vector<std::string>& sets) {
  auto spec = LoadJobSpecFile(path, sets);
  if (!spec.ok()) return spec.status();
  trainer::v1::JobSpec checked = *spec;
  ApplyDefaults(&checked);
  if (absl::Status s = ValidateJobSpec(checked); !s.ok()) return s;
  return spec;
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
  ClientOptions options;
  app.add_option("--server", options.server, "trainerd address (default $TRAINER_SERVER or 127.0.0.1:50051)");
  app.add_option("--token", options.token, "Access token (default: see above)");
  app.add_option("--tls-ca", options.tls.ca, "CA certificate to verify trainerd with (default $TRAINER_TLS_CA)");
  app.add_option("--tls-cert", options.tls.cert, "Client certificate, for a trainerd that requires one");
  app.add_option("--tls-key", options.tls.key, "The client certificate's key");
  int timeout_s = 10;
  app.add_option("--timeout", timeout_s, "Deadline of each call, seconds")->capture_default_str();
  bool json = false;

  std::string spec_path, name, job_id, level, state_filter_text, metric_name, split;
  std::vector<std::string> sets, states;
  int priority = 0, max_restarts = -1, limit = 20, rank = -1, ranks = 1, gpus_per_rank = 0;
  int64_t since = 1, checkpoint = 0;
  bool follow = false, plot = false, csv = false, delete_files = false, mine = false;
  int64_t before = 0;

  auto* submit = app.add_subcommand("submit", "Submit a job spec; prints the job id.\n"
                                              "Example: trainer-cli submit examples/fashion-mnist-cnn.yaml --follow");
  submit->add_option("spec", spec_path, "Job spec (YAML or JSON)")->required();
  submit->add_option("--name", name, "Job name");
  submit->add_option("--priority", priority, "Higher runs first");
  submit->add_option("--set", sets, "Override a spec field: dotted.path=value (repeatable)");
  submit->add_option("--max-restarts", max_restarts, "Restarts from checkpoint on failure (default: trainerd's)");
  submit->add_option("--ranks", ranks, "Data-parallel ranks, started together (one CPU slot each)")
      ->capture_default_str();
  submit->add_option("--gpus-per-rank", gpus_per_rank, "GPUs each rank needs")->capture_default_str();
  submit->add_flag("--follow,-f", follow, "Follow the logs and exit with the job's outcome");
  submit->add_flag("--json", json, "Print the submitted job as JSON");

  auto* list = app.add_subcommand("list", "List jobs, newest first.\nExample: trainer-cli list --state RUNNING");
  list->add_option("--state", states, "Only jobs in this state (repeatable): QUEUED, RUNNING, SUCCEEDED, ...");
  list->add_option("--limit", limit, "At most this many")->capture_default_str();
  list->add_flag("--mine", mine, "Only my jobs");
  list->add_flag("--json", json, "JSON: {\"jobs\": [Job...]}");

  auto* status = app.add_subcommand("status", "Everything about one job.\nExample: trainer-cli status j1a2b3c");
  status->add_option("job", job_id)->required();
  status->add_flag("--json", json, "The Job as JSON");

  auto* logs = app.add_subcommand("logs", "Print a job's logs.\nExample: trainer-cli logs j1a2b3c -f --level warning");
  logs->add_option("job", job_id)->required();
  logs->add_flag("-f,--follow", follow, "Keep printing until the job ends");
  logs->add_option("--rank", rank, "Only this rank");
  logs->add_option("--since", since, "From this sequence number");
  logs->add_option("--level", level, "Minimum level: debug, info, warning, error");

  auto* watch = app.add_subcommand("watch", "A live progress bar until the job ends.\nExample: trainer-cli watch j1a2b3c");
  watch->add_option("job", job_id)->required();

  auto* metrics = app.add_subcommand("metrics", "A job's metric history.\nExample: trainer-cli metrics j1a2b3c --name loss --plot");
  metrics->add_option("job", job_id)->required();
  metrics->add_option("--name", metric_name, "Only this metric (loss, learning_rate, eval_accuracy, ...)");
  metrics->add_option("--split", split, "train, eval or test");
  metrics->add_flag("--plot", plot, "Draw the curve in the terminal");
  metrics->add_flag("--csv", csv, "CSV: name,split,step,epoch,value");
  metrics->add_flag("--json", json, "JSON: {\"points\": [MetricPoint...]}");

  auto* cancel = app.add_subcommand("cancel", "Cancel a job (its worker saves a checkpoint first).\nExample: trainer-cli cancel j1a2b3c");
  cancel->add_option("job", job_id)->required();
  auto* resume = app.add_subcommand("resume", "Run a finished job again from a checkpoint.\nExample: trainer-cli resume j1a2b3c --checkpoint 500");
  resume->add_option("job", job_id)->required();
  resume->add_option("--checkpoint", checkpoint, "Checkpoint step (default: the latest)");
  auto* del = app.add_subcommand("delete", "Delete a finished job's records.\nExample: trainer-cli delete j1a2b3c --files");
  del->add_option("job", job_id)->required();
  del->add_flag("--files", delete_files, "Also delete its output folder");
  auto* checkpoints = app.add_subcommand("checkpoints", "List a job's checkpoints.\nExample: trainer-cli checkpoints j1a2b3c");
  checkpoints->add_option("job", job_id)->required();
  checkpoints->add_flag("--json", json, "JSON: {\"checkpoints\": [Checkpoint...]}");
  auto* wait = app.add_subcommand("wait", "Wait for a job to end; exit with its outcome.\nExample: trainer-cli wait j1a2b3c");
  wait->add_option("job", job_id)->required();
  auto* whoami = app.add_subcommand("whoami", "Print the user the access token belongs to");
  auto* audit = app.add_subcommand("audit", "The audit log, newest first (admins).\nExample: trainer-cli audit --limit 50");
  audit->add_option("--limit", limit, "At most this many")->capture_default_str();
  audit->add_option("--before", before, "Only events older than this sequence number");
  audit->add_flag("--json", json, "JSON: {\"events\": [AuditEvent...]}");
  auto* validate = app.add_subcommand("validate", "Check a spec locally, listing every bad field.\nExample: trainer-cli validate job.yaml");
  validate->add_option("spec", spec_path)->required();
  validate->add_option("--set", sets, "Override a spec field (repeatable)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  options.deadline = std::chrono::milliseconds(timeout_s * 1000);

  if (validate->parsed()) {
    auto spec = LoadSpec(spec_path, sets);
    if (!spec.ok()) {
      std::cerr << spec_path << ": invalid:\n" << spec.status().message() << "\n";
      return kInvalidSpec;
    }
    std::cout << spec_path << ": valid\n";
    return kOk;
  }

  TrainerClient client(options);
  if (submit->parsed()) {
    auto spec = LoadSpec(spec_path, sets);
    if (!spec.ok()) {
      std::cerr << spec_path << ": invalid:\n" << spec.status().message() << "\n";
      return kInvalidSpec;
    }
    trainer::v1::SubmitJobRequest req;
    *req.mutable_spec() = *spec;
    req.set_name(name);
    req.set_priority(priority);
    if (max_restarts >= 0) req.set_max_restarts(max_restarts);
    req.mutable_resources()->set_ranks(ranks);
    req.mutable_resources()->set_gpus_per_rank(gpus_per_rank);
    auto resp = client.SubmitJob(req);
    if (!resp.ok()) return Report(resp.status());
    if (json) std::cout << ToJson(resp->job()) << "\n";
    else std::cout << resp->job_id() << "\n" << std::flush;
    if (!follow) return kOk;
    if (int rc = FollowLogs(client, resp->job_id(), std::nullopt, 1, "", true); rc != kOk) return rc;
    auto job = Wait(client, resp->job_id());
    if (!job.ok()) return Report(job.status());
    PrintOutcome(*job);
    return OutcomeExit(*job);
  }
  if (list->parsed()) {
    trainer::v1::ListJobsRequest req;
    req.set_page_size(limit);
    req.set_mine(mine);
    for (const auto& s : states) {
      trainer::v1::JobState st;
      if (!trainer::v1::JobState_Parse(s, &st)) {
        std::cerr << "trainer-cli: --state " << s << ": not a job state\n";
        return kUsage;
      }
      req.add_states(st);
    }
    auto resp = client.ListJobs(req);
    if (!resp.ok()) return Report(resp.status());
    if (json) {
      std::cout << ToJson(*resp) << "\n";
      return kOk;
    }
    std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "OWNER", "STATE", "STEP", "LOSS", "EVAL", "AGE"}};
    const int64_t now = NowMs();
    for (const auto& j : resp->jobs()) {
      rows.push_back({j.id(), j.name(), j.owner().empty() ? "-" : j.owner(), ShortState(j.state()),
                      StepProgress(j.progress()),
                      j.progress().step() > 0 ? absl::StrFormat("%.4f", j.progress().loss()) : "-",
                      HeadlineEval(j.progress()), Age(j.created_unix_ms(), now)});
    }
    std::cout << Table(rows);
    return kOk;
  }
  if (status->parsed()) {
    auto job = client.GetJob(job_id);
    if (!job.ok()) return Report(job.status());
    if (json) {
      std::cout << ToJson(*job) << "\n";
      return kOk;
    }
    const auto& p = job->progress();
    std::cout << absl::StrFormat(
        "job         %s (%s)\nowner       %s\nstate       %s\npriority    %d\nprogress    %s, epoch %.2f\n", job->id(),
        job->name(), job->owner().empty() ? "-" : job->owner(), ShortState(job->state()), job->priority(),
        StepProgress(p), p.epoch());
    std::cout << absl::StrFormat("loss        %.4f   learning_rate %.3e   %.0f samples/s\n", p.loss(),
                                 p.learning_rate(), p.samples_per_second());
    for (const auto& [k, v] : std::map<std::string, double>(p.eval_metrics().begin(), p.eval_metrics().end())) {
      std::cout << absl::StrFormat("%-11s %.4f\n", k, v);
    }
    std::cout << "ranks       " << job->resources().ranks();
    if (job->resources().gpus_per_rank() > 0) std::cout << " x " << job->resources().gpus_per_rank() << " GPU(s)";
    std::cout << "\n";
    std::cout << "restarts    " << job->restarts() << "/" << job->max_restarts() << "\n";
    std::cout << "output      " << job->output_dir() << "\n";
    if (!job->best_checkpoint().empty()) std::cout << "best        " << job->best_checkpoint() << "\n";
    if (!job->error().empty()) std::cout << "error       " << job->error() << "\n";
    if (!job->store_error().empty()) {
      std::cout << "unsaved     trainerd cannot save this state (retrying): " << job->store_error() << "\n";
    }
    std::vector<std::vector<std::string>> rows = {{"ATTEMPT", "STARTED", "ENDED", "EXIT", "REASON", "RESUMED FROM"}};
    const int64_t now = NowMs();
    for (const auto& a : job->attempts()) {
      rows.push_back({std::to_string(a.number()), Age(a.started_unix_ms(), now) + " ago",
                      a.ended_unix_ms() ? Age(a.ended_unix_ms(), now) + " ago" : "running",
                      a.ended_unix_ms() ? (a.signal() ? absl::StrCat("signal ", a.signal()) : std::to_string(a.exit_code())) : "-",
                      a.reason().empty() ? "-" : a.reason(), a.resumed_from().empty() ? "-" : a.resumed_from()});
    }
    std::cout << "\n" << Table(rows);
    return kOk;
  }
  if (whoami->parsed()) {
    auto me = client.WhoAmI();
    if (!me.ok()) return Report(me.status());
    std::cout << me->user() << (me->admin() ? " (admin)" : "") << "\n";
    return kOk;
  }
  if (audit->parsed()) return PrintAudit(client, limit, before, json);
  if (logs->parsed()) {
    return FollowLogs(client, job_id, rank >= 0 ? std::optional<int>(rank) : std::nullopt, since, level, follow);
  }
  if (watch->parsed()) {
    const bool tty = ::isatty(1);
    trainer::v1::Job last;
    absl::Status s = client.WatchJob(job_id, [&](const trainer::v1::JobEvent& e) {
      if (!e.has_job()) return;
      last = e.job();
      if (tty) std::cout << "\r\033[K" << ProgressLine(last, 30) << std::flush;
      else std::cout << ProgressLine(last, 0) << "\n" << std::flush;
    });
    if (tty) std::cout << "\n";
    if (!s.ok()) return Report(s);
    PrintOutcome(last);
    return OutcomeExit(last);
  }
  if (metrics->parsed()) {
    auto points = client.GetMetrics(job_id, metric_name, split);
    if (!points.ok()) return Report(points.status());
    if (json) {
      trainer::v1::GetMetricsResponse resp;
      for (const auto& p : *points) *resp.add_points() = p;
      std::cout << ToJson(resp) << "\n";
    } else if (plot) {
      std::vector<double> steps, values;
      for (const auto& p : *points) {
        steps.push_back(static_cast<double>(p.step()));
        values.push_back(p.value());
      }
      std::cout << (metric_name.empty() ? "all metrics" : metric_name) << "\n" << Plot(steps, values, 60, 12);
    } else if (csv) {
      std::cout << "name,split,step,epoch,value\n";
      for (const auto& p : *points) {
        std::cout << absl::StrFormat("%s,%s,%d,%.6g,%.10g\n", p.name(), p.split(), p.step(), p.epoch(), p.value());
      }
    } else {
      std::vector<std::vector<std::string>> rows = {{"STEP", "EPOCH", "SPLIT", "NAME", "VALUE"}};
      for (const auto& p : *points) {
        rows.push_back({std::to_string(p.step()), absl::StrFormat("%.2f", p.epoch()), p.split(), p.name(),
                        absl::StrFormat("%.6g", p.value())});
      }
      std::cout << Table(rows);
    }
    return kOk;
  }
  if (cancel->parsed()) {
    auto job = client.CancelJob(job_id);
    if (!job.ok()) return Report(job.status());
    std::cout << "job " << job->id() << " " << ShortState(job->state()) << "\n";
    return kOk;
  }
  if (resume->parsed()) {
    auto job = client.ResumeJob(job_id, checkpoint);
    if (!job.ok()) return Report(job.status());
    std::cout << "job " << job->id() << " " << ShortState(job->state()) << "\n";
    return kOk;
  }
  if (del->parsed()) {
    absl::Status s = client.DeleteJob(job_id, delete_files);
    if (!s.ok()) return Report(s);
    std::cout << "deleted " << job_id << "\n";
    return kOk;
  }
  if (checkpoints->parsed()) {
    auto list_ = client.ListCheckpoints(job_id);
    if (!list_.ok()) return Report(list_.status());
    if (json) {
      trainer::v1::ListCheckpointsResponse resp;
      for (const auto& c : *list_) *resp.add_checkpoints() = c;
      std::cout << ToJson(resp) << "\n";
      return kOk;
    }
    std::vector<std::vector<std::string>> rows = {{"STEP", "SIZE", "BEST", "CHECKSUM", "PATH"}};
    for (const auto& c : *list_) {
      rows.push_back({std::to_string(c.step()), absl::StrFormat("%.1f MB", c.size_bytes() / 1e6),
                      c.is_best() ? "*" : "", c.checksum(), c.path()});
    }
    std::cout << Table(rows);
    return kOk;
  }
  if (wait->parsed()) {
    auto job = Wait(client, job_id);
    if (!job.ok()) return Report(job.status());
    PrintOutcome(*job);
    return OutcomeExit(*job);
  }
  return kUsage;
}
