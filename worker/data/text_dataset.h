// Text datasets: plain text or JSONL files, a sentencepiece tokenizer (loaded, or
// trained on the training text), and the two ways text becomes fixed-size examples:
//
//   causal language modelling (no label field): every document's tokens plus an
//   end-of-sequence token are concatenated and cut into blocks of max_seq_length, as
//   HF's run_clm.py group_texts does (the incomplete last block is dropped); the labels
//   are the inputs, shifted inside the loss.
//   classification (data.train.label_field set): each text's tokens are cut or padded
//   (pad id) to max_seq_length; the attention mask is inputs != pad_id.
#ifndef TRAINERD_WORKER_DATA_TEXT_DATASET_H_
#define TRAINERD_WORKER_DATA_TEXT_DATASET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"
#include "worker/data/tokenized_dataset.h"

namespace trainerd {

// A text example before tokenisation.
struct TextExample {
  std::string text;
  std::string label;  // classification only
  std::string pair;   // the second text of a pair (text_pair_field), or ""
};

// Reads the documents of a text file (separated by empty lines or "%" lines) or the
// records of a JSONL file. `limit` > 0 keeps the first `limit`.
absl::StatusOr<std::vector<TextExample>> ReadTextExamples(const trainer::v1::DatasetSource& source);

// Builds every split of a text job (see above); the bundle carries the tokenizer.
// `model_tokens` (a Hugging Face folder's, or null): its tokenizer unless
// data.tokenizer.path names one, its BOS/EOS conventions instead of an EOS after each
// document, its padding id and its vocabulary (the tokenizer's must fit in it).
absl::StatusOr<DatasetBundle> LoadTextDatasets(const trainer::v1::DataSpec& data, int64_t data_seed,
                                               const TokenSpace* model_tokens = nullptr);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_TEXT_DATASET_H_
