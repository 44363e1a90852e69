#include "spec/lora_config.h"

#include <cmath>
#include <set>

#include <re2/re2.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/target_modules.h"

namespace trainerd {
namespace {

using trainer::v1::PeftConfig;

bool LlamaFamily(const std::string& model_type) {
  return model_type == "llama" || model_type == "mistral" || model_type == "qwen2";
}

// peft's suffix rule: `name` is `entry` or ends with "." + entry.
bool NameMatches(const std::string& name, const std::string& entry) {
  return name == entry || absl::EndsWith(name, "." + entry);
}

// The decoder/encoder layer a module is in (peft's COMMON_LAYERS_PATTERN), or -1.
int64_t LayerIndex(const std::string& name) {
  static const re2::RE2 kLayer(R"((?:^|\.)(?:layers|h|block|blocks|layer)\.(\d+)\.)");
  int64_t index = -1;
  return RE2::PartialMatch(name, kLayer, &index) ? index : -1;
}

bool Targeted(const PeftConfig& peft, const re2::RE2* regex, const std::string& name) {
  if (peft.target_modules_regex() == "all-linear") return !IsTaskHead(name);
  if (regex != nullptr) return RE2::FullMatch(name, *regex);
  for (const std::string& entry : peft.target_modules()) {
    if (NameMatches(name, entry)) return true;
  }
  return false;
}

}  // namespace

std::vector<HfLinearLayer> HfLinearLayers(const HfConfig& c) {
  std::vector<HfLinearLayer> out;
  const int64_t h = c.hidden_size, inner = c.intermediate_size;
  if (c.kind == HfArchitecture::kGpt2LMHeadModel) {
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = absl::StrCat("transformer.h.", i, ".");
      out.push_back({p + "attn.c_attn", h, 3 * h, true});
      out.push_back({p + "attn.c_proj", h, h, true});
      out.push_back({p + "mlp.c_fc", h, inner, true});
      out.push_back({p + "mlp.c_proj", inner, h, true});
    }
    return out;  // lm_head is the token embedding
  }
  if (c.kind == HfArchitecture::kBertForSequenceClassification) {
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = absl::StrCat("bert.encoder.layer.", i, ".");
      for (const char* m : {"query", "key", "value"}) out.push_back({p + "attention.self." + m, h, h, true});
      out.push_back({p + "attention.output.dense", h, h, true});
      out.push_back({p + "intermediate.dense", h, inner, true});
      out.push_back({p + "output.dense", inner, h, true});
    }
    out.push_back({"bert.pooler.dense", h, h, true});
    out.push_back({"classifier", h, c.num_labels, true});
    return out;
  }
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    out.push_back({p + "self_attn.q_proj", h, q, c.attention_bias});
    out.push_back({p + "self_attn.k_proj", h, kv, c.attention_bias});
    out.push_back({p + "self_attn.v_proj", h, kv, c.attention_bias});
    out.push_back({p + "self_attn.o_proj", q, h, c.o_proj_bias});
    out.push_back({p + "mlp.gate_proj", h, inner, false});
    out.push_back({p + "mlp.up_proj", h, inner, false});
    out.push_back({p + "mlp.down_proj", inner, h, false});
  }
  if (c.kind == HfArchitecture::kLlamaForSequenceClassification) {
    out.push_back({"score", h, c.num_labels, false});
  } else if (!c.tie_word_embeddings) {
    out.push_back({"lm_head", h, c.vocab_size, false});
  }
  return out;
}

int64_t HfParameterCount(const HfConfig& c) {
  int64_t n = 0;
  for (const HfLinearLayer& l : HfLinearLayers(c)) n += l.in * l.out + (l.bias ? l.out : 0);
  const int64_t h = c.hidden_size;
  n += c.vocab_size * h;  // token embedding
  if (c.kind == HfArchitecture::kGpt2LMHeadModel) {
    n += c.max_position_embeddings * h + c.num_hidden_layers * 4 * h + 2 * h;  // positions, ln_1, ln_2, ln_f
  } else if (c.kind == HfArchitecture::kBertForSequenceClassification) {
    n += (c.max_position_embeddings + c.type_vocab_size) * h + 2 * h + c.num_hidden_layers * 4 * h;
  } else {
    n += c.num_hidden_layers * 2 * h + h;  // RMSNorm weights
  }
  return n;
}

