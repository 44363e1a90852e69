#include "worker/data/dataset_reader.h"

#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <set>

#include <torch/torch.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spec/confined_file.h"

namespace trainerd {

absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  absl::StatusOr<ConfinedFile> file = OpenConfined(path);
  if (!file.ok()) return file.status();
  gzFile f = gzopen(file->path().c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) {
    return absl::DataLossError(absl::StrCat(path, ": ", msg));
  }
  return out;
}

namespace {

absl::StatusOr<Dataset> ReadSource(const trainer::v1::DatasetSource& s, bool regression,
                                   std::map<std::string, int64_t>* label_to_id) {
  const std::string format = DatasetFormat(s);
  if (format == "idx") return ReadIdxDataset(s.path(), s.labels_path(), s.limit());
  if (format == "csv" || format == "tsv") return ReadTableDataset(s, format == "tsv" ? '\t' : ',', regression, label_to_id);
  return absl::InvalidArgumentError(absl::StrCat(s.path(), ": not an IDX, CSV or TSV file (format \"", format, "\")"));
}

// The labels of a table's rows (`raw`, as read): numbers for regression; else class ids,
// integers as they are, or string labels numbered in sorted order (fixed by the training
// split through `label_to_id`). Errors name the row and column, never the cell.
absl::StatusOr<torch::Tensor> TableLabels(const std::vector<std::string>& raw, bool regression,
                                          std::map<std::string, int64_t>* label_to_id, const std::string& path,
                                          int64_t label_index) {
  const int64_t n = static_cast<int64_t>(raw.size());
  if (regression) {
    std::vector<float> targets(n);
    for (int64_t i = 0; i < n; ++i) {
      if (!absl::SimpleAtof(raw[i], &targets[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": data row ", i + 1, ", column ", label_index + 1, ": the label is not a number (task is regression)"));
      }
    }
    return torch::from_blob(targets.data(), {n}, torch::kFloat).clone();
  }
  const bool all_ints = std::all_of(raw.begin(), raw.end(), [](const std::string& l) {
    int64_t v;
    return absl::SimpleAtoi(l, &v) && v >= 0;
  });
  std::vector<int64_t> ids(n);
  if (all_ints && label_to_id->empty()) {
    for (int64_t i = 0; i < n; ++i) (void)absl::SimpleAtoi(raw[i], &ids[i]);  // checked just above
  } else {
    if (label_to_id->empty()) {
      std::set<std::string> names(raw.begin(), raw.end());
      for (const auto& name : names) label_to_id->emplace(name, label_to_id->size());
    }
    for (int64_t i = 0; i < n; ++i) {
      auto it = label_to_id->find(raw[i]);
      if (it == label_to_id->end()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": data row ", i + 1, ", column ", label_index + 1,
                                                       ": the label does not occur in the training data"));
      }
      ids[i] = it->second;
    }
  }
  return torch::from_blob(ids.data(), {n}, torch::kLong).clone();
}

}  // namespace

absl::StatusOr<Dataset> ReadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, int64_t limit) {
  auto images = ReadMaybeGzipped(images_path);
  if (!images.ok()) return images.status();
  auto labels = ReadMaybeGzipped(labels_path);
  if (!labels.ok()) return labels.status();
  if (images->size() < 16 || IdxNumber(*images, 0) != kIdxImagesMagic) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": not an IDX images file"));
  }
  if (labels->size() < 8 || IdxNumber(*labels, 0) != kIdxLabelsMagic) {
    return absl::InvalidArgumentError(absl::StrCat(labels_path, ": not an IDX labels file"));
  }
  int64_t n = IdxNumber(*images, 4);
  const int64_t rows = IdxNumber(*images, 8), cols = IdxNumber(*images, 12);
  // Bounded before they are multiplied: a hostile header must not overflow the size check.
  if (rows <= 0 || cols <= 0 || rows > 65536 || cols > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": images of ", rows, " x ", cols, " pixels"));
  }
  if (static_cast<int64_t>(IdxNumber(*labels, 4)) != n) {
    return absl::InvalidArgumentError(absl::StrCat(labels_path, ": has ", IdxNumber(*labels, 4),
                                                   " labels for ", n, " images"));
  }
  if (images->size() != 16 + static_cast<size_t>(n * rows * cols) ||
      labels->size() != 8 + static_cast<size_t>(n)) {
    return absl::DataLossError(absl::StrCat(images_path, ": truncated"));
  }
  if (limit > 0) n = std::min(n, limit);
  Dataset d;
  d.inputs = torch::from_blob(images->data() + 16, {n, 1, rows, cols}, torch::kUInt8).clone();
  d.labels = torch::from_blob(labels->data() + 8, {n}, torch::kUInt8).to(torch::kLong);
  return d;
}

