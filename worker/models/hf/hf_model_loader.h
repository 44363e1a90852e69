// LoadHfModel: the model of a Hugging Face folder (model.name_or_path), as
// `AutoModelFor...from_pretrained(path, torch_dtype=...)` gives it: config.json chooses
// the architecture, the folder's weights fill it by name.
#ifndef TRAINERD_WORKER_MODELS_HF_HF_MODEL_LOADER_H_
#define TRAINERD_WORKER_MODELS_HF_HF_MODEL_LOADER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "spec/hf_config.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"
#include "worker/models/model.h"

namespace trainerd {

// Builds `config`'s architecture in `torch_dtype` (HF's names; "" is float32) and loads
// the weights of folder `dir` into it. A missing, unexpected or misshapen tensor is
// INVALID_ARGUMENT naming each one; a task head the folder lacks (a base checkpoint
// fine-tuned for classification) is initialised and reported in the log, as
// transformers reports it.
// With `defer_block_weights` (cpu_ram_efficient_loading), the blocks are built without
// their weights and left in the folder for a sharding strategy to read slices of
// (Model::deferred_weights); only the rest is read.
absl::StatusOr<std::unique_ptr<Model>> LoadHfModel(const std::string& dir, const HfConfig& config,
                                                   const std::string& torch_dtype, bool defer_block_weights = false);

// model.type hf: the folder `spec.name_or_path()` fitted to the task of `data`, as the
// AutoModelFor<task> class would be: a causal LM's folder trained on labelled rows
// becomes the family's ForSequenceClassification with the data's classes (its new
// head initialised); a classifier's folder must have at least the data's classes.
// `config`: the folder's, as ReadHfConfig read it.
absl::StatusOr<std::unique_ptr<Model>> CreateHfModel(const trainer::v1::ModelSpec& spec, HfConfig config,
                                                     const DatasetBundle& data, bool defer_block_weights = false);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_HF_MODEL_LOADER_H_
