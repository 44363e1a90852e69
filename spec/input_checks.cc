#include "spec/input_checks.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "spec/confined_file.h"
#include "spec/dataset_format.h"
#include "spec/hf_config.h"
#include "spec/adapter_config.h"
#include "spec/lora_config.h"
#include "spec/sentencepiece_pad.h"
#include "spec/spec_defaults.h"

namespace trainerd {
namespace {

using trainer::v1::DatasetSource;
using trainer::v1::JobSpec;

// How much of a data file is read: its header and first rows.
constexpr size_t kHeadBytes = 64 << 10;
// Rows of a table whose cells are checked.
constexpr int kRowsChecked = 100;

// The first bytes of a file (gunzipped when it is gzipped), opened confined. `whole` says
// whether that is all of it.
struct Head {
  std::string bytes;
  bool whole = false;
};

absl::StatusOr<Head> ReadHead(const std::string& path, const ReadRoots& roots, size_t limit) {
  absl::StatusOr<ConfinedFile> file = OpenConfined(path, roots);
  if (!file.ok()) return file.status();
  const int fd = ::dup(file->fd());
  gzFile gz = fd < 0 ? nullptr : gzdopen(fd, "rb");
  if (gz == nullptr) {
    if (fd >= 0) ::close(fd);
    return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  }
  Head head;
  head.bytes.resize(limit + 1);
  const int n = gzread(gz, head.bytes.data(), static_cast<unsigned>(head.bytes.size()));
  gzclose(gz);
  if (n < 0) return absl::DataLossError(absl::StrCat(path, ": cannot be read (a damaged gzip file?)"));
  head.whole = static_cast<size_t>(n) <= limit;
  head.bytes.resize(std::min(static_cast<size_t>(n), limit));
  return head;
}

// The head's complete lines (the last one is cut unless the head is the whole file).
std::vector<std::string> Lines(const Head& head) {
  std::vector<std::string> lines = absl::StrSplit(head.bytes, '\n');
  if (!head.whole && !lines.empty()) lines.pop_back();
  return lines;
}

void CheckIdx(const std::string& field, const DatasetSource& s, const ReadRoots& roots, Checker* c) {
  absl::StatusOr<Head> images = ReadHead(s.path(), roots, 16);
  absl::StatusOr<Head> labels = ReadHead(s.labels_path(), roots, 8);
  if (!images.ok()) return c->Add(field + ".path", std::string(images.status().message()));
  if (!labels.ok()) return c->Add(field + ".labels_path", std::string(labels.status().message()));
  if (images->bytes.size() < 16 || IdxNumber(images->bytes, 0) != kIdxImagesMagic) {
    return c->Add(field + ".path", "is not an IDX images file (magic number 2051); set format to the file's format");
  }
  if (labels->bytes.size() < 8 || IdxNumber(labels->bytes, 0) != kIdxLabelsMagic) {
    return c->Add(field + ".labels_path", "is not an IDX labels file (magic number 2049)");
  }
  if (IdxNumber(images->bytes, 4) != IdxNumber(labels->bytes, 4)) {
    c->Add(field + ".labels_path", absl::StrCat("has ", IdxNumber(labels->bytes, 4), " labels for ",
                                                IdxNumber(images->bytes, 4), " images"));
  }
}

// A CSV/TSV table: the columns the spec names exist, and the first rows' feature cells
// are numbers (a text column is not a feature: text is read from JSONL or text files).
void CheckTable(const std::string& field, const DatasetSource& s, char delimiter, bool regression,
                const ReadRoots& roots, Checker* c) {
  absl::StatusOr<Head> head = ReadHead(s.path(), roots, kHeadBytes);
  if (!head.ok()) return c->Add(field + ".path", std::string(head.status().message()));
  const std::vector<std::string> lines = Lines(*head);
  if (lines.empty() || absl::StripAsciiWhitespace(lines[0]).empty()) {
    return c->Add(field + ".path", "has no header row (the first line names the columns)");
  }
  const std::vector<std::string> header = SplitTableRow(lines[0], delimiter);
  auto column = [&](const std::string& name) -> int64_t {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : it - header.begin();
  };
  const std::string label_column = s.label_column().empty() ? "label" : s.label_column();
  const int64_t label = column(label_column);
  if (label < 0) return c->Add(field + ".label_column", absl::StrCat("the header has no column \"", label_column, "\""));
  std::vector<int64_t> features;
  for (const std::string& name : s.feature_columns()) {
    if (column(name) < 0) return c->Add(field + ".feature_columns", absl::StrCat("the header has no column \"", name, "\""));
    features.push_back(column(name));
  }
  if (features.empty()) {
    for (int64_t i = 0; i < static_cast<int64_t>(header.size()); ++i) {
      if (i != label) features.push_back(i);
    }
  }
  int checked = 0;
  for (size_t row = 1; row < lines.size() && checked < kRowsChecked; ++row) {
    if (absl::StripAsciiWhitespace(lines[row]).empty()) continue;
    ++checked;
    const std::vector<std::string> cells = SplitTableRow(lines[row], delimiter);
    const std::string where = absl::StrCat("line ", row + 1);
    if (cells.size() != header.size()) {
      return c->Add(field + ".path", absl::StrCat(where, " has ", cells.size(), " columns, the header ", header.size()));
    }
    for (int64_t i : features) {
      float v;
      if (!absl::SimpleAtof(cells[i], &v)) {
        return c->Add(field + ".path",
                      absl::StrCat(where, ", column ", i + 1, ": not a number. CSV and TSV columns are numeric "
                                   "features; train on text from a JSONL file (format: jsonl, text_field, "
                                   "label_field), or name the numeric columns in feature_columns"));
      }
    }
    float v;
    if (regression && !absl::SimpleAtof(cells[label], &v)) {
      return c->Add(field + ".label_column", absl::StrCat(where, ": the label is not a number (task is regression)"));
    }
  }
  if (checked == 0 && head->whole) c->Add(field + ".path", "has no data rows");
}

// A JSONL file's first row: an object with the fields the spec names. Sets
// *tokenized when it holds input_ids (pre-tokenized rows).
void CheckJsonl(const std::string& field, const DatasetSource& s, const ReadRoots& roots, Checker* c,
                bool* tokenized) {
  absl::StatusOr<Head> head = ReadHead(s.path(), roots, kHeadBytes);
  if (!head.ok()) return c->Add(field + ".path", std::string(head.status().message()));
  const std::vector<std::string> lines = Lines(*head);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (absl::StripAsciiWhitespace(lines[i]).empty()) continue;
    const nlohmann::json row = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    const std::string where = absl::StrCat("line ", i + 1);
    if (!row.is_object()) return c->Add(field + ".path", absl::StrCat(where, ": not a JSON object"));
    *tokenized = row.contains("input_ids");
    if (*tokenized) return;
    const std::string text = s.text_field().empty() ? "text" : s.text_field();
    if (!row.contains(text) || !row[text].is_string()) {
      c->Add(field + ".text_field", absl::StrCat(where, " has no string field \"", text, "\""));
    }
    if (!s.text_pair_field().empty() && (!row.contains(s.text_pair_field()) || !row[s.text_pair_field()].is_string())) {
      c->Add(field + ".text_pair_field", absl::StrCat(where, " has no string field \"", s.text_pair_field(), "\""));
    }
    if (!s.label_field().empty() && !row.contains(s.label_field())) {
      c->Add(field + ".label_field", absl::StrCat(where, " has no field \"", s.label_field(), "\""));
    }
    return;
  }
  if (head->whole) c->Add(field + ".path", "has no rows");
}

// What CheckDataFiles learned of the data, for the model's checks.
struct DataShape {
  bool text = false;       // text or JSONL rows of text
  bool tokenized = false;  // JSONL rows of input_ids
};

DataShape CheckDataFiles(const JobSpec& spec, const ReadRoots& roots, Checker* c) {
  const auto& d = spec.data();
  DataShape shape;
  const bool regression = d.task() == "regression";
  for (const auto& [name, source] : {std::pair{"data.train", &d.train()}, {"data.eval", &d.eval()},
                                     {"data.test", &d.test()}}) {
    const std::string field = name;
    if (source->path().empty() || c->Skipped(field + ".path") || c->Skipped(field + ".labels_path")) continue;
    const std::string format = DatasetFormat(*source);
    if (format == "idx") CheckIdx(field, *source, roots, c);
    if (format == "csv" || format == "tsv") CheckTable(field, *source, format == "tsv" ? '\t' : ',', regression, roots, c);
    bool tokenized = false;
    if (format == "jsonl") CheckJsonl(field, *source, roots, c, &tokenized);
    if (source == &d.train()) {
      shape.text = format == "text" || (format == "jsonl" && !tokenized);
      shape.tokenized = tokenized;
    }
  }
  if (shape.tokenized && spec.model().type() != "hf") {
    c->Add("data.train", "pre-tokenized rows (input_ids) need a model that brings its vocabulary (model.type hf)");
  }
  return shape;
}

bool IsLlamaFamily(HfArchitecture kind) {
  return kind == HfArchitecture::kLlamaForCausalLM || kind == HfArchitecture::kLlamaForSequenceClassification;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// An hf job's LoRA adapter (its targets among the model's layers) and its memory
// estimate. `config` is the folder's; a causal LM trained on labels becomes its
// family's sequence classifier, as the worker builds it.
void CheckLoraAndMemory(const JobSpec& spec, HfConfig config, const ReadRoots& roots,
                        Checker* c) {
  const bool classification = !spec.data().train().label_field().empty();
  if (classification && config.kind == HfArchitecture::kLlamaForCausalLM) {
    config.kind = HfArchitecture::kLlamaForSequenceClassification;
  }
  int64_t trainable = HfParameterCount(config);
  absl::StatusOr<std::optional<trainer::v1::PeftConfig>> peft = EffectivePeftConfig(spec, config, &roots);
  if (!peft.ok()) return c->problems.push_back(std::string(peft.status().message()));
  if (*peft) {
    const std::string& adapter = spec.model().adapter_name_or_path();
    if (!adapter.empty() && !Exists(absl::StrCat(adapter, "/", kAdapterWeightsFile))) {
      c->Add("model.adapter_name_or_path", absl::StrCat("no ", kAdapterWeightsFile, " in ", adapter));
    }
    const bool seq_cls = (*peft)->task_type() == "SEQ_CLS";
    if (seq_cls != IsSequenceClassifier(config.kind)) {
      c->Add("peft.task_type", absl::StrCat((*peft)->task_type(), ", and the model ",
                                            IsSequenceClassifier(config.kind) ? "classifies (SEQ_CLS)"
                                                                              : "is a causal LM (CAUSAL_LM)"));
    }
    absl::StatusOr<int64_t> count = LoraTrainableParameterCount(**peft, config);
    if (!count.ok()) return c->problems.push_back(std::string(count.status().message()));
    trainable = *count;
  }
  c->Memory(HfFootprint(spec, config, trainable), spec);
}

// An hf model folder: config.json as the worker reads it, weights, a tokenizer for raw
// text, a pad token for classification, and what the architecture can do.
void CheckHfFolder(const JobSpec& spec, const DataShape& data, const ReadRoots& roots,
                   Checker* c) {
  const std::string& dir = spec.model().name_or_path();
  absl::StatusOr<std::string> text = ReadConfined(dir + "/config.json", roots, 1 << 20);
  if (text.status().code() == absl::StatusCode::kNotFound) {
    return c->Add("model.name_or_path", absl::StrCat(
        "no config.json in ", dir, ": give the folder save_pretrained wrote (config.json and model.safetensors). "
        "trainerd reads local folders only, never the Hugging Face Hub: download a Hub model first "
        "(huggingface-cli download ORG/NAME --local-dir DIR) and give DIR"));
  }
  if (!text.ok()) return c->Add("model.name_or_path", std::string(text.status().message()));
  absl::StatusOr<HfConfig> config = ParseHfConfig(*text);
  if (!config.ok()) return c->Add("model.name_or_path", std::string(config.status().message()));
  if (!Exists(dir + "/model.safetensors") && !Exists(dir + "/model.safetensors.index.json")) {
    c->Add("model.name_or_path", absl::StrCat("no model.safetensors (or model.safetensors.index.json) in ", dir,
                                              ": only safetensors weights are read (save_pretrained's default)"));
  }
  const auto& a = spec.training_args();
  if (a.use_liger_kernel() && !IsLlamaFamily(config->kind)) {
    c->Add("training_args.use_liger_kernel", absl::StrCat(config->architecture, " has no fused kernels here; they "
                                                          "are for the Llama family (llama, mistral, qwen2)"));
  }
  const bool bert = config->kind == HfArchitecture::kBertForSequenceClassification;
  const std::string tokenizer = spec.data().tokenizer().path().empty() ? dir + "/tokenizer.model"
                                                                       : spec.data().tokenizer().path();
  // The worker prefers the folder's tokenizer.json (its pad token is checked there).
  const bool json_tokenizer = spec.data().tokenizer().path().empty() && Exists(dir + "/tokenizer.json");
  if (data.text && !bert && spec.data().tokenizer().path().empty() && !json_tokenizer && !Exists(tokenizer)) {
    c->Add("data.tokenizer.path", "model.name_or_path has neither tokenizer.json nor tokenizer.model: give a "
                                  "sentencepiece tokenizer of the model's vocabulary, or pre-tokenized rows "
                                  "(input_ids)");
  }
  if (data.text && bert && !Exists(dir + "/vocab.txt") && spec.data().tokenizer().path().empty()) {
    c->Add("model.name_or_path", "a BERT folder needs its vocab.txt to tokenize text");
  }
  CheckLoraAndMemory(spec, *config, roots, c);
  if (!data.text && !data.tokenized) return;  // no text data: the data checks said why
  const bool classification = !spec.data().train().label_field().empty();
  if (!classification && IsSequenceClassifier(config->kind)) {
    c->Add("model.name_or_path", absl::StrCat(config->architecture, " classifies; the data has no labels "
                                                                    "(data.train.label_field)"));
  }
  if (classification && config->kind == HfArchitecture::kGpt2LMHeadModel) {
    c->Add("model.name_or_path", "GPT2ForSequenceClassification is not implemented; GPT-2 trains as a causal LM");
  }
  if (classification && IsLlamaFamily(config->kind) && config->pad_token_id < 0 && !json_tokenizer) {
    const int64_t pad = data.text && Exists(tokenizer) ? SentencePiecePadId(tokenizer, roots).value_or(-1) : -1;
    if (pad < 0) {
      c->Add("model.name_or_path", absl::StrCat(
          "classification pads its rows, and neither config.json (pad_token_id) nor the tokenizer has a pad token: "
          "set pad_token_id in config.json (HF's usual choice is the eos_token_id, ", config->eos_token_id, ")"));
    }
  }
  const int64_t length = spec.data().max_seq_length() > 0 ? spec.data().max_seq_length() : kDefaultMaxSeqLength;
  if (config->sliding_window > 0 && length > config->sliding_window) {
    c->Add("data.max_seq_length", absl::StrCat(length, " is longer than the model's sliding_window ",
                                               config->sliding_window, ", which is not implemented"));
  }
}

}  // namespace

void CheckInputFiles(const JobSpec& spec, const ReadRoots& roots, Checker* c) {
  const DataShape data = CheckDataFiles(spec, roots, c);
  if (spec.model().type() == "hf" && !spec.model().name_or_path().empty() && !c->Skipped("model.name_or_path")) {
    CheckHfFolder(spec, data, roots, c);
  }
}

}  // namespace trainerd
