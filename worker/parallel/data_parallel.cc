#include "worker/parallel/data_parallel.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/distributed/distributed.h"

namespace trainerd {

DataParallel::DataParallel(Model* model, Distributed* distributed, int64_t bucket_cap_bytes)
    : ParallelStrategy(distributed), model_(model), bucket_cap_bytes_(bucket_cap_bytes) {}

DataParallel::~DataParallel() = default;

std::string DataParallel::name() const { return world_size() > 1 ? "ddp" : "single"; }

std::string DataParallel::Describe(int64_t total_batch_size) const {
  if (world_size() == 1) return "";
  return absl::StrCat("Data parallel: ", world_size(), " ranks over ", distributed()->backend(),
                      ", total batch size = ", total_batch_size, ", ", reducer_ ? reducer_->num_buckets() : 0,
                      " gradient bucket(s)");
}

std::vector<torch::Tensor> DataParallel::GradientTensors() {
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& p : model_->Parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  return params;
}

void DataParallel::PrepareBackward() {
  if (world_size() > 1 && !reducer_) {
    reducer_ = std::make_unique<GradientReducer>(GradientTensors(), distributed(), bucket_cap_bytes_);
  }
}

void DataParallel::BeginMicroBatch(bool last) {
  // Gradients are all-reduced only in the backward of the last micro-batch.
  if (reducer_) reducer_->set_sync(last);
}

void DataParallel::FinishGradients() {
  if (reducer_) reducer_->Finish();
}

StrategyMetrics DataParallel::RunMetrics(double runtime_seconds, int64_t steps) const {
  if (!reducer_) return {};
  // The all-reduce time that backward did not hide (the loop waited for it).
  return {{"train_allreduce_wait_fraction", reducer_->wait_seconds() / runtime_seconds},
          {"train_allreduce_wait_ms_per_step", 1000 * reducer_->wait_seconds() / std::max<int64_t>(1, steps)}};
}

}  // namespace trainerd
