#include "worker/tokenizers/token_decoder.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "worker/tokenizers/byte_level.h"
#include "worker/tokenizers/tokenizer_json.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

using nlohmann::json;

// The bytes back to text, invalid sequences as U+FFFD (String::from_utf8_lossy).
std::string Utf8Lossy(const std::string& bytes) { return EncodeUtf8(DecodeUtf8(bytes)); }

class ByteLevelDecoder : public TokenDecoder {
 public:
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const std::string& t : tokens) bytes += ByteLevelToBytes(t).value_or(t);
    return {Utf8Lossy(bytes)};
  }
};

class WordPieceDecoder : public TokenDecoder {
 public:
  WordPieceDecoder(std::string prefix, bool cleanup) : prefix_(std::move(prefix)), cleanup_(cleanup) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string& t = tokens[i];
      if (i > 0) {
        if (t.rfind(prefix_, 0) == 0) {
          t = t.substr(prefix_.size());
        } else {
          t = " " + t;
        }
      }
      if (cleanup_) t = CleanUpTokenization(t);
    }
    return tokens;
  }

 private:
  std::string prefix_;
  bool cleanup_;
};

class MetaspaceDecoder : public TokenDecoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first) : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string t = absl::StrReplaceAll(tokens[i], {{replacement_, " "}});
      if (i == 0 && strip_first_ && !t.empty() && t[0] == ' ') t = t.substr(1);
      tokens[i] = t;
    }
    return tokens;
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

// <0x41> tokens back to their bytes; a run of them that is not UTF-8 becomes one U+FFFD
// per byte.
class ByteFallbackDecoder : public TokenDecoder {
 public:
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (bytes.empty()) return;
      const std::u32string chars = DecodeUtf8(bytes);
      bool valid = true;
      for (char32_t c : chars) valid = valid && c != 0xFFFD;
      out.push_back(valid ? bytes : EncodeUtf8(std::u32string(bytes.size(), 0xFFFD)));
      bytes.clear();
    };
    for (const std::string& t : tokens) {
      uint32_t value = 0;
      if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>' && absl::SimpleHexAtoi(t.substr(3, 2), &value)) {
        bytes.push_back(static_cast<char>(value));
        continue;
      }
      flush();
      out.push_back(t);
    }
    flush();
    return out;
  }
};

class FuseDecoder : public TokenDecoder {
 public:
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    return {absl::StrJoin(tokens, "")};
  }
};

class StripDecoder : public TokenDecoder {
 public:
  StripDecoder(std::string content, int start, int stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (std::string& t : tokens) {
      for (int i = 0; i < start_ && !content_.empty() && t.rfind(content_, 0) == 0; ++i) t = t.substr(content_.size());
      for (int i = 0; i < stop_ && !content_.empty() && t.size() >= content_.size() &&
                      t.compare(t.size() - content_.size(), content_.size(), content_) == 0;
           ++i) {
        t.resize(t.size() - content_.size());
      }
    }
    return tokens;
  }

 private:
  std::string content_;
  int start_, stop_;
};

class ReplaceDecoder : public TokenDecoder {
 public:
  ReplaceDecoder(TextPattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (std::string& t : tokens) {
      // Decoding never fails: a token the pattern cannot run on stays as it is.
      t = pattern_.ReplaceAll(t, content_).value_or(t);
    }
    return tokens;
  }

 private:
  TextPattern pattern_;
  std::string content_;
};

// The original BPE's end-of-word suffix ("</w>") becomes a space, except on the last token.
class BpeDecoder : public TokenDecoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = absl::StrReplaceAll(tokens[i], {{suffix_, i + 1 == tokens.size() ? "" : " "}});
    }
    return tokens;
  }

 private:
  std::string suffix_;
};

class SequenceDecoder : public TokenDecoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<TokenDecoder>> steps) : steps_(std::move(steps)) {}
  std::vector<std::string> DecodeChain(std::vector<std::string> tokens) const override {
    for (const auto& step : steps_) tokens = step->DecodeChain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<TokenDecoder>> steps_;
};

}  // namespace

std::string CleanUpTokenization(const std::string& text) {
  return absl::StrReplaceAll(text, {{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                                    {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}});
}

absl::StatusOr<std::unique_ptr<TokenDecoder>> MakeTokenDecoder(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  absl::StatusOr<std::string> type = JsonType(j, where);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (*type == "WordPiece") {
    return std::make_unique<WordPieceDecoder>(j.value("prefix", std::string("##")), JsonBool(j, "cleanup", true));
  }
  if (*type == "Metaspace") {
    std::string scheme = j.value("prepend_scheme", std::string());
    if (scheme.empty()) scheme = JsonBool(j, "add_prefix_space", true) ? "always" : "never";
    return std::make_unique<MetaspaceDecoder>(j.value("replacement", std::string("\u2581")), scheme != "never");
  }
  if (*type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (*type == "Fuse") return std::make_unique<FuseDecoder>();
  if (*type == "Strip") {
    return std::make_unique<StripDecoder>(j.value("content", std::string(" ")), j.value("start", 0), j.value("stop", 0));
  }
  if (*type == "Replace") {
    absl::StatusOr<TextPattern> pattern = TextPattern::FromJson(j.value("pattern", json()), where + ".pattern");
    if (!pattern.ok()) return pattern.status();
    absl::StatusOr<std::string> content = JsonString(j, "content", where);
    if (!content.ok()) return content.status();
    return std::make_unique<ReplaceDecoder>(*std::move(pattern), *content);
  }
  if (*type == "BPEDecoder") return std::make_unique<BpeDecoder>(j.value("suffix", std::string("</w>")));
  if (*type == "Sequence") {
    const json& list = j.value("decoders", json());
    if (!list.is_array()) return absl::InvalidArgumentError(where + ".decoders: must be a list");
    std::vector<std::unique_ptr<TokenDecoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = MakeTokenDecoder(list[i], absl::StrCat(where, ".decoders[", i, "]"));
      if (!step.ok()) return step.status();
      if (*step) steps.push_back(*std::move(step));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ".type: \"", *type, "\" is not a decoder trainerd reads"));
}

}  // namespace trainerd
