// HfTokenizer: a Hugging Face tokenizer.json (the Rust tokenizers library's file, the
// only tokenizer Llama-3, Qwen2 and current GPT-2 folders ship) read and run in C++:
//
//   text -> added tokens cut out (AddedVocabulary) -> normalizer -> pre-tokenizer
//        -> model (BPE, WordPiece, Unigram) per word -> post-processor -> ids
//   ids -> tokens -> decoder -> text
//
// with tokenizer_config.json's settings that transformers applies on top (Llama's
// add_bos_token / add_eos_token, clean_up_tokenization_spaces, the special tokens' names).
// The golden tests compare every id with the Rust library's on tests/fixtures.
#ifndef TRAINERD_WORKER_TOKENIZERS_HF_TOKENIZER_H_
#define TRAINERD_WORKER_TOKENIZERS_HF_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/tokenizers/added_vocabulary.h"
#include "worker/tokenizers/normalizer.h"
#include "worker/tokenizers/post_processor.h"
#include "worker/tokenizers/pre_tokenizer.h"
#include "worker/tokenizers/token_decoder.h"
#include "worker/tokenizers/token_model.h"

namespace trainerd {

class HfTokenizer {
 public:
  // From tokenizer.json's text and tokenizer_config.json's (empty: none). Errors are
  // INVALID_ARGUMENT naming the field ("tokenizer.json: model.merges[3]: ...").
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> FromJson(const std::string& tokenizer_json,
                                                               const std::string& tokenizer_config_json);
  // `dir`/tokenizer.json, and tokenizer_config.json beside it when there is one, read
  // within the spec's read roots.
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> Load(const std::string& dir);

  // The ids of `text` (and `pair`), with the post-processor's special tokens when
  // `add_special_tokens`. RESOURCE_EXHAUSTED when a pattern's match limit is hit.
  absl::StatusOr<Encoding> Encode(const std::string& text, bool add_special_tokens = true) const;
  absl::StatusOr<Encoding> EncodePair(const std::string& text, const std::string& pair,
                                      bool add_special_tokens = true) const;
  // The text of `ids` (unknown ids are skipped), without the special added tokens when
  // `skip_special_tokens`, as the library's decode gives it; transformers' decode also
  // applies CleanUpTokenization where clean_up_tokenization_spaces() says so.
  std::string Decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  // The model's vocabulary and the added tokens: the largest id plus one.
  int64_t vocab_size() const;
  std::optional<int64_t> TokenToId(const std::string& token) const;
  std::optional<std::string> IdToToken(int64_t id) const;
  // tokenizer_config.json's bos_token, eos_token and pad_token, where the vocabulary has them.
  std::optional<int64_t> bos_id() const { return bos_id_; }
  std::optional<int64_t> eos_id() const { return eos_id_; }
  std::optional<int64_t> pad_id() const { return pad_id_; }
  bool clean_up_tokenization_spaces() const { return clean_up_; }
  // tokenizer.json as it was read (a saved model folder gets it back).
  const std::string& source() const { return source_; }

 private:
  HfTokenizer() = default;
  // The tokens of one text, before post-processing.
  absl::StatusOr<Encoding> EncodeOne(const std::string& text) const;
  // tokenizer_config.json's part.
  absl::Status Configure(const std::string& config_json);

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<TokenModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<TokenDecoder> decoder_;
  AddedVocabulary added_;
  std::optional<int64_t> bos_id_, eos_id_, pad_id_;
  bool clean_up_ = false;
  std::string source_;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TOKENIZERS_HF_TOKENIZER_H_
