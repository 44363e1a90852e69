// compute_metrics by name, over a whole evaluation set.
#ifndef TRAINERD_WORKER_TRAINER_METRICS_H_
#define TRAINERD_WORKER_TRAINER_METRICS_H_

#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "worker/trainer/metrics_map.h"

namespace trainerd {

// Computes `names` (accuracy, f1, precision, recall: macro over classes; mse, mae;
// perplexity = exp(mean_loss)) from `outputs` (logits [N, C] for classification,
// predictions [N] or [N, 1] for regression) and `labels` [N]. Keys are unprefixed.
Metrics ComputeMetrics(const std::vector<std::string>& names, const torch::Tensor& outputs,
                       const torch::Tensor& labels, double mean_loss, bool regression);

// Language modelling: `predicted` [N, L] is each position's most likely next token and
// `labels` [N, L] the sequence; token_accuracy (also under "accuracy") compares
// predicted[:, :-1] with labels[:, 1:], skipping labels of -100; perplexity =
// exp(mean_loss).
Metrics ComputeTokenMetrics(const std::vector<std::string>& names, const torch::Tensor& predicted,
                            const torch::Tensor& labels, double mean_loss);

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_METRICS_H_
