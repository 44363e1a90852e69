#include "worker/tokenizers/normalizer.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/tokenizers/bounded_regex.h"
#include "worker/tokenizers/tokenizer_json.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

using nlohmann::json;

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  absl::StatusOr<std::string> Normalize(const std::string& text) const override { return NormalizeUnicode(text, form_); }

 private:
  NormalForm form_;
};

class Lowercase : public Normalizer {
 public:
  absl::StatusOr<std::string> Normalize(const std::string& text) const override {
    std::u32string chars = DecodeUtf8(text);
    for (char32_t& c : chars) c = ToLower(c);
    return EncodeUtf8(chars);
  }
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  absl::StatusOr<std::string> Normalize(const std::string& text) const override {
    std::u32string chars = DecodeUtf8(text);
    size_t begin = 0, end = chars.size();
    while (left_ && begin < end && IsWhitespace(chars[begin])) ++begin;
    while (right_ && end > begin && IsWhitespace(chars[end - 1])) --end;
    return EncodeUtf8(chars.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

// Removes the nonspacing marks (the library's StripAccents expects NFD text before it).
std::u32string WithoutMarks(const std::u32string& chars) {
  std::u32string out;
  for (char32_t c : chars) {
    if (!IsNonspacingMark(c)) out.push_back(c);
  }
  return out;
}

class StripAccents : public Normalizer {
 public:
  absl::StatusOr<std::string> Normalize(const std::string& text) const override {
    return EncodeUtf8(WithoutMarks(DecodeUtf8(text)));
  }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  absl::StatusOr<std::string> Normalize(const std::string& text) const override {
    return text.empty() ? text : prefix_ + text;
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  Replace(TextPattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  absl::StatusOr<std::string> Normalize(const std::string& text) const override {
    return pattern_.ReplaceAll(text, content_);
  }

 private:
  TextPattern pattern_;
  std::string content_;
};

// BERT's: control characters out and whitespace to spaces (clean_text), spaces around
// CJK ideographs, accents stripped (strip_accents, or lowercase when it is null), lower case.
class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(chinese), strip_accents_(strip_accents), lowercase_(lowercase) {}
  absl::StatusOr<std::string> Normalize(const std::string& text) const override {
    std::u32string chars;
    for (char32_t c : DecodeUtf8(text)) {
      if (clean_text_) {
        if (c == 0 || c == 0xFFFD || (c != '\t' && c != '\n' && c != '\r' && IsOther(c))) continue;
        if (IsWhitespace(c)) c = ' ';
      }
      if (chinese_ && IsChineseChar(c)) {
        chars += U' ';
        chars += c;
        chars += U' ';
      } else {
        chars += c;
      }
    }
    if (strip_accents_) chars = WithoutMarks(DecodeUtf8(NormalizeUnicode(EncodeUtf8(chars), NormalForm::kNfd)));
    if (lowercase_) {
      for (char32_t& c : chars) c = ToLower(c);
    }
    return EncodeUtf8(chars);
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  absl::StatusOr<std::string> Normalize(const std::string& text) const override {
    std::string out = text;
    for (const auto& step : steps_) {
      absl::StatusOr<std::string> next = step->Normalize(out);
      if (!next.ok()) return next.status();
      out = *std::move(next);
    }
    return out;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  absl::StatusOr<std::string> type = JsonType(j, where);
  if (!type.ok()) return type.status();
  if (*type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfc);
  if (*type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfd);
  if (*type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkc);
  if (*type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::kNfkd);
  if (*type == "Lowercase") return std::make_unique<Lowercase>();
  if (*type == "StripAccents") return std::make_unique<StripAccents>();
  if (*type == "Strip") {
    return std::make_unique<Strip>(JsonBool(j, "strip_left", true), JsonBool(j, "strip_right", true));
  }
  if (*type == "Prepend") {
    absl::StatusOr<std::string> prepend = JsonString(j, "prepend", where);
    if (!prepend.ok()) return prepend.status();
    return std::make_unique<Prepend>(*prepend);
  }
  if (*type == "Replace") {
    absl::StatusOr<TextPattern> pattern = TextPattern::FromJson(j.value("pattern", json()), where + ".pattern");
    if (!pattern.ok()) return pattern.status();
    absl::StatusOr<std::string> content = JsonString(j, "content", where);
    if (!content.ok()) return content.status();
    return std::make_unique<Replace>(*std::move(pattern), *content);
  }
  if (*type == "BertNormalizer") {
    const bool lowercase = JsonBool(j, "lowercase", true);
    const json& strip = j.value("strip_accents", json());
    return std::make_unique<BertNormalizer>(JsonBool(j, "clean_text", true), JsonBool(j, "handle_chinese_chars", true),
                                            strip.is_boolean() ? strip.get<bool>() : lowercase, lowercase);
  }
  if (*type == "Sequence") {
    const json& list = j.value("normalizers", json());
    if (!list.is_array()) return absl::InvalidArgumentError(where + ".normalizers: must be a list");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      absl::StatusOr<std::unique_ptr<Normalizer>> step = MakeNormalizer(list[i], absl::StrCat(where, ".normalizers[", i, "]"));
      if (!step.ok()) return step.status();
      if (*step) steps.push_back(*std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ".type: \"", *type, "\" is not a normalizer trainerd reads"));
}

}  // namespace trainerd
