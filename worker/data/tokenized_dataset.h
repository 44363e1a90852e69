// Pre-tokenized data: JSONL rows with `input_ids` (and optional `attention_mask`,
// `labels` and `token_type_ids`), as a tokenized Hugging Face dataset is stored, used as
// given with no tokenizer. For a causal LM the rows are packed into blocks of max_seq_length tokens
// (data.packing, run_clm's group_texts: concatenated with no tokens added, the rest
// dropped), or each row is one example, padded with labels -100. For classification
// (data.train.label_field) each row is one example, padded to max_seq_length (the data
// loader trims the padding each batch does not need); for a model that reads token
// types (BERT) the inputs are then [N, 2, max_seq_length], ids then types, as with text
// pairs. Models that read none ignore `token_type_ids`, as the Trainer removes the
// columns a model's forward does not take.
#ifndef TRAINERD_WORKER_DATA_TOKENIZED_DATASET_H_
#define TRAINERD_WORKER_DATA_TOKENIZED_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/v1/job_spec.pb.h"
#include "worker/data/dataset.h"

namespace trainerd {

// What a model that brings its vocabulary (a Hugging Face folder) fixes about tokens:
// ids must be below `vocab_size`; `pad_id` pads (-1: the model has none, which
// classification of rows of unequal length needs). For raw text: the folder's
// tokenizer (`tokenizer_path`, "" when it has none) and whether it adds BOS and EOS to
// each text (tokenizer_config.json's add_bos_token, add_eos_token).
struct TokenSpace {
  int64_t vocab_size = 0;
  int64_t pad_id = -1;
  std::string tokenizer_path;
  // The folder when it has a tokenizer.json ("" otherwise): read instead of tokenizer.model.
  std::string tokenizer_json_dir;
  bool add_bos = false;
  bool add_eos = false;
  // A BERT folder's vocab.txt ("" when it has none): WordPiece instead of sentencepiece.
  std::string wordpiece_vocab;
  bool do_lower_case = true;
  // How many token types the model reads (BERT's type_vocab_size); 0: none.
  int64_t type_vocab_size = 0;
};

// One row of tokens: its ids, and their labels (-100 where nothing is predicted).
struct TokenRow {
  std::vector<int64_t> ids;
  std::vector<int64_t> labels;
  std::vector<int64_t> token_types;  // empty: the row has none (all 0)
  std::string label;                 // the class label's text, for classification
};

// Causal LM examples of `rows`: packed into blocks of `length` (run_clm's group_texts;
// the incomplete last block is dropped), or one per row, cut to `length` and padded
// with `pad`, labels -100 there.
Dataset CausalLmExamples(const std::vector<TokenRow>& rows, int64_t length, bool packing, int64_t pad);

// True when the source is JSONL whose first row has `input_ids`.
bool IsTokenizedJsonl(const trainer::v1::DatasetSource& source);

// Loads every split of `data` (all pre-tokenized); `data_seed` shuffles a carved eval
// split. Errors name the file, the line and the field, never the values.
absl::StatusOr<DatasetBundle> LoadTokenizedDatasets(const trainer::v1::DataSpec& data, int64_t data_seed,
                                                    const TokenSpace& tokens);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_TOKENIZED_DATASET_H_
