#pragma once
// Caching allocators for the CUDA backend: DeviceAllocator (device memory, one per device) and
// PinnedAllocator (page-locked host memory for staging copies).
//
// DeviceAllocator and stream order. Every ember kernel, cuBLAS and cuDNN call for a device runs
// on that device's single stream (runtime.hpp: cuda::stream). A block freed by the host may
// still be read or written by work already enqueued on that stream; it is nevertheless handed
// out again at once, because whatever the next owner enqueues goes on the same stream and so
// runs after that earlier work. This is only correct while all device work that touches
// allocator memory is enqueued on cuda::stream(device): code that uses another stream must
// synchronise that stream before the memory it used is deallocated.
//
// Sizes are rounded up (512 B granularity up to 1 MiB, 2 MiB granularity above) and freed
// blocks are kept in free lists keyed by the rounded size, so a training loop that makes the
// same tensors every step stops calling cudaMalloc after the first step.
//
// Private pools (for CUDA graph capture, graph.hpp). While a private pool is active on a
// device, every allocation on that device is served from that pool (its free lists, else a
// new cudaMalloc: stream capture runs in cudaStreamCaptureModeRelaxed, where cudaMalloc is
// permitted) and belongs to it: when freed, during or after the capture, it returns to that
// pool's free lists, never to the general cache. So memory that a captured graph reads or
// writes is not handed to other work while the graph may still be replayed. A pool's blocks
// are kept until release_private_pool(id), which moves the cached ones into the general cache
// (safe in stream order: later users enqueue after the graph's replays) and hands blocks that
// are still in use over to the general cache for when they are freed.
// Memory allocated before a capture and used by the graph must stay alive while the graph may
// be replayed (the caller's duty, as with PyTorch's graphs).

#if !defined(__CUDACC__)
#error "ember/backend/cuda/allocator.hpp is CUDA host code: compile this translation unit with nvcc"
#endif

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ember/backend/cuda/runtime.hpp"
#include "ember/core/error.hpp"

namespace ember::cuda {

namespace detail {
inline constexpr std::size_t kSmallGranularity = 512;
inline constexpr std::size_t kLargeThreshold = std::size_t(1) << 20;  // 1 MiB
inline constexpr std::size_t kLargeGranularity = std::size_t(2) << 20;  // 2 MiB
inline constexpr std::size_t kMaxAllocation = std::size_t(1) << 52;   // far beyond any GPU

// The size a request of `bytes` is served with (at least 512 B, so every block is a real,
// distinct allocation even for 0 bytes).
[[nodiscard]] inline std::size_t round_size(std::size_t bytes) {
  EMBER_CHECK(bytes <= kMaxAllocation, "allocation of ", bytes,
              " bytes requested: larger than any device (an overflowed size computation?)");
  const std::size_t b = bytes == 0 ? 1 : bytes;
  const std::size_t g = b > kLargeThreshold ? kLargeGranularity : kSmallGranularity;
  return (b + g - 1) / g * g;
}

[[nodiscard]] inline double mib(std::size_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}
}  // namespace detail

class DeviceAllocator {
 public:
  struct Stats {
    std::size_t cuda_mallocs = 0;     // blocks obtained from cudaMalloc (ever)
    std::size_t hits = 0;             // allocations served from a free list
    std::size_t cached_bytes = 0;     // bytes in free lists (all pools), rounded sizes
    std::size_t allocated_bytes = 0;  // bytes handed out and not yet freed, rounded sizes
  };

  // The allocator of cuda:device (created on first use, never destroyed: storages may outlive
  // main).
  [[nodiscard]] static DeviceAllocator& instance(int device) {
    detail::check_device_index(device);
    static std::once_flag flags[kMaxDevices];
    static DeviceAllocator* allocators[kMaxDevices] = {};
    std::call_once(flags[device], [device] {
      check_device(device);
      allocators[device] = new DeviceAllocator(device);
    });
    return *allocators[device];
  }

  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  [[nodiscard]] int device() const { return device_; }

  // A block of at least `bytes` bytes (256-byte aligned, as cudaMalloc's). Never null.
  [[nodiscard]] void* allocate(std::size_t bytes) {
    const std::size_t size = detail::round_size(bytes);
    std::lock_guard lock(mutex_);
    const int pool = active_pool_;
    FreeLists& lists = pool == 0 ? general_ : pools_.at(pool);
    auto it = lists.find(size);
    if (it != lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
      ++hits_;
      live_.emplace(p, Block{size, pool});
      allocated_bytes_ += size;
      return p;
    }
    void* p = cuda_malloc_locked(size, bytes);
    live_.emplace(p, Block{size, pool});
    allocated_bytes_ += size;
    return p;
  }

