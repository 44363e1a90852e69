#include "worker/parallel/flat_parameter.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_error.h"
#include "worker/distributed/distributed.h"

namespace trainerd {

FlatParameter::FlatParameter(NamedTensors params, bool decays, bool trainable, int world_size, int rank,
                             const DeferredWeights* deferred)
    : params_(std::move(params)), world_size_(world_size), rank_(rank) {
  if (params_.empty()) throw std::logic_error("FlatParameter: no parameters");
  for (const auto& [name, p] : params_) {
    offsets_.push_back(numel_);
    numel_ += p.numel();
  }
  shard_numel_ = (numel_ + world_size_ - 1) / world_size_;
  const torch::Tensor& first = params_.front().second;
  torch::NoGradGuard no_grad;
  flat_ = torch::zeros({padded_numel()}, first.options().requires_grad(false));
  std::vector<size_t> unread;  // parameters without data, read from `deferred`
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i].second;
    torch::Tensor view = flat_.narrow(0, offsets_[i], p.numel());
    if (HasData(p)) {
      view.copy_(p.detach().reshape({-1}));
    } else if (deferred != nullptr && deferred->Has(p)) {
      unread.push_back(i);
    } else {
      throw std::logic_error("FlatParameter: " + params_[i].first + " has no data and nothing to read it from");
    }
    // The parameter keeps its identity (autograd leaf, optimizer-free) and gets the
    // buffer's memory as its data.
    p.set_data(view.view(p.sizes()));
  }
  shard_ = flat_.narrow(0, rank_ * shard_numel_, shard_numel_).clone();
  for (size_t i : unread) ReadDeferredSlice(i, *deferred);
  // The buffer has zeros where the slices were read: it is whole only once gathered.
  if (!unread.empty()) Release();
  if (decays) shard_ = shard_.view({1, shard_numel_});
  shard_.set_requires_grad(trainable);
}

void FlatParameter::ReadDeferredSlice(size_t i, const DeferredWeights& deferred) {
  // The part of the parameter's range in the flat buffer that falls in this rank's shard.
  const int64_t shard_begin = rank_ * shard_numel_;
  const int64_t begin = std::max(offsets_[i], shard_begin);
  const int64_t end = std::min(offsets_[i] + params_[i].second.numel(), shard_begin + shard_numel_);
  if (begin >= end) return;
  absl::Status s = deferred.ReadSlice(params_[i].second, begin - offsets_[i],
                                      shard_.reshape({-1}).narrow(0, begin - shard_begin, end - begin));
  if (!s.ok()) throw StatusError(absl::Status(s.code(), absl::StrCat("reading ", params_[i].first, ": ", s.message())));
}

void FlatParameter::Allocate() {
  c10::StorageImpl* storage = flat_.storage().unsafeGetStorageImpl();
  const size_t bytes = static_cast<size_t>(padded_numel()) * flat_.element_size();
  storage->set_data_ptr_noswap(storage->allocator()->allocate(bytes));
  storage->set_nbytes(bytes);
}

void FlatParameter::WaitForPrefetch() {
  if (!pending_) return;
  c10::intrusive_ptr<c10d::Work> work = std::move(pending_);  // leaves pending_ null
  pending_on_->Wait(work, "all-gather (prefetch)");
}

void FlatParameter::Prefetch(Distributed* distributed) {
  if (gathered_ || pending_) return;
  if (distributed == nullptr) return Gather(nullptr);  // nothing to wait for
  Allocate();
  gathered_ = true;
  pending_ = distributed->AllGatherIntoAsync(shard_.detach(), flat_);
  pending_on_ = distributed;
}

void FlatParameter::Gather(Distributed* distributed) {
  if (pending_) return WaitForPrefetch();
  if (!gathered_) Allocate();
  if (distributed == nullptr) {
    torch::NoGradGuard no_grad;
    flat_.copy_(shard_.detach().reshape({-1}));
  } else {
    distributed->AllGatherInto(shard_.detach().reshape({-1}), flat_);
  }
  gathered_ = true;
}

void FlatParameter::Release() {
  WaitForPrefetch();
  if (!gathered_) return;
  flat_.storage().unsafeGetStorageImpl()->reset();
  gathered_ = false;
}

void FlatParameter::CopyParametersToShard() {
  if (!gathered_) throw std::logic_error("FlatParameter: the parameters are not gathered");
  torch::NoGradGuard no_grad;
  shard_.detach().reshape({-1}).copy_(flat_.narrow(0, rank_ * shard_numel_, shard_numel_));
}

void FlatParameter::ReduceGradients(Distributed* distributed) {
  torch::NoGradGuard no_grad;
  torch::Tensor grads = torch::zeros({padded_numel()}, flat_.options());
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor& p = params_[i].second;
    if (p.grad().defined()) grads.narrow(0, offsets_[i], p.numel()).copy_(p.grad().reshape({-1}));
    p.mutable_grad().reset();
  }
  // Shaped as the shard and not a view: the optimizer's zero_grad detaches it in place.
  torch::Tensor mine = torch::empty(shard_.sizes(), flat_.options());
  if (distributed == nullptr) {
    mine.reshape({-1}).copy_(grads);
  } else {
    distributed->ReduceScatterSum(grads, mine);
    mine.div_(world_size_);
  }
  if (shard_.grad().defined()) {
    shard_.mutable_grad().add_(mine);
  } else {
    shard_.mutable_grad() = mine;
  }
}

}  // namespace trainerd
