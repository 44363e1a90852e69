// Data-parallel runs for end-to-end tests: real trainer-worker processes, one per rank,
// joined over c10d (Gloo on loopback) with the torchrun-style variables trainerd sets,
// and the losses they log.
#ifndef TRAINERD_TESTS_RANK_PROCESSES_H_
#define TRAINERD_TESTS_RANK_PROCESSES_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/test_util.h"

namespace trainerd::testing {

inline std::string Worker() { return BuildDir() + "/worker/trainer-worker"; }

// One trainer-worker process with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT set.
class RankProcess {
 public:
  RankProcess(int rank, int world, int port, const std::vector<std::string>& args, const std::string& log_path) {
    pid_ = fork();
    if (pid_ == 0) {
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::FILE* log = std::freopen(log_path.c_str(), "w", stderr);
      if (log == nullptr) _exit(127);
      dup2(fileno(stderr), fileno(stdout));
      std::vector<char*> argv = {const_cast<char*>(Worker().c_str())};
      std::string program = Worker();
      argv[0] = program.data();
      std::vector<std::string> copy = args;
      for (std::string& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
  }
  ~RankProcess() {
    if (!exit_code_) {
      kill(pid_, SIGKILL);
      Wait(std::chrono::seconds(10));
    }
  }
  pid_t pid() const { return pid_; }

  // The exit code (128 + signal when killed), or nullopt if it runs past `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!exit_code_) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Starts `world` ranks on `spec` with extra --set overrides; logs go to dir/rank<r>.log.
inline std::vector<std::unique_ptr<RankProcess>> StartRanks(const TempDir& dir, int world, const std::string& spec,
                                                     const std::vector<std::string>& sets) {
  const int port = FreePort();
  std::vector<std::string> args = {"--spec", spec};
  for (const std::string& s : sets) {
    args.push_back("--set");
    args.push_back(s);
  }
  std::vector<std::unique_ptr<RankProcess>> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.push_back(std::make_unique<RankProcess>(r, world, port, args, dir / absl::StrCat("rank", r, ".log")));
  }
  return ranks;
}

// Runs `world` ranks to the end; every rank must exit 0.
inline void RunRanks(const TempDir& dir, int world, const std::string& spec, const std::vector<std::string>& sets) {
  auto ranks = StartRanks(dir, world, spec, sets);
  for (int r = 0; r < world; ++r) {
    std::optional<int> code = ranks[r]->Wait(std::chrono::seconds(240));
    ASSERT_EQ(code, std::optional<int>(0)) << "rank " << r << ":\n"
                                           << ReadFile(dir / absl::StrCat("rank", r, ".log"));
  }
}

// {step: loss} of every train record, and the last eval record.
struct RunLog {
  std::map<int64_t, double> loss;
  nlohmann::json eval;
};

inline RunLog ReadRunLog(const std::string& output_dir) {
  RunLog out;
  for (const auto& line : absl::StrSplit(ReadFile(output_dir + "/trainer_log.jsonl"), '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(std::string(line));
    if (j["kind"] == "train") out.loss[j["step"].get<int64_t>()] = j["loss"].get<double>();
    if (j["kind"] == "eval") out.eval = j;
  }
  return out;
}

inline void ExpectSameLosses(const RunLog& expected, const RunLog& actual, int64_t from_step = 1) {
  for (const auto& [step, loss] : expected.loss) {
    if (step < from_step) continue;
    ASSERT_TRUE(actual.loss.count(step)) << "no loss logged at step " << step;
    EXPECT_NEAR(actual.loss.at(step), loss, 1e-5) << "step " << step;
  }
}

// Writes `n` rows of token ids for a causal LM (ids below every fixture's vocabulary,
// 20 to 26 tokens) to dir/rows.jsonl and returns its path.
inline std::string WriteTokenRows(const TempDir& dir, int n) {
  std::string rows;
  for (int r = 0; r < n; ++r) {
    rows += "{\"input_ids\": [";
    for (int k = 0; k < 20 + r % 7; ++k) absl::StrAppend(&rows, k ? ", " : "", 3 + (r * 7 + k * 13) % 500);
    rows += "]}\n";
  }
  WriteFile(dir / "rows.jsonl", rows);
  return dir / "rows.jsonl";
}

}  // namespace trainerd::testing

#endif  // TRAINERD_TESTS_RANK_PROCESSES_H_
