// Batches a Dataset: per-epoch shuffling, whole-batch collation, optional prefetching.
//
// The order of epoch e is a permutation drawn from a generator seeded with seed + e, so
// any (epoch, batch) position can be reproduced without replaying earlier batches.
// With num_replicas > 1 each rank reads a disjoint shard of that order, as PyTorch's
// DistributedSampler does: the order is padded (by repeating its start) to a multiple
// of num_replicas, and rank r takes positions r, r + num_replicas, ... so that every
// rank has the same number of examples and steps.
// Batches are collated whole (one gather + one normalisation per batch, never per
// example). With num_workers > 0, that many threads prepare the next batches while the
// training step runs; batches still come out in order.
#ifndef TRAINERD_WORKER_DATA_DATA_LOADER_H_
#define TRAINERD_WORKER_DATA_DATA_LOADER_H_

#include <atomic>
#include <deque>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "worker/data/dataset.h"

namespace trainerd {

struct DataLoaderOptions {
  int64_t batch_size = 8;
  bool shuffle = false;
  bool drop_last = false;
  uint64_t seed = 0;
  int64_t num_workers = 0;
  // Batches each worker may prepare ahead of the consumer.
  int64_t prefetch_factor = 2;
  // Data parallelism: this loader's rank among num_replicas.
  int64_t num_replicas = 1;
  int64_t rank = 0;
  // Padded token sequences (text classification): each batch is cut to its longest
  // sequence, dropping trailing columns that hold only this pad id. -1: off.
  int64_t trim_pad_id = -1;
};

class DataLoader {
 public:
  // `dataset` and `normalization` must outlive the loader.
  DataLoader(const Dataset* dataset, const Normalization* normalization, DataLoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Batches per epoch.
  int64_t num_batches() const;
  // Examples this rank reads per epoch (its shard, padding included).
  int64_t num_examples() const;
  const DataLoaderOptions& options() const { return options_; }

  // Starts producing epoch `epoch`, beginning at batch `first_batch` (resume: earlier
  // batches are skipped by index, never materialised).
  void StartEpoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the current epoch, or nullopt at its end.
  std::optional<Batch> Next();

  // How many examples of batch `batch` are real, not the padding that evens out the
  // ranks' shards (evaluation counts each example once).
  int64_t RealExamplesInBatch(int64_t batch) const;

  // Collates the batch at `position` of the current order. Thread-safe.
  Batch Collate(int64_t position) const;

 private:
  struct Slot {
    absl::Mutex mu;
    std::deque<Batch> ready ABSL_GUARDED_BY(mu);
  };
  void StopWorkers();
  void WorkerLoop(int64_t worker);

  const Dataset* dataset_;
  const Normalization* normalization_;
  DataLoaderOptions options_;
  torch::Tensor order_;  // example indices this rank reads in the current epoch
  int64_t next_batch_ = 0;
  int64_t first_batch_ = 0;

  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_{false};
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_DATA_DATA_LOADER_H_
