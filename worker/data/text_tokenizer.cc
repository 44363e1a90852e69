#include "worker/data/text_tokenizer.h"

#include <utility>

#include "worker/data/sentencepiece_model.h"
#include "worker/tokenizers/hf_tokenizer.h"

namespace trainerd {
namespace {

class SentencePieceTextTokenizer : public TextTokenizer {
 public:
  explicit SentencePieceTextTokenizer(std::shared_ptr<const SentencePieceModel> model) : model_(std::move(model)) {}
  absl::StatusOr<std::vector<int64_t>> Encode(const std::string& text) const override {
    const std::vector<int> ids = model_->Encode(text);
    return std::vector<int64_t>(ids.begin(), ids.end());
  }
  std::string Decode(const std::vector<int64_t>& ids) const override {
    return model_->Decode(std::vector<int>(ids.begin(), ids.end()));
  }
  int64_t vocab_size() const override { return model_->vocab_size(); }
  int64_t pad_id() const override { return model_->pad_id(); }
  int64_t bos_id() const override { return model_->bos_id(); }
  int64_t eos_id() const override { return model_->eos_id(); }
  bool adds_special_tokens() const override { return false; }
  std::map<std::string, std::string> Files() const override { return {{"tokenizer.model", model_->Serialized()}}; }

 private:
  std::shared_ptr<const SentencePieceModel> model_;
};

class JsonTextTokenizer : public TextTokenizer {
 public:
  explicit JsonTextTokenizer(std::unique_ptr<HfTokenizer> tokenizer) : tokenizer_(std::move(tokenizer)) {}
  absl::StatusOr<std::vector<int64_t>> Encode(const std::string& text) const override {
    absl::StatusOr<Encoding> e = tokenizer_->Encode(text, /*add_special_tokens=*/true);
    if (!e.ok()) return e.status();
    return e->ids;
  }
  std::string Decode(const std::vector<int64_t>& ids) const override { return tokenizer_->Decode(ids); }
  int64_t vocab_size() const override { return tokenizer_->vocab_size(); }
  int64_t pad_id() const override { return tokenizer_->pad_id().value_or(-1); }
  int64_t bos_id() const override { return tokenizer_->bos_id().value_or(-1); }
  int64_t eos_id() const override { return tokenizer_->eos_id().value_or(-1); }
  bool adds_special_tokens() const override { return true; }
  std::map<std::string, std::string> Files() const override { return {{"tokenizer.json", tokenizer_->source()}}; }

 private:
  std::unique_ptr<HfTokenizer> tokenizer_;
};

}  // namespace

std::shared_ptr<const TextTokenizer> SentencePieceTokenizer(std::shared_ptr<const SentencePieceModel> model) {
  return std::make_shared<SentencePieceTextTokenizer>(std::move(model));
}

absl::StatusOr<std::shared_ptr<const TextTokenizer>> LoadTokenizerJson(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<HfTokenizer>> tokenizer = HfTokenizer::Load(dir);
  if (!tokenizer.ok()) return tokenizer.status();
  return std::shared_ptr<const TextTokenizer>(std::make_shared<JsonTextTokenizer>(*std::move(tokenizer)));
}

}  // namespace trainerd