bool IsTaskHead(const std::string& name) { return name == "lm_head" || name == "score" || name == "classifier"; }

std::vector<std::string> DefaultLoraTargets(const std::string& model_type) {
  if (model_type == "gpt2") return {"c_attn"};
  if (model_type == "bert") return {"query", "value"};
  if (LlamaFamily(model_type)) return {"q_proj", "v_proj"};
  return {};
}

PeftConfig WithLoraDefaults(PeftConfig peft, const std::string& model_type, bool classifier) {
  if (!peft.has_peft_type()) peft.set_peft_type("LORA");
  if (!peft.has_r()) peft.set_r(8);
  if (!peft.has_lora_alpha()) peft.set_lora_alpha(8);
  if (!peft.has_bias()) peft.set_bias("none");
  if (!peft.has_init_lora_weights()) peft.set_init_lora_weights(true);
  if (peft.target_modules().empty() && !peft.has_target_modules_regex()) {
    for (const std::string& t : DefaultLoraTargets(model_type)) peft.add_target_modules(t);
  }
  // peft sets fan_in_fan_out for GPT-2's Conv1D (with a warning when it was unset).
  if (model_type == "gpt2") peft.set_fan_in_fan_out(true);
  if (!peft.has_task_type()) peft.set_task_type(classifier ? "SEQ_CLS" : "CAUSAL_LM");
  // As peft's PeftModelForSequenceClassification: the classification head trains in
  // full (it is new, or fitted to other labels).
  if (peft.task_type() == "SEQ_CLS") {
    const std::string head = model_type == "bert" ? "classifier" : "score";
    bool listed = false;
    for (const std::string& m : peft.modules_to_save()) listed = listed || m == head;
    if (!listed) peft.add_modules_to_save(head);
  }
  return peft;
}

void FindPeftProblems(const PeftConfig& peft, std::vector<std::string>* problems) {
  auto add = [problems](const std::string& field, const std::string& what) {
    problems->push_back(absl::StrCat("peft.", field, ": ", what));
  };
  if (peft.has_peft_type() && peft.peft_type() != "LORA") {
    add("peft_type", absl::StrCat("\"", peft.peft_type().substr(0, 64), "\" is not supported; LORA is"));
  }
  if (peft.has_r() && peft.r() <= 0) add("r", "must be > 0");
  if (peft.r() > 65536) add("r", "must be at most 65536");
  if (peft.has_lora_alpha() && !(peft.lora_alpha() > 0)) add("lora_alpha", "must be > 0");
  if (!(peft.lora_dropout() >= 0 && peft.lora_dropout() < 1)) add("lora_dropout", "must be in [0, 1)");
  if (peft.has_bias() && peft.bias() != "none" && peft.bias() != "all" && peft.bias() != "lora_only") {
    add("bias", absl::StrCat("\"", peft.bias().substr(0, 64), "\" is not supported; must be one of none, all, lora_only"));
  }
  if (peft.has_task_type() && peft.task_type() != "CAUSAL_LM" && peft.task_type() != "SEQ_CLS") {
    add("task_type", absl::StrCat("\"", peft.task_type().substr(0, 64),
                                  "\" is not supported; CAUSAL_LM and SEQ_CLS are"));
  }
  if (peft.has_target_modules_regex() && peft.target_modules_regex() != "all-linear") {
    if (absl::Status s = CheckTargetPattern(peft.target_modules_regex()); !s.ok()) {
      add("target_modules", std::string(s.message()));
    }
  }
  for (int i = 0; i < peft.target_modules_size(); ++i) {
    if (peft.target_modules(i).empty()) add(absl::StrCat("target_modules[", i, "]"), "must not be empty");
  }
  for (int i = 0; i < peft.modules_to_save_size(); ++i) {
    if (peft.modules_to_save(i).empty()) add(absl::StrCat("modules_to_save[", i, "]"), "must not be empty");
  }
  for (int i = 0; i < peft.layers_to_transform_size(); ++i) {
    if (peft.layers_to_transform(i) < 0) add(absl::StrCat("layers_to_transform[", i, "]"), "must be >= 0");
  }
}

