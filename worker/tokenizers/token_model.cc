#include "worker/tokenizers/token_model.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "worker/tokenizers/tokenizer_json.h"

namespace trainerd {

using nlohmann::json;

std::optional<int64_t> TokenModel::TokenToId(const std::string& token) const {
  const int64_t* id = Find(token);
  return id == nullptr ? std::nullopt : std::optional<int64_t>(*id);
}

std::optional<std::string> TokenModel::IdToToken(int64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? std::nullopt : std::optional<std::string>(it->second);
}

void TokenModel::AddToVocabulary(const std::string& token, int64_t id) {
  by_token_[token] = id;
  by_id_[id] = token;
}

absl::Status TokenModel::AddVocabularyObject(const json& vocab, const std::string& where) {
  if (!vocab.is_object()) return absl::InvalidArgumentError(where + ": must be an object of token: id");
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": the id of \"", token, "\" must be an integer >= 0"));
    }
    AddToVocabulary(token, id.get<int64_t>());
  }
  return absl::OkStatus();
}

const int64_t* TokenModel::Find(const std::string& token) const {
  auto it = by_token_.find(token);
  return it == by_token_.end() ? nullptr : &it->second;
}

std::string ByteFallbackToken(unsigned char byte) {
  char name[8];
  std::snprintf(name, sizeof(name), "<0x%02X>", byte);
  return name;
}

absl::StatusOr<std::unique_ptr<TokenModel>> MakeTokenModel(const json& j, const std::string& where) {
  if (!j.is_object()) return absl::InvalidArgumentError(where + ": must be an object");
  std::string type = j.value("type", std::string());
  if (type.empty()) {  // files written before the library named the type
    if (j.contains("merges")) type = "BPE";
    else if (j.contains("continuing_subword_prefix") || j.contains("max_input_chars_per_word")) type = "WordPiece";
    else if (j.contains("vocab") && j["vocab"].is_array()) type = "Unigram";
  }
  if (type == "BPE") return MakeBpeModel(j, where);
  if (type == "WordPiece") return MakeWordPieceModel(j, where);
  if (type == "Unigram") return MakeUnigramModel(j, where);
  return absl::InvalidArgumentError(absl::StrCat(where, ".type: \"", type,
                                                 "\" is not a model trainerd reads (BPE, WordPiece, Unigram)"));
}

}  // namespace trainerd
