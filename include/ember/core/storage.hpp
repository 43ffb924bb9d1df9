#pragma once
// Storage<T>: one buffer of elements on one device, shared by every view of it. CPU buffers come
// from the caching CpuAllocator, CUDA buffers from the CUDA backend's caching device allocator.
// A storage also counts the in-place writes to it (its version), for autograd's check that a
// tensor saved for backward was not changed before backward() read it.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "ember/core/allocator.hpp"
#include "ember/core/device.hpp"
#include "ember/core/device_runtime.hpp"
#include "ember/core/dtype.hpp"

namespace ember {

/// How many in-place writes a storage has seen, and the op that made the last one. Every view of
/// the storage shares it (PyTorch's VariableVersion). Bumped once per in-place op, whatever the
/// device, in grad mode or not; read when backward() unpacks a saved tensor.
/// Relaxed atomics: a bump is one locked add per in-place op (an op that itself touches every
/// element), and an in-place op from a second thread (a data loader's, a server's) is then no
/// data race on the count. The count orders nothing: the tensor's data needs its own
/// synchronisation, as ever.
class VersionCounter {
 public:
  /// The number of in-place changes so far.
  [[nodiscard]] std::uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  /// The name of the in-place op that made the last bump ("" before the first one).
  [[nodiscard]] const char* last_op() const { return last_op_.load(std::memory_order_relaxed); }
  /// `op` must be a string literal (or live as long as the storage).
  void bump(const char* op) {
    version_.fetch_add(1, std::memory_order_relaxed);
    last_op_.store(op, std::memory_order_relaxed);
  }

 private:
  std::atomic<std::uint64_t> version_{0};
  std::atomic<const char*> last_op_{""};
};

/// A tensor's memory: n elements of T on one device, from the CPU's caching allocator or the CUDA
/// runtime; shared by every view of it.
template <Element T>
class Storage {
 public:
  /// Allocates n elements (uninitialised) on `device`; throws ember::Error when the device is not
  /// available.
  Storage(std::int64_t n, Device device) : size_(n), device_(device) {
    check_device_available(device);
    if (device.is_cpu()) data_ = static_cast<T*>(CpuAllocator::instance().allocate(bytes()));
    else data_ = static_cast<T*>(backend::cuda_runtime().allocate(device.index, bytes()));
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (device_.is_cpu()) CpuAllocator::instance().deallocate(data_, bytes());
    else backend::cuda_runtime().deallocate(device_.index, data_, bytes());
  }

  /// The first element.
  [[nodiscard]] T* data() { return data_; }
  /// The first element.
  [[nodiscard]] const T* data() const { return data_; }
  /// The number of elements.
  [[nodiscard]] std::int64_t size() const { return size_; }
  /// The size in bytes.
  [[nodiscard]] std::size_t bytes() const { return static_cast<std::size_t>(size_) * sizeof(T); }
  /// Where the memory is.
  [[nodiscard]] Device device() const { return device_; }
  /// The counter of in-place changes shared by every view of this storage.
  [[nodiscard]] VersionCounter& version_counter() const { return version_; }

 private:
  T* data_ = nullptr;
  std::int64_t size_ = 0;
  Device device_;
  mutable VersionCounter version_;  // counts writes, so a const view may still bump it
};

}  // namespace ember
