#include "spec/hf_config.h"

#include <unistd.h>

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "spec/confined_file.h"

namespace trainerd {
namespace {

using nlohmann::json;

constexpr size_t kMaxConfigBytes = 1 << 20;

// transformers' class for a model_type when `architectures` is absent, and the model
// types each class accepts.
struct ArchitectureInfo {
  HfArchitecture kind;
  std::vector<std::string> model_types;
};
const std::map<std::string, ArchitectureInfo>& Architectures() {
  static const auto* known = new std::map<std::string, ArchitectureInfo>{
      {"LlamaForCausalLM", {HfArchitecture::kLlamaForCausalLM, {"llama"}}},
      {"MistralForCausalLM", {HfArchitecture::kLlamaForCausalLM, {"mistral"}}},
      {"Qwen2ForCausalLM", {HfArchitecture::kLlamaForCausalLM, {"qwen2"}}},
      {"LlamaForSequenceClassification", {HfArchitecture::kLlamaForSequenceClassification, {"llama"}}},
      {"MistralForSequenceClassification", {HfArchitecture::kLlamaForSequenceClassification, {"mistral"}}},
      {"Qwen2ForSequenceClassification", {HfArchitecture::kLlamaForSequenceClassification, {"qwen2"}}},
      {"GPT2LMHeadModel", {HfArchitecture::kGpt2LMHeadModel, {"gpt2"}}},
      {"BertForSequenceClassification", {HfArchitecture::kBertForSequenceClassification, {"bert"}}},
  };
  return *known;
}

bool IsLlamaFamily(HfArchitecture kind) {
  return kind == HfArchitecture::kLlamaForCausalLM || kind == HfArchitecture::kLlamaForSequenceClassification;
}

// The key a family stores a common field under (GPT2Config's attribute_map).
std::string KeyOf(const HfConfig& c, const std::string& key) {
  if (c.model_type != "gpt2") return key;
  static const auto* gpt2 = new std::map<std::string, std::string>{
      {"hidden_size", "n_embd"},          {"num_attention_heads", "n_head"}, {"num_hidden_layers", "n_layer"},
      {"max_position_embeddings", "n_positions"}, {"intermediate_size", "n_inner"},
      {"layer_norm_eps", "layer_norm_epsilon"},   {"hidden_act", "activation_function"}};
  auto it = gpt2->find(key);
  return it == gpt2->end() ? key : it->second;
}

// An integer key: `fallback` when absent or null; an error when it is not an integer.
absl::StatusOr<int64_t> IntKey(const json& j, const std::string& key, int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, ": not an integer"));
  return it->get<int64_t>();
}

absl::StatusOr<double> NumberKey(const json& j, const std::string& key, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, ": not a number"));
  return it->get<double>();
}

