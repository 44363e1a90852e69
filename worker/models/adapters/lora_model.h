// LoraModel: LoRA adapters beside chosen linear layers of a frozen base model, as peft's
// LoraModel has them (peft 0.10).
//
// Each targeted layer computes y = W x + b + scaling * B(A(dropout(x))), with A [r, in]
// and B [out, r] in float32 whatever the base's dtype, scaling lora_alpha / r (or
// lora_alpha / sqrt(r) with use_rslora). A starts Kaiming-uniform as torch.nn.Linear's
// weight (a = sqrt(5)), B at zero, so that step 0 computes exactly what the base does
// (init_lora_weights: false starts B as A). The base's tensors get no gradient, except
// modules_to_save and the biases `bias` names.
//
// As a Model it is what trains: NamedParameters are the trained tensors only, under the
// names peft saves them with ("base_model.model.<module>.lora_A.weight", ...), so the
// optimizer, the gradient reducer, ZeRO-1 and the checkpoints see the adapter and never
// the frozen base. Its weights file is adapter_model.safetensors beside
// adapter_config.json: the folder PeftModel.from_pretrained(base, folder) loads.
#ifndef TRAINERD_WORKER_MODELS_ADAPTERS_LORA_MODEL_H_
#define TRAINERD_WORKER_MODELS_ADAPTERS_LORA_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/models/model.h"

namespace trainerd {

// Wraps `base` (a Hugging Face architecture whose folder is `base_name_or_path`) with
// the adapters of `peft` (defaults filled in: WithLoraDefaults). INVALID_ARGUMENT
// naming the peft field when the targets match no layer of the model.
absl::StatusOr<std::unique_ptr<Model>> CreateLoraModel(std::unique_ptr<Model> base,
                                                       const trainer::v1::PeftConfig& peft,
                                                       const std::string& base_name_or_path);

// Loads the adapter folder `dir` (adapter_model.safetensors, as peft or trainerd wrote
// it) into `model`'s adapter tensors. Every tensor must be present with its shape;
// errors name the tensor.
absl::Status LoadAdapterWeights(Model& model, const std::string& dir);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_ADAPTERS_LORA_MODEL_H_
