// HfConfig: the config.json of a Hugging Face model folder (what `save_pretrained`
// writes), read and checked. Torch-free. The architecture is chosen as transformers
// chooses it: `architectures[0]`, else the task's class for `model_type`.
//
// The one home of the config keys trainerd reads and writes: the loaders read them here,
// and WriteHfConfig writes the same keys back (the folder's own config.json is kept,
// only what training changed is updated).
#ifndef TRAINERD_SPEC_HF_CONFIG_H_
#define TRAINERD_SPEC_HF_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace trainerd {

// The architectures trainerd implements (transformers' class names).
enum class HfArchitecture {
  kLlamaForCausalLM,  // also MistralForCausalLM and Qwen2ForCausalLM: the same blocks
  kLlamaForSequenceClassification,
  kGpt2LMHeadModel,
  kBertForSequenceClassification,
};

struct HfConfig {
  std::string architecture;  // "LlamaForCausalLM", "Qwen2ForCausalLM", ...
  std::string model_type;    // "llama", "mistral", "qwen2", "gpt2", "bert"
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
  double layer_norm_eps = 1e-12;  // GPT-2's layer_norm_epsilon, BERT's layer_norm_eps
  int64_t type_vocab_size = 2;    // BERT's token types
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
  // The labels by id, when training named them (the data's classes); written as
  // id2label/label2id. Empty: the folder's own (or LABEL_k).
  std::vector<std::string> id2label;
  double initializer_range = 0.02;  // the std of a newly initialised weight
  // Dropout while training, as transformers applies it: GPT-2's embd_pdrop, resid_pdrop
  // and attn_pdrop; BERT's hidden_dropout_prob and attention_probs_dropout_prob (and
  // classifier_dropout, else the hidden one, before its classifier); Llama's
  // attention_dropout.
  double embedding_dropout = 0;
  double hidden_dropout = 0;
  double attention_dropout = 0;
  double classifier_dropout = 0;
  std::string torch_dtype;      // as saved: "float32", "bfloat16", "float16"

  std::string json;  // the file's text, kept so that a saved config keeps every key
  // The folder's files that travel with the weights when they are saved:
  // generation_config.json, tokenizer_config.json, special_tokens_map.json and BERT's
  // vocab.txt (those it has).
  std::map<std::string, std::string> companion_files;
};

// tokenizer_config.json's conventions for raw text: whether each text gets BOS and EOS.
struct HfTokenizerConfig {
  bool add_bos = false;
  bool add_eos = false;
  bool do_lower_case = true;  // BERT's WordPiece
};

// DIR/tokenizer_config.json's add_bos_token, add_eos_token and do_lower_case; without
// the file (or the keys), LlamaTokenizer's defaults for the Llama family (BOS, no EOS),
// none otherwise, and BertTokenizer's lower-casing.
absl::StatusOr<HfTokenizerConfig> ReadHfTokenizerConfig(const std::string& dir, const HfConfig& config);

// Whether `kind` classifies sequences (its head is `score` or `classifier`).
bool IsSequenceClassifier(HfArchitecture kind);

// Reads DIR/config.json (at most 1 MiB), and the companion files beside it. GPT-2's own key names (n_embd, n_head, ...)
// are read into the common fields, as transformers' attribute_map does. Errors name the file and the key:
// "config.json: num_attention_heads: 6 does not divide hidden_size 64".
absl::StatusOr<HfConfig> ReadHfConfig(const std::string& dir);

// Parses config.json's text (the part of ReadHfConfig that touches no file).
absl::StatusOr<HfConfig> ParseHfConfig(const std::string& text);

// config.json's text for `config`: the original keys, with `torch_dtype` and
// `transformers_version` kept, and `architectures` set to config.architecture.
std::string HfConfigJson(const HfConfig& config);

}  // namespace trainerd

#endif  // TRAINERD_SPEC_HF_CONFIG_H_
