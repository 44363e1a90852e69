// libtrainerd_sentencepiece.so: the only code that includes sentencepiece's headers
// (see sentencepiece_model.h for why it is a separate module).
#include "worker/data/sentencepiece_model.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace trainerd {
namespace {

// Feeds in-memory sentences to the trainer.
class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& sentences_;
  size_t index_ = 0;
};


class SentencePieceModelImpl : public SentencePieceModel {
 public:
  SentencePieceModelImpl() : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}

  std::string Load(const std::string& bytes) {
    sentencepiece::util::Status s = processor_->LoadFromSerializedProto(bytes);
    return s.ok() ? "" : s.ToString();
  }
  std::vector<int> Encode(const std::string& text) const override {
    std::vector<int> ids;
    processor_->Encode(text, &ids);
    return ids;
  }
  std::string Decode(const std::vector<int>& ids) const override {
    std::string text;
    processor_->Decode(ids, &text);
    return text;
  }
  int vocab_size() const override { return processor_->GetPieceSize(); }
  int pad_id() const override { return processor_->pad_id(); }
  int bos_id() const override { return processor_->bos_id(); }
  int eos_id() const override { return processor_->eos_id(); }
  std::string Serialized() const override { return processor_->serialized_model_proto(); }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

SentencePieceModel* FromSerializedImpl(const std::string& bytes, std::string* error) {
  auto model = std::make_unique<SentencePieceModelImpl>();
  *error = model->Load(bytes);
  return error->empty() ? model.release() : nullptr;
}

}  // namespace
}  // namespace trainerd

extern "C" __attribute__((visibility("default"))) trainerd::SentencePieceModel* trainerd_sentencepiece_from_serialized(
    const std::string& bytes, std::string* error) {
  return trainerd::FromSerializedImpl(bytes, error);
}

extern "C" __attribute__((visibility("default"))) trainerd::SentencePieceModel* trainerd_sentencepiece_train(
    const std::vector<std::string>& sentences, int vocab_size, const std::string& model_type, int num_threads,
    std::string* error) {
  trainerd::VectorIterator iterator(sentences);
  std::string serialized;
  // A pad id for padded batches; a soft vocabulary limit so that a small corpus still
  // trains (with fewer pieces) instead of failing; no input shuffling, so that every
  // rank of a job trains the same tokenizer from the same text.
  const std::unordered_map<std::string, std::string> options = {
      {"vocab_size", std::to_string(vocab_size)}, {"model_type", model_type},
      {"unk_id", "0"}, {"bos_id", "1"}, {"eos_id", "2"}, {"pad_id", "3"},
      {"hard_vocab_limit", "false"}, {"num_threads", std::to_string(num_threads)},
      {"input_sentence_size", "2000000"}, {"shuffle_input_sentence", "false"},
      {"minloglevel", "2"}};
  sentencepiece::util::Status s = sentencepiece::SentencePieceTrainer::Train(options, &iterator, &serialized);
  if (!s.ok()) {
    *error = s.ToString();
    return nullptr;
  }
  return trainerd::FromSerializedImpl(serialized, error);
}
