#include "worker/data/data_loader.h"

#include <algorithm>

#include <torch/torch.h>

namespace trainerd {

DataLoader::DataLoader(const Dataset* dataset, const Normalization* normalization,
                       DataLoaderOptions options)
    : dataset_(dataset), normalization_(normalization), options_(options) {}

DataLoader::~DataLoader() { StopWorkers(); }

int64_t DataLoader::num_examples() const {
  const int64_t replicas = std::max<int64_t>(1, options_.num_replicas);
  return (dataset_->size() + replicas - 1) / replicas;
}

int64_t DataLoader::num_batches() const {
  const int64_t n = num_examples(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

int64_t DataLoader::RealExamplesInBatch(int64_t batch) const {
  const int64_t n = dataset_->size();
  const int64_t replicas = std::max<int64_t>(1, options_.num_replicas);
  // This rank reads padded positions rank, rank + replicas, ...; those below n are real.
  const int64_t real = options_.rank < n ? (n - options_.rank + replicas - 1) / replicas : 0;
  const int64_t start = batch * options_.batch_size;
  const int64_t size = std::min(options_.batch_size, num_examples() - start);
  return std::clamp<int64_t>(real - start, 0, std::max<int64_t>(size, 0));
}

void DataLoader::StartEpoch(int64_t epoch, int64_t first_batch) {
  StopWorkers();
  const int64_t n = dataset_->size();
  if (options_.shuffle) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed + static_cast<uint64_t>(epoch));
    order_ = torch::randperm(n, gen, torch::kLong);
  } else {
    order_ = torch::arange(n, torch::kLong);
  }
  const int64_t replicas = std::max<int64_t>(1, options_.num_replicas);
  if (replicas > 1 && n > 0) {
    const int64_t total = num_examples() * replicas;
    while (order_.size(0) < total) {
      order_ = torch::cat({order_, order_.slice(0, 0, total - order_.size(0))});
    }
    order_ = order_.slice(0, options_.rank, total, replicas);
  }
  first_batch_ = next_batch_ = first_batch;
  if (options_.num_workers <= 0) return;
  stop_ = false;
  slots_.clear();
  for (int64_t w = 0; w < options_.num_workers; ++w) slots_.push_back(std::make_unique<Slot>());
  for (int64_t w = 0; w < options_.num_workers; ++w) {
    workers_.emplace_back([this, w] { WorkerLoop(w); });
  }
}

Batch DataLoader::Collate(int64_t position) const {
  const int64_t start = position * options_.batch_size;
  const int64_t end = std::min(start + options_.batch_size, order_.size(0));
  torch::Tensor indices = order_.slice(0, start, end);
  torch::Tensor inputs = dataset_->inputs.index_select(0, indices);
  if (options_.trim_pad_id >= 0 && (inputs.dim() == 2 || inputs.dim() == 3) && inputs.size(-1) > 0) {
    // Texts are padded at the end: keep the columns up to the longest real sequence
    // (of [B, L] ids, or of the ids of [B, 2, L] ids and token types).
    torch::Tensor ids = inputs.dim() == 3 ? inputs.select(1, 0) : inputs;
    torch::Tensor used = ids.ne(options_.trim_pad_id).any(0);
    const int64_t width = used.any().item<bool>() ? used.nonzero().max().item<int64_t>() + 1 : 1;
    inputs = inputs.narrow(-1, 0, width);
  }
  return Batch{normalization_->Apply(inputs), dataset_->labels.index_select(0, indices)};
}

// Worker w prepares batches first_batch_ + w, + w + N, ... into its own slot, at most
// prefetch_factor ahead; the consumer reads slot (batch - first_batch_) % N, so the
// order is kept without a shared queue.
void DataLoader::WorkerLoop(int64_t worker) {
  Slot& slot = *slots_[worker];
  const int64_t n = options_.num_workers;
  for (int64_t b = first_batch_ + worker; b < num_batches(); b += n) {
    {
      absl::MutexLock lock(&slot.mu);
      auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(slot.mu) {
        return stop_ || static_cast<int64_t>(slot.ready.size()) < options_.prefetch_factor;
      };
      slot.mu.Await(absl::Condition(&room));
      if (stop_) return;
    }
    Batch batch = Collate(b);
    absl::MutexLock lock(&slot.mu);
    slot.ready.push_back(std::move(batch));
  }
}

std::optional<Batch> DataLoader::Next() {
  if (next_batch_ >= num_batches()) return std::nullopt;
  const int64_t b = next_batch_++;
  if (options_.num_workers <= 0) return Collate(b);
  Slot& slot = *slots_[(b - first_batch_) % options_.num_workers];
  absl::MutexLock lock(&slot.mu);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(slot.mu) { return !slot.ready.empty(); };
  slot.mu.Await(absl::Condition(&ready));
  Batch batch = std::move(slot.ready.front());
  slot.ready.pop_front();
  return batch;
}

void DataLoader::StopWorkers() {
  stop_ = true;
  // Releasing each slot's lock makes its waiting worker check stop_ again.
  for (auto& slot : slots_) absl::MutexLock lock(&slot->mu);
  for (auto& t : workers_) t.join();
  workers_.clear();
}

}  // namespace trainerd
