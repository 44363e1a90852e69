// What trainer-cli prints for people: the terminal plot and the progress line.
#include "client/cli_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"

namespace trainerd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// One point, or a flat series, is one row labelled with its value: no axis of values
// that were never logged (before, one point drew 0.5..1.5 around a value of 0.5).
TEST(Plot, AFlatSeriesIsOneRowAtItsValue) {
  const std::string one = Plot({40}, {0.5}, 20, 8);
  const std::vector<std::string> lines = absl::StrSplit(one, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << one;
  EXPECT_THAT(lines[0], HasSubstr("0.5000 |*"));
  EXPECT_THAT(lines[2], HasSubstr("step 40 (one point)"));
  EXPECT_THAT(one, Not(HasSubstr("1.5000")));
  EXPECT_THAT(one, Not(HasSubstr("1.0000")));

  const std::string flat = Plot({10, 20, 30}, {2, 2, 2}, 21, 8);
  const std::vector<std::string> rows = absl::StrSplit(flat, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 3u) << flat;
  EXPECT_THAT(rows[0], HasSubstr("2.0000 |*         *         *"));
  EXPECT_THAT(rows[2], HasSubstr("step 10 .. 30"));
}

TEST(Plot, ARisingSeriesSpansItsRange) {
  const std::string plot = Plot({1, 2, 3}, {1, 2, 3}, 3, 3);
  const std::vector<std::string> rows = absl::StrSplit(plot, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 5u) << plot;
  EXPECT_THAT(rows[0], HasSubstr("3.0000 |  *"));
  EXPECT_THAT(rows[1], HasSubstr("2.0000 | * "));
  EXPECT_THAT(rows[2], HasSubstr("1.0000 |*  "));
}

// A sweep's plot: each point at its own x, here on a log axis (1e-4 left, 1e-2 right,
// 1e-3 in the middle), not spaced by its index.
TEST(Scatter, PointsStandAtTheirXOnALogAxis) {
  const std::string plot = Scatter({1e-2, 1e-4, 1e-3}, {3, 1, 2}, 5, 3, /*log_x=*/true);
  const std::vector<std::string> rows = absl::StrSplit(plot, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 5u) << plot;
  EXPECT_THAT(rows[0], HasSubstr("3 |    *"));
  EXPECT_THAT(rows[1], HasSubstr("2 |  *  "));
  EXPECT_THAT(rows[2], HasSubstr("1 |*    "));
  EXPECT_THAT(rows[4], HasSubstr("0.0001 .. 0.01 (log scale)"));
  EXPECT_EQ(Scatter({0, -1}, {1, 2}, 5, 3, true), "(no points)\n");  // no log of those
  // One diverged value among good ones: a log value axis keeps the good ones apart (on
  // a linear one 0.5 and 1 would share the bottom row under 500).
  const std::string wide = Scatter({1, 2, 3}, {0.5, 1, 500}, 3, 12, false);
  const std::vector<std::string> lines = absl::StrSplit(wide, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 14u) << wide;
  EXPECT_THAT(lines[0], HasSubstr("500 |  *"));
  EXPECT_THAT(lines[10], HasSubstr("| * ")) << wide;  // 1, a row above 0.5
  EXPECT_THAT(lines[11], HasSubstr("0.5 |*  ")) << wide;
  EXPECT_THAT(lines[13], HasSubstr("values on a log scale"));
}

// Heartbeats move the step on between training records: the loss and epoch of an
// earlier step say which step they are from (before, they stood beside the newer step).
TEST(ProgressLine, ValuesOfAnEarlierStepSayTheirStep) {
  trainer::v1::Job job;
  job.set_state(trainer::v1::RUNNING);
  auto* p = job.mutable_progress();
  p->set_max_steps(938);
  p->set_step(912);
  p->set_logged_step(900);
  p->set_epoch(0.96);
  p->set_loss(0.3026);
  EXPECT_THAT(ProgressLine(job, 0), HasSubstr("step 912/938 (97%)  (at step 900) epoch 0.96  loss 0.3026"));
  p->set_step(900);
  EXPECT_THAT(ProgressLine(job, 0), Not(HasSubstr("(at step")));
}

}  // namespace
}  // namespace trainerd
