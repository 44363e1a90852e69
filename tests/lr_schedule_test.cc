// Each schedule against values worked out by hand from HF's definitions in
// transformers/optimization.py (base learning rate 1, so lr = the schedule's factor).
#include "worker/trainer/lr_schedule.h"

#include <cmath>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "spec/spec_defaults.h"
#include "spec/spec_loader.h"
#include "spec/spec_validator.h"

namespace trainerd {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::unique_ptr<LrSchedule> Make(const std::string& yaml, int64_t total = 100) {
  const std::string warmup = yaml.find("warmup_steps") == std::string::npos ? "warmup_steps: 10, " : "";
  auto spec = ParseJobSpec("training_args: {learning_rate: 1.0, " + warmup + yaml + "}");
  EXPECT_TRUE(spec.ok()) << spec.status();
  ApplyDefaults(&*spec);
  auto s = LrSchedule::Create(spec->training_args(), total);
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(*s);
}

TEST(LrSchedule, Linear) {
  auto s = Make("lr_scheduler_type: linear");
  EXPECT_DOUBLE_EQ(s->LearningRate(0), 0.0);
  EXPECT_DOUBLE_EQ(s->LearningRate(5), 0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 1.0);
  EXPECT_DOUBLE_EQ(s->LearningRate(55), 0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(100), 0.0);
  EXPECT_DOUBLE_EQ(s->LearningRate(120), 0.0);
}

TEST(LrSchedule, Cosine) {
  auto s = Make("lr_scheduler_type: cosine");
  EXPECT_DOUBLE_EQ(s->LearningRate(5), 0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 1.0);
  EXPECT_NEAR(s->LearningRate(55), 0.5, 1e-12);
  EXPECT_NEAR(s->LearningRate(32), 0.5 * (1 + std::cos(kPi * 22.0 / 90.0)), 1e-12);
  EXPECT_NEAR(s->LearningRate(100), 0.0, 1e-12);
}

TEST(LrSchedule, CosineWithRestarts) {
  auto s = Make("lr_scheduler_type: cosine_with_restarts, lr_scheduler_kwargs: {num_cycles: 2}");
  EXPECT_NEAR(s->LearningRate(55), 1.0, 1e-12);  // second cycle restarts at progress 0.5
  EXPECT_NEAR(s->LearningRate(32), 0.5 * (1 + std::cos(kPi * std::fmod(2 * 22.0 / 90.0, 1.0))), 1e-12);
  EXPECT_DOUBLE_EQ(s->LearningRate(100), 0.0);
  auto one = Make("lr_scheduler_type: cosine_with_restarts");
  EXPECT_NEAR(one->LearningRate(55), 0.5 * (1 + std::cos(kPi * 0.5)), 1e-12);
}

TEST(LrSchedule, Polynomial) {
  auto s = Make("lr_scheduler_type: polynomial, lr_scheduler_kwargs: {power: 2.0}");
  EXPECT_DOUBLE_EQ(s->LearningRate(5), 0.5);
  EXPECT_NEAR(s->LearningRate(55), (1 - 1e-7) * 0.25 + 1e-7, 1e-15);
  EXPECT_NEAR(s->LearningRate(100), 1e-7, 1e-15);
  EXPECT_NEAR(s->LearningRate(150), 1e-7, 1e-15);
  auto linear = Make("lr_scheduler_type: polynomial, lr_scheduler_kwargs: {lr_end: 0.1}");
  EXPECT_NEAR(linear->LearningRate(55), 0.9 * 0.5 + 0.1, 1e-12);
}

TEST(LrSchedule, ConstantAndConstantWithWarmup) {
  auto c = Make("lr_scheduler_type: constant");
  EXPECT_DOUBLE_EQ(c->LearningRate(0), 1.0);
  EXPECT_DOUBLE_EQ(c->LearningRate(99), 1.0);
  auto w = Make("lr_scheduler_type: constant_with_warmup");
  EXPECT_DOUBLE_EQ(w->LearningRate(0), 0.0);
  EXPECT_DOUBLE_EQ(w->LearningRate(5), 0.5);
  EXPECT_DOUBLE_EQ(w->LearningRate(50), 1.0);
}

TEST(LrSchedule, InverseSqrt) {
  auto s = Make("lr_scheduler_type: inverse_sqrt");  // timescale defaults to warmup (10)
  EXPECT_DOUBLE_EQ(s->LearningRate(5), 0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 1.0);
  EXPECT_DOUBLE_EQ(s->LearningRate(40), 0.5);
  auto no_warmup = Make("warmup_steps: 0, lr_scheduler_type: inverse_sqrt");
  EXPECT_DOUBLE_EQ(no_warmup->LearningRate(30000), 0.5);  // timescale 10000
}

TEST(LrSchedule, CosineWithMinLr) {
  auto s = Make("lr_scheduler_type: cosine_with_min_lr, lr_scheduler_kwargs: {min_lr: 0.1}");
  EXPECT_NEAR(s->LearningRate(55), 0.5 * 0.9 + 0.1, 1e-12);
  EXPECT_NEAR(s->LearningRate(100), 0.1, 1e-12);
  auto rate = Make("lr_scheduler_type: cosine_with_min_lr, lr_scheduler_kwargs: {min_lr_rate: 0.2}");
  EXPECT_NEAR(rate->LearningRate(100), 0.2, 1e-12);
}

TEST(LrSchedule, WarmupStableDecay) {
  auto s = Make("lr_scheduler_type: warmup_stable_decay, lr_scheduler_kwargs: {num_decay_steps: 20}");
  EXPECT_DOUBLE_EQ(s->LearningRate(5), 0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(50), 1.0);   // stable: steps 10..79
  EXPECT_DOUBLE_EQ(s->LearningRate(79), 1.0);
  EXPECT_NEAR(s->LearningRate(90), 0.5, 1e-12);  // cosine decay half way
  EXPECT_DOUBLE_EQ(s->LearningRate(100), 0.0);
  auto lin = Make("lr_scheduler_type: warmup_stable_decay, lr_scheduler_kwargs: "
                  "{num_decay_steps: 20, decay_type: linear, min_lr_ratio: 0.2}");
  EXPECT_NEAR(lin->LearningRate(90), 0.5 * 0.8 + 0.2, 1e-12);
  EXPECT_NEAR(lin->LearningRate(5), 0.5 * 0.8 + 0.2, 1e-12);  // warmup also starts at the floor
  EXPECT_DOUBLE_EQ(lin->LearningRate(100), 0.2);
  auto sqrt_decay = Make("lr_scheduler_type: warmup_stable_decay, lr_scheduler_kwargs: "
                         "{num_decay_steps: 20, num_stable_steps: 30, decay_type: 1-sqrt}");
  EXPECT_NEAR(sqrt_decay->LearningRate(50), 1.0 - std::sqrt(0.5), 1e-12);
  EXPECT_DOUBLE_EQ(sqrt_decay->LearningRate(60), 0.0);
}

TEST(LrSchedule, WarmupRatio) {
  auto spec = ParseJobSpec("training_args: {learning_rate: 1.0, warmup_ratio: 0.055}");
  ApplyDefaults(&*spec);
  auto s = LrSchedule::Create(spec->training_args(), 100);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->num_warmup_steps(), 6);  // ceil(5.5)
}

