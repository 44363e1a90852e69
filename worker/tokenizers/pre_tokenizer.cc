#include "worker/tokenizers/pre_tokenizer.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "worker/tokenizers/byte_level.h"
#include "worker/tokenizers/tokenizer_json.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

using nlohmann::json;
using Ranges = std::vector<std::pair<size_t, size_t>>;

// The library's SplitDelimiterBehavior.
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

absl::StatusOr<Behavior> ParseBehavior(const json& j, const std::string& where, Behavior fallback) {
  if (!j.contains("behavior")) return fallback;
  const std::string name = j.value("behavior", "");
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return absl::InvalidArgumentError(absl::StrCat(where, ".behavior: \"", name, "\" is not a split behavior"));
}

// Cuts `text` at `matches` (sorted, not overlapping) as `behavior` says, dropping empty
// pieces; `invert` swaps what is a match and what is between.
std::vector<std::string> SplitAt(const std::string& text, const Ranges& matches, Behavior behavior, bool invert) {
  struct Segment {
    size_t begin, end;
    bool is_match;
  };
  std::vector<Segment> segments;
  size_t at = 0;
  for (const auto& [begin, end] : matches) {
    if (begin > at) segments.push_back({at, begin, invert});
    segments.push_back({begin, end, !invert});
    at = end;
  }
  if (at < text.size()) segments.push_back({at, text.size(), invert});
  std::vector<Segment> kept;
  bool previous_match = false;
  for (const Segment& s : segments) {
    switch (behavior) {
      case Behavior::kRemoved:
        if (!s.is_match) kept.push_back(s);
        break;
      case Behavior::kIsolated:
        kept.push_back(s);
        break;
      case Behavior::kMergedWithPrevious:
        if (s.is_match && !previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        break;
      case Behavior::kMergedWithNext:
        if (previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        break;
      case Behavior::kContiguous:
        if (s.is_match && previous_match && !kept.empty()) {
          kept.back().end = s.end;
        } else {
          kept.push_back(s);
        }
        break;
    }
    previous_match = s.is_match;
  }
  std::vector<std::string> out;
  for (const Segment& s : kept) {
    if (s.end > s.begin) out.push_back(text.substr(s.begin, s.end - s.begin));
  }
  return out;
}

// Each character of `text` for which `pred` holds, as a one-character match.
Ranges CharMatches(const std::string& text, const std::function<bool(char32_t)>& pred) {
  Ranges matches;
  ForEachChar(text, [&](char32_t c, size_t begin, size_t length) {
    if (pred(c)) matches.emplace_back(begin, begin + length);
  });
  return matches;
}

// Applies `cut` to every piece, replacing it with what it returns.
absl::Status CutEach(std::vector<std::string>* pieces,
                     const std::function<absl::StatusOr<std::vector<std::string>>(const std::string&, size_t)>& cut) {
  std::vector<std::string> out;
  for (size_t i = 0; i < pieces->size(); ++i) {
    absl::StatusOr<std::vector<std::string>> parts = cut((*pieces)[i], i);
    if (!parts.ok()) return parts.status();
    for (std::string& p : *parts) out.push_back(std::move(p));
  }
  *pieces = std::move(out);
  return absl::OkStatus();
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<TextPattern> split)
      : add_prefix_space_(add_prefix_space), split_(std::move(split)) {}
  absl::Status PreTokenize(std::vector<std::string>* pieces, bool) const override {
    return CutEach(pieces, [&](const std::string& piece, size_t) -> absl::StatusOr<std::vector<std::string>> {
      const std::string text = add_prefix_space_ && piece.rfind(' ', 0) != 0 ? " " + piece : piece;
      std::vector<std::string> words = {text};
      if (split_) {
        auto matches = split_->FindAll(text);
        if (!matches.ok()) return matches.status();
        words = SplitAt(text, *matches, Behavior::kIsolated, false);
      }
      for (std::string& w : words) w = BytesToByteLevel(w);
      return words;
    });
  }

 private:
  bool add_prefix_space_;
  std::optional<TextPattern> split_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(TextPattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  absl::Status PreTokenize(std::vector<std::string>* pieces, bool) const override {
    return CutEach(pieces, [&](const std::string& piece, size_t) -> absl::StatusOr<std::vector<std::string>> {
      auto matches = pattern_.FindAll(piece);
      if (!matches.ok()) return matches.status();
      return SplitAt(piece, *matches, behavior_, invert_);
    });
  }

 private:
  TextPattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// Whitespace, WhitespaceSplit, Digits, BertPreTokenizer, Punctuation, CharDelimiterSplit:
// cuts at the characters a predicate picks.
class CharPreTokenizer : public PreTokenizer {
 public:
  struct Step {
    std::function<bool(char32_t)> pred;
    Behavior behavior;
  };
  explicit CharPreTokenizer(std::vector<Step> steps) : steps_(std::move(steps)) {}
  absl::Status PreTokenize(std::vector<std::string>* pieces, bool) const override {
    for (const Step& step : steps_) {
      absl::Status s = CutEach(pieces, [&](const std::string& piece, size_t) -> absl::StatusOr<std::vector<std::string>> {
        return SplitAt(piece, CharMatches(piece, step.pred), step.behavior, false);
      });
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<Step> steps_;
};

class RegexKeepPreTokenizer : public PreTokenizer {
 public:
  explicit RegexKeepPreTokenizer(TextPattern pattern) : pattern_(std::move(pattern)) {}
  absl::Status PreTokenize(std::vector<std::string>* pieces, bool) const override {
    // The matches are the words; what lies between them goes.
    return CutEach(pieces, [&](const std::string& piece, size_t) -> absl::StatusOr<std::vector<std::string>> {
      auto matches = pattern_.FindAll(piece);
      if (!matches.ok()) return matches.status();
      return SplitAt(piece, *matches, Behavior::kRemoved, /*invert=*/true);
    });
  }

 private:
  TextPattern pattern_;
};

// SentencePiece's spaces: each becomes `replacement`, one is put in front (always, or
// only at the start of the text), and the text is cut before each.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, std::string scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(std::move(scheme)), split_(split) {}
  absl::Status PreTokenize(std::vector<std::string>* pieces, bool first) const override {
    return CutEach(pieces, [&](const std::string& piece, size_t i) -> absl::StatusOr<std::vector<std::string>> {
      std::string text = absl::StrReplaceAll(piece, {{" ", replacement_}});
      const bool prepend = scheme_ == "always" || (scheme_ == "first" && first && i == 0);
      if (prepend && text.rfind(replacement_, 0) != 0) text = replacement_ + text;
      if (!split_) return std::vector<std::string>{text};
      return SplitAt(text, *TextPattern::Literal(replacement_).FindAll(text), Behavior::kMergedWithNext, false);
    });
  }

 private:
  std::string replacement_, scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  absl::Status PreTokenize(std::vector<std::string>* pieces, bool first) const override {
    for (const auto& step : steps_) {
      if (absl::Status s = step->PreTokenize(pieces, first); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  absl::StatusOr<std::string> type = JsonType(j, where);
  if (!type.ok()) return type.status();
  using Step = CharPreTokenizer::Step;
  if (*type == "ByteLevel") {
    std::optional<TextPattern> split;
    if (JsonBool(j, "use_regex", true)) split = *TextPattern::Regex(kGpt2SplitPattern);
    return std::make_unique<ByteLevelPreTokenizer>(JsonBool(j, "add_prefix_space", true), std::move(split));
  }
  if (*type == "Split") {
    absl::StatusOr<TextPattern> pattern = TextPattern::FromJson(j.value("pattern", json()), where + ".pattern");
    if (!pattern.ok()) return pattern.status();
    absl::StatusOr<Behavior> behavior = ParseBehavior(j, where, Behavior::kRemoved);
    if (!behavior.ok()) return behavior.status();
    return std::make_unique<SplitPreTokenizer>(*std::move(pattern), *behavior, JsonBool(j, "invert", false));
  }
  if (*type == "Whitespace") return std::make_unique<RegexKeepPreTokenizer>(*TextPattern::Regex(R"(\w+|[^\w\s]+)"));
  if (*type == "WhitespaceSplit") {
    return std::make_unique<CharPreTokenizer>(std::vector<Step>{{IsWhitespace, Behavior::kRemoved}});
  }
  auto punctuation = [](char32_t c) { return IsPunctuation(c); };
  if (*type == "BertPreTokenizer") {
    return std::make_unique<CharPreTokenizer>(
        std::vector<Step>{{IsWhitespace, Behavior::kRemoved}, {punctuation, Behavior::kIsolated}});
  }
  if (*type == "Punctuation") {
    absl::StatusOr<Behavior> behavior = ParseBehavior(j, where, Behavior::kIsolated);
    if (!behavior.ok()) return behavior.status();
    return std::make_unique<CharPreTokenizer>(std::vector<Step>{{punctuation, *behavior}});
  }
  if (*type == "Digits") {
    const Behavior behavior = JsonBool(j, "individual_digits", false) ? Behavior::kIsolated : Behavior::kContiguous;
    return std::make_unique<CharPreTokenizer>(std::vector<Step>{{IsNumeric, behavior}});
  }
  if (*type == "CharDelimiterSplit") {
    absl::StatusOr<std::string> delimiter = JsonString(j, "delimiter", where);
    if (!delimiter.ok()) return delimiter.status();
    const std::u32string chars = DecodeUtf8(*delimiter);
    if (chars.size() != 1) return absl::InvalidArgumentError(where + ".delimiter: must be one character");
    const char32_t d = chars[0];
    return std::make_unique<CharPreTokenizer>(
        std::vector<Step>{{[d](char32_t c) { return c == d; }, Behavior::kRemoved}});
  }
  if (*type == "Metaspace") {
    const std::string replacement = j.value("replacement", std::string("\u2581"));
    std::string scheme = j.value("prepend_scheme", std::string());
    if (scheme.empty()) scheme = JsonBool(j, "add_prefix_space", true) ? "always" : "never";
    if (scheme != "always" && scheme != "first" && scheme != "never") {
      return absl::InvalidArgumentError(absl::StrCat(where, ".prepend_scheme: \"", scheme,
                                                     "\" is not one of always, first, never"));
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, JsonBool(j, "split", true));
  }
  if (*type == "Sequence") {
    const json& list = j.value("pretokenizers", json());
    if (!list.is_array()) return absl::InvalidArgumentError(where + ".pretokenizers: must be a list");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = MakePreTokenizer(list[i], absl::StrCat(where, ".pretokenizers[", i, "]"));
      if (!step.ok()) return step.status();
      if (*step) steps.push_back(*std::move(step));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ".type: \"", *type, "\" is not a pre-tokenizer trainerd reads"));
}

}  // namespace trainerd
