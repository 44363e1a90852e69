// GPT2LMHeadModel as transformers defines it (modeling_gpt2.py), with its parameter
// names: learned position embeddings, pre-norm blocks of LayerNorm, causal attention
// and a GELU MLP (gelu_new: the tanh approximation), Conv1D layers whose weights are
// stored [in, out], dropout as configured, and lm_head tied to the token embedding.
#ifndef TRAINERD_WORKER_MODELS_HF_GPT2_MODEL_H_
#define TRAINERD_WORKER_MODELS_HF_GPT2_MODEL_H_

#include <memory>

#include "spec/hf_config.h"
#include "worker/models/model.h"

namespace trainerd {

// A GPT-2 of `config`, its parameters in `dtype`, initialised as transformers does.
std::unique_ptr<Model> CreateGpt2Model(const HfConfig& config, torch::ScalarType dtype);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_GPT2_MODEL_H_
