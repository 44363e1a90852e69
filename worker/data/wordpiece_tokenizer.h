// WordPieceTokenizer: BERT's tokenizer over a vocab.txt, as transformers' (slow, Python)
// BertTokenizer does it: basic tokenisation (control characters dropped, whitespace
// normalised, CJK ideographs and punctuation split off, lower-casing and accent
// stripping when do_lower_case), then greedy longest-match-first WordPiece with "##"
// continuations ([UNK] for a word with no match or over 100 characters), and
// [CLS] A [SEP] (B [SEP]) with token types 0 for the first segment and 1 for the second.
//
// Text is UTF-8. Lower-casing and accent stripping cover ASCII and Latin-1 (U+00C0 to
// U+00FF, the accented letters of Western European languages); other letters are kept
// as they are. Torch-free.
#ifndef TRAINERD_WORKER_DATA_WORDPIECE_TOKENIZER_H_
#define TRAINERD_WORKER_DATA_WORDPIECE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace trainerd {

struct EncodedText {
  std::vector<int64_t> ids;
  std::vector<int64_t> token_type_ids;
};

class WordPieceTokenizer {
 public:
  // From vocab.txt's text (one token per line, the line number is its id).
  // INVALID_ARGUMENT when it lacks [CLS], [SEP], [UNK] or [PAD].
  static absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> FromVocab(const std::string& vocab_text,
                                                                       bool do_lower_case);

  // The WordPiece ids of `text`, without special tokens.
  std::vector<int64_t> Tokenize(const std::string& text) const;
  // [CLS] text [SEP], or [CLS] text [SEP] pair [SEP] with token types, cut to
  // `max_length` as transformers' "longest_first" truncation does (a token at a time
  // from the longer segment).
  EncodedText Encode(const std::string& text, const std::string* pair, int64_t max_length) const;

  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }
  int64_t pad_id() const { return pad_id_; }

 private:
  WordPieceTokenizer() = default;
  // Basic tokenisation: the words (and punctuation marks) of `text`.
  std::vector<std::string> BasicTokens(const std::string& text) const;
  void AppendWordPieces(const std::string& word, std::vector<int64_t>* ids) const;

  std::unordered_map<std::string, int64_t> vocab_;
  bool do_lower_case_ = true;
  int64_t cls_id_ = -1, sep_id_ = -1, unk_id_ = -1, pad_id_ = -1;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_WORDPIECE_TOKENIZER_H_
