// A sweep's spec (spec/sweep_spec.h): the file read with its job inline or by path,
// its defaults, every bad space and setting refused by its field name, and the trials'
// values and job specs.
#include "spec/sweep_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "spec/spec_loader.h"
#include "tests/test_util.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kJob[] = R"(
training_args: {max_steps: 40, learning_rate: 0.001}
model: {type: mlp, hidden_sizes: [16]}
data: {train: {path: train.csv}, eval_split: 0.2}
)";

std::string Write(const testing::TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir / name;
  std::ofstream(path) << text;
  return path;
}

// A valid spec to break one field of at a time.
trainer::v1::SweepSpec Valid() {
  trainer::v1::SweepSpec spec;
  auto job = ParseJobSpec(kJob);
  EXPECT_TRUE(job.ok()) << job.status();
  *spec.mutable_job() = *job;
  auto* lr = spec.add_search_space();
  lr->set_field("training_args.learning_rate");
  lr->set_type("log_uniform");
  lr->set_min(1e-4);
  lr->set_max(1e-1);
  spec.mutable_objective()->set_metric("eval_loss");
  spec.mutable_searcher()->set_name("asha");
  spec.set_n_trials(8);
  ApplySweepDefaults(&spec);
  return spec;
}

TEST(SweepSpec, ReadsAFileWithTheJobInlineOrByPath) {
  testing::TempDir dir;
  Write(dir, "job.yaml", kJob);
  const std::string by_path = Write(dir, "sweep.yaml", R"(
job: job.yaml
search_space:
  training_args.learning_rate: {type: log_uniform, min: 1e-5, max: 1e-2}
  training_args.lr_scheduler_type: {type: categorical, values: [linear, cosine]}
  model.hidden_sizes: {type: categorical, values: [[16], [64, 32]]}
objective: {metric: eval_accuracy, direction: maximize}
searcher: {name: asha, max_length: 64, divisor: 2, max_rungs: 3}
n_trials: 9
max_concurrent_trials: 3
seed: 5
)");
  auto spec = LoadSweepSpecFile(by_path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->job().data().train().path(), dir / "train.csv");  // from the sweep file's folder
  ASSERT_EQ(spec->search_space_size(), 3);
  EXPECT_EQ(spec->search_space(0).field(), "training_args.learning_rate");  // in the file's order
  EXPECT_EQ(spec->search_space(2).values(1), "[64, 32]");
  EXPECT_EQ(spec->objective().direction(), "maximize");
  EXPECT_EQ(spec->searcher().divisor(), 2);
  EXPECT_EQ(spec->n_trials(), 9);
  EXPECT_EQ(spec->seed(), 5u);
  ApplySweepDefaults(&*spec);
  EXPECT_TRUE(CheckSweepSpec(*spec).ok()) << CheckSweepSpec(*spec);

  const std::string inline_job = Write(dir, "inline.yaml", R"(
job:
  training_args: {max_steps: 40}
  model: {type: mlp}
  data: {train: {path: train.csv}, eval_split: 0.2}
search_space: {training_args.learning_rate: {type: uniform, min: 0.001, max: 0.01, step: 0.003}}
objective: {metric: eval_loss}
searcher: grid
)");
  spec = LoadSweepSpecFile(inline_job);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->job().data().train().path(), dir / "train.csv");
  ApplySweepDefaults(&*spec);
  EXPECT_EQ(spec->n_trials(), 4);  // a grid's default: every point (0.001, 0.004, 0.007, 0.01)
  EXPECT_EQ(spec->objective().direction(), "minimize");
  EXPECT_EQ(spec->max_concurrent_trials(), 2);
  EXPECT_TRUE(CheckSweepSpec(*spec).ok()) << CheckSweepSpec(*spec);
}

