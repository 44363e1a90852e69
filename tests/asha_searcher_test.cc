// AshaSearcher (server/sweeps): the rungs, and each decision as reports arrive, against
// hand-worked sequences (Determined's adaptive ASHA, stopping-based).
#include "server/sweeps/asha_searcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace trainerd {
namespace {

using Outcome = AshaDecision::Outcome;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

AshaSearcher Make(int64_t max_length, bool maximize = false, int divisor = 4, int rungs = 5) {
  auto searcher = AshaSearcher::Create(AshaConfig{max_length, divisor, rungs, maximize});
  EXPECT_TRUE(searcher.ok()) << searcher.status();
  return *searcher;
}

TEST(AshaSearcher, RungsAreMaxLengthOverPowersOfTheDivisor) {
  EXPECT_THAT(Make(1024).rung_lengths(), ElementsAre(4, 16, 64, 256, 1024));
  EXPECT_THAT(Make(10).rung_lengths(), ElementsAre(2, 10));  // rungs under one step are dropped
  EXPECT_THAT(Make(100, false, 2, 3).rung_lengths(), ElementsAre(25, 50, 100));
  const AshaSearcher s = Make(1024);
  EXPECT_EQ(s.RungAt(3), -1);
  EXPECT_EQ(s.RungAt(4), 0);
  EXPECT_EQ(s.RungAt(255), 2);
  EXPECT_EQ(s.RungAt(5000), 4);
}

TEST(AshaSearcher, ATrialGoesOnWhileItIsInTheTopQuarterSoFar) {
  AshaSearcher s = Make(1024);
  // (trial, loss) at rung 0, and what is decided as each arrives.
  const std::vector<std::tuple<std::string, double, Outcome, int, int, int>> reports = {
      {"t1", 0.5, Outcome::kContinue, 1, 1, 1},  // alone: top 1 of 1
      {"t2", 0.4, Outcome::kContinue, 1, 2, 1},  {"t3", 0.9, Outcome::kStop, 3, 3, 1},
      {"t4", 0.3, Outcome::kContinue, 1, 4, 1},  {"t5", 0.6, Outcome::kStop, 4, 5, 1},
      {"t6", 0.2, Outcome::kContinue, 1, 6, 1},  {"t7", 0.8, Outcome::kStop, 6, 7, 1},
      {"t8", 0.25, Outcome::kContinue, 2, 8, 2},  // eight reached: the top two go on
      {"t9", 0.35, Outcome::kStop, 4, 9, 2},
  };
  for (const auto& [trial, loss, outcome, rank, reached, cut] : reports) {
    const AshaDecision d = s.Report(trial, 0, loss);
    EXPECT_EQ(d.outcome, outcome) << trial << ": " << d.reason;
    EXPECT_EQ(d.rank, rank) << trial;
    EXPECT_EQ(d.reached, reached) << trial;
    EXPECT_EQ(d.cut, cut) << trial;
  }
  EXPECT_EQ(s.Report("t9", 0, 0.35).reason, "stopped at rung 0: rank 4 of 9, cut at 2");
  // A later rung is ranked among the trials that reached it only.
  EXPECT_EQ(s.Report("t6", 1, 0.19).reason, "goes on from rung 1: rank 1 of 1, cut at 1");
  EXPECT_EQ(s.Report("t8", 1, 0.18).outcome, Outcome::kContinue);
  EXPECT_EQ(s.Report("t4", 1, 0.5).outcome, Outcome::kStop);
  // The last rung ends a trial, whatever its rank.
  const AshaDecision end = s.Report("t8", 4, 0.1);
  EXPECT_EQ(end.outcome, Outcome::kFinished);
  EXPECT_EQ(end.reason, "finished at rung 4 (1024 steps): rank 1 of 1");
  // The names a sweep records (sweep_decisions) for each outcome.
  EXPECT_STREQ(end.outcome_name(), "finished");
  EXPECT_STREQ(s.Report("t4", 1, 0.5).outcome_name(), "stop");
  EXPECT_STREQ(s.Report("t8", 1, 0.18).outcome_name(), "continue");
}

TEST(AshaSearcher, DirectionTiesNanAndReplays) {
  AshaSearcher up = Make(64, /*maximize=*/true, 2, 3);  // rungs 16, 32, 64
  EXPECT_EQ(up.Report("a", 0, 0.7).outcome, Outcome::kContinue);
  EXPECT_EQ(up.Report("b", 0, 0.9).outcome, Outcome::kContinue);  // 2 reached, cut 1: b is best
  EXPECT_EQ(up.Report("c", 0, 0.8).rank, 2);
  EXPECT_EQ(up.Report("d", 0, 0.9).rank, 1);  // a tie shares the rank
  const AshaDecision nan = up.Report("e", 0, std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(nan.rank, 5);  // a NaN ranks last
  EXPECT_EQ(nan.outcome, Outcome::kStop);
  // A report made again (a replay after a restart) keeps the first value.
  EXPECT_EQ(up.Report("a", 0, 100.0).rank, 4);
  // The same reports in the same order give the same decisions.
  AshaSearcher first = Make(1024), second = Make(1024);
  for (int i = 0; i < 40; ++i) {
    const double loss = std::fmod(i * 0.37, 1.0);
    const std::string trial = "t" + std::to_string(i);
    const AshaDecision a = first.Report(trial, i % 3, loss), b = second.Report(trial, i % 3, loss);
    EXPECT_EQ(a.reason, b.reason);
  }
}

TEST(AshaSearcher, BadConfigsAreRefusedByField) {
  EXPECT_THAT(std::string(AshaSearcher::Create({0, 4, 5, false}).status().message()), HasSubstr("searcher.max_length"));
  EXPECT_THAT(std::string(AshaSearcher::Create({100, 1, 5, false}).status().message()), HasSubstr("searcher.divisor"));
  EXPECT_THAT(std::string(AshaSearcher::Create({100, 4, 0, false}).status().message()),
              HasSubstr("searcher.max_rungs"));
}

}  // namespace
}  // namespace trainerd
