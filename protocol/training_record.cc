#include "protocol/training_record.h"

#include <cmath>

#include <nlohmann/json.hpp>

namespace trainerd {
namespace {

using nlohmann::ordered_json;

ordered_json Number(double v) { return std::isfinite(v) ? ordered_json(v) : ordered_json(nullptr); }

}  // namespace

std::string FormatTrainingRecord(const TrainingRecord& r) {
  ordered_json j;
  j["kind"] = r.kind;
  j["time"] = Number(r.time);
  j["step"] = r.step;
  j["max_steps"] = r.max_steps;
  j["epoch"] = Number(r.epoch);
  for (const auto& [name, value] : r.metrics) j[name] = Number(value);
  for (const auto& [name, value] : r.text) j[name] = value;
  // Invalid UTF-8 in a text field (a path) is replaced, not thrown.
  return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

std::optional<TrainingRecord> ParseTrainingRecord(const std::string& line) {
  const ordered_json j = ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) return std::nullopt;
  TrainingRecord r;
  r.kind = kind->get<std::string>();
  for (const auto& [key, value] : j.items()) {
    if (key == "kind") continue;
    if (key == "time" || key == "epoch") {
      if (value.is_number()) (key == "time" ? r.time : r.epoch) = value.get<double>();
    } else if (key == "step" || key == "max_steps") {
      if (value.is_number_integer()) (key == "step" ? r.step : r.max_steps) = value.get<int64_t>();
    } else if (value.is_number()) {
      r.metrics[key] = value.get<double>();
    } else if (value.is_string()) {
      r.text[key] = value.get<std::string>();
    }
  }
  return r;
}

}  // namespace trainerd
