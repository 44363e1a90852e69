// The Llama family as transformers defines it (modeling_llama.py; Mistral and Qwen2
// are the same blocks with other options): LlamaForCausalLM, MistralForCausalLM,
// Qwen2ForCausalLM and LlamaForSequenceClassification, with transformers' parameter
// names, so that a folder's weights load by name and saved weights load back into
// transformers.
//
// Block (pre-norm): x + o_proj(Attention(RMSNorm(x))), then
// x + down_proj(silu(gate_proj(n)) * up_proj(n)). Attention: grouped-query (each of
// num_key_value_heads key/value heads serves num_attention_heads / num_key_value_heads
// query heads), rotary embeddings (rope_theta, HF's rotate_half), causal, softmax in
// float32; q/k/v biases where the config has them (Qwen2). The causal LM's head is
// lm_head, or the token embedding when tie_word_embeddings; the sequence classifier's
// `score` reads the hidden state of each row's last token before the first pad_token_id.
#ifndef TRAINERD_WORKER_MODELS_HF_LLAMA_MODEL_H_
#define TRAINERD_WORKER_MODELS_HF_LLAMA_MODEL_H_

#include <memory>

#include "spec/hf_config.h"
#include "worker/models/model.h"

namespace trainerd {

// A model of `config`'s architecture, its parameters in `dtype`, initialised as
// transformers initialises them (normal(0, initializer_range), norms at 1): the weights
// are loaded over them, except a head the folder lacks.
std::unique_ptr<Model> CreateLlamaModel(const HfConfig& config, torch::ScalarType dtype);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_LLAMA_MODEL_H_
