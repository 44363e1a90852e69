#include "client/cli_commands.h"

#include <unistd.h>

#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/cli_format.h"
#include "client/progress_between_lines.h"
#include "client/submit_request.h"
#include "client/trainer_client.h"

namespace trainerd {

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

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
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

// Waits for the job to end and returns it (following it as `watch` does, through a
// restart of trainerd too).
absl::StatusOr<trainer::v1::Job> Wait(TrainerClient& client, const std::string& id) {
  std::optional<trainer::v1::Job> last;
  absl::Status s = client.WatchJob(id, [&](const trainer::v1::JobEvent& e) {
    if (e.has_job()) last = e.job();
  });
  if (!s.ok()) return s;
  if (!last) return client.GetJob(id);
  return *last;
}

void PrintOutcome(const trainer::v1::Job& job) {
  std::cout << "job " << job.id() << " " << ShortState(job.state());
  if (!job.error().empty() && job.state() != trainer::v1::SUCCEEDED) std::cout << ": " << job.error();
  std::cout << "\n";
  for (const auto* metrics : {&job.progress().eval_metrics(), &job.progress().test_metrics()}) {
    if (metrics->empty()) continue;
    std::cout << (metrics == &job.progress().eval_metrics() ? "evaluation:\n" : "test:\n");
    for (const auto& [k, v] : std::map<std::string, double>(metrics->begin(), metrics->end())) {
      std::cout << absl::StrFormat("  %-24s %.4f\n", k, v);
    }
  }
}

// Prints the log lines `req` asks for: their text, or one JSON object each.
int FollowLogs(TrainerClient& client, const trainer::v1::StreamLogsRequest& req, bool json,
               const std::function<void()>& on_line = nullptr) {
  absl::Status s = client.StreamLogs(req, [&](const trainer::v1::LogLine& l) {
    std::cout << (json ? ToJson(l) : l.text()) + "\n" << std::flush;  // one write: another thread prints too
    if (on_line) on_line();
  });
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

int PrintInvalid(const CliArgs& args, const absl::Status& s) {
  std::cerr << args.spec_path << ": invalid:\n" << s.message() << "\n";
  return kInvalidSpec;
}

// validate without trainerd (CheckLocally), saying so.
int ValidateLocally(const CliArgs& args, const trainer::v1::SubmitJobRequest& req, const std::string& why) {
  std::cerr << "trainer-cli: " << why << "; checking on this machine, without trainerd's folder policy\n";
  if (absl::Status s = CheckLocally(req); !s.ok()) return PrintInvalid(args, s);
  std::cout << args.spec_path << ": valid (checked locally)\n";
  return kOk;
}

}  // namespace

int RunValidate(TrainerClient& client, const CliArgs& args) {
  absl::StatusOr<trainer::v1::SubmitJobRequest> req = BuildSubmitRequest(args, /*validate_only=*/true);
  if (!req.ok()) return PrintInvalid(args, req.status());
  // trainerd's answer is the one a submission gets: its folders, its GPUs, its limits.
  absl::StatusOr<trainer::v1::SubmitJobResponse> resp = client.SubmitJob(*req);
  if (resp.ok()) {
    for (const std::string& w : resp->warnings()) std::cerr << args.spec_path << ": " << w << "\n";
    std::cout << args.spec_path << ": valid (checked by trainerd at " << client.server() << ")\n";
    if (resp->has_memory_per_rank()) std::cout << "  memory: " << resp->memory_per_rank().summary() << "\n";
    return kOk;
  }
  switch (resp.status().code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
      return PrintInvalid(args, resp.status());
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return ValidateLocally(args, *req, absl::StrCat("trainerd at ", client.server(), " is not reachable"));
    default:
      return ValidateLocally(args, *req, std::string(resp.status().message()));
  }
}

int RunSubmit(TrainerClient& client, const CliArgs& args) {
  absl::StatusOr<trainer::v1::SubmitJobRequest> req = BuildSubmitRequest(args, /*validate_only=*/false);
  if (!req.ok()) return PrintInvalid(args, req.status());
  auto resp = client.SubmitJob(*req);
  if (!resp.ok()) {
    if (resp.status().code() == absl::StatusCode::kInvalidArgument) return PrintInvalid(args, resp.status());
    return Report(resp.status());
  }
  for (const std::string& w : resp->warnings()) std::cerr << args.spec_path << ": " << w << "\n";
  if (args.json) std::cout << ToJson(resp->job()) << "\n";
  else std::cout << resp->job_id() << "\n" << std::flush;
  if (!args.follow) return kOk;
  trainer::v1::StreamLogsRequest logs;
  logs.set_job_id(resp->job_id());
  logs.set_follow(true);
  {
    ProgressBetweenLines progress(client, resp->job_id(), std::chrono::seconds(5));
    if (int rc = FollowLogs(client, logs, false, [&progress] { progress.SawLine(); }); rc != kOk) return rc;
  }
  auto job = Wait(client, resp->job_id());
  if (!job.ok()) return Report(job.status());
  PrintOutcome(*job);
  return OutcomeExit(*job);
}

int RunList(TrainerClient& client, const CliArgs& args) {
  trainer::v1::ListJobsRequest req;
  req.set_page_size(args.limit);
  req.set_mine(args.mine);
  for (const auto& s : args.states) {
    trainer::v1::JobState st;
    if (!trainer::v1::JobState_Parse(absl::AsciiStrToUpper(s), &st) || st == trainer::v1::JOB_STATE_UNSPECIFIED) {
      std::vector<std::string> valid;
      for (int i = 0; i < trainer::v1::JobState_descriptor()->value_count(); ++i) {
        const auto* value = trainer::v1::JobState_descriptor()->value(i);
        if (value->number() != trainer::v1::JOB_STATE_UNSPECIFIED) valid.push_back(absl::AsciiStrToLower(value->name()));
      }
      std::cerr << "trainer-cli: --state " << s << ": not a job state (one of " << absl::StrJoin(valid, ", ") << ")\n";
      return kUsage;
    }
    req.add_states(st);
  }
  auto resp = client.ListJobs(req);
  if (!resp.ok()) return Report(resp.status());
  if (args.json) {
    std::cout << ToJson(*resp) << "\n";
    return kOk;
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "OWNER", "STATE", "STEP", "LOSS", "EVAL", "AGE"}};
  const int64_t now = NowMs();
  for (const auto& j : resp->jobs()) {
    rows.push_back({j.id(), j.name(), j.owner().empty() ? "-" : j.owner(),
                    ShortState(j.state()) + (j.queue_position() > 0 ? absl::StrCat(" #", j.queue_position()) : ""),
                    StepProgress(j.progress()),
                    OrDash(j.progress().has_loss(), j.progress().loss(), "%.4f"),
                    HeadlineEval(j.progress()), Age(j.created_unix_ms(), now)});
  }
  std::cout << Table(rows);
  return kOk;
}