  // Returns a block from allocate() to its pool's free list; `bytes` must be the size it was
  // requested with. Null is ignored. The block may be reused at once (see the header comment).
  void deallocate(void* p, std::size_t bytes) {
    if (p == nullptr) return;
    std::lock_guard lock(mutex_);
    auto it = live_.find(p);
    EMBER_CHECK(it != live_.end(), "DeviceAllocator(cuda:", device_, ")::deallocate: ", p,
                " was not allocated by this allocator, or was already freed");
    const Block block = it->second;
    EMBER_CHECK(detail::round_size(bytes) == block.size, "DeviceAllocator(cuda:", device_,
                ")::deallocate: block ", p, " freed with size ", bytes,
                " but it was allocated with a size that rounds to ", block.size);
    live_.erase(it);
    allocated_bytes_ -= block.size;
    FreeLists& lists = block.pool == 0 ? general_ : pools_.at(block.pool);
    lists[block.size].push_back(p);
    cached_bytes_ += block.size;
  }

  // cudaFree's every block in the general cache (private pools keep theirs).
  void empty_cache() {
    std::lock_guard lock(mutex_);
    empty_cache_locked();
  }

  [[nodiscard]] Stats stats() const {
    std::lock_guard lock(mutex_);
    return {cuda_mallocs_, hits_, cached_bytes_, allocated_bytes_};
  }

  // Starts a private pool and makes it the active one on this device; returns its id (> 0).
  // Pools do not nest: one capture per device at a time.
  [[nodiscard]] int begin_private_pool() {
    std::lock_guard lock(mutex_);
    EMBER_CHECK(active_pool_ == 0, "DeviceAllocator(cuda:", device_, "): private pool ",
                active_pool_, " is still active (nested or concurrent graph captures on one "
                "device are not supported)");
    const int id = next_pool_id_++;
    pools_.emplace(id, FreeLists{});
    active_pool_ = id;
    return id;
  }

  // Stops serving allocations from the active private pool; its blocks stay reserved for it.
  void end_private_pool() {
    std::lock_guard lock(mutex_);
    EMBER_CHECK(active_pool_ != 0, "DeviceAllocator(cuda:", device_,
                ")::end_private_pool: no private pool is active");
    active_pool_ = 0;
  }

  // Returns pool `id`'s blocks to the general cache (ending it first if it is still active).
  // Unknown ids (already released) are ignored.
  void release_private_pool(int id) {
    std::lock_guard lock(mutex_);
    if (id == 0) return;
    auto it = pools_.find(id);
    if (it == pools_.end()) return;
    if (active_pool_ == id) active_pool_ = 0;
    for (auto& [size, blocks] : it->second) {
      auto& dst = general_[size];
      dst.insert(dst.end(), blocks.begin(), blocks.end());
    }
    pools_.erase(it);
    for (auto& [p, block] : live_)
      if (block.pool == id) block.pool = 0;
  }

  // The id of the active private pool, 0 when none.
  [[nodiscard]] int active_private_pool() const {
    std::lock_guard lock(mutex_);
    return active_pool_;
  }

 private:
  using FreeLists = std::unordered_map<std::size_t, std::vector<void*>>;
  struct Block {
    std::size_t size;
    int pool;  // 0: general cache
  };

  explicit DeviceAllocator(int device) : device_(device) {}

  // Cached blocks may still be in use by work enqueued before they were freed, so the stream
  // is synchronised first. That is impossible while the stream is being captured into a graph:
  // then nothing is freed (the cache is kept; an allocation that fails during a capture fails).
  void empty_cache_locked() {
    if (general_.empty()) return;
    cudaStream_t s = stream(device_);
    if (capturing(device_)) return;
    DeviceGuard guard(device_);
    EMBER_CUDA_CHECK(cudaStreamSynchronize(s));
    for (auto& [size, blocks] : general_) {
      while (!blocks.empty()) {  // pop first: a throwing cudaFree leaves no dangling entry
        void* p = blocks.back();
        blocks.pop_back();
        cached_bytes_ -= size;
        EMBER_CUDA_CHECK(cudaFree(p));
      }
    }
    general_.clear();
  }

