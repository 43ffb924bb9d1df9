#pragma once
// CpuAllocator: a caching allocator. Freed blocks go to a free list keyed by their rounded
// size and are handed out again, so a training loop that makes the same tensors every step
// stops calling malloc/free after the first step.

#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace ember {

/// The CPU's caching allocator: 64-byte aligned blocks, freed ones kept in per-size free lists and
/// reused (thread-safe).
class CpuAllocator {
 public:
  /// The alignment of every block, in bytes (a cache line; AVX-512 loads).
  static constexpr std::size_t alignment = 64;

  /// The process-wide allocator (never destroyed, as storages may outlive main).
  static CpuAllocator& instance() {
    static CpuAllocator* a = new CpuAllocator();  // never destroyed: storages may outlive main
    return *a;
  }

  /// A block of at least `bytes` (rounded up), from the cache when one is free; on failure empties
  /// the cache and retries, then throws std::bad_alloc.
  [[nodiscard]] void* allocate(std::size_t bytes) {
    const std::size_t size = round_up(bytes);
    {
      std::lock_guard lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= size;
        ++hits_;
        return p;
      }
      ++misses_;
    }
    void* p = std::aligned_alloc(alignment, size);
    if (p == nullptr) {
      empty_cache();
      p = std::aligned_alloc(alignment, size);
      if (p == nullptr) throw std::bad_alloc();
    }
    return p;
  }

  /// Returns a block from allocate(bytes) to the cache (no-op for nullptr).
  void deallocate(void* p, std::size_t bytes) {
    if (p == nullptr) return;
    const std::size_t size = round_up(bytes);
    std::lock_guard lock(mutex_);
    free_[size].push_back(p);
    cached_bytes_ += size;
  }

  /// Returns every cached block to the system.
  void empty_cache() {
    std::lock_guard lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }

  /// Cache counters, for tests and benchmarks.
  struct Stats {
    /// Allocations served from the cache, allocations that called the system, and bytes held in the
    /// cache.
    /// @{
    std::size_t hits, misses, cached_bytes;
    /// @}
  };
  /// The current counters.
  [[nodiscard]] Stats stats() const {
    std::lock_guard lock(mutex_);
    return {hits_, misses_, cached_bytes_};
  }

 private:
  CpuAllocator() = default;
  static std::size_t round_up(std::size_t bytes) {
    const std::size_t b = bytes == 0 ? 1 : bytes;
    return (b + alignment - 1) / alignment * alignment;
  }

  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0, hits_ = 0, misses_ = 0;
};

}  // namespace ember
