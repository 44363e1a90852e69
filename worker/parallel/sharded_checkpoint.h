// The sharded checkpoint format of fsdp: the one place that names its files and reads
// them back for any number of ranks.
//
// A checkpoint of N ranks holds, beside the files every checkpoint has:
//   fsdp_index.json                                   the flat buffers: each one's name,
//                                                     size, dtype and parameters (names,
//                                                     shapes, in order), the world size
//   fsdp_shards/model-rank-<r>-of-<N>.safetensors     rank r's slice of each flat buffer
//                                                     (state_dict_type SHARDED_STATE_DICT)
//   fsdp_shards/optimizer-rank-<r>-of-<N>.safetensors rank r's slice of each flat buffer's
//                                                     optimizer state, "<flat>.<key>"
// Rank r's slice of a flat buffer is elements [r*S, (r+1)*S) with S = ceil(size / N),
// zero past the end. The buffers' layout does not depend on N (the units are the model's
// blocks), so a reader of another world size cuts its own slices out of the saved ones.
#ifndef TRAINERD_WORKER_PARALLEL_SHARDED_CHECKPOINT_H_
#define TRAINERD_WORKER_PARALLEL_SHARDED_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "worker/checkpoint/stateful.h"
#include "worker/parallel/flat_parameter.h"

namespace trainerd {

inline constexpr char kShardedIndexFile[] = "fsdp_index.json";
inline constexpr char kShardedModel[] = "model";
inline constexpr char kShardedOptimizer[] = "optimizer";

// "fsdp_shards/<kind>-rank-00001-of-00004.safetensors"
std::string ShardFileName(const std::string& kind, int rank, int world_size);

// Records the flat buffers' layout and `world_size` in `out`'s index, with `kind`
// marked as saved.
void WriteShardedIndex(CheckpointContents& out, const NamedFlats& flats,
                       int world_size, const std::string& kind);

// Reads slices of a sharded checkpoint's flat buffers, whatever world size saved it.
// Throws std::invalid_argument (through CheckpointContents::Corrupt) for a missing,
// damaged or mismatched file.
class ShardedCheckpointReader {
 public:
  // `in` must outlive the reader; `kind` is what to read (kShardedModel or
  // kShardedOptimizer), which the index must mark as saved.
  ShardedCheckpointReader(const CheckpointContents& in, std::string kind);

  int saved_world_size() const { return world_size_; }
  // Checks that `flat` was saved under `name` with the same parameters.
  void CheckLayout(const std::string& name, const FlatParameter& flat) const;
  // Elements [start, start + length) of the flat buffer `name`'s tensor `key` (the
  // weights: `name`; optimizer state: "<name>.<key>"), zero past the buffer's end, as a
  // 1-D tensor of `dtype`. Absent in the files: undefined.
  torch::Tensor Slice(const std::string& name, const std::string& key, int64_t start, int64_t length,
                      c10::ScalarType dtype);
  // Tensor `key` of the first rank's file (state every rank holds the same).
  torch::Tensor FirstRank(const std::string& key);

 private:
  const std::map<std::string, torch::Tensor>& RankFile(int rank);

  const CheckpointContents& in_;
  std::string kind_;
  int world_size_ = 0;
  std::map<std::string, int64_t> numel_;             // per flat buffer
  std::map<std::string, nlohmann::json> params_;     // per flat buffer: [[name, shape], ...]
  std::map<int, std::map<std::string, torch::Tensor>> files_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_SHARDED_CHECKPOINT_H_
