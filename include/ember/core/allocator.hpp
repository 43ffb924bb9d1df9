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

class CpuAllocator {
 public:
  static constexpr std::size_t alignment = 64;

  static CpuAllocator& instance() {
    static CpuAllocator* a = new CpuAllocator();  // never destroyed: storages may outlive main
    return *a;
  }

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

  void deallocate(void* p, std::size_t bytes) {
    if (p == nullptr) return;
    const std::size_t size = round_up(bytes);
    std::lock_guard lock(mutex_);
    free_[size].push_back(p);
    cached_bytes_ += size;
  }

  // Returns every cached block to the system.
  void empty_cache() {
    std::lock_guard lock(mutex_);
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }

  struct Stats {
    std::size_t hits, misses, cached_bytes;
  };
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
