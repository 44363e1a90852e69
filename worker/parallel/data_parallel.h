// DataParallel: PyTorch's DistributedDataParallel. Every rank holds the whole model and
// the whole optimizer; the gradients of each step are averaged across the ranks while
// backward runs (GradientReducer), so every rank takes the same step. On one rank it
// does nothing but train.
#ifndef TRAINERD_WORKER_PARALLEL_DATA_PARALLEL_H_
#define TRAINERD_WORKER_PARALLEL_DATA_PARALLEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "worker/distributed/gradient_reducer.h"
#include "worker/parallel/parallel_strategy.h"

namespace trainerd {

class DataParallel : public ParallelStrategy {
 public:
  // `distributed` null (or of one rank): a single process. Gradients travel in buckets of
  // about `bucket_cap_bytes` (ddp_bucket_cap_mb). `model` and `distributed` must outlive it.
  DataParallel(Model* model, Distributed* distributed, int64_t bucket_cap_bytes);
  ~DataParallel() override;

  std::string name() const override;
  std::string Describe(int64_t total_batch_size) const override;
  NamedTensors OptimizedParameters() override { return model_->NamedParameters(); }
  std::vector<torch::Tensor> GradientTensors() override;
  void PrepareBackward() override;
  void BeginMicroBatch(bool last) override;
  void FinishGradients() override;
  StrategyMetrics RunMetrics(double runtime_seconds, int64_t steps) const override;

 protected:
  Model* model() const { return model_; }

 private:
  Model* model_;
  int64_t bucket_cap_bytes_;
  std::unique_ptr<GradientReducer> reducer_;  // several ranks, from PrepareBackward on
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_PARALLEL_DATA_PARALLEL_H_
