#include "spec/adapter_config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "spec/lora_config.h"

namespace trainerd {

using nlohmann::json;
using trainer::v1::JobSpec;
using trainer::v1::PeftConfig;

constexpr size_t kMaxAdapterConfigBytes = 1 << 20;

std::string AdapterConfigJson(const PeftConfig& peft, const std::vector<std::string>& target_names,
                              const std::string& base_model_name_or_path) {
  json targets = json::array();
  if (peft.has_target_modules_regex() && peft.target_modules_regex() != "all-linear") {
    targets = peft.target_modules_regex();  // peft keeps a string as given
  } else {
    for (const std::string& t : target_names) targets.push_back(t);
  }
  json modules_to_save = nullptr;
  if (peft.modules_to_save_size() > 0) {
    modules_to_save = json(std::vector<std::string>(peft.modules_to_save().begin(), peft.modules_to_save().end()));
  }
  json layers = nullptr;
  if (peft.layers_to_transform_size() > 0) {
    layers = json(std::vector<int64_t>(peft.layers_to_transform().begin(), peft.layers_to_transform().end()));
  }
  // Integral values as integers (peft's types): r, and lora_alpha when it is whole.
  json alpha = peft.lora_alpha();
  if (std::floor(peft.lora_alpha()) == peft.lora_alpha()) alpha = static_cast<int64_t>(peft.lora_alpha());
  const json j = {{"alpha_pattern", json::object()},
                  {"auto_mapping", nullptr},
                  {"base_model_name_or_path", base_model_name_or_path},
                  {"bias", peft.bias()},
                  {"fan_in_fan_out", peft.fan_in_fan_out()},
                  {"inference_mode", true},
                  {"init_lora_weights", peft.init_lora_weights()},
                  {"layer_replication", nullptr},
                  {"layers_pattern", nullptr},
                  {"layers_to_transform", layers},
                  {"loftq_config", json::object()},
                  {"lora_alpha", alpha},
                  {"lora_dropout", peft.lora_dropout()},
                  {"megatron_config", nullptr},
                  {"megatron_core", "megatron.core"},
                  {"modules_to_save", modules_to_save},
                  {"peft_type", "LORA"},
                  {"r", peft.r()},
                  {"rank_pattern", json::object()},
                  {"revision", nullptr},
                  {"target_modules", targets},
                  {"task_type", peft.task_type()},
                  {"use_dora", false},
                  {"use_rslora", peft.use_rslora()}};
  return j.dump(2) + "\n";
}

namespace {

absl::Status AdapterConfigError(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(kAdapterConfigFile, ": ", key, ": ", what));
}

// The names of a JSON list of strings (or one string); false when it is neither.
bool StringList(const json& value, std::vector<std::string>* out) {
  if (value.is_string()) return out->push_back(value.get<std::string>()), true;
  if (!value.is_array()) return false;
  for (const json& item : value) {
    if (!item.is_string()) return false;
    out->push_back(item.get<std::string>());
  }
  return true;
}

// Options of peft's LoraConfig that change the arithmetic and are not implemented here:
// refused by name rather than silently ignored.
absl::Status RefuseUnsupported(const json& j) {
  // Comparisons, not json::value(): a key of another type must not throw.
  if (j.contains("use_dora") && j["use_dora"] == true) {
    return AdapterConfigError("use_dora", "DoRA adapters are not supported");
  }
  for (const char* key : {"rank_pattern", "alpha_pattern"}) {
    if (j.contains(key) && !j[key].is_null() && !(j[key].is_object() && j[key].empty())) {
      return AdapterConfigError(key, "per-module ranks and alphas are not supported");
    }
  }
  if (j.contains("layer_replication") && !j["layer_replication"].is_null()) {
    return AdapterConfigError("layer_replication", "is not supported");
  }
  if (j.contains("loftq_config") && !(j["loftq_config"].is_object() && j["loftq_config"].empty())) {
    return AdapterConfigError("loftq_config", "LoftQ is not supported");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PeftConfig> ReadAdapterConfig(const std::string& dir, const ReadRoots* roots) {
  absl::StatusOr<std::string> text = ReadConfined(dir + "/" + kAdapterConfigFile, roots, kMaxAdapterConfigBytes);
  if (!text.ok()) return text.status();
  const json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(kAdapterConfigFile, ": not a JSON object"));
  if (absl::Status s = RefuseUnsupported(j); !s.ok()) return s;
  PeftConfig p;
  if (j.contains("peft_type") && j["peft_type"] != "LORA") {
    const std::string type = j["peft_type"].is_string() ? j["peft_type"].get<std::string>().substr(0, 64) : "?";
    return AdapterConfigError("peft_type", absl::StrCat("\"", type, "\" is not supported; LORA is"));
  }
  p.set_peft_type("LORA");
  if (!j.contains("r") || !j["r"].is_number_integer()) return AdapterConfigError("r", "expected an integer");
  p.set_r(j["r"].get<int64_t>());
  for (const auto& [key, setter] : std::vector<std::pair<const char*, void (PeftConfig::*)(double)>>{
           {"lora_alpha", &PeftConfig::set_lora_alpha}, {"lora_dropout", &PeftConfig::set_lora_dropout}}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_number()) return AdapterConfigError(key, "expected a number");
    (p.*setter)(j[key].get<double>());
  }
  if (j.contains("target_modules") && !j["target_modules"].is_null()) {
    std::vector<std::string> names;
    if (!StringList(j["target_modules"], &names)) return AdapterConfigError("target_modules", "expected names");
    if (j["target_modules"].is_string()) {
      p.set_target_modules_regex(names[0]);
    } else {
      for (const std::string& n : names) p.add_target_modules(n);
    }
  }
  if (j.contains("modules_to_save") && !j["modules_to_save"].is_null()) {
    std::vector<std::string> names;
    if (!StringList(j["modules_to_save"], &names)) return AdapterConfigError("modules_to_save", "expected names");
    for (const std::string& n : names) p.add_modules_to_save(n);
  }
  const json& layers = j.contains("layers_to_transform") ? j["layers_to_transform"] : json(nullptr);
  if (layers.is_number_integer()) p.add_layers_to_transform(layers.get<int64_t>());
  if (layers.is_array()) {
    for (const json& l : layers) {
      if (!l.is_number_integer()) return AdapterConfigError("layers_to_transform", "expected layer numbers");
      p.add_layers_to_transform(l.get<int64_t>());
    }
  }
  if (j.contains("bias") && j["bias"].is_string()) p.set_bias(j["bias"].get<std::string>());
  if (j.contains("task_type") && j["task_type"].is_string()) p.set_task_type(j["task_type"].get<std::string>());
  for (const auto& [key, setter] : std::vector<std::pair<const char*, void (PeftConfig::*)(bool)>>{
           {"use_rslora", &PeftConfig::set_use_rslora}, {"fan_in_fan_out", &PeftConfig::set_fan_in_fan_out}}) {
    if (j.contains(key) && j[key].is_boolean()) (p.*setter)(j[key].get<bool>());
  }
  // Loading does not initialise anything: only false is kept (the adapter is used as saved).
  p.set_init_lora_weights(!(j.contains("init_lora_weights") && j["init_lora_weights"] == false));
  std::vector<std::string> problems;
  FindPeftProblems(p, &problems);
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kAdapterConfigFile, ": ", problems.front().substr(5)));
  }
  return p;
}

absl::StatusOr<std::optional<PeftConfig>> EffectivePeftConfig(const JobSpec& spec, const HfConfig& config,
                                                              const ReadRoots* roots) {
  const bool classifier = IsSequenceClassifier(config.kind);
  const std::string& adapter = spec.model().adapter_name_or_path();
  if (adapter.empty()) {
    if (!spec.has_peft()) return std::nullopt;
    return WithLoraDefaults(spec.peft(), config.model_type, classifier);
  }
  absl::StatusOr<PeftConfig> read = ReadAdapterConfig(adapter, roots);
  if (!read.ok()) {
    return absl::Status(read.status().code(), absl::StrCat("model.adapter_name_or_path: ", read.status().message()));
  }
  // The validator allows only merge_on_save beside an adapter folder.
  if (spec.has_peft()) read->set_merge_on_save(spec.peft().merge_on_save());
  return WithLoraDefaults(*std::move(read), config.model_type, classifier);
}

}  // namespace trainerd
