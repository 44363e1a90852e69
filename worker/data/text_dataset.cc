#include "worker/data/text_dataset.h"

#include <map>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "spec/spec_defaults.h"
#include "worker/data/dataset_reader.h"
#include "worker/data/sentencepiece_model.h"
#include "worker/data/text_tokenizer.h"
#include "worker/data/wordpiece_tokenizer.h"

namespace trainerd {
namespace {

// A JSON value as label text: strings as they are, numbers and booleans printed.
std::string LabelText(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

absl::StatusOr<std::shared_ptr<const TextTokenizer>> MakeTokenizer(const trainer::v1::DataSpec& data,
                                                                   const std::vector<TextExample>& train,
                                                                   const TokenSpace* model_tokens) {
  const auto& t = data.tokenizer();
  std::string error;
  if (t.path().empty() && model_tokens != nullptr) {
    // As transformers' AutoTokenizer: the fast tokenizer (tokenizer.json) where the
    // folder has one, else sentencepiece's tokenizer.model.
    if (!model_tokens->tokenizer_json_dir.empty()) {
      absl::StatusOr<std::shared_ptr<const TextTokenizer>> json = LoadTokenizerJson(model_tokens->tokenizer_json_dir);
      if (!json.ok()) return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", json.status().message()));
      return json;
    }
    if (model_tokens->tokenizer_path.empty()) {
      return absl::InvalidArgumentError(
          "data.tokenizer.path: model.name_or_path has neither tokenizer.json nor tokenizer.model: give a "
          "sentencepiece tokenizer of the model's vocabulary, or pre-tokenized rows (input_ids)");
    }
    absl::StatusOr<std::string> bytes = ReadMaybeGzipped(model_tokens->tokenizer_path);
    if (!bytes.ok()) return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", bytes.status().message()));
    std::shared_ptr<const SentencePieceModel> model = SentencePieceModel::FromSerialized(*bytes, &error);
    if (!model) return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: tokenizer.model: ", error));
    return SentencePieceTokenizer(std::move(model));
  }
  if (!t.path().empty()) {
    absl::StatusOr<std::string> bytes = ReadMaybeGzipped(t.path());
    if (!bytes.ok()) return absl::InvalidArgumentError(absl::StrCat("data.tokenizer.path: ", bytes.status().message()));
    std::shared_ptr<const SentencePieceModel> model = SentencePieceModel::FromSerialized(*bytes, &error);
    if (!model) return absl::InvalidArgumentError(absl::StrCat("data.tokenizer.path: ", t.path(), ": ", error));
    return SentencePieceTokenizer(std::move(model));
  }
  std::vector<std::string> sentences;
  for (const TextExample& e : train) {
    if (!e.text.empty()) sentences.push_back(e.text);
  }
  const int64_t vocab = t.vocab_size() > 0 ? t.vocab_size() : kDefaultVocabSize;
  std::shared_ptr<const SentencePieceModel> model = SentencePieceModel::Train(
      sentences, static_cast<int>(vocab), t.model_type().empty() ? "unigram" : t.model_type(), /*num_threads=*/1,
      &error);
  if (!model) return absl::InvalidArgumentError(absl::StrCat("data.tokenizer: training failed: ", error));
  return SentencePieceTokenizer(std::move(model));
}

// The special tokens each text gets around its own: trainerd's own models end each
// document with </s>; a Hugging Face folder's sentencepiece tokenizer adds what its
// tokenizer_config.json says (Llama: <s>); a tokenizer.json adds its own.
struct SpecialTokens {
  bool add_bos = false;
  bool add_eos = true;
};

absl::StatusOr<std::vector<int64_t>> EncodeText(const TextTokenizer& tokenizer, const std::string& text,
                                                const SpecialTokens& how) {
  absl::StatusOr<std::vector<int64_t>> encoded = tokenizer.Encode(text);
  if (!encoded.ok()) return encoded.status();
  std::vector<int64_t> ids;
  if (how.add_bos && tokenizer.bos_id() >= 0) ids.push_back(tokenizer.bos_id());
  ids.insert(ids.end(), encoded->begin(), encoded->end());
  if (how.add_eos && tokenizer.eos_id() >= 0) ids.push_back(tokenizer.eos_id());
  return ids;
}

// Language modelling: every document's tokens, packed into blocks or one example each.
absl::StatusOr<Dataset> LanguageModelExamples(const std::vector<TextExample>& examples, const TextTokenizer& tokenizer,
                                              int64_t length, const SpecialTokens& how, bool packing, int64_t pad) {
  std::vector<TokenRow> rows;
  for (const TextExample& e : examples) {
    TokenRow r;
    absl::StatusOr<std::vector<int64_t>> ids = EncodeText(tokenizer, e.text, how);
    if (!ids.ok()) return ids.status();
    r.ids = *std::move(ids);
    r.labels = r.ids;
    rows.push_back(std::move(r));
  }
  return CausalLmExamples(rows, length, packing, pad);
}

// Classification: cut or padded (with `pad`) to `length`.
absl::StatusOr<Dataset> PadTexts(const std::vector<TextExample>& examples, const TextTokenizer& tokenizer,
                                 int64_t length, const std::map<std::string, int64_t>& label_to_id, int64_t pad,
                                 const SpecialTokens& how) {
  const int64_t n = static_cast<int64_t>(examples.size());
  torch::Tensor ids = torch::full({n, length}, pad, torch::kLong);
  torch::Tensor labels = torch::empty({n}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    absl::StatusOr<std::vector<int64_t>> tokens = EncodeText(tokenizer, examples[i].text, how);
    if (!tokens.ok()) return tokens.status();
    for (int64_t k = 0; k < std::min<int64_t>(length, static_cast<int64_t>(tokens->size())); ++k) {
      ids_a[i][k] = (*tokens)[k];
    }
    labels[i] = label_to_id.at(examples[i].label);
  }
  return Dataset{ids, labels};
}

// Classification through BERT's WordPiece: [CLS] text [SEP] (pair [SEP]), padded with
// `pad` to `length`; with pairs the inputs are [N, 2, length], ids then token types.
Dataset WordPieceExamples(const std::vector<TextExample>& examples, const WordPieceTokenizer& tokenizer,
                          int64_t length, const std::map<std::string, int64_t>& label_to_id, int64_t pad,
                          bool pairs) {
  const int64_t n = static_cast<int64_t>(examples.size());
  torch::Tensor ids = torch::full({n, length}, pad, torch::kLong), types = torch::zeros({n, length}, torch::kLong);
  torch::Tensor labels = torch::empty({n}, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto types_a = types.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const EncodedText e = tokenizer.Encode(examples[i].text, pairs ? &examples[i].pair : nullptr, length);
    for (size_t k = 0; k < e.ids.size(); ++k) {
      ids_a[i][static_cast<int64_t>(k)] = e.ids[k];
      types_a[i][static_cast<int64_t>(k)] = e.token_type_ids[k];
    }
    labels[i] = label_to_id.at(examples[i].label);
  }
  return Dataset{pairs ? torch::stack({ids, types}, 1) : ids, labels};
}

// Class ids for the labels of every split, in sorted order (names into `bundle`).
std::map<std::string, int64_t> NumberLabels(const std::vector<TextExample>& train,
                                            const std::optional<std::vector<TextExample>>& eval,
                                            const std::optional<std::vector<TextExample>>& test, DatasetBundle* bundle) {
  std::map<std::string, int64_t> label_to_id;
  for (const auto* split : {&train, eval ? &*eval : nullptr, test ? &*test : nullptr}) {
    if (split == nullptr) continue;
    for (const TextExample& e : *split) label_to_id.emplace(e.label, 0);
  }
  int64_t next = 0;
  for (auto& [name, id] : label_to_id) {
    id = next++;
    bundle->class_names.push_back(name);
  }
  bundle->num_classes = next;
  return label_to_id;
}

// A BERT folder's classification data: its vocab.txt tokenizes, its [PAD] pads.
absl::StatusOr<DatasetBundle> LoadWordPieceDatasets(const TokenSpace& tokens, int64_t length, bool pairs,
                                                    bool classification, const std::vector<TextExample>& train,
                                                    const std::optional<std::vector<TextExample>>& eval,
                                                    const std::optional<std::vector<TextExample>>& test) {
  if (!classification) {
    return absl::InvalidArgumentError("data.train.label_field: a BERT folder classifies: the data needs labels");
  }
  absl::StatusOr<std::string> vocab = ReadMaybeGzipped(tokens.wordpiece_vocab);
  if (!vocab.ok()) return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", vocab.status().message()));
  absl::StatusOr<std::unique_ptr<WordPieceTokenizer>> tokenizer = WordPieceTokenizer::FromVocab(*vocab, tokens.do_lower_case);
  if (!tokenizer.ok()) return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: ", tokenizer.status().message()));
  if ((*tokenizer)->vocab_size() > tokens.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("model.name_or_path: vocab.txt's ", (*tokenizer)->vocab_size(),
                                                   " tokens do not fit the model's ", tokens.vocab_size));
  }
  DatasetBundle b;
  b.input_shape = pairs ? std::vector<int64_t>{2, length} : std::vector<int64_t>{length};
  b.vocab_size = tokens.vocab_size;
  b.pad_id = tokens.pad_id >= 0 ? tokens.pad_id : (*tokenizer)->pad_id();
  const std::map<std::string, int64_t> label_to_id = NumberLabels(train, eval, test, &b);
  b.train = WordPieceExamples(train, **tokenizer, length, label_to_id, b.pad_id, pairs);
  if (eval) b.eval = WordPieceExamples(*eval, **tokenizer, length, label_to_id, b.pad_id, pairs);
  if (test) b.test = WordPieceExamples(*test, **tokenizer, length, label_to_id, b.pad_id, pairs);
  return b;
}

}  // namespace

absl::StatusOr<std::vector<TextExample>> ReadTextExamples(const trainer::v1::DatasetSource& source) {
  absl::StatusOr<std::string> contents = ReadMaybeGzipped(source.path());
  if (!contents.ok()) return contents.status();
  std::vector<TextExample> out;
  auto full = [&] { return source.limit() > 0 && static_cast<int64_t>(out.size()) >= source.limit(); };
  std::istringstream lines(*contents);
  std::string line;
  if (DatasetFormat(source) == "jsonl") {
    const std::string text_field = source.text_field().empty() ? "text" : source.text_field();
    for (int64_t number = 1; std::getline(lines, line) && !full(); ++number) {
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!record.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(source.path(), ":", number, ": not a JSON object"));
      }
      if (!record.contains(text_field) || !record[text_field].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source.path(), ":", number, ": no string field \"", text_field, "\" (text_field)"));
      }
      TextExample e{record[text_field].get<std::string>(), "", ""};
      if (const std::string& pair = source.text_pair_field(); !pair.empty()) {
        if (!record.contains(pair) || !record[pair].is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(source.path(), ":", number, ": no string field \"", pair, "\" (text_pair_field)"));
        }
        e.pair = record[pair].get<std::string>();
      }
      if (!source.label_field().empty()) {
        if (!record.contains(source.label_field())) {
          return absl::InvalidArgumentError(absl::StrCat(source.path(), ":", number, ": no field \"",
                                                         source.label_field(), "\" (label_field)"));
        }
        e.label = LabelText(record[source.label_field()]);
      }
      out.push_back(std::move(e));
    }
    return out;
  }
  std::string document;
  auto flush = [&] {
    const std::string text(absl::StripAsciiWhitespace(document));
    if (!text.empty() && !full()) out.push_back({text, "", ""});
    document.clear();
  };
  while (std::getline(lines, line)) {
    const std::string trimmed(absl::StripAsciiWhitespace(line));
    if (trimmed.empty() || trimmed == "%") {
      flush();
    } else {
      absl::StrAppend(&document, document.empty() ? "" : "\n", line);
    }
  }
  flush();
  return out;
}

