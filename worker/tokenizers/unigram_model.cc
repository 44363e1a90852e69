// Unigram (SentencePiece's unigram model, as T5 and XLNet ship it): the segmentation of
// the word into vocabulary pieces whose scores (log probabilities) sum highest, found by
// Viterbi; a character no piece covers is the unknown token, scored below every piece,
// and unknown neighbours fuse into one. With byte_fallback an unknown part becomes its
// bytes' <0xXX> tokens.
#include <limits>

#include "absl/strings/str_cat.h"
#include "worker/tokenizers/token_model.h"
#include "worker/tokenizers/tokenizer_json.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

using nlohmann::json;

// The library's penalty for the unknown token below the lowest score.
constexpr double kUnknownPenalty = 10.0;

class UnigramModel : public TokenModel {
 public:
  static absl::StatusOr<std::unique_ptr<TokenModel>> FromJson(const json& j, const std::string& where) {
    auto model = std::make_unique<UnigramModel>();
    const json& vocab = j.value("vocab", json());
    if (!vocab.is_array() || vocab.empty()) return absl::InvalidArgumentError(where + ".vocab: must be a list of [piece, score]");
    double lowest = std::numeric_limits<double>::infinity();
    for (size_t id = 0; id < vocab.size(); ++id) {
      const json& entry = vocab[id];
      if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".vocab[", id, "]: must be [piece, score]"));
      }
      const std::string piece = entry[0].get<std::string>();
      model->AddToVocabulary(piece, static_cast<int64_t>(id));
      model->scores_[piece] = entry[1].get<double>();
      lowest = std::min(lowest, entry[1].get<double>());
      model->max_chars_ = std::max(model->max_chars_, DecodeUtf8(piece).size());
    }
    model->unknown_score_ = lowest - kUnknownPenalty;
    if (j.contains("unk_id") && j["unk_id"].is_number_integer()) {
      const int64_t unk = j["unk_id"].get<int64_t>();
      if (unk < 0 || unk >= static_cast<int64_t>(vocab.size())) {
        return absl::InvalidArgumentError(where + ".unk_id: is not an id of the vocabulary");
      }
      model->unk_id_ = unk;
    }
    model->byte_fallback_ = JsonBool(j, "byte_fallback", false);
    return std::unique_ptr<TokenModel>(std::move(model));
  }

  absl::Status Tokenize(const std::string& word, std::vector<Token>* out) const override {
    std::vector<size_t> starts;
    ForEachChar(word, [&](char32_t, size_t begin, size_t) { starts.push_back(begin); });
    const size_t n = starts.size();
    starts.push_back(word.size());
    // best[i]: the highest score of a segmentation of the first i characters; from[i]
    // where its last piece starts (and whether that piece is unknown).
    std::vector<double> best(n + 1, -std::numeric_limits<double>::infinity());
    std::vector<size_t> from(n + 1, 0);
    std::vector<bool> unknown(n + 1, false);
    best[0] = 0;
    for (size_t i = 0; i < n; ++i) {
      if (best[i] == -std::numeric_limits<double>::infinity()) continue;
      bool single = false;
      for (size_t len = 1; len <= max_chars_ && i + len <= n; ++len) {
        auto it = scores_.find(word.substr(starts[i], starts[i + len] - starts[i]));
        if (it == scores_.end()) continue;
        single = single || len == 1;
        if (best[i] + it->second > best[i + len]) {
          best[i + len] = best[i] + it->second;
          from[i + len] = i;
          unknown[i + len] = false;
        }
      }
      if (!single && best[i] + unknown_score_ > best[i + 1]) {
        best[i + 1] = best[i] + unknown_score_;
        from[i + 1] = i;
        unknown[i + 1] = true;
      }
    }
    std::vector<std::pair<std::string, bool>> pieces;  // text, unknown
    for (size_t end = n; end > 0; end = from[end]) {
      pieces.emplace_back(word.substr(starts[from[end]], starts[end] - starts[from[end]]), unknown[end]);
    }
    std::vector<std::pair<std::string, bool>> fused;
    for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
      if (it->second && !fused.empty() && fused.back().second) {
        fused.back().first += it->first;
      } else {
        fused.push_back(*it);
      }
    }
    for (const auto& [text, is_unknown] : fused) {
      if (!is_unknown) {
        out->push_back({*Find(text), text});
        continue;
      }
      if (byte_fallback_ && AppendBytes(text, out)) continue;
      if (!unk_id_) return absl::InvalidArgumentError("the Unigram model has no unk_id for text it cannot cover");
      out->push_back({*unk_id_, text});
    }
    return absl::OkStatus();
  }

 private:
  // Appends the <0xXX> tokens of `text`'s bytes; false (nothing appended) when the
  // vocabulary lacks one.
  bool AppendBytes(const std::string& text, std::vector<Token>* out) const {
    std::vector<Token> bytes;
    for (unsigned char b : text) {
      const std::string name = ByteFallbackToken(b);
      const int64_t* id = Find(name);
      if (id == nullptr) return false;
      bytes.push_back({*id, name});
    }
    out->insert(out->end(), bytes.begin(), bytes.end());
    return true;
  }

  std::map<std::string, double> scores_;
  size_t max_chars_ = 1;
  double unknown_score_ = 0;
  std::optional<int64_t> unk_id_;
  bool byte_fallback_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TokenModel>> MakeUnigramModel(const json& j, const std::string& where) {
  return UnigramModel::FromJson(j, where);
}

}  // namespace trainerd
