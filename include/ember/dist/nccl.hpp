#pragma once
// ember::dist's NCCL backend: collectives on CUDA tensors, one communicator per device, started
// through MPI (llm.c's and PyTorch's recipe): rank 0 makes an ncclUniqueId, MPI broadcasts it,
// and every process joins with ncclCommInitRank on its GPU (by default its local rank, so that
// the processes of a node take one GPU each). Collectives run on ember's stream of the device
// (cuda::stream), after the kernels that made the tensor and before those that read it; wait()
// bounds the wait as the MPI backend does: past dist::timeout() the communicator is aborted
// (ncclCommAbort, NCCL's documented way out of a hung collective) and ember::Error is thrown.
//
// CUDA host code: compile with nvcc and link NCCL (the CUDA toolkit's libnccl, CMake target
// ember::nccl) and ember::dist.
//
//   dist::init(&argc, &argv);
//   dist::NcclCommunicator comm;                  // cuda:local_rank()
//   comm.all_reduce(grad, dist::ReduceOp::mean);  // a float CUDA tensor on that device
//   comm.wait();
//
// NcclProcessGroup (below) is DistributedDataParallel's process group on it (dist/ddp.hpp).

#if !defined(__CUDACC__)
#error "ember/dist/nccl.hpp is CUDA host code: compile this translation unit with nvcc"
#endif

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>

#include "ember/backend/cuda/runtime.hpp"
#include "ember/core/tensor.hpp"
#include "ember/dist/comm.hpp"
#include "ember/dist/ddp.hpp"

/// Evaluates an NCCL call once and throws ember::Error naming it and NCCL's reason.
#define EMBER_NCCL_CHECK(expr)                                                                \
  do {                                                                                        \
    const ncclResult_t ember_nccl_result_ = (expr);                                           \
    if (ember_nccl_result_ != ncclSuccess)                                                    \
      throw ::ember::Error(::ember::detail::concat("NCCL call `", #expr, "` failed: ",       \
                                                   ncclGetErrorString(ember_nccl_result_),    \
                                                   " (", ncclGetLastError(nullptr), ")"));    \
  } while (0)

namespace ember::dist {

namespace detail {
template <class T>
ncclDataType_t nccl_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "the NCCL backend reduces float and double tensors");
  return std::is_same_v<T, float> ? ncclFloat32 : ncclFloat64;
}
inline ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::mean: return ncclAvg;  // NCCL >= 2.10
    case ReduceOp::min: return ncclMin;
    case ReduceOp::max: return ncclMax;
    default: return ncclSum;
  }
}
}  // namespace detail

