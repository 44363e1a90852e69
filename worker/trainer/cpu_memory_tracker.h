// Counts the bytes LibTorch holds on the CPU, and their peak, by wrapping its CPU
// allocator. The benches and tests use it to measure what a kernel or a training step
// really keeps (glibc's counters include freed-but-cached memory and have no peak).
#ifndef TRAINERD_WORKER_TRAINER_CPU_MEMORY_TRACKER_H_
#define TRAINERD_WORKER_TRAINER_CPU_MEMORY_TRACKER_H_

#include <atomic>
#include <cstdint>

#include <c10/core/Allocator.h>

namespace trainerd {

class CpuMemoryTracker : public c10::Allocator {
 public:
  // Installs the process's tracker as LibTorch's CPU allocator on first use (tensors
  // allocated before are not counted) and returns it. It is never destroyed.
  static CpuMemoryTracker& Install();
  // The installed tracker, or null when nothing installed it.
  static CpuMemoryTracker* Installed() { return installed_.load(); }

  // Each allocation's DataPtr has its data as its context, as LibTorch's raw_allocate
  // (used by some CPU kernels, e.g. NNPACK's convolutions) requires: the bookkeeping
  // lives in a header just before the data.
  c10::DataPtr allocate(size_t bytes) const override;
  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  int64_t current() const { return current_.load(); }
  int64_t peak() const { return peak_.load(); }
  // Starts a new peak from the bytes held now.
  void ResetPeak() { peak_.store(current_.load()); }

 private:
  explicit CpuMemoryTracker(c10::Allocator* base) : base_(base) {}
  static void Free(void* data);

  static std::atomic<CpuMemoryTracker*> installed_;
  c10::Allocator* base_;
  mutable std::atomic<int64_t> current_{0};
  mutable std::atomic<int64_t> peak_{0};
};

}  // namespace trainerd

#endif  // TRAINERD_WORKER_TRAINER_CPU_MEMORY_TRACKER_H_
