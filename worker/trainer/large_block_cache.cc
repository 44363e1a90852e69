#include "worker/trainer/large_block_cache.h"

#include <map>
#include <new>
#include <vector>

#include <c10/core/CPUAllocator.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace trainerd {
namespace {

constexpr size_t kMinCachedBytes = size_t{4} << 20;
constexpr size_t kGranularity = size_t{2} << 20;
constexpr size_t kHeaderBytes = 64;  // keeps the data at LibTorch's alignment

// What sits before a block's data: its rounded size (0: not cached) and how to free it.
struct Header {
  size_t rounded;
  c10::DeleterFnPtr deleter;
  void* context;
};
static_assert(sizeof(Header) <= kHeaderBytes);

// The unused blocks, by rounded size (data pointers); one cache per process.
struct Cache {
  absl::Mutex mu;
  std::map<size_t, std::vector<void*>> free ABSL_GUARDED_BY(mu);
  int64_t cached_bytes ABSL_GUARDED_BY(mu) = 0;
  int64_t reuses ABSL_GUARDED_BY(mu) = 0;
  int64_t max_cached_bytes = 0;
};

Cache& TheCache() {
  static Cache* cache = new Cache();
  return *cache;
}

Header* HeaderOf(void* data) { return reinterpret_cast<Header*>(static_cast<char*>(data) - kHeaderBytes); }

}  // namespace

LargeBlockCache& LargeBlockCache::Install(int64_t max_cached_bytes) {
  static LargeBlockCache* installed = [max_cached_bytes] {
    TheCache().max_cached_bytes = max_cached_bytes;
    auto* cache = new LargeBlockCache(c10::GetCPUAllocator());
    c10::SetCPUAllocator(cache, /*priority=*/200);
    return cache;
  }();
  return *installed;
}

c10::DataPtr LargeBlockCache::allocate(size_t bytes) const {
  // Every block has the header (raw_deallocate hands any block to Free); small ones are
  // never cached (rounded 0).
  const bool large = bytes >= kMinCachedBytes;
  const size_t rounded = large ? (bytes + kGranularity - 1) / kGranularity * kGranularity : 0;
  const c10::Device device(c10::DeviceType::CPU);
  Cache& cache = TheCache();
  if (large) {
    absl::MutexLock lock(&cache.mu);
    auto it = cache.free.find(rounded);
    if (it != cache.free.end() && !it->second.empty()) {
      void* data = it->second.back();
      it->second.pop_back();
      cache.cached_bytes -= static_cast<int64_t>(rounded);
      ++cache.reuses;
      return c10::DataPtr(data, data, &LargeBlockCache::Free, device);
    }
  }
  c10::DataPtr block = base_->allocate((large ? rounded : bytes) + kHeaderBytes);
  char* start = static_cast<char*>(block.get());
  const c10::DeleterFnPtr deleter = block.get_deleter();
  new (start) Header{rounded, deleter, block.release_context()};
  void* data = start + kHeaderBytes;
  return c10::DataPtr(data, data, &LargeBlockCache::Free, device);
}

void LargeBlockCache::Free(void* data) {
  if (data == nullptr) return;
  Header* header = HeaderOf(data);
  Cache& cache = TheCache();
  if (header->rounded > 0) {
    absl::MutexLock lock(&cache.mu);
    if (cache.cached_bytes + static_cast<int64_t>(header->rounded) <= cache.max_cached_bytes) {
      cache.free[header->rounded].push_back(data);
      cache.cached_bytes += static_cast<int64_t>(header->rounded);
      return;
    }
  }
  const Header copy = *header;
  if (copy.deleter != nullptr) copy.deleter(copy.context);
}

int64_t LargeBlockCache::cached_bytes() const {
  Cache& cache = TheCache();
  absl::MutexLock lock(&cache.mu);
  return cache.cached_bytes;
}

int64_t LargeBlockCache::reuses() const {
  Cache& cache = TheCache();
  absl::MutexLock lock(&cache.mu);
  return cache.reuses;
}

}  // namespace trainerd
