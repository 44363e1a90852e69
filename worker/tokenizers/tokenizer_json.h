// Reading tokenizer.json's parts: the helpers every component's factory uses (a "type",
// optional fields with the library's defaults, errors that name the field), and
// TextPattern, the {"String": ...} | {"Regex": ...} patterns of Split and Replace.
#ifndef TRAINERD_WORKER_TOKENIZERS_TOKENIZER_JSON_H_
#define TRAINERD_WORKER_TOKENIZERS_TOKENIZER_JSON_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "worker/tokenizers/bounded_regex.h"

namespace trainerd {

// j["type"], which must be a string. `where` names j ("tokenizer.json: normalizer").
absl::StatusOr<std::string> JsonType(const nlohmann::json& j, const std::string& where);
// j[key] as a string; INVALID_ARGUMENT naming where.key when missing or not a string.
absl::StatusOr<std::string> JsonString(const nlohmann::json& j, const std::string& key, const std::string& where);
// j[key] when it is a string; `fallback` when missing or null.
std::optional<std::string> JsonOptionalString(const nlohmann::json& j, const std::string& key);
// j[key] when it is a boolean, else `fallback`.
bool JsonBool(const nlohmann::json& j, const std::string& key, bool fallback);

// A literal string or a regular expression, matched over a text.
class TextPattern {
 public:
  static absl::StatusOr<TextPattern> FromJson(const nlohmann::json& j, const std::string& where);
  static absl::StatusOr<TextPattern> Regex(const std::string& pattern);
  static TextPattern Literal(std::string text);
  // Non-overlapping matches, left to right, as byte ranges.
  absl::StatusOr<std::vector<std::pair<size_t, size_t>>> FindAll(std::string_view text) const;
  // `text` with every match replaced by `content`.
  absl::StatusOr<std::string> ReplaceAll(const std::string& text, const std::string& content) const;

 private:
  std::string literal_;
  std::optional<BoundedRegex> regex_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_TOKENIZER_JSON_H_
