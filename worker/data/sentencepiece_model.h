// SentencePieceModel: a sentencepiece tokenizer, behind a plain interface.
//
// Debian's libsentencepiece carries its own copy of protobuf 3.14 and exports its
// symbols, which clash with the protobuf 3.21 the rest of trainerd uses (a process that
// links both crashes at start). So the library lives in a separate module,
// libtrainerd_sentencepiece.so, which this loads on first use with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND): the module and libsentencepiece resolve protobuf within themselves.
// The interface crosses that boundary with standard types only (no Abseil, no protobuf).
#ifndef TRAINERD_WORKER_DATA_SENTENCEPIECE_MODEL_H_
#define TRAINERD_WORKER_DATA_SENTENCEPIECE_MODEL_H_

#include <memory>
#include <string>
#include <vector>

namespace trainerd {

class SentencePieceModel {
 public:
  virtual ~SentencePieceModel() = default;

  // From a serialized model (the bytes of a .model file). Sets *error on failure.
  static std::unique_ptr<SentencePieceModel> FromSerialized(const std::string& bytes, std::string* error);
  // Trains a model on `sentences`: model_type "unigram" or "bpe". The vocabulary may
  // come out smaller than `vocab_size` on a small corpus. Ids: unk 0, bos 1, eos 2,
  // pad 3. The same sentences always give the same model.
  static std::unique_ptr<SentencePieceModel> Train(const std::vector<std::string>& sentences, int vocab_size,
                                                   const std::string& model_type, int num_threads,
                                                   std::string* error);

  virtual std::vector<int> Encode(const std::string& text) const = 0;
  virtual std::string Decode(const std::vector<int>& ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual int pad_id() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
  // The .model file's bytes (Python: sentencepiece.SentencePieceProcessor(model_file=...)).
  virtual std::string Serialized() const = 0;
};

// The module's entry points (C linkage, looked up with dlsym).
extern "C" {
using SentencePieceFromSerializedFn = SentencePieceModel* (*)(const std::string& bytes, std::string* error);
using SentencePieceTrainFn = SentencePieceModel* (*)(const std::vector<std::string>& sentences, int vocab_size,
                                                     const std::string& model_type, int num_threads,
                                                     std::string* error);
}

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_SENTENCEPIECE_MODEL_H_