int RunStatus(TrainerClient& client, const CliArgs& args) {
  auto job = client.GetJob(args.job_id);
  if (!job.ok()) return Report(job.status());
  if (args.json) {
    std::cout << ToJson(*job) << "\n";
    return kOk;
  }
  const auto& p = job->progress();
  std::cout << absl::StrFormat("job         %s (%s)\nowner       %s\nstate       %s\n", job->id(), job->name(),
                               job->owner().empty() ? "-" : job->owner(), ShortState(job->state()));
  if (job->queue_position() > 0) {
    std::cout << "queue       #" << job->queue_position() << ": " << job->queue_reason() << "\n";
  }
  std::cout << absl::StrFormat("priority    %d\nprogress    %s, epoch %.2f\n", job->priority(), StepProgress(p),
                               p.epoch());
  std::cout << absl::StrFormat("loss        %s   learning_rate %s   %s samples/s\n",
                               OrDash(p.has_loss(), p.loss(), "%.4f"),
                               OrDash(p.has_learning_rate(), p.learning_rate(), "%.3e"),
                               OrDash(p.has_samples_per_second(), p.samples_per_second(), "%.0f"));
  for (const auto* metrics : {&p.eval_metrics(), &p.test_metrics()}) {
    for (const auto& [k, v] : std::map<std::string, double>(metrics->begin(), metrics->end())) {
      std::cout << absl::StrFormat("%-11s %.4f\n", k, v);
    }
  }
  const int64_t now = NowMs();
  const int64_t started = job->attempts().empty() ? 0 : job->attempts(0).started_unix_ms();
  const bool finished = Finished(*job);
  const int64_t last_end = job->attempts().empty() ? 0 : job->attempts(job->attempts_size() - 1).ended_unix_ms();
  const int64_t ended = last_end > 0 ? last_end : job->updated_unix_ms();
  std::cout << "submitted   " << Rfc3339(job->created_unix_ms()) << "\n";
  if (started > 0) {
    std::cout << "started     " << Rfc3339(started) << "\n";
    if (finished) std::cout << "ended       " << Rfc3339(ended) << "\n";
    std::cout << "duration    " << Duration((finished ? ended : now) - started) << (finished ? "" : " so far") << "\n";
  }
  std::cout << "ranks       " << job->resources().ranks();
  if (job->resources().gpus_per_rank() > 0) std::cout << " x " << job->resources().gpus_per_rank() << " GPU(s)";
  if (job->resources().time_limit_s() > 0) {
    std::cout << "   time limit " << absl::FormatDuration(absl::Seconds(job->resources().time_limit_s()))
              << " per attempt";
  }
  std::cout << "\n";
  int32_t preemptions = 0;
  for (const auto& a : job->attempts()) preemptions += a.preemptions();
  std::cout << "restarts    " << job->restarts() << "/" << job->max_restarts();
  if (preemptions > 0) std::cout << "   preemptions " << preemptions << " (not counted)";
  std::cout << "\n";
  if (job->attempts_size() > 0 && !job->attempts(job->attempts_size() - 1).cluster_job_id().empty()) {
    const auto& last = job->attempts(job->attempts_size() - 1);
    std::cout << "slurm       job " << last.cluster_job_id() << ": "
              << (last.cluster_state().empty() ? "submitted" : last.cluster_state()) << "\n";
  }
  std::cout << "output      " << job->output_dir() << "\n";
  if (!job->requested_output_dir().empty()) {
    std::cout << "            (not the spec's output_dir " << job->requested_output_dir()
              << ": trainerd writes each job to its own folder)\n";
  }
  if (!job->best_checkpoint().empty()) std::cout << "best        " << job->best_checkpoint() << "\n";
  if (!job->error().empty()) std::cout << "error       " << job->error() << "\n";
  if (!job->store_error().empty()) {
    std::cout << "unsaved     trainerd cannot save this state (retrying): " << job->store_error() << "\n";
  }
  std::vector<std::vector<std::string>> rows = {
      {"ATTEMPT", "STARTED", "DURATION", "EXIT", "REASON", "RESUMED FROM"}};
  for (const auto& a : job->attempts()) {
    rows.push_back({std::to_string(a.number()), Rfc3339(a.started_unix_ms()),
                    a.ended_unix_ms() ? Duration(a.ended_unix_ms() - a.started_unix_ms()) : "running",
                    a.ended_unix_ms() ? (a.signal() ? absl::StrCat("signal ", a.signal()) : std::to_string(a.exit_code())) : "-",
                    a.reason().empty() ? "-" : a.reason(), a.resumed_from().empty() ? "-" : a.resumed_from()});
  }
  std::cout << "\n" << Table(rows);
  return kOk;
}

