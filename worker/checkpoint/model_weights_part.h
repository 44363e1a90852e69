// ModelWeightsPart: the model's trained tensors in a checkpoint, in the files and under
// the names a loader of the model's folder reads (model.safetensors, or save_pretrained's
// shards and index, under transformers' names; a LoRA job's adapter_model.safetensors
// under peft's), so that every checkpoint is a folder from_pretrained loads.
#ifndef TRAINERD_WORKER_CHECKPOINT_MODEL_WEIGHTS_PART_H_
#define TRAINERD_WORKER_CHECKPOINT_MODEL_WEIGHTS_PART_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "worker/checkpoint/stateful.h"
#include "worker/models/model.h"

namespace trainerd {

// Runs `fn` with the model's parameters whole (see ParallelStrategy::WithFullWeights);
// with `write_back`, what `fn` wrote into them becomes the trained state.
using FullWeightsScope = std::function<void(const std::function<void()>& fn, bool write_back)>;

class ModelWeightsPart final : public Stateful {
 public:
  // `model` must outlive the part. Weights files hold at most `max_shard_bytes`; only a
  // part that `writes` (rank 0's) adds them: the ranks' weights are the same. `scope`
  // (null: the parameters are always whole) makes sharded parameters whole for a save
  // or a load; every rank's part then takes part in both.
  ModelWeightsPart(Model* model, int64_t max_shard_bytes, bool writes, FullWeightsScope scope = nullptr)
      : model_(model), max_shard_bytes_(max_shard_bytes), writes_(writes), scope_(std::move(scope)) {}

  // Copies the weights now; they are encoded on the checkpoint writer's thread. Throws
  // when the model has nothing to save (an adapter without tensors).
  void SaveState(CheckpointContents& out) override;
  void LoadState(const CheckpointContents& in) override;

 private:
  void WithFullWeights(const std::function<void()>& fn, bool write_back) {
    if (scope_) return scope_(fn, write_back);
    fn();
  }

  Model* model_;
  int64_t max_shard_bytes_;
  bool writes_;
  FullWeightsScope scope_;
};

// Loads weights files (`file(name)`: a file's bytes, null when it is not there) into
// `model`'s trained tensors by name. Throws std::invalid_argument naming a missing or
// misshapen tensor, or the files that are not there.
void LoadModelWeights(Model& model, const std::function<const std::string*(const std::string&)>& file);

// Throws std::runtime_error when `weights` would make a weights file with nothing in it
// (peft's classic failure: an empty adapter after a "successful" run).
void CheckWeightsToSave(const Model& model, const NamedTensors& weights);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_CHECKPOINT_MODEL_WEIGHTS_PART_H_