/// One NCCL communicator over the job's processes, on one CUDA device per process.
class NcclCommunicator {
 public:
  /// Joins: needs dist::init(); device -1 takes cuda:local_rank().
  explicit NcclCommunicator(int device = -1) {
    EMBER_CHECK(is_initialized(), "NcclCommunicator: call dist::init() first (MPI carries the "
                "NCCL id)");
    device_ = device >= 0 ? device : local_rank();
    int count = 0;
    EMBER_CUDA_CHECK(cudaGetDeviceCount(&count));
    EMBER_CHECK(device_ < count, "NcclCommunicator: rank ", rank(), " asks for cuda:", device_,
                " but this node has ", count, " CUDA devices (one process per GPU)");
    ncclUniqueId id{};
    if (rank() == 0) EMBER_NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Request r = MPI_REQUEST_NULL;
    detail::check_mpi(MPI_Ibcast(&id, sizeof id, MPI_BYTE, 0, communicator(), &r), "MPI_Ibcast");
    Work(r, "broadcast of the NCCL id").wait();
    cuda::DeviceGuard guard(device_);
    EMBER_NCCL_CHECK(ncclCommInitRank(&comm_, world_size(), id, rank()));
  }
  ~NcclCommunicator() {
    if (comm_ != nullptr) (void)ncclCommDestroy(comm_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  /// The device this process's collectives run on.
  [[nodiscard]] int device() const { return device_; }
  /// The raw communicator.
  [[nodiscard]] ncclComm_t get() const { return comm_; }

  /// Enqueues an all-reduce of a contiguous CUDA tensor on this communicator's device, in place
  /// (mean: NCCL's ncclAvg). Ordered on ember's stream; wait() for the host to see it.
  template <class T>
  void all_reduce(Tensor<T>& t, ReduceOp op = ReduceOp::sum) {
    check(t, "all_reduce");
    cuda::DeviceGuard guard(device_);
    EMBER_NCCL_CHECK(ncclAllReduce(t.data(), t.data(), static_cast<std::size_t>(t.numel()),
                                   detail::nccl_type<T>(), detail::nccl_op(op), comm_,
                                   cuda::stream(device_)));
    t.bump_version("dist::NcclCommunicator::all_reduce");
  }

  /// Enqueues a broadcast from `root` of a contiguous CUDA tensor, in place.
  template <class T>
  void broadcast(Tensor<T>& t, int root = 0) {
    check(t, "broadcast");
    EMBER_CHECK(root >= 0 && root < world_size(), "NcclCommunicator::broadcast: root ", root,
                " is not a rank of a world of ", world_size());
    cuda::DeviceGuard guard(device_);
    EMBER_NCCL_CHECK(ncclBroadcast(t.data(), t.data(), static_cast<std::size_t>(t.numel()),
                                   detail::nccl_type<T>(), root, comm_, cuda::stream(device_)));
    t.bump_version("dist::NcclCommunicator::broadcast");
  }

  /// Waits for the enqueued collectives; past dist::timeout() seconds, or on an asynchronous
  /// NCCL error (a peer gone), aborts the communicator and throws.
  void wait() {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    cudaStream_t s = cuda::stream(device_);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(s);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) EMBER_CUDA_CHECK(q);
      ncclResult_t async = ncclSuccess;
      EMBER_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
      const bool late = clock::now() - start > std::chrono::duration<double>(timeout());
      if (async != ncclSuccess || late) {
        (void)ncclCommAbort(comm_);
        comm_ = nullptr;
        throw Error("dist: NCCL collectives on cuda:" + std::to_string(device_) + " of rank " +
                    std::to_string(rank()) + (late ? " did not complete within " +
                    std::to_string(timeout()) + " s" : std::string(" failed: ") +
                    ncclGetErrorString(async)) + "; the communicator was aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

 private:
  template <class T>
  void check(const Tensor<T>& t, const char* what) const {
    EMBER_CHECK(comm_ != nullptr, "NcclCommunicator::", what, ": the communicator was aborted");
    EMBER_CHECK(t.defined() && t.device().is_cuda() && t.device().index == device_,
                "NcclCommunicator::", what, ": expected a tensor on cuda:", device_, ", got one on ",
                t.defined() ? t.device().str() : std::string("nothing (undefined)"));
    EMBER_CHECK(t.is_contiguous(), "NcclCommunicator::", what, ": the tensor must be contiguous");
  }

  ncclComm_t comm_ = nullptr;
  int device_ = 0;
};

/// DistributedDataParallel's process group on NCCL: the module's parameters on this process's
/// GPU (cuda:local_rank() by default). Collectives are enqueued on ember's stream of the
/// device, so they run after the kernels that made the gradients and before those that read
/// the averages; wait() bounds the host's wait as NcclCommunicator::wait does.
class NcclProcessGroup final : public ProcessGroup {
 public:
  explicit NcclProcessGroup(int device = -1) : comm_(std::make_shared<NcclCommunicator>(device)) {}
  /// Shares a communicator made elsewhere.
  explicit NcclProcessGroup(std::shared_ptr<NcclCommunicator> comm) : comm_(std::move(comm)) {
    EMBER_CHECK(comm_ != nullptr, "NcclProcessGroup: no communicator (a null pointer)");
  }

  [[nodiscard]] int device() const { return comm_->device(); }
  [[nodiscard]] NcclCommunicator& communicator() { return *comm_; }

  [[nodiscard]] std::string name() const override { return "nccl"; }
  [[nodiscard]] bool accepts(const Device& d) const override {
    return d.is_cuda() && d.index == comm_->device();
  }
  void broadcast(Tensor<float>& t, int root) override {
    comm_->broadcast(t, root);
    comm_->wait();
  }
  [[nodiscard]] std::unique_ptr<PendingReduce> all_reduce_sum(Tensor<float>& flat) override {
    struct Pending final : PendingReduce {
      explicit Pending(std::shared_ptr<NcclCommunicator> c) : comm(std::move(c)) {}
      bool test() override {
        const cudaError_t q = cudaStreamQuery(cuda::stream(comm->device()));
        if (q != cudaErrorNotReady) EMBER_CUDA_CHECK(q);
        return q == cudaSuccess;
      }
      void wait() override { comm->wait(); }
      std::shared_ptr<NcclCommunicator> comm;
    };
    comm_->all_reduce(flat, ReduceOp::sum);
    return std::make_unique<Pending>(comm_);
  }

 private:
  std::shared_ptr<NcclCommunicator> comm_;
};

}  // namespace ember::dist
