// GradientReducer: averages gradients across ranks while backward is still running,
// the way PyTorch's DistributedDataParallel does.
//
// Parameters are grouped into buckets of about `bucket_cap_bytes`, in reverse order of
// registration (roughly the order backward produces their gradients). A hook after each
// parameter's gradient accumulation marks it ready; when a bucket's last gradient is
// ready, the bucket is flattened, divided by the world size and its all-reduce starts,
// overlapping with the rest of backward. Buckets start strictly in index order, so every
// rank issues the same collectives in the same order. Finish() waits for all of them
// and writes the averaged gradients back.
//
// Gradient accumulation: set_sync(false) for the micro-steps before the last one; their
// hooks do nothing and gradients accumulate locally (DDP's no_sync()).
//
// Threading: hooks may run on autograd's threads (GPU backward); state is guarded.
#ifndef TRAINERD_WORKER_DISTRIBUTED_GRADIENT_REDUCER_H_
#define TRAINERD_WORKER_DISTRIBUTED_GRADIENT_REDUCER_H_

#include <memory>
#include <vector>

#include <torch/torch.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "worker/distributed/distributed.h"

namespace torch::autograd {
struct Node;
}

namespace trainerd {

class GradientReducer {
 public:
  // `params` are the trainable parameters (leaves requiring grad); `distributed` must
  // outlive the reducer. Registers the hooks.
  GradientReducer(std::vector<torch::Tensor> params, Distributed* distributed, int64_t bucket_cap_bytes);
  ~GradientReducer();

  // Whether the next backward all-reduces (true by default).
  void set_sync(bool sync);
  // After a synchronising backward: starts the buckets whose parameters got no gradient
  // (unused in this step; they count as zeros), waits for every bucket and writes the
  // averaged gradients into the parameters' .grad. Throws when a collective fails.
  void Finish();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Seconds Finish() spent waiting for all-reduces (what overlap did not hide).
  double wait_seconds() const { return wait_seconds_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    int64_t numel = 0;
    int64_t pending = 0;         // gradients not yet ready in this backward
    torch::Tensor flat;          // the message of the running all-reduce
    c10::intrusive_ptr<c10d::Work> work;
  };

  void OnGradientReady(size_t param) ABSL_LOCKS_EXCLUDED(mu_);
  // Starts every bucket from next_bucket_ on that is ready, in order.
  void LaunchReadyBuckets() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Launch(Bucket& bucket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reset() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::vector<torch::Tensor> params_;
  Distributed* distributed_;
  // Keeps the gradient accumulators (which hold the hooks) alive: a parameter refers
  // to its accumulator only weakly.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<size_t> bucket_of_;  // parameter -> bucket
  absl::Mutex mu_;
  std::vector<Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> ready_ ABSL_GUARDED_BY(mu_);
  size_t next_bucket_ ABSL_GUARDED_BY(mu_) = 0;
  bool sync_ ABSL_GUARDED_BY(mu_) = true;
  double wait_seconds_ = 0;
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DISTRIBUTED_GRADIENT_REDUCER_H_
