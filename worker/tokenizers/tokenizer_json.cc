#include "worker/tokenizers/tokenizer_json.h"

#include "absl/strings/str_cat.h"

namespace trainerd {

using nlohmann::json;

absl::StatusOr<std::string> JsonType(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return absl::InvalidArgumentError(where + ".type: missing (an object with a \"type\" string is expected)");
  }
  return j["type"].get<std::string>();
}

absl::StatusOr<std::string> JsonString(const json& j, const std::string& key, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": must be a string"));
  }
  return j[key].get<std::string>();
}

std::optional<std::string> JsonOptionalString(const json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return std::nullopt;
  return j[key].get<std::string>();
}

bool JsonBool(const json& j, const std::string& key, bool fallback) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_boolean()) return fallback;
  return j[key].get<bool>();
}

absl::StatusOr<TextPattern> TextPattern::FromJson(const json& j, const std::string& where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string()) return Literal(j["String"].get<std::string>());
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
    absl::StatusOr<TextPattern> pattern = Regex(j["Regex"].get<std::string>());
    if (!pattern.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", pattern.status().message()));
    return pattern;
  }
  return absl::InvalidArgumentError(where + ": must be {\"String\": ...} or {\"Regex\": ...}");
}

absl::StatusOr<TextPattern> TextPattern::Regex(const std::string& pattern) {
  absl::StatusOr<BoundedRegex> regex = BoundedRegex::Compile(pattern);
  if (!regex.ok()) return regex.status();
  TextPattern out;
  out.regex_ = *std::move(regex);
  return out;
}

TextPattern TextPattern::Literal(std::string text) {
  TextPattern out;
  out.literal_ = std::move(text);
  return out;
}

absl::StatusOr<std::vector<std::pair<size_t, size_t>>> TextPattern::FindAll(std::string_view text) const {
  if (regex_) return regex_->FindAll(text);
  std::vector<std::pair<size_t, size_t>> matches;
  if (literal_.empty()) return matches;
  for (size_t at = text.find(literal_); at != std::string_view::npos; at = text.find(literal_, at + literal_.size())) {
    matches.emplace_back(at, at + literal_.size());
  }
  return matches;
}

absl::StatusOr<std::string> TextPattern::ReplaceAll(const std::string& text, const std::string& content) const {
  absl::StatusOr<std::vector<std::pair<size_t, size_t>>> matches = FindAll(text);
  if (!matches.ok()) return matches.status();
  std::string out;
  size_t at = 0;
  for (const auto& [begin, end] : *matches) {
    out.append(text, at, begin - at);
    out += content;
    at = end;
  }
  out.append(text, at, std::string::npos);
  return out;
}

}  // namespace trainerd
