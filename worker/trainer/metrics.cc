#include "worker/trainer/metrics.h"

#include <cmath>

#include <torch/torch.h>

namespace trainerd {
namespace {

struct PerClass {
  torch::Tensor precision, recall, f1;
};

// Macro averages over the classes that occur in the labels or the predictions, as
// scikit-learn's average="macro" does (a class never seen nor predicted is left out).
PerClass ClassScores(const torch::Tensor& predicted, const torch::Tensor& labels, int64_t classes) {
  torch::Tensor confusion =
      torch::bincount(labels * classes + predicted, {}, classes * classes).view({classes, classes});
  confusion = confusion.to(torch::kDouble);
  torch::Tensor tp = confusion.diagonal();
  torch::Tensor predicted_count = confusion.sum(0);
  torch::Tensor actual_count = confusion.sum(1);
  torch::Tensor precision = torch::where(predicted_count > 0, tp / predicted_count.clamp_min(1),
                                         torch::zeros_like(tp));
  torch::Tensor recall = torch::where(actual_count > 0, tp / actual_count.clamp_min(1),
                                      torch::zeros_like(tp));
  torch::Tensor denom = precision + recall;
  torch::Tensor f1 = torch::where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300),
                                  torch::zeros_like(tp));
  torch::Tensor present = (predicted_count + actual_count) > 0;
  return {precision.masked_select(present), recall.masked_select(present), f1.masked_select(present)};
}

}  // namespace

Metrics ComputeMetrics(const std::vector<std::string>& names, const torch::Tensor& outputs,
                       const torch::Tensor& labels, double mean_loss, bool regression) {
  Metrics m;
  if (names.empty()) return m;
  torch::NoGradGuard no_grad;
  torch::Tensor predicted, values;
  PerClass scores;
  if (regression) {
    values = outputs.reshape({labels.size(0), -1}).select(1, 0).to(torch::kDouble);
  } else {
    predicted = outputs.argmax(-1);
    const int64_t classes = std::max<int64_t>(outputs.size(-1), labels.max().item<int64_t>() + 1);
    scores = ClassScores(predicted, labels, classes);
  }
  for (const std::string& name : names) {
    if (name == "perplexity") {
      m[name] = std::exp(mean_loss);
    } else if (regression && name == "mse") {
      m[name] = (values - labels.to(torch::kDouble)).square().mean().item<double>();
    } else if (regression && name == "mae") {
      m[name] = (values - labels.to(torch::kDouble)).abs().mean().item<double>();
    } else if (!regression && name == "accuracy") {
      m[name] = predicted.eq(labels).to(torch::kDouble).mean().item<double>();
    } else if (!regression && name == "precision") {
      m[name] = scores.precision.mean().item<double>();
    } else if (!regression && name == "recall") {
      m[name] = scores.recall.mean().item<double>();
    } else if (!regression && name == "f1") {
      m[name] = scores.f1.mean().item<double>();
    }
  }
  return m;
}

Metrics ComputeTokenMetrics(const std::vector<std::string>& names, const torch::Tensor& predicted,
                            const torch::Tensor& labels, double mean_loss) {
  Metrics m;
  torch::NoGradGuard no_grad;
  const int64_t l = labels.size(1);
  torch::Tensor targets = labels.narrow(1, 1, l - 1);
  torch::Tensor counted = targets.ne(-100);
  const double hits = (predicted.narrow(1, 0, l - 1).eq(targets) & counted).sum().item<double>();
  const double total = std::max(1.0, counted.sum().item<double>());
  for (const std::string& name : names) {
    if (name == "perplexity") m[name] = std::exp(mean_loss);
    if (name == "token_accuracy" || name == "accuracy") m[name] = hits / total;
  }
  return m;
}

}  // namespace trainerd
