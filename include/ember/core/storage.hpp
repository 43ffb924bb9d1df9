#pragma once
// Storage<T>: one buffer of elements on one device, shared by every view of it. CPU buffers come
// from the caching CpuAllocator, CUDA buffers from the CUDA backend's caching device allocator.

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ember/backend/device_backend.hpp"
#include "ember/core/allocator.hpp"
#include "ember/core/device.hpp"
#include "ember/core/dtype.hpp"

namespace ember {

template <Element T>
class Storage {
 public:
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

  [[nodiscard]] T* data() { return data_; }
  [[nodiscard]] const T* data() const { return data_; }
  [[nodiscard]] std::int64_t size() const { return size_; }
  [[nodiscard]] std::size_t bytes() const { return static_cast<std::size_t>(size_) * sizeof(T); }
  [[nodiscard]] Device device() const { return device_; }

 private:
  T* data_ = nullptr;
  std::int64_t size_ = 0;
  Device device_;
};

}  // namespace ember