// Fills every numeric field, or says which key is wrong.
absl::Status ReadSizes(const json& j, HfConfig& c) {
  struct IntField {
    const char* key;
    int64_t* field;
    int64_t fallback;
  };
  const IntField ints[] = {
      {"vocab_size", &c.vocab_size, 0},
      {"hidden_size", &c.hidden_size, 0},
      {"intermediate_size", &c.intermediate_size, 0},
      {"num_hidden_layers", &c.num_hidden_layers, 0},
      {"num_attention_heads", &c.num_attention_heads, 0},
      {"max_position_embeddings", &c.max_position_embeddings, 2048},
      {"pad_token_id", &c.pad_token_id, -1},
      {"bos_token_id", &c.bos_token_id, -1},
      {"eos_token_id", &c.eos_token_id, -1},
      {"type_vocab_size", &c.type_vocab_size, 2},
  };
  for (const IntField& f : ints) {
    absl::StatusOr<int64_t> v = IntKey(j, KeyOf(c, f.key), f.fallback);
    if (!v.ok()) return v.status();
    *f.field = *v;
  }
  absl::StatusOr<int64_t> kv = IntKey(j, "num_key_value_heads", c.num_attention_heads);
  if (!kv.ok()) return kv.status();
  c.num_key_value_heads = *kv;
  absl::StatusOr<double> eps = NumberKey(j, "rms_norm_eps", 1e-6);
  if (!eps.ok()) return eps.status();
  c.rms_norm_eps = *eps;
  absl::StatusOr<double> theta = NumberKey(j, "rope_theta", 10000.0);
  if (!theta.ok()) return theta.status();
  c.rope_theta = *theta;
  // GPT-2's inner size defaults to 4 x the width (n_inner: null).
  if (c.model_type == "gpt2" && c.intermediate_size == 0) c.intermediate_size = 4 * c.hidden_size;
  absl::StatusOr<double> ln_eps = NumberKey(j, KeyOf(c, "layer_norm_eps"), c.model_type == "gpt2" ? 1e-5 : 1e-12);
  if (!ln_eps.ok()) return ln_eps.status();
  c.layer_norm_eps = *ln_eps;
  const bool gpt2 = c.model_type == "gpt2", bert = c.model_type == "bert";
  struct Rate {
    const char* key;
    double* field;
    double fallback;
  };
  const Rate rates[] = {
      {gpt2 ? "embd_pdrop" : bert ? "hidden_dropout_prob" : "embedding_dropout", &c.embedding_dropout, gpt2 || bert ? 0.1 : 0},
      {gpt2 ? "resid_pdrop" : bert ? "hidden_dropout_prob" : "hidden_dropout", &c.hidden_dropout, gpt2 || bert ? 0.1 : 0},
      {gpt2 ? "attn_pdrop" : bert ? "attention_probs_dropout_prob" : "attention_dropout", &c.attention_dropout,
       gpt2 || bert ? 0.1 : 0},
  };
  for (const Rate& r : rates) {
    absl::StatusOr<double> v = NumberKey(j, r.key, r.fallback);
    if (!v.ok()) return v.status();
    if (!(*v >= 0 && *v < 1)) return absl::InvalidArgumentError(absl::StrCat("config.json: ", r.key, ": must be in [0, 1)"));
    *r.field = *v;
  }
  absl::StatusOr<double> classifier = NumberKey(j, "classifier_dropout", c.hidden_dropout);
  if (!classifier.ok()) return classifier.status();
  if (!(*classifier >= 0 && *classifier < 1)) return absl::InvalidArgumentError("config.json: classifier_dropout: must be in [0, 1)");
  c.classifier_dropout = *classifier;
  absl::StatusOr<double> range = NumberKey(j, "initializer_range", 0.02);
  if (!range.ok()) return range.status();
  c.initializer_range = *range;
  return absl::OkStatus();
}

absl::Status CheckSizes(const json& j, HfConfig& c) {
  for (const auto& [key, value] : std::vector<std::pair<const char*, int64_t>>{
           {"vocab_size", c.vocab_size},
           {"hidden_size", c.hidden_size},
           {"intermediate_size", c.intermediate_size},
           {"num_hidden_layers", c.num_hidden_layers},
           {"num_attention_heads", c.num_attention_heads},
           {"num_key_value_heads", c.num_key_value_heads},
           {"max_position_embeddings", c.max_position_embeddings}}) {
    // Upper bounds far above any real model keep a hostile file from asking for
    // tensors no machine holds before the weights are even read.
    if (value <= 0 || value > (int64_t{1} << 24)) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, ": must be in 1..16777216, not ", value));
    }
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_attention_heads: ", c.num_attention_heads,
                                                   " does not divide hidden_size ", c.hidden_size));
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  if (j.contains("head_dim") && !j["head_dim"].is_null() && j["head_dim"] != c.head_dim) {
    return absl::InvalidArgumentError("config.json: head_dim: only hidden_size / num_attention_heads is supported");
  }
  if (IsLlamaFamily(c.kind) && c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: hidden_size / num_attention_heads = ", c.head_dim,
                                                   ": rotary embeddings need an even head size"));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_key_value_heads: ", c.num_key_value_heads,
                                                   " does not divide num_attention_heads ", c.num_attention_heads));
  }
  if (c.type_vocab_size < 1 || c.type_vocab_size > 1024) {
    return absl::InvalidArgumentError("config.json: type_vocab_size: must be in 1..1024");
  }
  if (!(c.rms_norm_eps > 0) || !(c.layer_norm_eps > 0) || !(c.rope_theta > 0) || !(c.initializer_range >= 0)) {
    return absl::InvalidArgumentError(
        "config.json: rms_norm_eps, layer_norm_eps and rope_theta must be > 0, initializer_range >= 0");
  }
  if (c.pad_token_id >= c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: pad_token_id: ", c.pad_token_id,
                                                   " is not below vocab_size ", c.vocab_size));
  }
  return absl::OkStatus();
}

