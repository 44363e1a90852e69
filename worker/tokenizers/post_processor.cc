#include "worker/tokenizers/post_processor.h"

#include <map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/tokenizers/tokenizer_json.h"

namespace trainerd {
namespace {

using nlohmann::json;

Encoding WithTypeId(const Encoding& e, int64_t type_id) {
  Encoding out = e;
  out.type_ids.assign(out.ids.size(), type_id);
  return out;
}

// One piece of a template: a sequence ($A or $B) or a special token's ids.
struct TemplatePiece {
  bool is_sequence = false;
  bool second = false;  // $B
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
  int64_t type_id = 0;
};

class TemplateProcessing : public PostProcessor {
 public:
  TemplateProcessing(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair)
      : single_(std::move(single)), pair_(std::move(pair)) {}
  Encoding Process(const Encoding& a, const Encoding* b, bool add_special_tokens) const override {
    Encoding out;
    for (const TemplatePiece& p : b == nullptr ? single_ : pair_) {
      if (p.is_sequence) {
        out.Append(WithTypeId(p.second ? *b : a, p.type_id));
      } else if (add_special_tokens) {
        for (size_t i = 0; i < p.ids.size(); ++i) out.Append(p.ids[i], p.tokens[i], p.type_id);
      }
    }
    return out;
  }

 private:
  std::vector<TemplatePiece> single_, pair_;
};

// BERT's [CLS] A [SEP] (B [SEP]) and RoBERTa's <s> A </s> (</s> B </s>).
class ClsSepProcessing : public PostProcessor {
 public:
  ClsSepProcessing(std::pair<std::string, int64_t> cls, std::pair<std::string, int64_t> sep, bool roberta)
      : cls_(std::move(cls)), sep_(std::move(sep)), roberta_(roberta) {}
  Encoding Process(const Encoding& a, const Encoding* b, bool add_special_tokens) const override {
    if (!add_special_tokens) return JoinEncodings(a, b);
    Encoding out;
    out.Append(cls_.second, cls_.first, 0);
    out.Append(WithTypeId(a, 0));
    out.Append(sep_.second, sep_.first, 0);
    if (b == nullptr) return out;
    // RoBERTa has no segments: every type id is 0.
    const int64_t second = roberta_ ? 0 : 1;
    if (roberta_) out.Append(sep_.second, sep_.first, 0);
    out.Append(WithTypeId(*b, second));
    out.Append(sep_.second, sep_.first, second);
    return out;
  }

 private:
  std::pair<std::string, int64_t> cls_, sep_;
  bool roberta_;
};

class NoIdChange : public PostProcessor {
 public:
  Encoding Process(const Encoding& a, const Encoding* b, bool) const override { return JoinEncodings(a, b); }
};

// Sequence: the library applies each processor to the result of the one before; only
// one of them (a template) adds tokens in practice, the others (ByteLevel) change
// offsets, so the first that is not a ByteLevel decides.
class SequenceProcessing : public PostProcessor {
 public:
  explicit SequenceProcessing(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  Encoding Process(const Encoding& a, const Encoding* b, bool add_special_tokens) const override {
    for (const auto& step : steps_) {
      if (dynamic_cast<const NoIdChange*>(step.get()) == nullptr) return step->Process(a, b, add_special_tokens);
    }
    return JoinEncodings(a, b);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

// "[CLS]" / "$A" / "$B:1" / {"SpecialToken": {"id": .., "type_id": ..}} / {"Sequence": {"id": "A", ..}}.
absl::StatusOr<TemplatePiece> ParsePiece(const json& j, const std::map<std::string, std::pair<std::vector<int64_t>,
                                         std::vector<std::string>>>& specials, const std::string& where) {
  TemplatePiece piece;
  std::string name;
  if (j.is_string()) {
    name = j.get<std::string>();
    const size_t colon = name.rfind(':');
    if (colon != std::string::npos && absl::SimpleAtoi(name.substr(colon + 1), &piece.type_id)) name = name.substr(0, colon);
    if (name == "$" || name == "$A" || name == "$0") name = "$A";
    if (name == "$B" || name == "$1") name = "$B";
    piece.is_sequence = name == "$A" || name == "$B";
    piece.second = name == "$B";
  } else if (j.is_object() && j.contains("Sequence")) {
    piece.is_sequence = true;
    piece.second = j["Sequence"].value("id", std::string("A")) == "B";
    piece.type_id = j["Sequence"].value("type_id", 0);
  } else if (j.is_object() && j.contains("SpecialToken")) {
    name = j["SpecialToken"].value("id", std::string());
    piece.type_id = j["SpecialToken"].value("type_id", 0);
  } else {
    return absl::InvalidArgumentError(where + ": must be a sequence ($A, $B) or a special token");
  }
  if (piece.is_sequence) return piece;
  auto it = specials.find(name);
  if (it == specials.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"", name, "\" is not in special_tokens"));
  }
  piece.ids = it->second.first;
  piece.tokens = it->second.second;
  return piece;
}

absl::StatusOr<std::pair<std::string, int64_t>> ParsePair(const json& j, const std::string& key, const std::string& where) {
  const json& p = j.value(key, json());
  if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": must be [token, id]"));
  }
  return std::make_pair(p[0].get<std::string>(), p[1].get<int64_t>());
}

}  // namespace

