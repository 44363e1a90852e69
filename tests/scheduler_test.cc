// Scheduling order, gang placement and the head-of-queue reservation; the state table.
#include "server/scheduler.h"

#include <gtest/gtest.h>

#include "server/job_state.h"

namespace trainerd {
namespace {

TEST(Scheduler, PriorityThenSubmissionTime) {
  auto start = PickJobsToStart({{"old-low", 0, 1}, {"new-high", 5, 3}, {"old-high", 5, 2}}, {2, 0});
  EXPECT_EQ(start, (std::vector<std::string>{"old-high", "new-high"}));
}

TEST(Scheduler, TheHeadReservesSoSmallJobsCannotStarveIt) {
  // A 4-slot job at the head, 2 slots free: the 1-slot jobs behind it wait.
  auto start = PickJobsToStart({{"big", 9, 1, 4}, {"small", 0, 2, 1}, {"small2", 0, 3, 1}}, {2, 0});
  EXPECT_TRUE(start.empty());
  // Gang: all of a job's slots at once, or none.
  start = PickJobsToStart({{"big", 9, 1, 4}, {"small", 0, 2, 1}}, {4, 0});
  EXPECT_EQ(start, (std::vector<std::string>{"big"}));
  EXPECT_TRUE(PickJobsToStart({{"gpu", 0, 1, 1, 2}}, {8, 1}).empty());
}

TEST(JobState, TransitionTable) {
  using namespace trainer::v1;
  EXPECT_TRUE(CanTransition(QUEUED, STARTING));
  EXPECT_TRUE(CanTransition(RUNNING, RESTARTING));
  EXPECT_TRUE(CanTransition(FAILED, QUEUED));
  EXPECT_FALSE(CanTransition(SUCCEEDED, RUNNING));
  EXPECT_FALSE(CanTransition(QUEUED, RUNNING));
  EXPECT_FALSE(CanTransition(CANCELLED, CANCELLING));
  EXPECT_TRUE(IsTerminal(CANCELLED));
  EXPECT_FALSE(IsTerminal(RESTARTING));
}

}  // namespace
}  // namespace trainerd