absl::StatusOr<DatasetBundle> LoadTextDatasets(const trainer::v1::DataSpec& data, int64_t data_seed,
                                               const TokenSpace* model_tokens) {
  const bool classification = !data.train().label_field().empty();
  auto train = ReadTextExamples(data.train());
  if (!train.ok()) return absl::InvalidArgumentError(absl::StrCat("data.train: ", train.status().message()));
  if (train->empty()) return absl::InvalidArgumentError(absl::StrCat("data.train: ", data.train().path(), " holds no text"));
  std::optional<std::vector<TextExample>> eval, test;
  if (!data.eval().path().empty()) {
    auto e = ReadTextExamples(data.eval());
    if (!e.ok()) return absl::InvalidArgumentError(absl::StrCat("data.eval: ", e.status().message()));
    eval = std::move(*e);
  } else if (data.eval_split() > 0) {
    // Whole documents go to the eval split, so that no text is in both.
    const int64_t n = static_cast<int64_t>(train->size());
    const int64_t n_eval = static_cast<int64_t>(n * data.eval_split());
    if (n_eval < 1 || n_eval >= n) {
      return absl::InvalidArgumentError(absl::StrCat("data.eval_split: ", data.eval_split(), " of ", n,
                                                     " documents leaves an empty split"));
    }
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(data_seed));
    torch::Tensor perm = torch::randperm(n, gen, torch::kLong);
    std::vector<TextExample> kept, held_out;
    for (int64_t i = 0; i < n; ++i) {
      (i < n - n_eval ? kept : held_out).push_back(std::move((*train)[perm[i].item<int64_t>()]));
    }
    *train = std::move(kept);
    eval = std::move(held_out);
  }
  if (!data.test().path().empty()) {
    auto t = ReadTextExamples(data.test());
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("data.test: ", t.status().message()));
    test = std::move(*t);
  }

  DatasetBundle b;
  const int64_t length = data.max_seq_length() > 0 ? data.max_seq_length() : kDefaultMaxSeqLength;
  const bool pairs = !data.train().text_pair_field().empty();
  if (model_tokens != nullptr && !model_tokens->wordpiece_vocab.empty()) {
    return LoadWordPieceDatasets(*model_tokens, length, pairs, classification, *train, eval, test);
  }
  if (pairs) {
    return absl::InvalidArgumentError(
        "data.train.text_pair_field: sentence pairs need a BERT folder with a vocab.txt (model.name_or_path)");
  }
  auto tokenizer = MakeTokenizer(data, *train, model_tokens);
  if (!tokenizer.ok()) return tokenizer.status();
  b.tokenizer = *tokenizer;
  b.vocab_size = b.tokenizer->vocab_size();
  b.pad_id = b.tokenizer->pad_id();
  SpecialTokens how;
  if (b.tokenizer->adds_special_tokens()) {
    how = SpecialTokens{false, false};
  } else if (model_tokens != nullptr) {
    how = SpecialTokens{model_tokens->add_bos, model_tokens->add_eos};
  }
  if (model_tokens != nullptr) {
    if (b.vocab_size > model_tokens->vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("data.tokenizer: its ", b.vocab_size, " pieces do not fit the ",
                                                     model_tokens->vocab_size, " of model.name_or_path's vocabulary"));
    }
    b.vocab_size = model_tokens->vocab_size;
    if (model_tokens->pad_id >= 0) b.pad_id = model_tokens->pad_id;
  }
  b.input_shape = {length};
  // Each split's examples, or the error that names the split.
  auto split = [](const char* name, absl::StatusOr<Dataset> examples) -> absl::StatusOr<Dataset> {
    if (!examples.ok()) {
      return absl::Status(examples.status().code(), absl::StrCat("data.", name, ": ", examples.status().message()));
    }
    return examples;
  };
  if (!classification) {
    b.causal_lm = true;
    const bool packing = !data.has_packing() || data.packing();
    const int64_t pad = b.pad_id >= 0 ? b.pad_id : 0;
    absl::StatusOr<Dataset> train_examples =
        split("train", LanguageModelExamples(*train, *b.tokenizer, length, how, packing, pad));
    if (!train_examples.ok()) return train_examples.status();
    b.train = *std::move(train_examples);
    if (b.train.size() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("data.train: the text makes no block of max_seq_length ", length,
                                                     " tokens"));
    }
    for (auto [name, from, to] : {std::make_tuple("eval", &eval, &b.eval), std::make_tuple("test", &test, &b.test)}) {
      if (!*from) continue;
      absl::StatusOr<Dataset> examples = split(name, LanguageModelExamples(**from, *b.tokenizer, length, how, packing, pad));
      if (!examples.ok()) return examples.status();
      *to = *std::move(examples);
    }
    return b;
  }
  if (b.pad_id < 0) return absl::InvalidArgumentError("data.tokenizer.path: classification needs a tokenizer with a pad id");
  const std::map<std::string, int64_t> label_to_id = NumberLabels(*train, eval, test, &b);
  absl::StatusOr<Dataset> train_examples =
      split("train", PadTexts(*train, *b.tokenizer, length, label_to_id, b.pad_id, how));
  if (!train_examples.ok()) return train_examples.status();
  b.train = *std::move(train_examples);
  for (auto [name, from, to] : {std::make_tuple("eval", &eval, &b.eval), std::make_tuple("test", &test, &b.test)}) {
    if (!*from) continue;
    absl::StatusOr<Dataset> examples = split(name, PadTexts(**from, *b.tokenizer, length, label_to_id, b.pad_id, how));
    if (!examples.ok()) return examples.status();
    *to = *std::move(examples);
  }
  return b;
}

}  // namespace trainerd