void Encoding::Append(const Encoding& other) {
  ids.insert(ids.end(), other.ids.begin(), other.ids.end());
  tokens.insert(tokens.end(), other.tokens.begin(), other.tokens.end());
  type_ids.insert(type_ids.end(), other.type_ids.begin(), other.type_ids.end());
}

void Encoding::Append(int64_t id, const std::string& token, int64_t type_id) {
  ids.push_back(id);
  tokens.push_back(token);
  type_ids.push_back(type_id);
}

Encoding JoinEncodings(const Encoding& a, const Encoding* b) {
  Encoding out = WithTypeId(a, 0);
  if (b != nullptr) out.Append(WithTypeId(*b, 1));
  return out;
}

absl::StatusOr<std::unique_ptr<PostProcessor>> MakePostProcessor(const json& j, const std::string& where) {
  if (j.is_null()) return nullptr;
  absl::StatusOr<std::string> type = JsonType(j, where);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return std::make_unique<NoIdChange>();
  if (*type == "BertProcessing" || *type == "RobertaProcessing") {
    auto cls = ParsePair(j, "cls", where);
    if (!cls.ok()) return cls.status();
    auto sep = ParsePair(j, "sep", where);
    if (!sep.ok()) return sep.status();
    return std::make_unique<ClsSepProcessing>(*cls, *sep, *type == "RobertaProcessing");
  }
  if (*type == "TemplateProcessing") {
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<std::string>>> specials;
    const json special_tokens = j.value("special_tokens", json::object());
    for (const auto& [name, s] : special_tokens.items()) {
      if (!s.is_object() || !s.value("ids", json()).is_array() || !s.value("tokens", json()).is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".special_tokens.", name, ": needs ids and tokens"));
      }
      specials[name] = {s["ids"].get<std::vector<int64_t>>(), s["tokens"].get<std::vector<std::string>>()};
    }
    std::vector<TemplatePiece> single, pair;
    for (const auto& [key, out] : {std::make_pair("single", &single), std::make_pair("pair", &pair)}) {
      const json& list = j.value(key, json::array());
      if (!list.is_array()) return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": must be a list"));
      for (size_t i = 0; i < list.size(); ++i) {
        auto piece = ParsePiece(list[i], specials, absl::StrCat(where, ".", key, "[", i, "]"));
        if (!piece.ok()) return piece.status();
        out->push_back(*std::move(piece));
      }
    }
    return std::make_unique<TemplateProcessing>(std::move(single), std::move(pair));
  }
  if (*type == "Sequence") {
    const json& list = j.value("processors", json());
    if (!list.is_array()) return absl::InvalidArgumentError(where + ".processors: must be a list");
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      auto step = MakePostProcessor(list[i], absl::StrCat(where, ".processors[", i, "]"));
      if (!step.ok()) return step.status();
      if (*step) steps.push_back(*std::move(step));
    }
    return std::make_unique<SequenceProcessing>(std::move(steps));
  }
  return absl::InvalidArgumentError(absl::StrCat(where, ".type: \"", *type, "\" is not a post-processor trainerd reads"));
}

std::unique_ptr<PostProcessor> MakeTemplate(const std::vector<std::string>& single, const std::vector<std::string>& pair,
                                            const std::map<std::string, int64_t>& special_ids) {
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<std::string>>> specials;
  for (const auto& [token, id] : special_ids) specials[token] = {{id}, {token}};
  std::vector<TemplatePiece> s, p;
  for (const std::string& piece : single) s.push_back(*ParsePiece(piece, specials, "template"));
  for (const std::string& piece : pair) p.push_back(*ParsePiece(piece, specials, "template"));
  return std::make_unique<TemplateProcessing>(std::move(s), std::move(p));
}

}  // namespace trainerd
