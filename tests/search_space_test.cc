// A sweep's search space (spec/search_space.h): bad spaces refused by field, random
// trials drawn the same way every time, grids, and the values as job-spec overrides the
// spec loader applies (a field the job spec does not have is refused by it).
#include "spec/search_space.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "spec/spec_loader.h"

namespace trainerd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Type = SearchParameter::Type;

SearchParameter Param(std::string field, Type type, double min, double max, double step = 0,
                      std::vector<std::string> values = {}) {
  return SearchParameter{std::move(field), type, min, max, step, std::move(values)};
}

double ValueOf(const std::string& override_text) {
  return std::stod(override_text.substr(override_text.find('=') + 1));
}

TEST(SearchSpace, BadSpacesAreRefusedByField) {
  const absl::Status s = CheckSearchSpace({Param("training_args.learning_rate", Type::kLogUniform, 0, 1e-2),
                                           Param("training_args.warmup_steps", Type::kInt, 10, 5),
                                           Param("peft.r", Type::kCategorical, 0, 0),
                                           Param("training_args.weight_decay", Type::kUniform, 0, 1, -1),
                                           Param("training_args.warmup_steps", Type::kInt, 0, 5)});
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  const std::string m(s.message());
  EXPECT_THAT(m, HasSubstr("search_space.training_args.learning_rate.min: log_uniform needs a positive min"));
  EXPECT_THAT(m, HasSubstr("search_space.training_args.warmup_steps.min: 10 is above max 5"));
  EXPECT_THAT(m, HasSubstr("search_space.peft.r.values: give at least one"));
  EXPECT_THAT(m, HasSubstr("search_space.training_args.weight_decay.step: must be positive"));
  EXPECT_THAT(m, HasSubstr("search_space.training_args.warmup_steps: given twice"));
  EXPECT_FALSE(CheckSearchSpace({}).ok());
  EXPECT_TRUE(CheckSearchSpace({Param("training_args.learning_rate", Type::kLogUniform, 1e-5, 1e-2)}).ok());
}

TEST(SearchSpace, RandomTrialsAreInRangeAndTheSameForTheSameSeed) {
  const std::vector<SearchParameter> space = {
      Param("training_args.learning_rate", Type::kLogUniform, 1e-5, 1e-2),
      Param("training_args.warmup_steps", Type::kInt, 0, 3),
      Param("training_args.lr_scheduler_type", Type::kCategorical, 0, 0, 0, {"linear", "cosine"})};
  std::set<std::string> schedulers;
  std::set<double> warmups;
  int low_decade = 0;
  for (int t = 0; t < 400; ++t) {
    const std::vector<std::string> trial = SampleTrial(space, 7, t);
    ASSERT_EQ(trial.size(), 3u);
    EXPECT_EQ(trial, SampleTrial(space, 7, t));  // drawn the same way every time
    const double lr = ValueOf(trial[0]);
    EXPECT_GE(lr, 1e-5);
    EXPECT_LE(lr, 1e-2);
    if (lr < 1e-4) ++low_decade;
    warmups.insert(ValueOf(trial[1]));
    schedulers.insert(trial[2].substr(trial[2].find('=') + 1));
  }
  EXPECT_NE(SampleTrial(space, 8, 0), SampleTrial(space, 7, 0));
  // Log-uniform: each of the three decades gets about a third.
  EXPECT_GT(low_decade, 90);
  EXPECT_LT(low_decade, 180);
  EXPECT_EQ(warmups, (std::set<double>{0, 1, 2, 3}));
  EXPECT_EQ(schedulers, (std::set<std::string>{"linear", "cosine"}));
  EXPECT_EQ(SampleTrial(space, 7, 0)[0].rfind("training_args.learning_rate=", 0), 0u);
}

TEST(SearchSpace, GridsEnumerateEveryCombination) {
  auto grid = GridTrials({Param("training_args.learning_rate", Type::kLogUniform, 1e-4, 1e-2, 10),
                          Param("peft.r", Type::kCategorical, 0, 0, 0, {"8", "16"})});
  ASSERT_TRUE(grid.ok()) << grid.status();
  ASSERT_EQ(grid->size(), 6u);
  EXPECT_THAT((*grid)[0], ElementsAre("training_args.learning_rate=0.0001", "peft.r=8"));
  EXPECT_THAT((*grid)[1], ElementsAre("training_args.learning_rate=0.0001", "peft.r=16"));
  EXPECT_THAT((*grid)[5], ElementsAre("training_args.learning_rate=0.01", "peft.r=16"));
  auto ints = GridTrials({Param("training_args.warmup_steps", Type::kInt, 0, 10, 5)});
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ(ints->size(), 3u);
  EXPECT_THAT(std::string(GridTrials({Param("training_args.weight_decay", Type::kUniform, 0, 1)}).status().message()),
              HasSubstr("search_space.training_args.weight_decay.step: a grid needs a step"));
  EXPECT_FALSE(GridTrials({Param("training_args.seed", Type::kInt, 0, 1e6)}, 1000).ok());
}

TEST(SearchSpace, ATrialsValuesAreOverridesTheSpecLoaderApplies) {
  const std::string job = "training_args: {max_steps: 10}\nmodel: {type: mlp}\n";
  const std::vector<std::string> trial =
      SampleTrial({Param("training_args.learning_rate", Type::kLogUniform, 1e-5, 1e-2)}, 1, 0);
  auto spec = ParseJobSpec(job, trial);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_DOUBLE_EQ(spec->training_args().learning_rate(), ValueOf(trial[0]));
  // A field the job spec does not have is refused by name.
  auto refused = ParseJobSpec(job, SampleTrial({Param("training_args.learning_rat", Type::kUniform, 0, 1)}, 1, 0));
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("learning_rat"));
}

}  // namespace
}  // namespace trainerd
