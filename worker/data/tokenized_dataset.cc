#include "worker/data/tokenized_dataset.h"

#include <map>
#include <sstream>

#include <nlohmann/json.hpp>
#include <zlib.h>
#include <torch/torch.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spec/spec_defaults.h"
#include "spec/confined_file.h"
#include "worker/data/dataset_reader.h"

namespace trainerd {
namespace {

using nlohmann::json;

absl::StatusOr<std::vector<int64_t>> IntList(const json& row, const std::string& field, const std::string& where) {
  const auto& v = row[field];
  if (!v.is_array()) return absl::InvalidArgumentError(absl::StrCat(where, ": \"", field, "\" is not a list"));
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (const auto& x : v) {
    if (!x.is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"", field, "\" holds a value that is not an integer"));
    }
    out.push_back(x.get<int64_t>());
  }
  return out;
}

absl::StatusOr<TokenRow> ParseRow(const json& row, const trainer::v1::DatasetSource& source, const TokenSpace& tokens,
                                  const std::string& where) {
  if (!row.is_object() || !row.contains("input_ids")) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object with \"input_ids\""));
  }
  TokenRow r;
  absl::StatusOr<std::vector<int64_t>> ids = IntList(row, "input_ids", where);
  if (!ids.ok()) return ids.status();
  std::vector<int64_t> mask(ids->size(), 1), labels = *ids, types;
  const bool read_types = tokens.type_vocab_size > 0 && !source.label_field().empty();
  for (const std::string field : {"attention_mask", "labels", "token_type_ids"}) {
    if (!row.contains(field) || (field == "labels" && !source.label_field().empty()) ||
        (field == "token_type_ids" && !read_types)) {
      continue;
    }
    absl::StatusOr<std::vector<int64_t>> values = IntList(row, field, where);
    if (!values.ok()) return values.status();
    if (values->size() != ids->size()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"", field, "\" is not as long as \"input_ids\""));
    }
    (field == "labels" ? labels : field == "attention_mask" ? mask : types) = *values;
  }
  for (size_t k = 0; k < ids->size(); ++k) {
    if ((*ids)[k] < 0 || (*ids)[k] >= tokens.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"input_ids\"[", k, "] is not a token id of the model (0..",
                                                     tokens.vocab_size - 1, ")"));
    }
    if (labels[k] != -100 && (labels[k] < 0 || labels[k] >= tokens.vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"labels\"[", k, "] is neither -100 nor a token id"));
    }
    if (!types.empty() && (types[k] < 0 || types[k] >= tokens.type_vocab_size)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"token_type_ids\"[", k,
                                                     "] is not a token type of the model (0..",
                                                     tokens.type_vocab_size - 1, ")"));
    }
    if (mask[k] == 0) continue;  // padding stored with the row
    r.ids.push_back((*ids)[k]);
    r.labels.push_back(labels[k]);
    if (!types.empty()) r.token_types.push_back(types[k]);
  }
  if (!source.label_field().empty()) {
    if (!row.contains(source.label_field())) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": no field \"", source.label_field(), "\" (label_field)"));
    }
    const json& v = row[source.label_field()];
    r.label = v.is_string() ? v.get<std::string>() : v.dump();
  }
  return r;
}

absl::StatusOr<std::vector<TokenRow>> ReadRows(const trainer::v1::DatasetSource& source, const TokenSpace& tokens) {
  absl::StatusOr<std::string> contents = ReadMaybeGzipped(source.path());
  if (!contents.ok()) return contents.status();
  std::vector<TokenRow> rows;
  std::istringstream lines(*contents);
  std::string line;
  for (int64_t number = 1; std::getline(lines, line); ++number) {
    if (source.limit() > 0 && static_cast<int64_t>(rows.size()) >= source.limit()) break;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(source.path(), ":", number);
    json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
    absl::StatusOr<TokenRow> r = ParseRow(row, source, tokens, where);
    if (!r.ok()) return r.status();
    if (!r->ids.empty()) rows.push_back(*std::move(r));
  }
  if (rows.empty()) return absl::InvalidArgumentError(absl::StrCat(source.path(), ": holds no tokens"));
  return rows;
}

