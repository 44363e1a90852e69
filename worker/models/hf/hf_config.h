// HfConfig: the config.json of a Hugging Face model folder (what `save_pretrained`
// writes), read and checked. Torch-free. The architecture is chosen as transformers
// chooses it: `architectures[0]`, else the task's class for `model_type`.
//
// The one home of the config keys trainerd reads and writes: the loaders read them here,
// and WriteHfConfig writes the same keys back (the folder's own config.json is kept,
// only what training changed is updated).
#ifndef TRAINERD_WORKER_MODELS_HF_HF_CONFIG_H_
#define TRAINERD_WORKER_MODELS_HF_HF_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace trainerd {

// The architectures trainerd implements (transformers' class names).
enum class HfArchitecture {
  kLlamaForCausalLM,  // also MistralForCausalLM and Qwen2ForCausalLM: the same blocks
  kLlamaForSequenceClassification,
};

struct HfConfig {
  std::string architecture;  // "LlamaForCausalLM", "Qwen2ForCausalLM", ...
  std::string model_type;    // "llama", "mistral", "qwen2"
  HfArchitecture kind = HfArchitecture::kLlamaForCausalLM;

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // grouped-query attention; = heads when absent
  int64_t head_dim = 0;             // hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // biases on q, k, v (and o for Llama's attention_bias)
  bool o_proj_bias = false;     // Llama's attention_bias covers o_proj too; Qwen2's does not
  std::string hidden_act = "silu";
  // Mistral's attention window (-1: none); sequences longer than it are refused, since
  // the window is not implemented.
  int64_t sliding_window = -1;
  int64_t pad_token_id = -1;    // -1: none
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  int64_t num_labels = 2;       // sequence classification
  double initializer_range = 0.02;  // the std of a newly initialised weight
  std::string torch_dtype;      // as saved: "float32", "bfloat16", "float16"

  std::string json;  // the file's text, kept so that a saved config keeps every key
};

// Reads DIR/config.json (at most 1 MiB). Errors name the file and the key:
// "config.json: num_attention_heads: 6 does not divide hidden_size 64".
absl::StatusOr<HfConfig> ReadHfConfig(const std::string& dir);

// Parses config.json's text (the part of ReadHfConfig that touches no file).
absl::StatusOr<HfConfig> ParseHfConfig(const std::string& text);

// config.json's text for `config`: the original keys, with `torch_dtype` and
// `transformers_version` kept, and `architectures` set to config.architecture.
std::string HfConfigJson(const HfConfig& config);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_MODELS_HF_HF_CONFIG_H_