absl::StatusOr<Dataset> ReadTableDataset(const trainer::v1::DatasetSource& s, char delimiter,
                                         bool regression,
                                         std::map<std::string, int64_t>* label_to_id) {
  absl::StatusOr<ConfinedFile> file = OpenConfined(s.path());
  if (!file.ok()) return file.status();
  std::ifstream in(file->path());
  if (!in) return absl::NotFoundError(absl::StrCat(s.path(), ": cannot open"));
  std::string line;
  if (!std::getline(in, line)) return absl::InvalidArgumentError(absl::StrCat(s.path(), ": empty"));
  const std::vector<std::string> header = SplitTableRow(line, delimiter);
  const std::string label_column = s.label_column().empty() ? "label" : s.label_column();
  auto column = [&](const std::string& name) -> int64_t {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : it - header.begin();
  };
  const int64_t label_index = column(label_column);
  if (label_index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.path(), ": no column \"", label_column, "\" (the label_column)"));
  }
  std::vector<int64_t> features;
  if (s.feature_columns_size() == 0) {
    for (int64_t i = 0; i < static_cast<int64_t>(header.size()); ++i) {
      if (i != label_index) features.push_back(i);
    }
  } else {
    for (const std::string& name : s.feature_columns()) {
      const int64_t i = column(name);
      if (i < 0) return absl::InvalidArgumentError(absl::StrCat(s.path(), ": no column \"", name, "\""));
      features.push_back(i);
    }
  }

  std::vector<float> values;
  std::vector<std::string> raw_labels;
  int64_t row = 1;
  while (std::getline(in, line) && (s.limit() == 0 || static_cast<int64_t>(raw_labels.size()) < s.limit())) {
    ++row;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::vector<std::string> cells = SplitTableRow(line, delimiter);
    if (cells.size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(s.path(), ":", row, ": has ", cells.size(),
                                                     " columns, the header has ", header.size()));
    }
    for (int64_t i : features) {
      float v;
      if (!absl::SimpleAtof(cells[i], &v)) {
        // Line and column, never the cell: the file may hold what its reader must not see.
        return absl::InvalidArgumentError(
            absl::StrCat(s.path(), ":", row, ":", i + 1, ": column ", i + 1, " is not a number"));
      }
      values.push_back(v);
    }
    raw_labels.push_back(cells[label_index]);
  }
  const int64_t n = raw_labels.size();
  if (n == 0) return absl::InvalidArgumentError(absl::StrCat(s.path(), ": has no data rows"));

  Dataset d;
  d.inputs = torch::from_blob(values.data(), {n, static_cast<int64_t>(features.size())}, torch::kFloat).clone();
  absl::StatusOr<torch::Tensor> labels = TableLabels(raw_labels, regression, label_to_id, s.path(), label_index);
  if (!labels.ok()) return labels.status();
  d.labels = *std::move(labels);
  return d;
}

absl::StatusOr<DatasetBundle> LoadTableDatasets(const trainer::v1::DataSpec& data, int64_t data_seed) {
  DatasetBundle b;
  b.regression = data.task() == "regression";
  std::map<std::string, int64_t> label_to_id;
  if (data.train().path().empty()) {
    return absl::InvalidArgumentError("data.train.path: required");
  }
  auto train = ReadSource(data.train(), b.regression, &label_to_id);
  if (!train.ok()) return train.status();
  b.train = std::move(*train);
  if (!data.eval().path().empty()) {
    auto eval = ReadSource(data.eval(), b.regression, &label_to_id);
    if (!eval.ok()) return eval.status();
    b.eval = std::move(*eval);
  } else if (data.eval_split() > 0) {
    const int64_t n = b.train.size();
    const int64_t n_eval = static_cast<int64_t>(n * data.eval_split());
    if (n_eval < 1 || n_eval >= n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data.eval_split: ", data.eval_split(), " of ", n, " examples leaves an empty split"));
    }
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(data_seed));
    torch::Tensor perm = torch::randperm(n, gen, torch::kLong);
    b.eval = b.train.Subset(perm.slice(0, n - n_eval));
    b.train = b.train.Subset(perm.slice(0, 0, n - n_eval));
  }
  if (!data.test().path().empty()) {
    auto test = ReadSource(data.test(), b.regression, &label_to_id);
    if (!test.ok()) return test.status();
    b.test = std::move(*test);
  }
  for (const auto& [name, id] : label_to_id) {
    if (b.class_names.size() <= static_cast<size_t>(id)) b.class_names.resize(id + 1);
    b.class_names[id] = name;
  }
  for (const auto& [name, split] : {std::pair<const char*, const Dataset*>{"train", &b.train},
                                    {"eval", b.eval ? &*b.eval : nullptr}, {"test", b.test ? &*b.test : nullptr}}) {
    if (split != nullptr && split->size() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("data.", name, ": holds no examples"));
    }
  }
  if (!b.regression) {
    int64_t max_label = b.train.labels.max().item<int64_t>();
    for (const auto* split : {&b.eval, &b.test}) {
      if (*split) max_label = std::max(max_label, (*split)->labels.max().item<int64_t>());
    }
    b.num_classes = max_label + 1;
  }
  b.input_shape = b.train.inputs.sizes().slice(1).vec();

  const bool images = b.train.inputs.scalar_type() == torch::kUInt8;
  const double scale = data.scale() > 0 ? data.scale() : (images ? 255.0 : 1.0);
  torch::Tensor mean, std;
  if (data.standardize()) {
    torch::Tensor x = b.train.inputs.to(torch::kFloat) / scale;
    mean = x.mean(0);
    std = x.std(0).clamp_min(1e-8);
  } else {
    if (data.mean() != 0) mean = torch::tensor(static_cast<float>(data.mean()));
    if (data.std() > 0) std = torch::tensor(static_cast<float>(data.std()));
  }
  b.normalization = Normalization::Create(scale, mean, std);
  return b;
}

Normalization Normalization::Create(double scale, const torch::Tensor& mean, const torch::Tensor& std) {
  Normalization n;
  n.scale = scale;
  if (mean.defined()) n.mean = mean.to(torch::kFloat);
  if (std.defined()) n.std = std.to(torch::kFloat);
  return n;
}

torch::Tensor Normalization::Apply(const torch::Tensor& raw) const {
  if (raw.scalar_type() == torch::kLong) return raw;  // token ids
  torch::Tensor x = raw.to(torch::kFloat, /*non_blocking=*/false, /*copy=*/true);
  if (scale != 1) x.div_(scale);  // ToTensor: img.float().div(255)
  if (mean.defined()) x.sub_(mean);  // Normalize: tensor.sub_(mean).div_(std)
  if (std.defined()) x.div_(std);
  return x;
}

}  // namespace trainerd