// run_clm's group_texts: every row's tokens back to back, cut into blocks.
Dataset PackRows(const std::vector<TokenRow>& rows, int64_t block) {
  std::vector<int64_t> ids, labels;
  for (const TokenRow& r : rows) {
    ids.insert(ids.end(), r.ids.begin(), r.ids.end());
    labels.insert(labels.end(), r.labels.begin(), r.labels.end());
  }
  const int64_t n = static_cast<int64_t>(ids.size()) / block;
  auto as_blocks = [&](std::vector<int64_t>& v) {
    return torch::from_blob(v.data(), {n * block}, torch::kLong).clone().view({n, block});
  };
  return Dataset{as_blocks(ids), as_blocks(labels)};
}

// One example per row, cut to `length` and padded with `pad` (labels -100 there). With
// `with_types` the inputs are [N, 2, length]: ids, then token types (0 where a row has
// none, and on padding).
Dataset PadRows(const std::vector<TokenRow>& rows, int64_t length, int64_t pad,
                const std::map<std::string, int64_t>* label_to_id, bool with_types = false) {
  const int64_t n = static_cast<int64_t>(rows.size());
  torch::Tensor ids = torch::full({n, length}, pad, torch::kLong), types = torch::zeros({n, length}, torch::kLong);
  torch::Tensor labels = label_to_id ? torch::empty({n}, torch::kLong) : torch::full({n, length}, -100, torch::kLong);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto types_a = types.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const TokenRow& r = rows[i];
    const int64_t used = std::min<int64_t>(length, static_cast<int64_t>(r.ids.size()));
    for (int64_t k = 0; k < used; ++k) ids_a[i][k] = r.ids[k];
    for (int64_t k = 0; k < std::min<int64_t>(used, static_cast<int64_t>(r.token_types.size())); ++k) {
      types_a[i][k] = r.token_types[k];
    }
    if (label_to_id) {
      labels[i] = label_to_id->at(r.label);
    } else {
      labels[i].narrow(0, 0, used).copy_(torch::tensor(std::vector<int64_t>(r.labels.begin(), r.labels.begin() + used)));
    }
  }
  return Dataset{with_types ? torch::stack({ids, types}, 1) : ids, labels};
}

}  // namespace

Dataset CausalLmExamples(const std::vector<TokenRow>& rows, int64_t length, bool packing, int64_t pad) {
  return packing ? PackRows(rows, length) : PadRows(rows, length, pad, nullptr);
}

bool IsTokenizedJsonl(const trainer::v1::DatasetSource& source) {
  if (DatasetFormat(source) != "jsonl") return false;
  // Only the first row is read (the whole file is read once, by the loader that follows).
  absl::StatusOr<ConfinedFile> file = OpenConfined(source.path());
  if (!file.ok()) return false;
  gzFile f = gzopen(file->path().c_str(), "rb");
  if (f == nullptr) return false;
  std::string line;
  char buf[1 << 16];
  bool tokenized = false;
  while (gzgets(f, buf, sizeof(buf)) != nullptr) {
    line += buf;
    if (line.back() != '\n' && !gzeof(f)) continue;  // a row longer than the buffer
    if (!absl::StripAsciiWhitespace(line).empty()) {
      json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
      tokenized = row.is_object() && row.contains("input_ids");
      break;
    }
    line.clear();
  }
  gzclose(f);
  return tokenized;
}