TEST(SweepSpec, FileProblemsAreNamedByField) {
  testing::TempDir dir;
  auto spec = LoadSweepSpecFile(Write(dir, "bad.yaml", R"(
job: {training_args: {learning_rat: 1}}
search_space: {training_args.learning_rate: {type: uniform, min: low, maximum: 2}}
objective: {metric: eval_loss, goal: down}
searcher: {name: asha, max_length: ten}
n_trial: 3
)"));
  ASSERT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string m(spec.status().message());
  EXPECT_THAT(m, HasSubstr("job: training_args.learning_rat: unknown field"));
  EXPECT_THAT(m, HasSubstr("search_space.training_args.learning_rate.min: expected a number"));
  EXPECT_THAT(m, HasSubstr("search_space.training_args.learning_rate.maximum: unknown field"));
  EXPECT_THAT(m, HasSubstr("objective.goal: unknown field"));
  EXPECT_THAT(m, HasSubstr("searcher.max_length: expected an integer"));
  EXPECT_THAT(m, HasSubstr("n_trial: unknown field"));
  EXPECT_EQ(LoadSweepSpecFile(dir / "none.yaml").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(LoadSweepSpecFile(Write(dir, "job-missing.yaml", "job: nowhere.yaml\n")).ok());
}

TEST(SweepSpec, BadSpacesAreRefusedByName) {
  EXPECT_TRUE(CheckSweepSpec(Valid()).ok()) << CheckSweepSpec(Valid());
  struct Case {
    std::function<void(trainer::v1::SweepSpec*)> breaks;
    std::string named;
  };
  const std::vector<Case> cases = {
      {[](auto* s) { s->mutable_search_space(0)->set_min(0.5); },
       "search_space.training_args.learning_rate.min: 0.5 is above max 0.1"},
      {[](auto* s) { s->mutable_search_space(0)->set_min(-1); },
       "search_space.training_args.learning_rate.min: log_uniform needs a positive min"},
      {[](auto* s) { s->mutable_search_space(0)->set_field("training_args.learning_rat"); },
       "search_space.training_args.learning_rat: training_args.learning_rat: unknown field"},
      {[](auto* s) { s->mutable_search_space(0)->set_field("optimizer.lr"); },
       "search_space.optimizer.lr: optimizer: unknown field"},
      {[](auto* s) {
         auto* r = s->add_search_space();
         r->set_field("peft.r");
         r->set_type("categorical");
         r->add_values("8");
         r->add_values("many");
       },
       "search_space.peft.r: peft.r: expected an integer"},
      {[](auto* s) { s->mutable_search_space(0)->set_type("normal"); },
       "search_space.training_args.learning_rate.type: \"normal\" is not one of"},
      {[](auto* s) { s->mutable_search_space(0)->clear_max(); }, "search_space.training_args.learning_rate: log_uniform needs min and max"},
      {[](auto* s) { s->mutable_search_space(0)->set_field("training_args.max_steps"); },
       "search_space.training_args.max_steps: asha sets each trial's"},
      {[](auto* s) { s->mutable_search_space(0)->set_field("training_args.output_dir"); },
       "search_space.training_args.output_dir: trainerd gives each trial its own folder"},
      {[](auto* s) { s->clear_search_space(); }, "search_space: give at least one field to vary"},
      {[](auto* s) { s->mutable_objective()->set_metric("loss"); }, "objective.metric: loss is not an evaluation metric"},
      {[](auto* s) { s->mutable_objective()->clear_metric(); }, "objective.metric: name the evaluation metric"},
      {[](auto* s) { s->mutable_job()->mutable_data()->set_eval_split(0); }, "objective.metric: the job does not evaluate"},
      {[](auto* s) { s->mutable_objective()->set_direction("down"); }, "objective.direction: \"down\" is not"},
      {[](auto* s) { s->mutable_searcher()->set_name("bayes"); }, "searcher.name: \"bayes\" is not one of"},
      {[](auto* s) { s->mutable_searcher()->set_divisor(1); }, "searcher.divisor: must be between 2 and 100"},
      {[](auto* s) { s->mutable_searcher()->set_max_length(0); }, "searcher.max_length: asha needs"},
      {[](auto* s) { s->set_n_trials(0); }, "n_trials: must be between 1 and 1000"},
      {[](auto* s) { s->set_max_concurrent_trials(1000); }, "max_concurrent_trials: must be between 1 and 100"},
      {[](auto* s) { s->mutable_searcher()->set_name("grid"); }, "search_space.training_args.learning_rate.step: a grid needs a step"},
  };
  for (const Case& c : cases) {
    trainer::v1::SweepSpec spec = Valid();
    c.breaks(&spec);
    const absl::Status s = CheckSweepSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.named;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.named));
  }
}

TEST(SweepSpec, TrialsGetTheirValuesAndAshaSetsMaxSteps) {
  trainer::v1::SweepSpec spec = Valid();
  spec.mutable_searcher()->set_max_length(64);
  auto first = TrialValues(spec, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, *TrialValues(spec, 1));  // the same every time
  EXPECT_NE(*first, *TrialValues(spec, 2));
  spec.set_seed(9);
  EXPECT_NE(*first, *TrialValues(spec, 1));  // another seed, other draws
  auto job = TrialJobSpec(spec, *first);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->training_args().max_steps(), 64);  // asha: max_length, whatever the job said
  EXPECT_EQ(absl::StrCat("training_args.learning_rate=", job->training_args().learning_rate()).substr(0, 30),
            (*first)[0].substr(0, 30));
  EXPECT_EQ(job->model().hidden_sizes(0), 16);  // the rest is the sweep's job

  spec.mutable_searcher()->set_name("grid");
  spec.mutable_search_space(0)->set_step(10);  // 1e-4, 1e-3, 1e-2, 1e-1
  spec.set_n_trials(0);
  ApplySweepDefaults(&spec);
  EXPECT_EQ(spec.n_trials(), 4);
  EXPECT_EQ(*TrialValues(spec, 2), std::vector<std::string>{"training_args.learning_rate=0.001"});
  EXPECT_EQ(TrialValues(spec, 5).status().code(), absl::StatusCode::kOutOfRange);
  auto grid_job = TrialJobSpec(spec, *TrialValues(spec, 3));
  ASSERT_TRUE(grid_job.ok());
  EXPECT_EQ(grid_job->training_args().max_steps(), 40);  // the job's own length
  EXPECT_DOUBLE_EQ(grid_job->training_args().learning_rate(), 0.01);
}

}  // namespace
}  // namespace trainerd
