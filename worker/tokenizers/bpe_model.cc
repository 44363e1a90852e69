// BPE: a word starts as its characters (or bytes, for byte-level vocabularies) and the
// adjacent pair of lowest merge rank is merged, again and again, until no pair of the
// word has a merge; ties go to the leftmost pair, as the library's priority queue does.
// Words repeat, so their tokens are cached, as the library caches them.
#include <queue>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#include "absl/strings/str_cat.h"
#include "worker/tokenizers/token_model.h"
#include "worker/tokenizers/tokenizer_json.h"
#include "worker/tokenizers/unicode_text.h"

namespace trainerd {
namespace {

using nlohmann::json;

class BpeModel : public TokenModel {
 public:
  static absl::StatusOr<std::unique_ptr<TokenModel>> FromJson(const json& j, const std::string& where);
  absl::Status Tokenize(const std::string& word, std::vector<Token>* out) const override;

 private:
  struct MergeRule {
    int64_t rank;
    int64_t merged;  // the id of the pair's concatenation
  };
  struct Symbol {
    int64_t id;
    int64_t prev, next;  // neighbours in the word; -1 at its ends
    bool alive = true;
  };
  // The initial symbols of `word`; unknown characters become unk (fused), their bytes
  // (byte_fallback), or nothing.
  std::vector<Symbol> Symbols(const std::string& word) const;
  void Merge(std::vector<Symbol>* symbols) const;
  const MergeRule* FindMerge(int64_t left, int64_t right) const;

  // The words tokenized last (emptied when full: a bound, not a policy).
  static constexpr size_t kCacheWords = 10000;
  mutable absl::Mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<Token>> cache_ ABSL_GUARDED_BY(cache_mu_);

  std::map<std::pair<int64_t, int64_t>, MergeRule> merges_;
  std::optional<std::string> unk_;
  std::string prefix_, suffix_;  // continuing_subword_prefix, end_of_word_suffix
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
};

absl::StatusOr<std::unique_ptr<TokenModel>> BpeModel::FromJson(const json& j, const std::string& where) {
  auto model = std::make_unique<BpeModel>();
  if (absl::Status s = model->AddVocabularyObject(j.value("vocab", json()), where + ".vocab"); !s.ok()) return s;
  model->unk_ = JsonOptionalString(j, "unk_token");
  model->prefix_ = JsonOptionalString(j, "continuing_subword_prefix").value_or("");
  model->suffix_ = JsonOptionalString(j, "end_of_word_suffix").value_or("");
  model->fuse_unk_ = JsonBool(j, "fuse_unk", false);
  model->byte_fallback_ = JsonBool(j, "byte_fallback", false);
  model->ignore_merges_ = JsonBool(j, "ignore_merges", false);
  if (j.contains("dropout") && !j["dropout"].is_null() && j["dropout"].is_number() && j["dropout"].get<double>() > 0) {
    return absl::InvalidArgumentError(where + ".dropout: BPE dropout (random merges) is not supported");
  }
  const json& merges = j.value("merges", json::array());
  if (!merges.is_array()) return absl::InvalidArgumentError(where + ".merges: must be a list");
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {  // "a b", the form tokenizers <= 0.19 write
      const std::string text = m.get<std::string>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".merges[", rank, "]: must be two tokens and one space"));
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, ".merges[", rank, "]: must be \"a b\" or [\"a\", \"b\"]"));
    }
    const std::string joined =
        left + (!model->prefix_.empty() && right.rfind(model->prefix_, 0) == 0 ? right.substr(model->prefix_.size()) : right);
    const int64_t* a = model->Find(left);
    const int64_t* b = model->Find(right);
    const int64_t* ab = model->Find(joined);
    if (a == nullptr || b == nullptr || ab == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".merges[", rank, "]: \"", left, "\" + \"", right,
                                                     "\" (or their merge) is not in the vocabulary"));
    }
    // A pair listed twice keeps its last rank, as the library's map does.
    model->merges_[{*a, *b}] = BpeModel::MergeRule{static_cast<int64_t>(rank), *ab};
  }
  return std::unique_ptr<TokenModel>(std::move(model));
}

