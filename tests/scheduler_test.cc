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

TEST(Placement, PacksRanksOnTheFewestMachines) {
  std::vector<NodeSlots> nodes = {{"", 1, 0}, {"a", 3, 0}, {"b", 2, 0}};
  auto placed = PlaceRanks(4, 0, &nodes);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ(*placed, (std::vector<std::string>{"a", "a", "a", "b"}));
  EXPECT_EQ(nodes[1].cpu_slots, 0);
  EXPECT_EQ(nodes[2].cpu_slots, 1);
  // 2 slots are left: a 3-rank gang does not fit and takes nothing.
  EXPECT_FALSE(PlaceRanks(3, 0, &nodes).has_value());
  EXPECT_EQ(nodes[0].cpu_slots + nodes[2].cpu_slots, 2);
}

TEST(Placement, RanksGoWhereTheirGpusAre) {
  // 4 CPU slots on "" but no GPUs: GPU ranks go to the agents that have them.
  std::vector<NodeSlots> nodes = {{"", 4, 0}, {"a", 2, 1}, {"b", 2, 2}};
  auto placed = PlaceRanks(3, 1, &nodes);
  ASSERT_TRUE(placed.has_value());
  EXPECT_EQ(*placed, (std::vector<std::string>{"b", "b", "a"}));
  EXPECT_FALSE(PlaceRanks(1, 1, &nodes).has_value());
  EXPECT_EQ(PlaceRanks(2, 0, &nodes), (std::vector<std::string>{"", ""}));
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