int RunWhoAmI(TrainerClient& client, const CliArgs& args) {
  auto me = client.WhoAmI();
  if (!me.ok()) return Report(me.status());
  std::cout << me->user() << (me->admin() ? " (admin)" : "") << "\n";
  return kOk;
}

int RunAudit(TrainerClient& client, const CliArgs& args) {
  return PrintAudit(client, args.limit, args.before, args.json);
}

int RunLogs(TrainerClient& client, const CliArgs& args) {
  trainer::v1::StreamLogsRequest req;
  req.set_job_id(args.job_id);
  req.set_follow(args.follow);
  req.set_from_seq(args.since);
  req.set_min_level(args.level);
  req.set_tail(args.tail);
  if (args.rank >= 0) req.set_rank(args.rank);
  return FollowLogs(client, req, args.json);
}

int RunWatch(TrainerClient& client, const CliArgs& args) {
  const bool tty = ::isatty(1);
  trainer::v1::Job last;
  absl::Status s = client.WatchJob(args.job_id, [&](const trainer::v1::JobEvent& e) {
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

int RunMetrics(TrainerClient& client, const CliArgs& args) {
  auto points = client.GetMetrics(args.job_id, args.metric_name, args.split);
  if (!points.ok()) return Report(points.status());
  if (args.json) {
    trainer::v1::GetMetricsResponse resp;
    for (const auto& p : *points) *resp.add_points() = p;
    std::cout << ToJson(resp) << "\n";
  } else if (args.plot) {
    std::vector<double> steps, values;
    for (const auto& p : *points) {
      steps.push_back(static_cast<double>(p.step()));
      values.push_back(p.value());
    }
    std::cout << (args.metric_name.empty() ? "all metrics" : args.metric_name) << "\n" << Plot(steps, values, 60, 12);
  } else if (args.csv) {
    std::cout << "name,split,step,epoch,value,attempt\n";
    for (const auto& p : *points) {
      std::cout << absl::StrFormat("%s,%s,%d,%.6g,%.10g,%d\n", p.name(), p.split(), p.step(), p.epoch(), p.value(),
                                   p.attempt());
    }
  } else {
    std::vector<std::vector<std::string>> rows = {{"STEP", "EPOCH", "SPLIT", "NAME", "VALUE", "ATTEMPT"}};
    for (const auto& p : *points) {
      rows.push_back({std::to_string(p.step()), absl::StrFormat("%.2f", p.epoch()), p.split(), p.name(),
                      absl::StrFormat("%.6g", p.value()), std::to_string(p.attempt())});
    }
    std::cout << Table(rows);
  }
  return kOk;
}

int RunCancel(TrainerClient& client, const CliArgs& args) {
  auto job = client.CancelJob(args.job_id);
  if (!job.ok()) return Report(job.status());
  std::cout << "job " << job->id() << " " << ShortState(job->state()) << "\n";
  return kOk;
}

int RunResume(TrainerClient& client, const CliArgs& args) {
  auto job = client.ResumeJob(args.job_id, args.checkpoint, args.stop_at_step);
  if (!job.ok()) return Report(job.status());
  std::cout << "job " << job->id() << " " << ShortState(job->state()) << "\n";
  return kOk;
}

int RunDelete(TrainerClient& client, const CliArgs& args) {
  absl::Status s = client.DeleteJob(args.job_id, args.delete_files);
  if (!s.ok()) return Report(s);
  std::cout << "deleted " << args.job_id << "\n";
  return kOk;
}

int RunCheckpoints(TrainerClient& client, const CliArgs& args) {
  auto list_ = client.ListCheckpoints(args.job_id);
  if (!list_.ok()) return Report(list_.status());
  if (args.json) {
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

int RunWait(TrainerClient& client, const CliArgs& args) {
  auto job = Wait(client, args.job_id);
  if (!job.ok()) return Report(job.status());
  PrintOutcome(*job);
  return OutcomeExit(*job);
}

}  // namespace trainerd
