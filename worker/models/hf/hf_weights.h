// The weights of a Hugging Face model folder: model.safetensors, or the shards that
// model.safetensors.index.json lists, read through OpenConfined (the spec's read
// roots) and memory-mapped while decoded; and their assignment to a model's parameters
// by name, with transformers' missing/unexpected-keys rules.
#ifndef TRAINERD_WORKER_MODELS_HF_HF_WEIGHTS_H_
#define TRAINERD_WORKER_MODELS_HF_HF_WEIGHTS_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/models/model.h"
#include "worker/models/safetensors.h"

namespace trainerd {

// The weights of a Hugging Face folder, mapped into memory (not read) for as long as
// the object lives: whole tensors or slices of them are copied out on demand, so that a
// rank that needs a slice of each never holds the whole model.
class HfWeightsFolder {
 public:
  // Maps the folder's files and reads their headers. Errors as ReadHfWeights'.
  static absl::StatusOr<std::unique_ptr<HfWeightsFolder>> Open(const std::string& dir);
  ~HfWeightsFolder();
  HfWeightsFolder(const HfWeightsFolder&) = delete;
  HfWeightsFolder& operator=(const HfWeightsFolder&) = delete;

  // Every tensor's name, in the files' order.
  const std::vector<std::string>& names() const { return names_; }
  // The tensor's dtype and shape, or null when the folder has no such tensor.
  const SafetensorsEntry* Find(const std::string& name) const;
  // The tensor `name` (one of names()), copied, floating-point ones converted to `dtype`.
  torch::Tensor Read(const std::string& name, torch::ScalarType dtype) const;
  // Copies elements [begin, begin + out.numel()) of tensor `name`, flattened, into `out`
  // (one-dimensional), converted to its dtype. NOT_FOUND, OUT_OF_RANGE.
  absl::Status ReadSlice(const std::string& name, int64_t begin, torch::Tensor out) const;

 private:
  struct Mapping {
    std::string path;
    absl::string_view bytes;
  };
  struct Located {
    size_t mapping;
    SafetensorsEntry entry;
  };
  HfWeightsFolder() = default;
  absl::Status Map(const std::string& path);

  std::vector<Mapping> mappings_;
  std::vector<Located> tensors_;
  std::vector<std::string> names_;
  std::map<std::string, size_t> by_name_;
};

// Every tensor of the folder's weights, floating-point ones converted to `dtype`.
// Errors name the file (and the shard or tensor): a shard name that leaves the folder,
// a tensor listed in the index but not in its shard, a truncated file.
absl::StatusOr<NamedTensors> ReadHfWeights(const std::string& dir, torch::ScalarType dtype);

// What AssignHfWeights did, as transformers reports it when loading.
struct WeightsReport {
  std::vector<std::string> newly_initialized;  // model tensors the folder lacks (allowed ones)
  std::vector<std::string> unused;             // folder tensors the model has no place for (allowed ones)
  // Task-head tensors whose shape in the folder differs from the model's (a classifier
  // fine-tuned on another number of labels): newly initialized, as transformers'
  // ignore_mismatched_sizes does; "name: found shape [3, 64] in the checkpoint and [2, 64]
  // in the model".
  std::vector<std::string> resized;
};

// Copies `loaded` into `params` (the model's parameters and buffers, by name). A model
// tensor the folder lacks is an error unless its name starts with one of
// `may_be_missing` (a task head a base checkpoint has not got: it keeps its
// initialisation); a folder tensor the model lacks is an error unless it starts with one
// of `may_be_unused` (the head of another task); a shape mismatch is always an error.
// Errors list every offending tensor by name.
absl::StatusOr<WeightsReport> AssignHfWeights(const NamedTensors& params, const NamedTensors& loaded,
                                              const std::set<std::string>& may_be_missing,
                                              const std::set<std::string>& may_be_unused);

// The weight files as save_pretrained writes them: model.safetensors when every tensor
// fits in `max_shard_bytes`, else shards model-00001-of-0000N.safetensors (tensors in
// order, a new shard when the next would not fit; a tensor larger than the limit gets a
// shard of its own) and model.safetensors.index.json naming each tensor's shard.
struct WeightShard {
  std::string file;
  std::vector<size_t> tensors;  // indices into the weights
};
// `prefix` names the files ("model": model.safetensors, model-00001-of-00002.safetensors).
std::vector<WeightShard> PlanWeightShards(const NamedTensors& weights, int64_t max_shard_bytes,
                                          const std::string& prefix = "model");
// model.safetensors.index.json of `shards`.
std::string WeightIndexJson(const NamedTensors& weights, const std::vector<WeightShard>& shards);
// Every file of the plan, encoded (safetensors with metadata {"format": "pt"}).
std::map<std::string, std::string> EncodeWeightFiles(const NamedTensors& weights, int64_t max_shard_bytes,
                                                     const std::string& prefix = "model");
// The tensors of weight files held in memory (a checkpoint's): model.safetensors, or
// the index and its shards. `file(name)` returns null for a file that is not there.
absl::StatusOr<NamedTensors> DecodeWeightFiles(const std::function<const std::string*(const std::string&)>& file,
                                               const std::string& prefix = "model");

// "float32" | "bfloat16" | "float16" (HF's torch_dtype names; "auto" is the folder's).
absl::StatusOr<torch::ScalarType> HfDtype(const std::string& name, const std::string& folder_dtype);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_HF_WEIGHTS_H_
