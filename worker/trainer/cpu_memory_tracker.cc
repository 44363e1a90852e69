#include "worker/trainer/cpu_memory_tracker.h"

#include <c10/core/CPUAllocator.h>

namespace trainerd {
namespace {

// What a tracked allocation's DataPtr carries: the base allocator's DataPtr (freed with
// it) and the size to subtract.
struct Allocation {
  c10::DataPtr inner;
  int64_t bytes;
  std::atomic<int64_t>* current;
};

}  // namespace

CpuMemoryTracker& CpuMemoryTracker::Install() {
  static CpuMemoryTracker* tracker = [] {
    auto* t = new CpuMemoryTracker(c10::GetCPUAllocator());
    c10::SetCPUAllocator(t, /*priority=*/255);
    return t;
  }();
  return *tracker;
}

c10::DataPtr CpuMemoryTracker::allocate(size_t bytes) const {
  c10::DataPtr inner = base_->allocate(bytes);
  void* data = inner.get();
  const c10::Device device = inner.device();
  const auto n = static_cast<int64_t>(bytes);
  const int64_t now = current_.fetch_add(n) + n;
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  return c10::DataPtr(data, new Allocation{std::move(inner), n, &current_}, &CpuMemoryTracker::Free, device);
}

void CpuMemoryTracker::Free(void* context) {
  auto* allocation = static_cast<Allocation*>(context);
  allocation->current->fetch_sub(allocation->bytes);
  delete allocation;
}

}  // namespace trainerd
