// WordPiece (BERT): the longest vocabulary entry that starts the word, then the longest
// "##"-prefixed entry that starts the rest, and so on; a word with a part that matches
// nothing, or longer than max_input_chars_per_word characters, is one unknown token.
#include "absl/strings/str_cat.h"
#include "worker/tokenizers/token_model.h"
#include "worker/tokenizers/tokenizer_json.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

using nlohmann::json;

class WordPieceModel : public TokenModel {
 public:
  static absl::StatusOr<std::unique_ptr<TokenModel>> FromJson(const json& j, const std::string& where) {
    auto model = std::make_unique<WordPieceModel>();
    if (absl::Status s = model->AddVocabularyObject(j.value("vocab", json()), where + ".vocab"); !s.ok()) return s;
    model->unk_ = j.value("unk_token", std::string("[UNK]"));
    if (model->Find(model->unk_) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".unk_token: \"", model->unk_, "\" is not in the vocabulary"));
    }
    model->prefix_ = j.value("continuing_subword_prefix", std::string("##"));
    model->max_chars_ = j.value("max_input_chars_per_word", 100);
    return std::unique_ptr<TokenModel>(std::move(model));
  }

  absl::Status Tokenize(const std::string& word, std::vector<Token>* out) const override {
    std::vector<size_t> starts;  // of each character, in bytes
    ForEachChar(word, [&](char32_t, size_t begin, size_t) { starts.push_back(begin); });
    if (static_cast<int64_t>(starts.size()) > max_chars_) return Unknown(out);
    starts.push_back(word.size());
    std::vector<Token> pieces;
    size_t from = 0;  // index into starts
    while (from + 1 < starts.size()) {
      bool found = false;
      for (size_t to = starts.size() - 1; to > from; --to) {
        std::string piece = word.substr(starts[from], starts[to] - starts[from]);
        if (from > 0) piece = prefix_ + piece;
        if (const int64_t* id = Find(piece)) {
          pieces.push_back({*id, piece});
          from = to;
          found = true;
          break;
        }
      }
      if (!found) return Unknown(out);
    }
    for (Token& t : pieces) out->push_back(std::move(t));
    return absl::OkStatus();
  }

 private:
  absl::Status Unknown(std::vector<Token>* out) const {
    out->push_back({*Find(unk_), unk_});
    return absl::OkStatus();
  }

  std::string unk_, prefix_;
  int64_t max_chars_ = 100;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TokenModel>> MakeWordPieceModel(const json& j, const std::string& where) {
  return WordPieceModel::FromJson(j, where);
}

}  // namespace trainerd