TEST(LrSchedule, ReduceLrOnPlateau) {
  auto s = Make("lr_scheduler_type: reduce_lr_on_plateau, "
                "lr_scheduler_kwargs: {patience: 1, factor: 0.5, cooldown: 1}");
  EXPECT_TRUE(s->is_plateau());
  EXPECT_DOUBLE_EQ(s->LearningRate(0), 1.0);
  s->OnEvaluate(1.0);  // best
  s->OnEvaluate(1.0);  // 1 bad
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 1.0);
  s->OnEvaluate(1.0);  // 2 bad > patience: halve, then 1 evaluation of cooldown
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 0.5);
  s->OnEvaluate(1.0);  // cooldown absorbs it
  s->OnEvaluate(1.0);
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 0.5);
  s->OnEvaluate(1.0);
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 0.25);
  s->OnEvaluate(0.5);  // improvement resets the count
  s->OnEvaluate(0.5);
  EXPECT_DOUBLE_EQ(s->LearningRate(10), 0.25);
}

TEST(LrSchedule, EveryScheduleTheValidatorAcceptsIsBuiltAndNoOther) {
  for (const std::string& type : SupportedSchedules()) {
    auto spec = ParseJobSpec(absl::StrCat("training_args: {lr_scheduler_type: ", type,
                                          type == "cosine_with_min_lr" ? ", lr_scheduler_kwargs: {min_lr: 1e-6}" : "",
                                          "}"));
    ASSERT_TRUE(spec.ok()) << spec.status();
    ApplyDefaults(&*spec);
    auto schedule = LrSchedule::Create(spec->training_args(), 100);
    EXPECT_TRUE(schedule.ok()) << type << ": " << schedule.status();
  }
  auto spec = ParseJobSpec("training_args: {lr_scheduler_type: cosine_with_hard_restarts}");
  ASSERT_TRUE(spec.ok());
  ApplyDefaults(&*spec);
  EXPECT_FALSE(LrSchedule::Create(spec->training_args(), 100).ok());
}

TEST(LrSchedule, RejectsBadKwargs) {
  auto spec = ParseJobSpec("training_args: {lr_scheduler_type: warmup_stable_decay, "
                           "lr_scheduler_kwargs: {num_decay_steps: 5, decay_type: exp}}");
  ApplyDefaults(&*spec);
  auto s = LrSchedule::Create(spec->training_args(), 100);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("decay_type"), std::string::npos);
}

}  // namespace
}  // namespace trainerd
