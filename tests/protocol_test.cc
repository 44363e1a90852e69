// The worker-daemon contract: the training record round-trips exactly, survives hostile
// lines, and the folder names are the ones both sides build.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "protocol/job_layout.h"
#include "protocol/training_record.h"

namespace trainerd {
namespace {

TEST(TrainingRecord, RoundTripsExactly) {
  TrainingRecord r;
  r.kind = kRecordTrain;
  r.time = 1767225600.123;
  r.step = 40;
  r.max_steps = 100;
  r.epoch = 0.4;
  r.metrics = {{"loss", 0.1 + 0.2}, {"learning_rate", 3.0e-5 / 7}, {"grad_norm", 1e-300}};
  r.text = {{kCheckpointPathField, "/data/jobs/j1/output/checkpoint-40 \"quoted\" \\ \n"}};
  const std::string line = FormatTrainingRecord(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.rfind("{\"kind\":\"train\",\"time\":", 0), 0u) << line;
  std::optional<TrainingRecord> back = ParseTrainingRecord(line);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->kind, r.kind);
  EXPECT_EQ(back->time, r.time);
  EXPECT_EQ(back->step, r.step);
  EXPECT_EQ(back->max_steps, r.max_steps);
  EXPECT_EQ(back->epoch, r.epoch);
  EXPECT_EQ(back->metrics, r.metrics);  // bit for bit: the shortest form that reads back
  EXPECT_EQ(back->text, r.text);
}

TEST(TrainingRecord, NonFiniteNumbersAreNullAndReadBackAsAbsent) {
  TrainingRecord r;
  r.kind = kRecordEval;
  r.metrics = {{"eval_loss", std::numeric_limits<double>::quiet_NaN()},
               {"eval_accuracy", 0.5},
               {"eval_grad", std::numeric_limits<double>::infinity()}};
  const std::string line = FormatTrainingRecord(r);
  EXPECT_NE(line.find("\"eval_loss\":null"), std::string::npos) << line;
  std::optional<TrainingRecord> back = ParseTrainingRecord(line);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->metrics, (std::map<std::string, double>{{"eval_accuracy", 0.5}}));
}

TEST(TrainingRecord, HostileLinesAreRefusedOrIgnoredNeverFatal) {
  EXPECT_FALSE(ParseTrainingRecord("").has_value());
  EXPECT_FALSE(ParseTrainingRecord("{\"kind\":\"train\",\"step\":4").has_value());  // torn
  EXPECT_FALSE(ParseTrainingRecord("[1,2]").has_value());
  EXPECT_FALSE(ParseTrainingRecord("{\"kind\":7}").has_value());
  std::optional<TrainingRecord> r =
      ParseTrainingRecord("{\"kind\":\"train\",\"step\":\"many\",\"epoch\":[1],\"loss\":{},\"max_steps\":1.5}");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->step, 0);
  EXPECT_EQ(r->max_steps, 0);
  EXPECT_EQ(r->epoch, 0);
  EXPECT_TRUE(r->metrics.empty());
}

TEST(JobLayout, NamesBothSidesBuild) {
  EXPECT_EQ(JobDir("/srv/trainerd", "j1"), "/srv/trainerd/jobs/j1");
  EXPECT_EQ(AttemptDirName(3), "attempt-3");
  EXPECT_EQ(RankLogName(0), "rank0.log");
  EXPECT_EQ(HeartbeatName(0), "heartbeat");
  EXPECT_EQ(HeartbeatName(2), "heartbeat-2");
  EXPECT_EQ(CheckpointDirName(500), "checkpoint-500");
}

}  // namespace
}  // namespace trainerd
