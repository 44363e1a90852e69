#include "worker/tokenizers/added_vocabulary.h"

#include "absl/strings/str_cat.h"
#include "worker/tokenizers/tokenizer_json.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

using nlohmann::json;

bool IsAlphanumeric(char32_t c) { return IsWordChar(c) && c != '_' && !IsNonspacingMark(c); }

// Whether the text before `at` ends with a letter or digit, and the text from `at` starts with one.
bool WordBefore(const std::string& text, size_t at) {
  const std::u32string before = DecodeUtf8(std::string_view(text).substr(0, at));
  return !before.empty() && IsAlphanumeric(before.back());
}
bool WordAfter(const std::string& text, size_t at) {
  bool word = false, first = true;
  ForEachChar(std::string_view(text).substr(at), [&](char32_t c, size_t, size_t) {
    if (first) word = IsAlphanumeric(c);
    first = false;
  });
  return word;
}

}  // namespace

absl::StatusOr<AddedVocabulary> AddedVocabulary::FromJson(const json& list, const Normalizer* normalizer,
                                                          const std::string& where) {
  AddedVocabulary vocab;
  if (list.is_null()) return vocab;
  if (!list.is_array()) return absl::InvalidArgumentError(where + ": must be a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    const std::string at = absl::StrCat(where, "[", i, "]");
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0) {
      return absl::InvalidArgumentError(at + ".id: must be an integer >= 0");
    }
    absl::StatusOr<std::string> content = JsonString(t, "content", at);
    if (!content.ok()) return content.status();
    if (content->empty()) return absl::InvalidArgumentError(at + ".content: must not be empty");
    AddedToken token;
    token.id = t["id"].get<int64_t>();
    token.content = *content;
    token.single_word = JsonBool(t, "single_word", false);
    token.lstrip = JsonBool(t, "lstrip", false);
    token.rstrip = JsonBool(t, "rstrip", false);
    token.normalized = JsonBool(t, "normalized", !JsonBool(t, "special", false));
    token.special = JsonBool(t, "special", false);
    std::string pattern = token.content;
    if (token.normalized && normalizer != nullptr) {
      absl::StatusOr<std::string> normalized = normalizer->Normalize(pattern);
      if (!normalized.ok()) return normalized.status();
      pattern = *normalized;
    }
    (token.normalized ? vocab.normalized_patterns_ : vocab.raw_patterns_)[pattern] = vocab.tokens_.size();
    vocab.tokens_.push_back(token);
  }
  return vocab;
}

std::vector<TextPiece> AddedVocabulary::CutAt(const std::string& text, const std::map<std::string, size_t>& patterns) const {
  std::vector<TextPiece> pieces;
  if (patterns.empty()) {
    pieces.push_back({text, std::nullopt});
    return pieces;
  }
  size_t emitted = 0;  // text before this is in pieces
  size_t at = 0;
  while (at < text.size()) {
    // The longest pattern that starts here (the map is sorted: candidates share a prefix).
    const std::string* found = nullptr;
    size_t index = 0;
    for (auto it = patterns.lower_bound(text.substr(at, 1)); it != patterns.end() && it->first[0] == text[at]; ++it) {
      if (text.compare(at, it->first.size(), it->first) == 0 && (found == nullptr || it->first.size() > found->size())) {
        found = &it->first;
        index = it->second;
      }
    }
    if (found == nullptr) {
      ++at;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t begin = at, end = at + found->size();
    if (token.single_word && (WordBefore(text, begin) || WordAfter(text, end))) {
      ++at;
      continue;
    }
    if (token.lstrip) {
      while (begin > emitted && IsWhitespace(static_cast<unsigned char>(text[begin - 1]))) --begin;
    }
    if (token.rstrip) {
      while (end < text.size() && IsWhitespace(static_cast<unsigned char>(text[end]))) ++end;
    }
    if (begin > emitted) pieces.push_back({text.substr(emitted, begin - emitted), std::nullopt});
    pieces.push_back({token.content, token.id});
    emitted = at = end;
  }
  if (emitted < text.size()) pieces.push_back({text.substr(emitted), std::nullopt});
  return pieces;
}

absl::StatusOr<std::vector<TextPiece>> AddedVocabulary::Split(const std::string& raw, const Normalizer* normalizer) const {
  std::vector<TextPiece> out;
  for (TextPiece& piece : CutAt(raw, raw_patterns_)) {
    if (piece.id) {
      out.push_back(std::move(piece));
      continue;
    }
    std::string text = piece.text;
    if (normalizer != nullptr) {
      absl::StatusOr<std::string> normalized = normalizer->Normalize(text);
      if (!normalized.ok()) return normalized.status();
      text = *normalized;
    }
    for (TextPiece& p : CutAt(text, normalized_patterns_)) out.push_back(std::move(p));
  }
  return out;
}

const AddedToken* AddedVocabulary::FindById(int64_t id) const {
  for (const AddedToken& t : tokens_) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

const AddedToken* AddedVocabulary::FindByContent(const std::string& content) const {
  for (const AddedToken& t : tokens_) {
    if (t.content == content) return &t;
  }
  return nullptr;
}

}  // namespace trainerd
