#include "spec/sweep_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/spec_loader.h"

namespace trainerd {
namespace {

using trainer::v1::SweepSpec;

constexpr char kAsha[] = "asha";
constexpr char kGrid[] = "grid";
constexpr char kRandom[] = "random";

// Reads a YAML document's fields onto a SweepSpec, gathering every problem by field.
class SweepFileReader {
 public:
  explicit SweepFileReader(std::filesystem::path base) : base_(std::move(base)) {}

  void Read(const YAML::Node& root, SweepSpec* spec, std::vector<std::string>* warnings) {
    if (!root.IsMap()) {
      problems.push_back("sweep: expected a mapping of job, search_space, objective, searcher, ...");
      return;
    }
    for (const auto& entry : root) {
      const std::string key = entry.first.as<std::string>();
      const YAML::Node& value = entry.second;
      if (key == "job") {
        ReadJob(value, spec, warnings);
      } else if (key == "search_space") {
        ReadSearchSpace(value, spec);
      } else if (key == "objective") {
        ReadMap(value, key, {"metric", "direction"}, [&](const std::string& f, const YAML::Node& v) {
          if (f == "metric") spec->mutable_objective()->set_metric(Scalar(v, "objective.metric"));
          if (f == "direction") spec->mutable_objective()->set_direction(Scalar(v, "objective.direction"));
        });
      } else if (key == "searcher") {
        ReadSearcher(value, spec);
      } else if (key == "n_trials") {
        spec->set_n_trials(static_cast<int32_t>(Integer(value, key)));
      } else if (key == "max_concurrent_trials") {
        spec->set_max_concurrent_trials(static_cast<int32_t>(Integer(value, key)));
      } else if (key == "seed") {
        spec->set_seed(static_cast<uint64_t>(Integer(value, key)));
      } else {
        problems.push_back(absl::StrCat(key, ": unknown field"));
      }
    }
  }

  std::vector<std::string> problems;

 private:
  template <typename Fn>
  void ReadMap(const YAML::Node& node, const std::string& at, const std::set<std::string>& fields, Fn&& read) {
    if (!node.IsMap()) {
      problems.push_back(absl::StrCat(at, ": expected a mapping"));
      return;
    }
    for (const auto& entry : node) {
      const std::string field = entry.first.as<std::string>();
      if (fields.count(field) == 0) {
        problems.push_back(absl::StrCat(at, ".", field, ": unknown field"));
        continue;
      }
      read(field, entry.second);
    }
  }

  std::string Scalar(const YAML::Node& node, const std::string& at) {
    if (!node.IsScalar()) {
      problems.push_back(absl::StrCat(at, ": expected a single value"));
      return "";
    }
    return node.Scalar();
  }
  double Number(const YAML::Node& node, const std::string& at) {
    try {
      if (node.IsScalar()) return node.as<double>();
    } catch (const YAML::Exception&) {
    }
    problems.push_back(absl::StrCat(at, ": expected a number"));
    return 0;
  }
  int64_t Integer(const YAML::Node& node, const std::string& at) {
    try {
      if (node.IsScalar()) return node.as<int64_t>();
    } catch (const YAML::Exception&) {
    }
    problems.push_back(absl::StrCat(at, ": expected an integer"));
    return 0;
  }

  void ReadJob(const YAML::Node& node, SweepSpec* spec, std::vector<std::string>* warnings) {
    absl::StatusOr<trainer::v1::JobSpec> job;
    if (node.IsScalar()) {  // a path, from the sweep file's folder
      std::filesystem::path path = node.Scalar();
      if (path.is_relative()) path = base_ / path;
      job = LoadJobSpecFile(path.string(), {}, warnings);
    } else if (node.IsMap()) {
      job = ParseJobSpecAt(YAML::Dump(node), base_, {}, warnings);
    } else {
      problems.push_back("job: expected a job spec, or the path of one");
      return;
    }
    if (!job.ok()) {
      problems.push_back(absl::StrCat("job: ", job.status().message()));
      return;
    }
    *spec->mutable_job() = std::move(*job);
  }

  void ReadSearchSpace(const YAML::Node& node, SweepSpec* spec) {
    if (!node.IsMap()) {
      problems.push_back("search_space: expected a mapping of dotted job-spec fields");
      return;
    }
    for (const auto& entry : node) {
      trainer::v1::SearchParameter* p = spec->add_search_space();
      p->set_field(entry.first.as<std::string>());
      const std::string at = absl::StrCat("search_space.", p->field());
      ReadMap(entry.second, at, {"type", "min", "max", "values", "step"}, [&](const std::string& f, const YAML::Node& v) {
        if (f == "type") p->set_type(Scalar(v, at + ".type"));
        if (f == "min") p->set_min(Number(v, at + ".min"));
        if (f == "max") p->set_max(Number(v, at + ".max"));
        if (f == "step") p->set_step(Number(v, at + ".step"));
        if (f == "values") {
          if (!v.IsSequence()) {
            problems.push_back(absl::StrCat(at, ".values: expected a list"));
            return;
          }
          for (const YAML::Node& item : v) {
            YAML::Emitter out;  // one line each: "[64, 32]", not a block
            out << YAML::Flow << item;
            p->add_values(out.c_str());
          }
        }
      });
    }
  }

