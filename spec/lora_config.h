// peft's LoraConfig, in one place for trainerd's validator and the worker: which linear
// layers of a Hugging Face architecture get adapters (peft's matching rules and
// per-architecture defaults), how many parameters that trains, and the names adapter
// tensors are saved under. Torch-free. adapter_config.json is adapter_config.h's.
//
// peft's rules, as peft 0.10 applies them:
//   - target_modules as a list: a module is targeted when its name equals an entry or
//     ends with "." + entry ("c_proj" targets attn.c_proj and mlp.c_proj);
//   - as one string: a full-match regular expression (RE2 here); "all-linear": every
//     linear layer but the task head (lm_head, score, classifier);
//   - unset: the architecture's default (q_proj, v_proj for the Llama family; c_attn for
//     GPT-2; query, value for BERT);
//   - layers_to_transform: only modules inside those decoder/encoder layers
//     (".layers.N.", ".h.N.", ".layer.N.", ".block(s).N.").
// Saved names: "base_model.model.<module>.lora_A.weight" ([r, in]) and ".lora_B.weight"
// ([out, r]); modules_to_save and trained biases under "base_model.model.<tensor name>".
#ifndef TRAINERD_SPEC_LORA_CONFIG_H_
#define TRAINERD_SPEC_LORA_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "spec/hf_config.h"
#include "trainer/v1/job_spec.pb.h"

namespace trainerd {

// The prefix peft puts before a base model's names in an adapter file.
inline constexpr char kPeftPrefix[] = "base_model.model.";

// One linear layer of an architecture: its module name and shape.
struct HfLinearLayer {
  std::string name;  // "model.layers.0.self_attn.q_proj"
  int64_t in = 0, out = 0;
  bool bias = false;
};

// Every linear layer of `config`'s architecture as trainerd builds it, in module order
// (the worker's models have exactly these; a test holds them to it).
std::vector<HfLinearLayer> HfLinearLayers(const HfConfig& config);
// Every parameter of the architecture, counted from the config.
int64_t HfParameterCount(const HfConfig& config);
// The task head's module name ("lm_head", "score", "classifier"), which all-linear
// leaves out.
bool IsTaskHead(const std::string& module_name);

// peft's default target_modules for an architecture ("llama", "gpt2", ...).
std::vector<std::string> DefaultLoraTargets(const std::string& model_type);

// `peft` with peft's defaults filled in for `model_type`: r 8, lora_alpha 8, bias none,
// init_lora_weights true, peft_type LORA, target_modules, fan_in_fan_out for GPT-2, and
// task_type (SEQ_CLS for a classifier, else CAUSAL_LM); with SEQ_CLS the classification
// head is in modules_to_save, as peft adds it.
trainer::v1::PeftConfig WithLoraDefaults(trainer::v1::PeftConfig peft, const std::string& model_type,
                                         bool classifier);

// The problems of a peft section itself, each "peft.<field>: what is wrong".
void FindPeftProblems(const trainer::v1::PeftConfig& peft, std::vector<std::string>* problems);

// The layers of `layers` that `peft` (defaults filled in) targets. INVALID_ARGUMENT
// naming peft.target_modules (and listing the model's linear layers) when it matches
// none, peft.layers_to_transform when those layers have no target, or
// peft.modules_to_save when an entry names no module.
absl::StatusOr<std::vector<HfLinearLayer>> SelectLoraTargets(const trainer::v1::PeftConfig& peft,
                                                             const std::vector<HfLinearLayer>& layers);
// Whether the module or tensor `name` is in one of peft's modules_to_save (a module
// whose name equals an entry or ends with "." + entry, or lies inside one).
bool InModulesToSave(const trainer::v1::PeftConfig& peft, const std::string& name);

// lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
double LoraScaling(const trainer::v1::PeftConfig& peft);

// The parameters a LoRA job of `config`'s architecture trains: adapters,
// modules_to_save (linear ones) and biases per `bias`.
absl::StatusOr<int64_t> LoraTrainableParameterCount(const trainer::v1::PeftConfig& peft, const HfConfig& config);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_LORA_CONFIG_H_
