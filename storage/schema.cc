#include "storage/schema.h"

namespace trainerd {

const std::vector<std::string>& SchemaMigrations() {
  static const auto* m = new std::vector<std::string>{
      R"sql(
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        state INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        job BLOB NOT NULL);
      CREATE INDEX jobs_by_created ON jobs (created_ms DESC, id DESC);
      CREATE INDEX jobs_by_state ON jobs (state);
      CREATE TABLE checkpoints (
        job_id TEXT NOT NULL,
        step INTEGER NOT NULL,
        checkpoint BLOB NOT NULL,
        PRIMARY KEY (job_id, step));
      CREATE TABLE logs (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        time_ms INTEGER NOT NULL,
        rank INTEGER NOT NULL,
        level INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)) WITHOUT ROWID;
      CREATE TABLE metrics (
        job_id TEXT NOT NULL,
        name TEXT NOT NULL,
        split TEXT NOT NULL,
        step INTEGER NOT NULL,
        epoch REAL NOT NULL,
        value REAL NOT NULL,
        time_ms INTEGER NOT NULL);
      CREATE INDEX metrics_by_job ON metrics (job_id, name, step);
      CREATE TABLE tails (
        key TEXT PRIMARY KEY,
        offset INTEGER NOT NULL);
      )sql",
      // 2: listing by state pages through an index instead of sorting the state's rows.
      R"sql(
      CREATE INDEX jobs_by_state_created ON jobs (state, created_ms DESC, id DESC);
      )sql",
      // 3: users, their tokens (SHA-256 only), job owners and the audit log.
      R"sql(
      ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
      CREATE INDEX jobs_by_owner_created ON jobs (owner, created_ms DESC, id DESC);
      CREATE TABLE users (
        name TEXT PRIMARY KEY,
        admin INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE tokens (
        sha256 TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users (name),
        created_ms INTEGER NOT NULL);
      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        event BLOB NOT NULL);
      )sql",
      // 4: the attempt that logged each metric point, so that a resumed run's history
      // replaces the points an earlier attempt logged past its checkpoint.
      R"sql(
      ALTER TABLE metrics ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
      )sql",
      // 5: users are accounts with an id that is never given again, and jobs belong to
      // the account (owner_id), not to its name: a name revoked and added again is a
      // new account that does not inherit the old one's jobs. Existing jobs go to the
      // account that holds their owner's name now.
      R"sql(
      ALTER TABLE users ADD COLUMN id INTEGER NOT NULL DEFAULT 0;
      UPDATE users SET id = rowid;
      ALTER TABLE jobs ADD COLUMN owner_id INTEGER NOT NULL DEFAULT 0;
      UPDATE jobs SET owner_id = COALESCE((SELECT users.id FROM users WHERE users.name = jobs.owner), 0);
      CREATE INDEX jobs_by_owner_id_created ON jobs (owner_id, created_ms DESC, id DESC);
      )sql",
      // 6: each user's quota for uploaded files (0: trainerd's --user-quota).
      R"sql(
      ALTER TABLE users ADD COLUMN quota_bytes INTEGER NOT NULL DEFAULT 0;
      )sql",
      // 7: a follower of a job's metric points reads the ones after the last it has by
      // rowid, through this index, instead of sorting all the job's points each time.
      R"sql(
      CREATE INDEX metrics_by_job_row ON metrics (job_id);
      )sql",
      // 8: sweeps (storage/sweep_store.h): each sweep, its trials, and the searcher's
      // decisions in the order the rung results arrived, so that a restart replays them.
      R"sql(
      CREATE TABLE sweeps (
        id TEXT PRIMARY KEY,
        owner_id INTEGER NOT NULL,
        state INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        sweep BLOB NOT NULL);
      CREATE INDEX sweeps_by_created ON sweeps (created_ms DESC, id DESC);
      CREATE TABLE trials (
        sweep_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        trial BLOB NOT NULL,
        PRIMARY KEY (sweep_id, number)) WITHOUT ROWID;
      CREATE TABLE sweep_decisions (
        sweep_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        decision BLOB NOT NULL,
        PRIMARY KEY (sweep_id, seq)) WITHOUT ROWID;
      )sql",
  };
  return *m;
}

}  // namespace trainerd