// The options of these architectures that trainerd does not implement, refused by name
// rather than trained wrongly.
absl::Status CheckUnsupported(const json& j, const HfConfig& c) {
  const std::vector<std::string> acts = IsLlamaFamily(c.kind) ? std::vector<std::string>{"silu"}
                                        : c.model_type == "gpt2" ? std::vector<std::string>{"gelu_new", "gelu"}
                                                                 : std::vector<std::string>{"gelu", "gelu_new"};
  if (std::find(acts.begin(), acts.end(), c.hidden_act) == acts.end()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", KeyOf(c, "hidden_act"), ": \"", c.hidden_act,
                                                   "\" is not supported for ", c.architecture));
  }
  if (IsLlamaFamily(c.kind)) {
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
      return absl::InvalidArgumentError("config.json: rope_scaling: is not supported yet (only plain RoPE)");
    }
    if (j.value("pretraining_tp", 1) != 1) {
      return absl::InvalidArgumentError("config.json: pretraining_tp: only 1 is supported");
    }
  }
  if (c.model_type == "gpt2" && (j.value("scale_attn_by_inverse_layer_idx", false) ||
                                 j.value("reorder_and_upcast_attn", false) || !j.value("scale_attn_weights", true))) {
    return absl::InvalidArgumentError(
        "config.json: scale_attn_by_inverse_layer_idx, reorder_and_upcast_attn and scale_attn_weights: only "
        "GPT-2's defaults are supported");
  }
  if (c.model_type == "bert" && j.value("position_embedding_type", "absolute") != "absolute") {
    return absl::InvalidArgumentError("config.json: position_embedding_type: only \"absolute\" is supported");
  }
  return absl::OkStatus();
}

// Parses config.json (may throw json::exception for a key of the wrong type).
absl::StatusOr<HfConfig> ParseConfigJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");
  HfConfig c;
  c.json = text;
  c.model_type = j.value("model_type", "");
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    c.architecture = j["architectures"][0].get<std::string>();
  }
  // PretrainedConfig ties embeddings by default; LlamaConfig, MistralConfig and
  // Qwen2Config do not.
  const bool llama_like = c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2";
  c.tie_word_embeddings = j.value("tie_word_embeddings", !llama_like);
  c.torch_dtype = j.value("torch_dtype", "float32");
  if (j.contains("id2label") && j["id2label"].is_object()) {
    c.num_labels = static_cast<int64_t>(j["id2label"].size());
  }
  c.num_labels = j.value("num_labels", c.num_labels);
  if (j.contains("sliding_window") && !j["sliding_window"].is_null() &&
      (c.model_type == "mistral" || j.value("use_sliding_window", false))) {
    c.sliding_window = j["sliding_window"].get<int64_t>();
  }
  if (c.architecture.empty()) {
    if (c.model_type == "llama") c.architecture = "LlamaForCausalLM";
    if (c.model_type == "mistral") c.architecture = "MistralForCausalLM";
    if (c.model_type == "qwen2") c.architecture = "Qwen2ForCausalLM";
    if (c.model_type == "gpt2") c.architecture = "GPT2LMHeadModel";
    if (c.model_type == "bert") c.architecture = "BertForSequenceClassification";
  }
  auto known = Architectures().find(c.architecture);
  if (known == Architectures().end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: architectures: \"", c.architecture, "\" (model_type \"", c.model_type,
        "\") is not supported; trainerd loads LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
        "LlamaForSequenceClassification, GPT2LMHeadModel and BertForSequenceClassification"));
  }
  c.kind = known->second.kind;
  if (c.model_type.empty()) c.model_type = known->second.model_types.front();
  if (c.model_type != known->second.model_types.front()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: model_type: \"", c.model_type,
                                                   "\" does not match architectures \"", c.architecture, "\""));
  }
  c.hidden_act = j.value(KeyOf(c, "hidden_act"), IsLlamaFamily(c.kind) ? "silu" : "gelu");
  if (absl::Status s = ReadSizes(j, c); !s.ok()) return s;
  if (absl::Status s = CheckSizes(j, c); !s.ok()) return s;
  if (absl::Status s = CheckUnsupported(j, c); !s.ok()) return s;
  // Qwen2 always has q/k/v biases and none on o_proj; Llama and Mistral have them all
  // when attention_bias says so.
  if (c.model_type == "qwen2") {
    c.attention_bias = true;
  } else {
    c.attention_bias = j.value("attention_bias", false);
    c.o_proj_bias = c.attention_bias;
  }
  if (c.num_labels < 1 || c.num_labels > 1000000) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: num_labels: must be in 1..1000000"));
  }
  return c;
}

}  // namespace