std::vector<BpeModel::Symbol> BpeModel::Symbols(const std::string& word) const {
  std::vector<std::string> chars;
  ForEachChar(word, [&](char32_t, size_t begin, size_t length) { chars.push_back(word.substr(begin, length)); });
  std::vector<Symbol> symbols;
  bool last_unk = false;
  for (size_t i = 0; i < chars.size(); ++i) {
    std::string text = chars[i];
    if (i > 0) text = prefix_ + text;
    if (i + 1 == chars.size()) text += suffix_;
    if (const int64_t* id = Find(text)) {
      symbols.push_back({*id, -1, -1});
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      std::vector<int64_t> bytes;
      for (unsigned char b : chars[i]) {
        if (const int64_t* id = Find(ByteFallbackToken(b))) bytes.push_back(*id);
      }
      if (bytes.size() == chars[i].size()) {
        for (int64_t id : bytes) symbols.push_back({id, -1, -1});
        last_unk = false;
        continue;
      }
    }
    if (!unk_) continue;  // no unknown token: the character is dropped, as the library does
    const int64_t* unk = Find(*unk_);
    if (unk == nullptr) continue;
    if (fuse_unk_ && last_unk) continue;
    symbols.push_back({*unk, -1, -1});
    last_unk = true;
  }
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i].prev = static_cast<int64_t>(i) - 1;
    symbols[i].next = i + 1 < symbols.size() ? static_cast<int64_t>(i) + 1 : -1;
  }
  return symbols;
}

const BpeModel::MergeRule* BpeModel::FindMerge(int64_t left, int64_t right) const {
  auto it = merges_.find({left, right});
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::Merge(std::vector<Symbol>* symbols) const {
  // (rank, position of the left symbol, its id, the right symbol's id): a queued pair is
  // stale once either symbol changed.
  using Candidate = std::tuple<int64_t, int64_t, int64_t, int64_t>;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int64_t left) {
    if (left < 0) return;
    const int64_t right = (*symbols)[left].next;
    if (right < 0) return;
    if (const MergeRule* m = FindMerge((*symbols)[left].id, (*symbols)[right].id)) {
      queue.emplace(m->rank, left, (*symbols)[left].id, (*symbols)[right].id);
    }
  };
  for (size_t i = 0; i < symbols->size(); ++i) push(static_cast<int64_t>(i));
  while (!queue.empty()) {
    const auto [rank, left, left_id, right_id] = queue.top();
    queue.pop();
    Symbol& l = (*symbols)[left];
    if (!l.alive || l.id != left_id || l.next < 0 || (*symbols)[l.next].id != right_id) continue;
    Symbol& r = (*symbols)[l.next];
    l.id = FindMerge(left_id, right_id)->merged;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) (*symbols)[r.next].prev = left;
    push(l.prev);
    push(left);
  }
}

absl::Status BpeModel::Tokenize(const std::string& word, std::vector<Token>* out) const {
  if (word.empty()) return absl::OkStatus();
  if (ignore_merges_) {
    if (const int64_t* id = Find(word)) {
      out->push_back({*id, word});
      return absl::OkStatus();
    }
  }
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return absl::OkStatus();
    }
  }
  std::vector<Symbol> symbols = Symbols(word);
  Merge(&symbols);
  std::vector<Token> tokens;
  for (const Symbol& s : symbols) {
    if (s.alive) tokens.push_back({s.id, *IdToToken(s.id)});
  }
  out->insert(out->end(), tokens.begin(), tokens.end());
  absl::MutexLock lock(&cache_mu_);
  if (cache_.size() >= kCacheWords) cache_.clear();
  cache_.emplace(word, std::move(tokens));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenModel>> MakeBpeModel(const json& j, const std::string& where) {
  return BpeModel::FromJson(j, where);
}

}  // namespace trainerd