absl::StatusOr<DatasetBundle> LoadTokenizedDatasets(const trainer::v1::DataSpec& data, int64_t data_seed,
                                                    const TokenSpace& tokens) {
  const bool classification = !data.train().label_field().empty();
  auto train = ReadRows(data.train(), tokens);
  if (!train.ok()) return absl::InvalidArgumentError(absl::StrCat("data.train: ", train.status().message()));
  std::optional<std::vector<TokenRow>> eval, test;
  if (!data.eval().path().empty()) {
    auto e = ReadRows(data.eval(), tokens);
    if (!e.ok()) return absl::InvalidArgumentError(absl::StrCat("data.eval: ", e.status().message()));
    eval = std::move(*e);
  } else if (data.eval_split() > 0) {
    const int64_t n = static_cast<int64_t>(train->size()), n_eval = static_cast<int64_t>(n * data.eval_split());
    if (n_eval < 1 || n_eval >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.eval_split: ", data.eval_split(), " of ", n, " rows leaves an empty split"));
    }
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(data_seed));
    torch::Tensor perm = torch::randperm(n, gen, torch::kLong);
    std::vector<TokenRow> kept, held_out;
    for (int64_t i = 0; i < n; ++i) (i < n - n_eval ? kept : held_out).push_back((*train)[perm[i].item<int64_t>()]);
    *train = std::move(kept);
    eval = std::move(held_out);
  }
  if (!data.test().path().empty()) {
    auto t = ReadRows(data.test(), tokens);
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("data.test: ", t.status().message()));
    test = std::move(*t);
  }

  DatasetBundle b;
  const int64_t length = data.max_seq_length() > 0 ? data.max_seq_length() : kDefaultMaxSeqLength;
  b.input_shape = {length};
  b.vocab_size = tokens.vocab_size;
  b.pad_id = tokens.pad_id;
  const int64_t pad = tokens.pad_id >= 0 ? tokens.pad_id : 0;
  if (!classification) {
    b.causal_lm = true;
    const bool packing = !data.has_packing() || data.packing();
    auto make = [&](const std::vector<TokenRow>& rows) { return CausalLmExamples(rows, length, packing, pad); };
    b.train = make(*train);
    if (b.train.size() == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.train: the rows make no block of max_seq_length ", length, " tokens"));
    }
    if (eval) b.eval = make(*eval);
    if (test) b.test = make(*test);
    return b;
  }
  if (tokens.pad_id < 0) {
    return absl::InvalidArgumentError("model.name_or_path: config.json has no pad_token_id, which classification "
                                      "of padded rows needs (transformers refuses batches of more than one row too)");
  }
  // Integer labels are the class ids, as in a tokenized HF dataset; other labels are
  // numbered in sorted order.
  std::map<std::string, int64_t> label_to_id;
  bool integers = true;
  int64_t largest = -1;
  for (const auto* split : {&*train, eval ? &*eval : nullptr, test ? &*test : nullptr}) {
    if (split == nullptr) continue;
    for (const TokenRow& r : *split) {
      int64_t value = 0;
      integers = integers && absl::SimpleAtoi(r.label, &value) && value >= 0 && value < 1000000;
      if (integers) largest = std::max(largest, value);
      label_to_id.emplace(r.label, integers ? value : 0);
    }
  }
  if (integers) {
    b.num_classes = largest + 1;
    for (int64_t k = 0; k <= largest; ++k) b.class_names.push_back(std::to_string(k));
  } else {
    for (auto& [name, id] : label_to_id) {
      id = b.num_classes++;
      b.class_names.push_back(name);
    }
  }
  // Token types are the inputs' second row in every split when any row has them.
  bool with_types = false;
  for (const auto* split : {&*train, eval ? &*eval : nullptr, test ? &*test : nullptr}) {
    for (size_t i = 0; split != nullptr && i < split->size(); ++i) with_types |= !(*split)[i].token_types.empty();
  }
  if (with_types) b.input_shape = {2, length};
  b.train = PadRows(*train, length, pad, &label_to_id, with_types);
  if (eval) b.eval = PadRows(*eval, length, pad, &label_to_id, with_types);
  if (test) b.test = PadRows(*test, length, pad, &label_to_id, with_types);
  return b;
}

}  // namespace trainerd
