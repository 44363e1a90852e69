#include "worker/tokenizers/hf_tokenizer.h"

#include <sys/stat.h>

#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spec/confined_file.h"
#include "worker/tokenizers/tokenizer_json.h"

namespace trainerd {
namespace {

using nlohmann::json;

constexpr char kWhere[] = "tokenizer.json: ";
// A tokenizer.json of a large vocabulary is tens of megabytes (Llama-3's: 9 MB).
constexpr size_t kMaxTokenizerFileBytes = size_t{512} << 20;

// A special token named in tokenizer_config.json: a string, or an AddedToken object
// ({"content": ...}), or null.
std::optional<std::string> SpecialTokenName(const json& config, const std::string& key) {
  if (!config.contains(key)) return std::nullopt;
  const json& t = config[key];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::FromJson(const std::string& tokenizer_json,
                                                                   const std::string& tokenizer_config_json) {
  const json j = json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("tokenizer.json: is not a JSON object");
  std::unique_ptr<HfTokenizer> t(new HfTokenizer());
  t->source_ = tokenizer_json;
  try {
    // Truncation and padding are the caller's (the data pipeline's max_seq_length).
    auto normalizer = MakeNormalizer(j.value("normalizer", json()), absl::StrCat(kWhere, "normalizer"));
    if (!normalizer.ok()) return normalizer.status();
    t->normalizer_ = *std::move(normalizer);
    auto pre = MakePreTokenizer(j.value("pre_tokenizer", json()), absl::StrCat(kWhere, "pre_tokenizer"));
    if (!pre.ok()) return pre.status();
    t->pre_tokenizer_ = *std::move(pre);
    auto model = MakeTokenModel(j.value("model", json()), absl::StrCat(kWhere, "model"));
    if (!model.ok()) return model.status();
    t->model_ = *std::move(model);
    auto post = MakePostProcessor(j.value("post_processor", json()), absl::StrCat(kWhere, "post_processor"));
    if (!post.ok()) return post.status();
    t->post_processor_ = *std::move(post);
    auto decoder = MakeTokenDecoder(j.value("decoder", json()), absl::StrCat(kWhere, "decoder"));
    if (!decoder.ok()) return decoder.status();
    t->decoder_ = *std::move(decoder);
    auto added = AddedVocabulary::FromJson(j.value("added_tokens", json()), t->normalizer_.get(),
                                           absl::StrCat(kWhere, "added_tokens"));
    if (!added.ok()) return added.status();
    t->added_ = *std::move(added);
    if (!tokenizer_config_json.empty()) {
      if (absl::Status s = t->Configure(tokenizer_config_json); !s.ok()) return s;
    }
  } catch (const json::exception& e) {
    // A field of the wrong JSON type somewhere the readers did not check by hand.
    return absl::InvalidArgumentError(absl::StrCat(kWhere, "a field has the wrong type: ", e.what()));
  }
  return t;
}

absl::Status HfTokenizer::Configure(const std::string& config_json) {
  const json c = json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!c.is_object()) return absl::InvalidArgumentError("tokenizer_config.json: is not a JSON object");
  clean_up_ = JsonBool(c, "clean_up_tokenization_spaces", false);
  const std::optional<std::string> bos = SpecialTokenName(c, "bos_token"), eos = SpecialTokenName(c, "eos_token"),
                                   pad = SpecialTokenName(c, "pad_token");
  if (bos) bos_id_ = TokenToId(*bos);
  if (eos) eos_id_ = TokenToId(*eos);
  if (pad) pad_id_ = TokenToId(*pad);
  // transformers' Llama and Gemma fast tokenizers rebuild the post-processor from
  // add_bos_token (default true) and add_eos_token (default false).
  const std::string cls = c.value("tokenizer_class", std::string());
  if (absl::StartsWith(cls, "Llama") || absl::StartsWith(cls, "CodeLlama") || absl::StartsWith(cls, "Gemma")) {
    const bool add_bos = JsonBool(c, "add_bos_token", true), add_eos = JsonBool(c, "add_eos_token", false);
    if ((add_bos && !bos_id_) || (add_eos && !eos_id_)) {
      return absl::InvalidArgumentError("tokenizer_config.json: add_bos_token/add_eos_token name a token the "
                                        "vocabulary lacks");
    }
    std::vector<std::string> single, pair;
    std::map<std::string, int64_t> ids;
    if (add_bos) ids[*bos] = *bos_id_;
    if (add_eos) ids[*eos] = *eos_id_;
    for (int k = 0; k < 2; ++k) {
      const std::string type = absl::StrCat(":", k);
      std::vector<std::string>& out = k == 0 ? single : pair;
      if (k == 1) out = single;
      if (add_bos) out.push_back(*bos + type);
      out.push_back((k == 0 ? "$A" : "$B") + type);
      if (add_eos) out.push_back(*eos + type);
    }
    post_processor_ = MakeTemplate(single, pair, ids);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HfTokenizer>> HfTokenizer::Load(const std::string& dir) {
  absl::StatusOr<std::string> text = ReadConfined(dir + "/tokenizer.json", kMaxTokenizerFileBytes);
  if (!text.ok()) return text.status();
  std::string config;
  struct stat st {};
  if (::stat((dir + "/tokenizer_config.json").c_str(), &st) == 0) {
    absl::StatusOr<std::string> read = ReadConfined(dir + "/tokenizer_config.json", 64 << 20);
    if (!read.ok()) return read.status();
    config = *std::move(read);
  }
  auto tokenizer = FromJson(*text, config);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(), absl::StrCat(dir, "/", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<Encoding> HfTokenizer::EncodeOne(const std::string& text) const {
  absl::StatusOr<std::vector<TextPiece>> pieces = added_.Split(text, normalizer_.get());
  if (!pieces.ok()) return pieces.status();
  Encoding out;
  std::vector<Token> tokens;
  for (size_t i = 0; i < pieces->size(); ++i) {
    const TextPiece& piece = (*pieces)[i];
    if (piece.id) {
      tokens.push_back({*piece.id, piece.text});
      continue;
    }
    std::vector<std::string> words = {piece.text};
    if (pre_tokenizer_) {
      if (absl::Status s = pre_tokenizer_->PreTokenize(&words, /*first=*/i == 0); !s.ok()) return s;
    }
    for (const std::string& word : words) {
      if (absl::Status s = model_->Tokenize(word, &tokens); !s.ok()) return s;
    }
  }
  for (Token& t : tokens) out.Append(t.id, t.text, 0);
  return out;
}

absl::StatusOr<Encoding> HfTokenizer::Encode(const std::string& text, bool add_special_tokens) const {
  absl::StatusOr<Encoding> a = EncodeOne(text);
  if (!a.ok()) return a.status();
  return post_processor_ ? post_processor_->Process(*a, nullptr, add_special_tokens) : JoinEncodings(*a, nullptr);
}

absl::StatusOr<Encoding> HfTokenizer::EncodePair(const std::string& text, const std::string& pair,
                                                 bool add_special_tokens) const {
  absl::StatusOr<Encoding> a = EncodeOne(text);
  if (!a.ok()) return a.status();
  absl::StatusOr<Encoding> b = EncodeOne(pair);
  if (!b.ok()) return b.status();
  return post_processor_ ? post_processor_->Process(*a, &*b, add_special_tokens) : JoinEncodings(*a, &*b);
}

std::string HfTokenizer::Decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  for (int64_t id : ids) {
    if (const AddedToken* added = added_.FindById(id)) {
      if (!(skip_special_tokens && added->special)) tokens.push_back(added->content);
      continue;
    }
    if (std::optional<std::string> token = model_->IdToToken(id)) tokens.push_back(*token);
  }
  return decoder_ ? absl::StrJoin(decoder_->DecodeChain(std::move(tokens)), "") : absl::StrJoin(tokens, " ");
}

int64_t HfTokenizer::vocab_size() const {
  int64_t size = model_->vocab_size();
  for (const AddedToken& t : added_.tokens()) size = std::max(size, t.id + 1);
  return size;
}

std::optional<int64_t> HfTokenizer::TokenToId(const std::string& token) const {
  if (const AddedToken* added = added_.FindByContent(token)) return added->id;
  return model_->TokenToId(token);
}

std::optional<std::string> HfTokenizer::IdToToken(int64_t id) const {
  if (const AddedToken* added = added_.FindById(id)) return added->content;
  return model_->IdToToken(id);
}

}  // namespace trainerd