absl::StatusOr<HfConfig> ParseHfConfig(const std::string& text) {
  try {
    return ParseConfigJson(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: a key has the wrong type: ", e.what()));
  }
}

absl::StatusOr<HfConfig> ReadHfConfig(const std::string& dir) {
  absl::StatusOr<std::string> text = ReadConfined(dir + "/config.json", kMaxConfigBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<HfConfig> config = ParseHfConfig(*text);
  if (!config.ok()) return absl::Status(config.status().code(), absl::StrCat(dir, "/", config.status().message()));
  for (const char* name : {"generation_config.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"}) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (::access(path.c_str(), F_OK) != 0) continue;
    absl::StatusOr<std::string> companion = ReadConfined(path, std::string(name) == "vocab.txt" ? 16 << 20 : kMaxConfigBytes);
    if (!companion.ok()) return companion.status();
    config->companion_files[name] = *std::move(companion);
  }
  return config;
}

absl::StatusOr<HfTokenizerConfig> ReadHfTokenizerConfig(const std::string& dir, const HfConfig& config) {
  HfTokenizerConfig t;
  t.add_bos = IsLlamaFamily(config.kind);
  auto it = config.companion_files.find("tokenizer_config.json");
  if (it == config.companion_files.end()) return t;
  json j = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(dir + "/tokenizer_config.json: not a JSON object");
  for (const auto& [key, field] :
       {std::pair{"add_bos_token", &t.add_bos}, {"add_eos_token", &t.add_eos}, {"do_lower_case", &t.do_lower_case}}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat(dir, "/tokenizer_config.json: ", key, ": not true or false"));
    }
    *field = j[key].get<bool>();
  }
  return t;
}

bool IsSequenceClassifier(HfArchitecture kind) {
  return kind == HfArchitecture::kLlamaForSequenceClassification || kind == HfArchitecture::kBertForSequenceClassification;
}

std::string HfConfigJson(const HfConfig& config) {
  json j = json::parse(config.json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) j = json::object();
  j["architectures"] = {config.architecture};
  j["model_type"] = config.model_type;
  // transformers counts a classifier's labels by id2label (2 when it is absent).
  const bool named = static_cast<int64_t>(config.id2label.size()) == config.num_labels;
  if (IsSequenceClassifier(config.kind) &&
      (named || !j.contains("id2label") || !j["id2label"].is_object() ||
       static_cast<int64_t>(j["id2label"].size()) != config.num_labels)) {
    json id2label = json::object(), label2id = json::object();
    for (int64_t k = 0; k < config.num_labels; ++k) {
      const std::string label = named ? config.id2label[k] : absl::StrCat("LABEL_", k);
      id2label[std::to_string(k)] = label;
      label2id[label] = k;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
    j.erase("num_labels");
  }
  return j.dump(2) + "\n";
}

}  // namespace trainerd
