// trainer-cli sweep submit|list|status|cancel (issue 32).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli_commands.h"
#include "client/cli_format.h"
#include "client/submit_request.h"
#include "client/trainer_client.h"
#include "proto/json_mapping.h"
#include "spec/sweep_spec.h"

namespace trainerd {
namespace {

using trainer::v1::Sweep;
using trainer::v1::Trial;

std::string ShortState(trainer::v1::SweepState state) {
  switch (state) {
    case trainer::v1::SWEEP_RUNNING: return "running";
    case trainer::v1::SWEEP_COMPLETED: return "completed";
    case trainer::v1::SWEEP_FAILED: return "failed";
    case trainer::v1::SWEEP_CANCELLING: return "cancelling";
    case trainer::v1::SWEEP_CANCELLED: return "cancelled";
    default: return "?";
  }
}

std::string ShortState(trainer::v1::TrialState state) {
  switch (state) {
    case trainer::v1::TRIAL_SUBMITTING: return "submitting";
    case trainer::v1::TRIAL_RUNNING: return "running";
    case trainer::v1::TRIAL_COMPLETED: return "completed";
    case trainer::v1::TRIAL_STOPPED: return "stopped";
    case trainer::v1::TRIAL_FAILED: return "failed";
    case trainer::v1::TRIAL_CANCELLED: return "cancelled";
    default: return "?";
  }
}

// "training_args.learning_rate=0.0003" -> {"training_args.learning_rate", "0.0003"}.
std::pair<std::string, std::string> SplitValue(const std::string& value) {
  const size_t eq = value.find('=');
  if (eq == std::string::npos) return {value, ""};
  return {value.substr(0, eq), value.substr(eq + 1)};
}

// The last part of a dotted field, for a column header.
std::string ShortField(const std::string& field) {
  const size_t dot = field.rfind('.');
  return dot == std::string::npos ? field : field.substr(dot + 1);
}

// Trials with an objective first, best first (by the furthest rung, then the value),
// then the others by number.
std::vector<Trial> SortedTrials(const Sweep& sweep) {
  std::vector<Trial> trials(sweep.trials().begin(), sweep.trials().end());
  const bool maximize = sweep.spec().objective().direction() == "maximize";
  std::stable_sort(trials.begin(), trials.end(), [maximize](const Trial& a, const Trial& b) {
    if (a.has_objective() != b.has_objective()) return a.has_objective();
    if (!a.has_objective()) return a.number() < b.number();
    if (a.rung() != b.rung()) return a.rung() > b.rung();
    if (std::isnan(a.objective()) != std::isnan(b.objective())) return !std::isnan(a.objective());
    return maximize ? a.objective() > b.objective() : a.objective() < b.objective();
  });
  return trials;
}

std::string TrialTable(const Sweep& sweep) {
  std::vector<std::string> header = {"TRIAL", "JOB", "STATE", "RUNG", "STEPS", sweep.spec().objective().metric()};
  for (const auto& p : sweep.spec().search_space()) header.push_back(ShortField(p.field()));
  header.push_back("DECISION");
  std::vector<std::vector<std::string>> rows = {header};
  for (const Trial& t : SortedTrials(sweep)) {
    std::vector<std::string> row = {std::to_string(t.number()), t.job_id().empty() ? "-" : t.job_id(),
                                    ShortState(t.state()), t.rung() < 0 ? "-" : std::to_string(t.rung()),
                                    std::to_string(t.steps()), OrDash(t.has_objective(), t.objective(), "%.6g")};
    for (const std::string& v : t.values()) row.push_back(SplitValue(v).second);
    if (!t.error().empty() && (t.state() == trainer::v1::TRIAL_FAILED)) {
      row.push_back(t.error());
    } else {
      row.push_back(t.decisions().empty() ? "-" : t.decisions().rbegin()->reason());
    }
    rows.push_back(std::move(row));
  }
  return Table(rows);
}

// The objective against each parameter: a point per trial with an objective.
std::string ParameterPlots(const Sweep& sweep) {
  std::string out;
  for (int i = 0; i < sweep.spec().search_space_size(); ++i) {
    const auto& p = sweep.spec().search_space(i);
    const bool categorical = p.type() == "categorical";
    std::vector<double> xs, ys;
    for (const Trial& t : sweep.trials()) {
      if (!t.has_objective() || std::isnan(t.objective()) || i >= t.values_size()) continue;
      const std::string value = SplitValue(t.values(i)).second;
      double x = 0;
      if (categorical) {
        auto it = std::find(p.values().begin(), p.values().end(), value);
        x = static_cast<double>(it - p.values().begin());
      } else if (!absl::SimpleAtod(value, &x)) {
        continue;
      }
      xs.push_back(x);
      ys.push_back(t.objective());
    }
    absl::StrAppend(&out, "\n", sweep.spec().objective().metric(), " against ", p.field(),
                    categorical ? absl::StrCat(" (0..", p.values_size() - 1, ": ", absl::StrJoin(p.values(), ", "), ")")
                                : "",
                    "\n", Scatter(xs, ys, 60, 12, p.type() == "log_uniform"));
  }
  return out;
}

std::string SweepSummary(const Sweep& s) {
  std::string out = absl::StrFormat("sweep %s (%s) %s: %s, %d of %d trial(s) started, %d running, %d ended\n", s.id(),
                                    s.name(), ShortState(s.state()), s.spec().searcher().name(), s.trials_started(),
                                    s.spec().n_trials(), s.trials_running(), s.trials_ended());
  if (!s.error().empty()) absl::StrAppend(&out, "error: ", s.error(), "\n");
  if (s.best_trial() > 0) {
    absl::StrAppend(&out, absl::StrFormat("best: trial %d, %s %.6g", s.best_trial(), s.spec().objective().metric(),
                                          s.best_objective()));
    for (const Trial& t : s.trials()) {
      if (t.number() == s.best_trial()) absl::StrAppend(&out, " (", absl::StrJoin(t.values(), ", "), ")");
    }
    absl::StrAppend(&out, "\ncheckpoint: ", s.best_checkpoint().empty() ? "-" : s.best_checkpoint(), "\n");
  }
  if (s.steps_without_stopping() > 0) {
    const double share = static_cast<double>(s.steps_trained()) / static_cast<double>(s.steps_without_stopping());
    absl::StrAppend(&out, absl::StrFormat("steps: %d trained of %d without early stopping (%.1f%%; saved %.1f%%)\n",
                                          s.steps_trained(), s.steps_without_stopping(), 100 * share,
                                          100 * (1 - share)));
  }
  return out;
}

}  // namespace

int RunSweepSubmit(TrainerClient& client, const CliArgs& args) {
  std::vector<std::string> warnings;
  absl::StatusOr<trainer::v1::SweepSpec> spec = LoadSweepSpecFile(args.spec_path, &warnings);
  if (!spec.ok()) return Report(spec.status());
  for (const std::string& w : warnings) std::cerr << args.spec_path << ": " << w << "\n";
  absl::StatusOr<trainer::v1::Resources> resources = ResourcesFromArgs(args);
  if (!resources.ok()) return Report(resources.status());
  trainer::v1::SubmitSweepRequest request;
  *request.mutable_spec() = std::move(*spec);
  request.set_name(args.name);
  request.set_priority(args.priority);
  if (args.max_restarts >= 0) request.set_max_restarts(args.max_restarts);
  *request.mutable_resources() = std::move(*resources);
  request.set_validate_only(args.validate_only);
  absl::StatusOr<trainer::v1::SubmitSweepResponse> submitted = client.SubmitSweep(request);
  if (!submitted.ok()) return Report(submitted.status());
  for (const std::string& w : submitted->warnings()) std::cerr << "warning: " << w << "\n";
  if (args.json) {
    std::cout << ToJson(*submitted) << "\n";
  } else if (args.validate_only) {
    std::cout << "sweep is valid: " << submitted->sweep().spec().n_trials() << " trial(s), "
              << submitted->sweep().spec().searcher().name() << "\n";
  } else {
    std::cout << submitted->sweep_id() << "\n";
  }
  return kOk;
}

int RunSweepList(TrainerClient& client, const CliArgs& args) {
  trainer::v1::ListSweepsRequest request;
  request.set_mine(args.mine);
  request.set_page_size(args.limit);
  absl::StatusOr<trainer::v1::ListSweepsResponse> list = client.ListSweeps(request);
  if (!list.ok()) return Report(list.status());
  if (args.json) {
    std::cout << ToJson(*list) << "\n";
    return kOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "OWNER", "STATE", "SEARCHER", "TRIALS", "BEST", "OBJECTIVE", "STEPS"}};
  for (const Sweep& s : list->sweeps()) {
    rows.push_back({s.id(), s.name(), s.owner(), ShortState(s.state()), s.spec().searcher().name(),
                    absl::StrCat(s.trials_ended(), "/", s.spec().n_trials()),
                    s.best_trial() > 0 ? std::to_string(s.best_trial()) : "-",
                    s.best_trial() > 0 ? absl::StrFormat("%s %.6g", s.spec().objective().metric(), s.best_objective())
                                       : "-",
                    absl::StrCat(s.steps_trained(), "/", s.steps_without_stopping())});
  }
  std::cout << Table(rows);
  return kOk;
}

int RunSweepStatus(TrainerClient& client, const CliArgs& args) {
  absl::StatusOr<Sweep> sweep = client.GetSweep(args.job_id);
  while (args.follow && sweep.ok() && sweep->state() == trainer::v1::SWEEP_RUNNING) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    sweep = client.GetSweep(args.job_id);
  }
  if (!sweep.ok()) return Report(sweep.status());
  if (args.json) {
    std::cout << ToJson(*sweep) << "\n";
    return kOk;
  }
  std::cout << SweepSummary(*sweep) << "\n" << TrialTable(*sweep);
  if (args.plot) std::cout << ParameterPlots(*sweep);
  return kOk;
}

int RunSweepCancel(TrainerClient& client, const CliArgs& args) {
  absl::StatusOr<Sweep> sweep = client.CancelSweep(args.job_id);
  if (!sweep.ok()) return Report(sweep.status());
  if (args.json) {
    std::cout << ToJson(*sweep) << "\n";
  } else {
    std::cout << "sweep " << sweep->id() << " " << ShortState(sweep->state()) << "\n";
  }
  return kOk;
}

}  // namespace trainerd