  void ReadSearcher(const YAML::Node& node, SweepSpec* spec) {
    if (node.IsScalar()) {  // searcher: random
      spec->mutable_searcher()->set_name(node.Scalar());
      return;
    }
    trainer::v1::SweepSearcher* s = spec->mutable_searcher();
    ReadMap(node, "searcher", {"name", "max_length", "divisor", "max_rungs"},
            [&](const std::string& f, const YAML::Node& v) {
              if (f == "name") s->set_name(Scalar(v, "searcher.name"));
              if (f == "max_length") s->set_max_length(Integer(v, "searcher.max_length"));
              if (f == "divisor") s->set_divisor(static_cast<int32_t>(Integer(v, "searcher.divisor")));
              if (f == "max_rungs") s->set_max_rungs(static_cast<int32_t>(Integer(v, "searcher.max_rungs")));
            });
  }

  std::filesystem::path base_;
};

const std::map<std::string, SearchParameter::Type>& ParameterTypes() {
  static const auto* types = new std::map<std::string, SearchParameter::Type>{
      {"uniform", SearchParameter::Type::kUniform},
      {"log_uniform", SearchParameter::Type::kLogUniform},
      {"int", SearchParameter::Type::kInt},
      {"categorical", SearchParameter::Type::kCategorical}};
  return *types;
}

// Whether `field` (and each value it can take) fits the sweep's job spec: a field it
// does not have, or a value of the wrong type, is named.
void CheckFieldOnJob(const std::string& job_json, const SearchParameter& p, std::vector<std::string>* problems) {
  std::vector<std::string> tries;
  if (p.type == SearchParameter::Type::kCategorical) {
    tries = p.values;
  } else if (p.type == SearchParameter::Type::kInt) {
    tries = {absl::StrCat(static_cast<int64_t>(p.min)), absl::StrCat(static_cast<int64_t>(p.max))};
  } else {
    tries = {absl::StrCat(p.min), absl::StrCat(p.max)};
  }
  for (const std::string& value : tries) {
    absl::StatusOr<trainer::v1::JobSpec> tried = ParseJobSpec(job_json, {absl::StrCat(p.field, "=", value)});
    if (!tried.ok()) {
      problems->push_back(absl::StrCat("search_space.", p.field, ": ", tried.status().message()));
      return;  // one line per field
    }
  }
}

bool JobEvaluates(const trainer::v1::JobSpec& job) {
  if (job.training_args().has_do_eval() && !job.training_args().do_eval()) return false;
  return !job.data().eval().path().empty() || job.data().eval_split() > 0;
}

}  // namespace

absl::StatusOr<SweepSpec> LoadSweepSpecFile(const std::string& path, std::vector<std::string>* warnings) {
  absl::StatusOr<std::string> text = ReadSpecFile(path);
  if (!text.ok()) return text.status();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("sweep: not valid YAML or JSON: ", e.what()));
  }
  SweepFileReader reader(std::filesystem::absolute(path).parent_path());
  SweepSpec spec;
  reader.Read(root, &spec, warnings);
  if (!reader.problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(reader.problems, "\n"));
  return spec;
}

void ApplySweepDefaults(SweepSpec* spec) {
  trainer::v1::SweepSearcher* searcher = spec->mutable_searcher();
  if (searcher->name().empty()) searcher->set_name(kRandom);
  if (searcher->name() == kAsha) {
    if (searcher->divisor() == 0) searcher->set_divisor(4);
    if (searcher->max_rungs() == 0) searcher->set_max_rungs(5);
    if (searcher->max_length() == 0 && spec->job().training_args().max_steps() > 0) {
      searcher->set_max_length(spec->job().training_args().max_steps());
    }
  }
  if (spec->objective().direction().empty()) spec->mutable_objective()->set_direction("minimize");
  if (searcher->name() == kGrid && spec->n_trials() == 0) {
    absl::StatusOr<std::vector<std::vector<std::string>>> grid = GridTrials(SearchSpaceOf(*spec));
    if (grid.ok()) spec->set_n_trials(static_cast<int32_t>(std::min<size_t>(grid->size(), kMaxSweepTrials)));
  }
  if (spec->max_concurrent_trials() == 0) spec->set_max_concurrent_trials(std::min(2, std::max(spec->n_trials(), 1)));
}

std::vector<SearchParameter> SearchSpaceOf(const SweepSpec& spec) {
  std::vector<SearchParameter> space;
  for (const trainer::v1::SearchParameter& p : spec.search_space()) {
    SearchParameter out;
    out.field = p.field();
    auto type = ParameterTypes().find(p.type());
    out.type = type == ParameterTypes().end() ? SearchParameter::Type::kCategorical : type->second;
    out.min = p.min();
    out.max = p.max();
    out.step = p.step();
    out.values.assign(p.values().begin(), p.values().end());
    space.push_back(std::move(out));
  }
  return space;
}

