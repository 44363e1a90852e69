#include "worker/distributed/gradient_reducer.h"

#include <chrono>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace trainerd {
namespace {

constexpr int64_t kFirstBucketBytes = 1 << 20;

}  // namespace

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, Distributed* distributed,
                                 int64_t bucket_cap_bytes)
    : params_(std::move(params)), distributed_(distributed) {
  absl::MutexLock lock(&mu_);
  bucket_of_.resize(params_.size());
  ready_.assign(params_.size(), false);
  // Reverse registration order approximates the order gradients become ready. As in
  // DDP, a bucket closes once it reaches its cap, and the first one is capped at 1 MB
  // so that communication starts early in backward. A bucket holds one dtype and
  // device, so that it flattens into one message.
  int64_t bucket_bytes = 0;
  bool open = false;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& p = params_[k];
    const bool same_kind = open && params_[buckets_.back().params.front()].scalar_type() == p.scalar_type() &&
                           params_[buckets_.back().params.front()].device() == p.device();
    if (!same_kind) {
      buckets_.emplace_back();
      bucket_bytes = 0;
    }
    buckets_.back().params.push_back(k);
    buckets_.back().numel += p.numel();
    bucket_of_[k] = buckets_.size() - 1;
    bucket_bytes += p.numel() * static_cast<int64_t>(p.element_size());
    const int64_t cap = buckets_.size() == 1 ? std::min<int64_t>(kFirstBucketBytes, bucket_cap_bytes) : bucket_cap_bytes;
    open = bucket_bytes < cap;
  }
  Reset();
  for (size_t k = 0; k < params_.size(); ++k) {
    std::shared_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(params_[k]);
    accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          OnGradientReady(k);
          return outputs;
        }));
    accumulators_.push_back(std::move(accumulator));
  }
}

GradientReducer::~GradientReducer() {
  // The hooks refer to this object. Dropping our references destroys the accumulators
  // (parameters hold them weakly), and later backward passes create fresh ones.
  accumulators_.clear();
}

void GradientReducer::set_sync(bool sync) {
  absl::MutexLock lock(&mu_);
  sync_ = sync;
}

void GradientReducer::Reset() {
  for (Bucket& b : buckets_) {
    b.pending = static_cast<int64_t>(b.params.size());
    b.work.reset();
    b.flat = torch::Tensor();
  }
  ready_.assign(params_.size(), false);
  next_bucket_ = 0;
}

void GradientReducer::OnGradientReady(size_t param) {
  absl::MutexLock lock(&mu_);
  if (!sync_ || ready_[param]) return;
  ready_[param] = true;
  --buckets_[bucket_of_[param]].pending;
  LaunchReadyBuckets();
}

void GradientReducer::LaunchReadyBuckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    Launch(buckets_[next_bucket_]);
    ++next_bucket_;
  }
}

void GradientReducer::Launch(Bucket& bucket) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  parts.reserve(bucket.params.size());
  for (size_t k : bucket.params) {
    const torch::Tensor& grad = params_[k].grad();
    parts.push_back(grad.defined() ? grad.reshape({-1}) : torch::zeros({params_[k].numel()}, params_[k].options()));
  }
  // Dividing first, as DDP does, keeps large sums of fp16/bf16 gradients in range.
  bucket.flat = torch::cat(parts).div_(distributed_->world_size());
  bucket.work = distributed_->AllReduceSumAsync(bucket.flat);
}

void GradientReducer::Finish() {
  absl::MutexLock lock(&mu_);
  if (!sync_) return;
  // Parameters that took no part in this step's loss never fire their hook: their
  // buckets go now, still in index order.
  for (Bucket& b : buckets_) b.pending = 0;
  LaunchReadyBuckets();
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    distributed_->Wait(b.work, "gradient all-reduce");
    int64_t offset = 0;
    for (size_t k : b.params) {
      torch::Tensor& p = params_[k];
      torch::Tensor averaged = b.flat.narrow(0, offset, p.numel()).view_as(p);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(averaged);
      } else {
        p.mutable_grad() = averaged.clone();
      }
      offset += p.numel();
    }
  }
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Reset();
}

}  // namespace trainerd