absl::StatusOr<std::vector<HfLinearLayer>> SelectLoraTargets(const PeftConfig& peft,
                                                             const std::vector<HfLinearLayer>& layers) {
  std::unique_ptr<re2::RE2> regex;
  if (peft.has_target_modules_regex() && peft.target_modules_regex() != "all-linear") {
    if (absl::Status s = CheckTargetPattern(peft.target_modules_regex()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("peft.target_modules: ", s.message()));
    }
    regex = std::make_unique<re2::RE2>(peft.target_modules_regex());
  }
  const std::set<int64_t> chosen(peft.layers_to_transform().begin(), peft.layers_to_transform().end());
  std::vector<HfLinearLayer> out;
  bool any_name = false;
  for (const HfLinearLayer& layer : layers) {
    if (!Targeted(peft, regex.get(), layer.name) || InModulesToSave(peft, layer.name)) continue;
    any_name = true;
    if (!chosen.empty() && chosen.count(LayerIndex(layer.name)) == 0) continue;
    out.push_back(layer);
  }
  if (!any_name) {
    std::set<std::string> names;
    for (const HfLinearLayer& layer : layers) names.insert(layer.name.substr(layer.name.rfind('.') + 1));
    return absl::InvalidArgumentError(absl::StrCat(
        "peft.target_modules: matches none of the model's linear layers (", absl::StrJoin(names, ", "),
        "; e.g. ", layers.empty() ? "none" : layers.front().name, ")"));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError("peft.layers_to_transform: none of these layers has a targeted module");
  }
  for (int i = 0; i < peft.modules_to_save_size(); ++i) {
    bool found = false;
    for (const HfLinearLayer& layer : layers) found = found || NameMatches(layer.name, peft.modules_to_save(i));
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat("peft.modules_to_save[", i, "]: \"",
                                                     peft.modules_to_save(i).substr(0, 64),
                                                     "\" names no linear layer of the model"));
    }
  }
  return out;
}

bool InModulesToSave(const PeftConfig& peft, const std::string& name) {
  for (const std::string& entry : peft.modules_to_save()) {
    if (NameMatches(name, entry) || absl::StrContains("." + name + ".", "." + entry + ".")) return true;
  }
  return false;
}

double LoraScaling(const PeftConfig& peft) {
  const double r = static_cast<double>(peft.r());
  return peft.use_rslora() ? peft.lora_alpha() / std::sqrt(r) : peft.lora_alpha() / r;
}

absl::StatusOr<int64_t> LoraTrainableParameterCount(const PeftConfig& peft, const HfConfig& config) {
  const std::vector<HfLinearLayer> layers = HfLinearLayers(config);
  absl::StatusOr<std::vector<HfLinearLayer>> targets = SelectLoraTargets(peft, layers);
  if (!targets.ok()) return targets.status();
  int64_t n = 0;
  std::set<std::string> targeted;
  for (const HfLinearLayer& t : *targets) {
    n += peft.r() * (t.in + t.out);
    targeted.insert(t.name);
  }
  for (const HfLinearLayer& l : layers) {
    if (InModulesToSave(peft, l.name)) {
      n += l.in * l.out + (l.bias ? l.out : 0);
    } else if (l.bias && (peft.bias() == "all" || (peft.bias() == "lora_only" && targeted.count(l.name)))) {
      n += l.out;
    }
  }
  return n;
}

}  // namespace trainerd
