// SweepStore (storage/sweep_store.h) over a real SQLite file: sweeps and trials kept
// apart, decisions numbered in the order they were made and written with their trial,
// everything still there when the file is opened again.
#include "storage/sweep_store.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace trainerd {
namespace {

using trainer::v1::Sweep;
using trainer::v1::Trial;
using trainer::v1::TrialDecision;

Sweep MakeSweep(const std::string& id, int64_t owner_id, int64_t created, trainer::v1::SweepState state) {
  Sweep s;
  s.set_id(id);
  s.set_owner_id(owner_id);
  s.set_created_unix_ms(created);
  s.set_state(state);
  s.mutable_spec()->set_n_trials(4);
  return s;
}

TEST(SweepStore, KeepsSweepsTrialsAndDecisionsInOrder) {
  testing::TempDir dir;
  const std::string db = dir / "trainerd.db";
  {
    auto store = SweepStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    Sweep a = MakeSweep("s1", 1, 100, trainer::v1::SWEEP_RUNNING);
    a.add_trials()->set_number(1);  // not stored with the sweep
    ASSERT_TRUE((*store)->PutSweep(a).ok());
    ASSERT_TRUE((*store)->PutSweep(MakeSweep("s2", 2, 200, trainer::v1::SWEEP_COMPLETED)).ok());
    ASSERT_TRUE((*store)->PutSweep(MakeSweep("s3", 1, 300, trainer::v1::SWEEP_RUNNING)).ok());
    Trial t1;
    t1.set_number(1);
    t1.set_job_id("j1");
    t1.add_values("training_args.learning_rate=0.01");
    t1.add_decisions()->set_seq(99);  // decisions are stored apart
    ASSERT_TRUE((*store)->PutTrial("s1", t1).ok());
    Trial t2 = t1;
    t2.set_number(2);
    ASSERT_TRUE((*store)->PutTrial("s1", t2).ok());
    for (int i = 0; i < 3; ++i) {
      TrialDecision d;
      d.set_trial(i % 2 + 1);
      d.set_outcome(i == 2 ? "stop" : "continue");
      Trial changed = i % 2 == 0 ? t1 : t2;
      changed.set_rung(i);
      auto stored = (*store)->AppendDecision("s1", d, changed);
      ASSERT_TRUE(stored.ok()) << stored.status();
      EXPECT_EQ(stored->seq(), i + 1);
    }
    TrialDecision other;
    EXPECT_EQ((*store)->AppendDecision("s3", other, t1)->seq(), 1);  // numbered per sweep
  }
  auto store = SweepStore::Open(db);  // opened again: all of it is there
  ASSERT_TRUE(store.ok());
  auto got = (*store)->GetSweep("s1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->trials_size(), 0);
  EXPECT_EQ(got->spec().n_trials(), 4);
  EXPECT_EQ((*store)->GetSweep("s9").status().code(), absl::StatusCode::kNotFound);
  auto all = (*store)->ListSweeps(0, 10);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id(), "s3");  // newest first
  auto mine = (*store)->ListSweeps(1, 10);
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*store)->ListSweeps(0, 1)->size(), 1u);
  auto running = (*store)->SweepsInState(trainer::v1::SWEEP_RUNNING);
  ASSERT_EQ(running->size(), 2u);
  EXPECT_EQ((*running)[0].id(), "s1");  // oldest first
  auto counts = (*store)->CountByState();
  EXPECT_EQ((*counts)[trainer::v1::SWEEP_RUNNING], 2);
  EXPECT_EQ((*counts)[trainer::v1::SWEEP_COMPLETED], 1);
  auto trials = (*store)->Trials("s1");
  ASSERT_EQ(trials->size(), 2u);
  EXPECT_EQ((*trials)[0].number(), 1);
  EXPECT_EQ((*trials)[0].decisions_size(), 0);
  EXPECT_EQ((*trials)[0].rung(), 2);  // the trial written with the third decision
  EXPECT_EQ((*trials)[1].rung(), 1);
  auto decisions = (*store)->Decisions("s1");
  ASSERT_EQ(decisions->size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*decisions)[i].seq(), i + 1);
  EXPECT_EQ((*decisions)[2].outcome(), "stop");
}

}  // namespace
}  // namespace trainerd