  // cudaMalloc(size) on this device; on out-of-memory, empties the general cache and retries
  // once, then throws naming the size and the device's free/total memory.
  void* cuda_malloc_locked(std::size_t size, std::size_t requested) {
    DeviceGuard guard(device_);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      empty_cache_locked();
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      std::size_t free_b = 0, total_b = 0;
      const bool have_info = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
      (void)cudaGetLastError();
      throw Error(::ember::detail::concat(
          "cudaMalloc of ", size, " bytes (", detail::mib(size), " MiB; ", requested,
          " requested) on cuda:", device_, " failed with ", cudaGetErrorName(e), " (",
          cudaGetErrorString(e), ")",
          e == cudaErrorMemoryAllocation ? " after emptying ember's cache (not emptied "
                                           "during a graph capture)" : "",
          have_info ? ::ember::detail::concat("; the device has ", detail::mib(free_b),
                                              " MiB free of ", detail::mib(total_b),
                                              " MiB total")
                    : std::string("; the device's free/total memory is unavailable"),
          "; ember holds ", detail::mib(allocated_bytes_), " MiB in use and ",
          detail::mib(cached_bytes_), " MiB cached"));
    }
    ++cuda_mallocs_;
    return p;
  }

  const int device_;
  mutable std::mutex mutex_;
  FreeLists general_;
  std::unordered_map<int, FreeLists> pools_;
  std::unordered_map<void*, Block> live_;
  int active_pool_ = 0;
  int next_pool_id_ = 1;
  std::size_t cuda_mallocs_ = 0, hits_ = 0, cached_bytes_ = 0, allocated_bytes_ = 0;
};

// A device block released on scope exit (workspaces): deallocated, not synchronised, which is
// correct in stream order (see above).
class DeviceBuffer {
 public:
  DeviceBuffer(std::size_t bytes, int device)
      : device_(device), bytes_(bytes),
        p_(bytes == 0 ? nullptr : DeviceAllocator::instance(device).allocate(bytes)) {}
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    try {
      if (p_ != nullptr) DeviceAllocator::instance(device_).deallocate(p_, bytes_);
    } catch (...) {  // cannot happen for a block we allocated; never throw from a destructor
    }
  }
  [[nodiscard]] void* data() const { return p_; }
  [[nodiscard]] std::size_t size() const { return bytes_; }

 private:
  int device_;
  std::size_t bytes_;
  void* p_;
};

// Page-locked host memory (cudaHostAlloc, portable to every device), cached by rounded size.
// Thread-safe. Used by the copy helpers in runtime.hpp, which finish with the staging memory
// (synchronise) before returning it, so a freed block may be reused at once.
class PinnedAllocator {
 public:
  struct Stats {
    std::size_t host_allocs = 0, hits = 0, cached_bytes = 0;
  };

  [[nodiscard]] static PinnedAllocator& instance() {
    static PinnedAllocator* a = new PinnedAllocator();  // never destroyed
    return *a;
  }

  PinnedAllocator(const PinnedAllocator&) = delete;
  PinnedAllocator& operator=(const PinnedAllocator&) = delete;

  [[nodiscard]] void* allocate(std::size_t bytes) {
    const std::size_t size = detail::round_size(bytes);
    std::lock_guard lock(mutex_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
      ++hits_;
      return p;
    }
    void* p = nullptr;
    cudaError_t e = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      empty_cache_locked();
      e = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw Error(::ember::detail::concat("cudaHostAlloc of ", size, " bytes of pinned host "
                                          "memory failed with ", cudaGetErrorName(e), " (",
                                          cudaGetErrorString(e), ")"));
    }
    ++host_allocs_;
    return p;
  }

  // `bytes`: the size the block was requested with. Null is ignored.
  void deallocate(void* p, std::size_t bytes) {
    if (p == nullptr) return;
    const std::size_t size = detail::round_size(bytes);
    std::lock_guard lock(mutex_);
    free_[size].push_back(p);
    cached_bytes_ += size;
  }

  // cudaFreeHost's every cached block.
  void empty_cache() {
    std::lock_guard lock(mutex_);
    empty_cache_locked();
  }

  [[nodiscard]] Stats stats() const {
    std::lock_guard lock(mutex_);
    return {host_allocs_, hits_, cached_bytes_};
  }

 private:
  PinnedAllocator() = default;

  void empty_cache_locked() {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) {
        (void)cudaFreeHost(p);
        cached_bytes_ -= size;
      }
    free_.clear();
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t host_allocs_ = 0, hits_ = 0, cached_bytes_ = 0;
};

namespace detail {
inline void* pinned_acquire(std::size_t bytes) { return PinnedAllocator::instance().allocate(bytes); }
inline void pinned_release(void* p, std::size_t bytes) {
  PinnedAllocator::instance().deallocate(p, bytes);
}
}  // namespace detail

}  // namespace ember::cuda
