#include "worker/trainer/trainer_state.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace trainerd {
namespace {

using nlohmann::json;

// HF logs counts as integers; everything else is a float. NaN/inf become null.
json Number(const std::string& key, double v) {
  if (!std::isfinite(v)) return nullptr;
  if (key == "step" || key == "total_flos") return static_cast<int64_t>(v);
  return v;
}

json MetricsJson(const Metrics& m) {
  json out = json::object();
  for (const auto& [k, v] : m) out[k] = Number(k, v);
  return out;
}

Metrics MetricsFrom(const json& j) {
  Metrics m;
  for (const auto& [k, v] : j.items()) {
    if (v.is_number()) m[k] = v.get<double>();
    else if (v.is_boolean()) m[k] = v.get<bool>() ? 1 : 0;
    else if (v.is_null()) m[k] = std::nan("");
  }
  return m;
}

}  // namespace

std::string TrainerStateToJson(const TrainerState& s) {
  json j;
  j["best_global_step"] = s.best_global_step ? json(*s.best_global_step) : json(nullptr);
  j["best_metric"] = s.best_metric ? json(*s.best_metric) : json(nullptr);
  j["best_model_checkpoint"] = s.best_model_checkpoint ? json(*s.best_model_checkpoint) : json(nullptr);
  j["epoch"] = s.epoch;
  j["eval_steps"] = s.eval_steps;
  j["global_step"] = s.global_step;
  j["is_hyper_param_search"] = false;
  j["is_local_process_zero"] = s.is_local_process_zero;
  j["is_world_process_zero"] = s.is_world_process_zero;
  j["log_history"] = json::array();
  for (const Metrics& m : s.log_history) j["log_history"].push_back(MetricsJson(m));
  j["logging_steps"] = s.logging_steps;
  j["max_steps"] = s.max_steps;
  j["num_input_tokens_seen"] = 0;
  j["num_train_epochs"] = s.num_train_epochs;
  j["save_steps"] = s.save_steps;
  j["stateful_callbacks"] = json::object();
  for (const auto& [name, cb] : s.stateful_callbacks) {
    json args = json::object(), attributes = json::object();
    for (const auto& [k, v] : cb.args) args[k] = v;
    for (const auto& [k, v] : cb.attributes) attributes[k] = v;
    j["stateful_callbacks"][name] = {{"args", args}, {"attributes", attributes}};
  }
  j["total_flos"] = 0;
  j["train_batch_size"] = s.train_batch_size;
  j["trial_name"] = nullptr;
  j["trial_params"] = nullptr;
  return j.dump(2);
}

absl::StatusOr<TrainerState> TrainerStateFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("trainer_state.json: not a JSON object");
  try {
    TrainerState s;
    s.global_step = j.at("global_step").get<int64_t>();
    s.epoch = j.at("epoch").get<double>();
    s.max_steps = j.value("max_steps", int64_t{0});
    s.num_train_epochs = j.value("num_train_epochs", int64_t{0});
    s.logging_steps = j.value("logging_steps", int64_t{0});
    s.eval_steps = j.value("eval_steps", int64_t{0});
    s.save_steps = j.value("save_steps", int64_t{0});
    s.train_batch_size = j.value("train_batch_size", int64_t{0});
    for (const auto& m : j.value("log_history", json::array())) s.log_history.push_back(MetricsFrom(m));
    if (j.contains("best_metric") && j["best_metric"].is_number()) s.best_metric = j["best_metric"].get<double>();
    if (j.contains("best_global_step") && j["best_global_step"].is_number()) {
      s.best_global_step = j["best_global_step"].get<int64_t>();
    }
    if (j.contains("best_model_checkpoint") && j["best_model_checkpoint"].is_string()) {
      s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
    }
    s.is_world_process_zero = j.value("is_world_process_zero", true);
    s.is_local_process_zero = j.value("is_local_process_zero", true);
    const json callbacks = j.value("stateful_callbacks", json::object());
    for (const auto& [name, cb] : callbacks.items()) {
      s.stateful_callbacks[name] = {MetricsFrom(cb.value("args", json::object())),
                                    MetricsFrom(cb.value("attributes", json::object()))};
    }
    return s;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("trainer_state.json: ", e.what()));
  }
}

}  // namespace trainerd
