#pragma once
// cuda::Graph: captures the work ember enqueues on a device's stream into a CUDA graph and
// replays it with one launch.
//
//   cuda::Graph g;
//   g.capture_begin(0);
//   ... enqueue work on cuda::stream(0) (ember ops on cuda:0) ...
//   g.capture_end();
//   g.replay();  // as often as needed; asynchronous on cuda::stream(0)
//
// Capture mode: cudaStreamCaptureModeRelaxed. The capturing thread must be free to call
// cudaMalloc while capturing, because the device allocator grows the graph's private pool
// (allocator.hpp); Global and ThreadLocal modes forbid such "potentially unsafe" calls on the
// capturing thread. Relaxed mode also leaves other threads unrestricted. The price is that
// nothing stops a synchronising call inside the capture from breaking it: cudaStreamEndCapture
// then fails and capture_end throws. Host<->device copies (copy_to_device / copy_to_host)
// refuse to run while capturing.
//
// Memory: capture_begin starts a private pool in the DeviceAllocator; every block allocated
// during the capture belongs to it and stays reserved for the graph (even after it is freed)
// until the Graph is destroyed. Tensors created before the capture and used by it must outlive
// every replay. Replays reuse the same addresses: results of a replay live in the blocks the
// capture allocated (read them before the next replay overwrites them).
//
// Before capturing, run the work once eagerly: that creates the stream, the cuBLAS/cuDNN
// handles and their algorithm choices, which must not happen inside a capture.

#if !defined(__CUDACC__)
#error "ember/backend/cuda/graph.hpp is CUDA host code: compile this translation unit with nvcc"
#endif

#include <cuda_runtime.h>

#include <utility>

#include "ember/backend/cuda/allocator.hpp"
#include "ember/backend/cuda/runtime.hpp"
#include "ember/core/error.hpp"

namespace ember::cuda {

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&& other) noexcept { take(other); }
  Graph& operator=(Graph&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  ~Graph() { reset(); }

  // Starts capturing cuda::stream(device). A Graph captures once.
  void capture_begin(int device) {
    EMBER_CHECK(!capturing_ && graph_ == nullptr && exec_ == nullptr,
                "cuda::Graph::capture_begin: this graph has already been captured (use a new "
                "Graph)");
    cudaStream_t s = stream(device);  // validates the device
    DeviceAllocator& allocator = DeviceAllocator::instance(device);
    DeviceGuard guard(device);
    const int pool = allocator.begin_private_pool();
    const cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    if (e != cudaSuccess) {
      allocator.release_private_pool(pool);
      detail::throw_cuda_error(e, "cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed)",
                               __FILE__, __LINE__);
    }
    device_ = device;
    pool_ = pool;
    capturing_ = true;
  }

  // Ends the capture and instantiates the graph.
  void capture_end() {
    EMBER_CHECK(capturing_, "cuda::Graph::capture_end without capture_begin");
    cudaStream_t s = stream(device_);
    DeviceAllocator& allocator = DeviceAllocator::instance(device_);
    DeviceGuard guard(device_);
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    const cudaError_t e = cudaStreamEndCapture(s, &graph);
    allocator.end_private_pool();
    if (e != cudaSuccess) {
      if (graph != nullptr) (void)cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      // Nothing captured will ever run: the pool's memory may go back to general use.
      allocator.release_private_pool(pool_);
      pool_ = 0;
      throw Error(::ember::detail::concat(
          "cuda::Graph::capture_end: the capture on cuda:", device_, " failed with ",
          cudaGetErrorName(e), " (", cudaGetErrorString(e),
          "); an operation inside the capture was not capturable (e.g. one that synchronises "
          "with the host, or work on another stream)"));
    }
    graph_ = graph;
    EMBER_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  }

  // Launches the captured graph on cuda::stream(device) (asynchronous).
  void replay() {
    EMBER_CHECK(exec_ != nullptr, "cuda::Graph::replay: nothing captured (call capture_begin "
                "and capture_end first)");
    cudaStream_t s = stream(device_);
    DeviceGuard guard(device_);
    EMBER_CUDA_CHECK(cudaGraphLaunch(exec_, s));
  }

  [[nodiscard]] bool captured() const { return exec_ != nullptr; }
  [[nodiscard]] bool is_capturing() const { return capturing_; }
  [[nodiscard]] int device() const { return device_; }

 private:
  void take(Graph& other) noexcept {
    graph_ = std::exchange(other.graph_, nullptr);
    exec_ = std::exchange(other.exec_, nullptr);
    device_ = std::exchange(other.device_, 0);
    pool_ = std::exchange(other.pool_, 0);
    capturing_ = std::exchange(other.capturing_, false);
  }

  // Abandons a capture in progress, destroys the graph and returns the private pool's memory
  // to the general cache. Replays still in flight are safe: cudaGraphExecDestroy defers the
  // destruction until they finish, and the pool's blocks are only handed to later work on the
  // same stream (stream order).
  void reset() noexcept {
    try {
      if (capturing_) {
        cudaGraph_t abandoned = nullptr;
        (void)cudaStreamEndCapture(stream(device_), &abandoned);
        if (abandoned != nullptr) (void)cudaGraphDestroy(abandoned);
        (void)cudaGetLastError();
        capturing_ = false;
      }
      if (exec_ != nullptr) (void)cudaGraphExecDestroy(exec_);
      if (graph_ != nullptr) (void)cudaGraphDestroy(graph_);
      exec_ = nullptr;
      graph_ = nullptr;
      if (pool_ != 0) DeviceAllocator::instance(device_).release_private_pool(pool_);
      pool_ = 0;
    } catch (...) {  // never throw from a destructor
    }
  }

  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  int device_ = 0;
  int pool_ = 0;
  bool capturing_ = false;
};

}  // namespace ember::cuda
