#include "worker/trainer/cpu_memory_tracker.h"

#include <new>

#include <c10/core/CPUAllocator.h>

namespace trainerd {
namespace {

// What sits before a tracked allocation's data: how to free the base allocator's block
// and the size to subtract. 64 bytes keep the data at LibTorch's alignment.
struct Header {
  c10::DeleterFnPtr deleter;
  void* context;
  int64_t bytes;
  std::atomic<int64_t>* current;
};
constexpr size_t kHeaderBytes = 64;
static_assert(sizeof(Header) <= kHeaderBytes);

}  // namespace

std::atomic<CpuMemoryTracker*> CpuMemoryTracker::installed_{nullptr};

CpuMemoryTracker& CpuMemoryTracker::Install() {
  static CpuMemoryTracker* tracker = [] {
    auto* t = new CpuMemoryTracker(c10::GetCPUAllocator());
    c10::SetCPUAllocator(t, /*priority=*/255);
    installed_.store(t);
    return t;
  }();
  return *tracker;
}

c10::DataPtr CpuMemoryTracker::allocate(size_t bytes) const {
  c10::DataPtr inner = base_->allocate(bytes + kHeaderBytes);
  char* block = static_cast<char*>(inner.get());
  const c10::Device device = inner.device();
  const c10::DeleterFnPtr deleter = inner.get_deleter();
  const auto n = static_cast<int64_t>(bytes);
  new (block) Header{deleter, inner.release_context(), n, &current_};
  const int64_t now = current_.fetch_add(n) + n;
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  void* data = block + kHeaderBytes;
  return c10::DataPtr(data, data, &CpuMemoryTracker::Free, device);
}

void CpuMemoryTracker::Free(void* data) {
  if (data == nullptr) return;
  const Header header = *reinterpret_cast<Header*>(static_cast<char*>(data) - kHeaderBytes);
  header.current->fetch_sub(header.bytes);
  if (header.deleter != nullptr) header.deleter(header.context);
}

}  // namespace trainerd
