#include "worker/parallel/sharded_state_parts.h"

#include <memory>
#include <stdexcept>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "worker/models/safetensors.h"
#include "worker/parallel/flat_optimizer_state.h"
#include "worker/parallel/sharded_checkpoint.h"

namespace trainerd {
namespace {

// Encodes `tensors` on the writer thread as this rank's file of `kind`.
void PutRankTensors(CheckpointContents& out, const std::string& kind, int rank, int world_size,
                    NamedTensors tensors) {
  auto owned = std::make_shared<NamedTensors>(std::move(tensors));
  out.PutRankFile(ShardFileName(kind, rank, world_size),
                  [owned] { return EncodeSafetensors(*owned, {{"format", "trainerd-fsdp-shard"}}); });
}

}  // namespace

void ShardedWeightsPart::SaveState(CheckpointContents& out) {
  WriteShardedIndex(out, flats_, world_size_, kShardedModel);
  NamedTensors shards;
  torch::NoGradGuard no_grad;
  for (const auto& [name, flat] : flats_) shards.emplace_back(name, flat->shard().detach().reshape({-1}).clone());
  PutRankTensors(out, kShardedModel, rank_, world_size_, std::move(shards));
}

void ShardedWeightsPart::LoadState(const CheckpointContents& in) {
  ShardedCheckpointReader reader(in, kShardedModel);
  torch::NoGradGuard no_grad;
  for (const auto& [name, flat] : flats_) {
    reader.CheckLayout(name, *flat);
    const torch::Tensor& shard = flat->shard();
    torch::Tensor slice = reader.Slice(name, "", flat->shard_offset(), flat->shard_numel(), shard.scalar_type());
    if (!slice.defined()) in.Corrupt(absl::StrCat("the weights of ", name, " are missing"));
    shard.detach().reshape({-1}).copy_(slice);
  }
  shards_loaded_();
}

void ShardedOptimizerPart::SaveState(CheckpointContents& out) {
  WriteShardedIndex(out, flats_, world_size_, kShardedOptimizer);
  nlohmann::json& keys = out.Json(kShardedIndexFile)["optimizer_state"];
  keys = nlohmann::json::object();
  NamedTensors state;
  for (const auto& [name, flat] : flats_) {
    keys[name] = nlohmann::json::array();
    for (auto& [key, t] : ExportParamState(*optimizer_, flat->shard())) {
      keys[name].push_back(key);
      state.emplace_back(absl::StrCat(name, ".", key), IsElementwiseState(key) ? t.reshape({-1}) : t);
    }
  }
  PutRankTensors(out, kShardedOptimizer, rank_, world_size_, std::move(state));
}

void ShardedOptimizerPart::LoadState(const CheckpointContents& in) {
  ShardedCheckpointReader reader(in, kShardedOptimizer);
  const nlohmann::json& index = in.NeedJson(kShardedIndexFile);
  const nlohmann::json keys = index.value("optimizer_state", nlohmann::json::object());
  for (const auto& [name, flat] : flats_) {
    reader.CheckLayout(name, *flat);
    if (!keys.contains(name) || !keys[name].is_array()) {
      in.Corrupt(absl::StrCat(kShardedIndexFile, ": no optimizer_state for ", name));
    }
    const torch::Tensor& shard = flat->shard();
    ParamStateTensors state;
    for (const nlohmann::json& key_json : keys[name]) {
      if (!key_json.is_string()) in.Corrupt(absl::StrCat(kShardedIndexFile, ": a key of ", name, " is not a string"));
      const std::string key = key_json.get<std::string>();
      torch::Tensor t = IsElementwiseState(key)
                            ? reader.Slice(name, key, flat->shard_offset(), flat->shard_numel(), shard.scalar_type())
                            : reader.FirstRank(absl::StrCat(name, ".", key));
      if (!t.defined()) in.Corrupt(absl::StrCat("the optimizer state ", key, " of ", name, " is missing"));
      state[key] = t;
    }
    try {
      ImportParamState(*optimizer_, shard, state);
    } catch (const std::invalid_argument& e) {
      in.Corrupt(absl::StrCat(name, ": ", e.what()));
    }
  }
}

}  // namespace trainerd
