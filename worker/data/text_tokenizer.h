// TextTokenizer: how the text datasets turn raw text into token ids, whichever file the
// tokenizer comes from: sentencepiece's tokenizer.model (trained on the job's text, or
// a model folder's) or a Hugging Face tokenizer.json (worker/tokenizers), which a folder's
// tokenizer.model gives way to, as transformers' fast tokenizers are preferred.
#ifndef TRAINERD_WORKER_DATA_TEXT_TOKENIZER_H_
#define TRAINERD_WORKER_DATA_TEXT_TOKENIZER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace trainerd {

class SentencePieceModel;

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  // The ids of `text`, with the special tokens the tokenizer adds itself (a
  // tokenizer.json's post-processor: Llama-3's <|begin_of_text|>); sentencepiece adds none.
  virtual absl::StatusOr<std::vector<int64_t>> Encode(const std::string& text) const = 0;
  virtual std::string Decode(const std::vector<int64_t>& ids) const = 0;
  // The largest id plus one.
  virtual int64_t vocab_size() const = 0;
  // -1 where the tokenizer has none.
  virtual int64_t pad_id() const = 0;
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  // Whether Encode already adds the special tokens the model expects (then the dataset
  // adds no BOS or EOS of its own).
  virtual bool adds_special_tokens() const = 0;
  // What a saved model folder holds for the tokenizer, by file name.
  virtual std::map<std::string, std::string> Files() const = 0;
};

// A sentencepiece model as a TextTokenizer (its files: tokenizer.model).
std::shared_ptr<const TextTokenizer> SentencePieceTokenizer(std::shared_ptr<const SentencePieceModel> model);

// DIR/tokenizer.json (with DIR/tokenizer_config.json) as a TextTokenizer (its files:
// tokenizer.json). Errors name the file and the field.
absl::StatusOr<std::shared_ptr<const TextTokenizer>> LoadTokenizerJson(const std::string& dir);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_TEXT_TOKENIZER_H_
