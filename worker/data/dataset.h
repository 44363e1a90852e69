// In-memory labelled datasets and the normalisation applied when batches are collated.
#ifndef TRAINERD_WORKER_DATA_DATASET_H_
#define TRAINERD_WORKER_DATA_DATASET_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace trainerd {

class TextTokenizer;

// A whole split held in memory. `inputs` is [N, ...]: uint8 images [N, C, H, W] (as
// stored on disk, normalised per batch), float features [N, F], or int64 token ids
// [N, L] (passed through as they are). `labels` is [N] int64
// class indices (classification) or [N] float targets (regression).
struct Dataset {
  torch::Tensor inputs;
  torch::Tensor labels;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  // The examples at `indices` (int64 [K]), in that order.
  Dataset Subset(const torch::Tensor& indices) const {
    return Dataset{inputs.index_select(0, indices), labels.index_select(0, indices)};
  }
};

// x = (x / scale - mean) / std, with mean and std broadcast over the feature dims,
// computed in float32 in exactly that order, as torchvision's ToTensor + Normalize do
// (a fused multiply-add differs from them in the last bit for most pixel values, and a
// Python user reproducing a run would see other losses).
struct Normalization {
  // `mean` undefined means 0, `std` undefined means 1; both float32.
  static Normalization Create(double scale, const torch::Tensor& mean, const torch::Tensor& std);

  // Converts a batch of raw inputs (uint8 or float) to normalised float32; never
  // modifies `raw`. A default-constructed Normalization only converts.
  torch::Tensor Apply(const torch::Tensor& raw) const;

  double scale = 1;
  torch::Tensor mean;
  torch::Tensor std;
};

// One collated batch.
struct Batch {
  torch::Tensor inputs;
  torch::Tensor labels;
  int64_t size() const { return labels.size(0); }
};

// Everything a job trains, evaluates and predicts on.
struct DatasetBundle {
  Dataset train;
  std::optional<Dataset> eval;
  std::optional<Dataset> test;
  Normalization normalization;
  bool regression = false;
  int64_t num_classes = 0;              // classification only
  std::vector<std::string> class_names;  // CSV string labels, index = class id
  std::vector<int64_t> input_shape;      // one example, e.g. {1, 28, 28} or {F}

  // Text: inputs are int64 token ids [N, max_seq_length].
  std::shared_ptr<const TextTokenizer> tokenizer;
  bool causal_lm = false;  // labels are the inputs (next-token prediction)
  int64_t vocab_size = 0;
  int64_t pad_id = -1;     // classification padding (-1: none)
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_DATASET_H_