absl::Status CheckSweepSpec(const SweepSpec& spec) {
  std::vector<std::string> problems;
  const std::string& searcher = spec.searcher().name();
  bool types_known = true;
  for (const trainer::v1::SearchParameter& p : spec.search_space()) {
    if (ParameterTypes().count(p.type()) == 0) {
      types_known = false;
      problems.push_back(absl::StrCat("search_space.", p.field(), ".type: \"", p.type(),
                                      "\" is not one of uniform, log_uniform, int, categorical"));
    } else if (p.type() != "categorical" && (!p.has_min() || !p.has_max())) {
      types_known = false;
      problems.push_back(absl::StrCat("search_space.", p.field(), ": ", p.type(), " needs min and max"));
    }
  }
  const std::vector<SearchParameter> space = SearchSpaceOf(spec);
  if (absl::Status s = CheckSearchSpace(space); !s.ok()) problems.push_back(std::string(s.message()));
  const std::string job_json = JobSpecToJson(spec.job());
  if (types_known) {
    for (const SearchParameter& p : space) {
      if (p.field == "training_args.output_dir") {
        problems.push_back("search_space.training_args.output_dir: trainerd gives each trial its own folder");
      } else if (searcher == kAsha && p.field == "training_args.max_steps") {
        problems.push_back("search_space.training_args.max_steps: asha sets each trial's (searcher.max_length)");
      } else {
        CheckFieldOnJob(job_json, p, &problems);
      }
    }
  }
  const std::string& metric = spec.objective().metric();
  if (metric.empty()) {
    problems.push_back("objective.metric: name the evaluation metric to optimize, e.g. eval_loss");
  } else if (!absl::StartsWith(metric, "eval_")) {
    problems.push_back(absl::StrCat("objective.metric: ", metric, " is not an evaluation metric (eval_...)"));
  } else if (!JobEvaluates(spec.job())) {
    problems.push_back(absl::StrCat("objective.metric: the job does not evaluate, so it never logs ", metric,
                                    " (give data.eval or data.eval_split)"));
  }
  const std::string& direction = spec.objective().direction();
  if (direction != "minimize" && direction != "maximize") {
    problems.push_back(absl::StrCat("objective.direction: \"", direction, "\" is not minimize or maximize"));
  }
  if (searcher != kRandom && searcher != kGrid && searcher != kAsha) {
    problems.push_back(absl::StrCat("searcher.name: \"", searcher, "\" is not one of random, grid, asha"));
  }
  if (searcher == kAsha) {
    const auto& s = spec.searcher();
    if (s.max_length() < 1) problems.push_back("searcher.max_length: asha needs the steps of a whole trial (>= 1)");
    if (s.divisor() < 2 || s.divisor() > 100) problems.push_back("searcher.divisor: must be between 2 and 100");
    if (s.max_rungs() < 1 || s.max_rungs() > 20) problems.push_back("searcher.max_rungs: must be between 1 and 20");
  }
  if (searcher == kGrid && types_known) {
    absl::StatusOr<std::vector<std::vector<std::string>>> grid = GridTrials(space);
    if (!grid.ok()) {
      problems.push_back(std::string(grid.status().message()));
    } else if (spec.n_trials() > static_cast<int64_t>(grid->size())) {
      problems.push_back(absl::StrCat("n_trials: ", spec.n_trials(), " is more than the grid's ", grid->size(),
                                      " points"));
    }
  }
  if (spec.n_trials() < 1 || spec.n_trials() > kMaxSweepTrials) {
    problems.push_back(absl::StrCat("n_trials: must be between 1 and ", kMaxSweepTrials));
  }
  if (spec.max_concurrent_trials() < 1 || spec.max_concurrent_trials() > kMaxConcurrentTrials) {
    problems.push_back(absl::StrCat("max_concurrent_trials: must be between 1 and ", kMaxConcurrentTrials));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
}

absl::StatusOr<std::vector<std::string>> TrialValues(const SweepSpec& spec, int number) {
  const std::vector<SearchParameter> space = SearchSpaceOf(spec);
  if (spec.searcher().name() != kGrid) return SampleTrial(space, spec.seed(), number);
  absl::StatusOr<std::vector<std::vector<std::string>>> grid = GridTrials(space);
  if (!grid.ok()) return grid.status();
  if (number < 1 || number > static_cast<int64_t>(grid->size())) {
    return absl::OutOfRangeError(absl::StrCat("the grid has no point ", number));
  }
  return (*grid)[number - 1];
}

absl::StatusOr<trainer::v1::JobSpec> TrialJobSpec(const SweepSpec& spec, const std::vector<std::string>& values) {
  std::vector<std::string> overrides = values;
  if (spec.searcher().name() == kAsha) {
    overrides.push_back(absl::StrCat("training_args.max_steps=", spec.searcher().max_length()));
  }
  return ParseJobSpec(JobSpecToJson(spec.job()), overrides);
}

}  // namespace trainerd
