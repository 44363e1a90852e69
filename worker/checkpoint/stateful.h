// Stateful: one part of a run that a checkpoint must hold for the run to resume exactly
// (the loop's position, the RNG, the loss scaler, the schedule, the callbacks, the
// optimizer, the weights). Each part saves and loads itself through this interface, so
// that what is saved and what is resumed cannot drift apart; the Checkpointer iterates
// over the parts. After torchtitan's checkpointer of stateful components.
//
// CheckpointContents is a checkpoint while it is built or after it is read: named files,
// JSON files that several parts write keys of, and files encoded later on the writer
// thread (from copies the encoder owns), so that training waits only for the copies.
//
// This file has no LibTorch dependency.
#ifndef TRAINERD_WORKER_CHECKPOINT_STATEFUL_H_
#define TRAINERD_WORKER_CHECKPOINT_STATEFUL_H_

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/checkpoint/checkpoint_store.h"

namespace trainerd {

class CheckpointContents {
 public:
  // An empty checkpoint, to save into.
  CheckpointContents() = default;
  // The files of the checkpoint folder `dir`, to load from.
  CheckpointContents(std::string dir, CheckpointFiles files) : dir_(std::move(dir)), files_(std::move(files)) {}

  // ---- Saving ----
  void Put(const std::string& name, std::string bytes) { files_[name] = std::move(bytes); }
  // `encode` makes the file on the writer thread; it must own what it reads.
  void PutLater(const std::string& name, std::function<std::string()> encode) {
    deferred_.push_back({name, std::move(encode), /*rank_file=*/false});
  }
  // A file that this rank writes itself where every rank writes its own share of the
  // checkpoint (ParallelStrategy::WritesOwnShard); its name must differ from every
  // other rank's.
  void PutRankFile(const std::string& name, std::function<std::string()> encode) {
    deferred_.push_back({name, std::move(encode), /*rank_file=*/true});
  }
  // A JSON object file that several parts write keys of.
  nlohmann::json& Json(const std::string& name);
  // Every file, the deferred ones encoded now; only the rank files unless `all`.
  CheckpointFiles Encode(bool all = true) const;

  // ---- Loading ----
  const std::string& dir() const { return dir_; }
  bool Has(const std::string& name) const { return files_.count(name) > 0 || json_.count(name) > 0; }
  // The file `name`; throws std::invalid_argument naming the checkpoint when it is missing.
  const std::string& Need(const std::string& name) const;
  // The JSON object file `name`, parsed (once); throws std::invalid_argument when it is
  // missing or not a JSON object.
  const nlohmann::json& NeedJson(const std::string& name) const;
  // Throws std::invalid_argument: "checkpoint <dir>: <what>". Errors in a checkpoint's
  // contents are bad input, not bugs.
  [[noreturn]] void Corrupt(const std::string& what) const;

 private:
  std::string dir_;
  CheckpointFiles files_;
  mutable std::map<std::string, nlohmann::json> json_;
  struct Deferred {
    std::string name;
    std::function<std::string()> encode;
    bool rank_file;
  };
  std::vector<Deferred> deferred_;
};

class Stateful {
 public:
  virtual ~Stateful() = default;
  // Adds this part's state to `out`. Every rank calls it at the same point, in the same
  // order of parts, so a part may use collectives.
  virtual void SaveState(CheckpointContents& out) = 0;
  // Restores what SaveState wrote. Throws std::invalid_argument when `in` cannot be
  // loaded (missing or damaged files, another world size).
  virtual void LoadState(const CheckpointContents& in) = 0;
};

// A Stateful made of two functions, for parts that are members of a larger class: the
// save and the load of one part are written side by side.
class StatefulFunctions final : public Stateful {
 public:
  StatefulFunctions(std::function<void(CheckpointContents&)> save, std::function<void(const CheckpointContents&)> load)
      : save_(std::move(save)), load_(std::move(load)) {}
  void SaveState(CheckpointContents& out) override { save_(out); }
  void LoadState(const CheckpointContents& in) override { load_(in); }

 private:
  std::function<void(CheckpointContents&)> save_;
  std::function<void(const CheckpointContents&)> load_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_STATEFUL_H_
