#pragma once
// ember::dist over MPI: the process group of a job started by mpirun (rank, world size, local
// rank), and the collectives data-parallel training needs on CPU tensors: barrier, broadcast and
// all-reduce (sum, mean, min, max) of float and double tensors, blocking or started now and
// waited on later (Work).
//
// Every wait is bounded: a collective that has not completed after timeout() seconds (default
// 300, env EMBER_DIST_TIMEOUT, or set_timeout) throws ember::Error naming the operation, so a
// process whose peer died or hangs stops with a clear message instead of waiting forever
// (PyTorch's process-group timeout). A program that catches it should call dist::abort(), which
// ends the whole job (MPI_Abort); mpirun also ends the job by itself when a process exits with a
// non-zero status or a signal.
//
// Needs MPI (ember::dist, found by CMake's find_package(MPI)); the rest of ember does not.
//
//   dist::init(&argc, &argv);                 // MPI_Init_thread; rank(), world_size(), ...
//   dist::all_reduce(t, dist::ReduceOp::mean);
//   dist::finalize();

// The C API only: not MPI-2's removed C++ bindings (which would need libmpi_cxx).
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::dist {

/// What all_reduce combines the processes' values with.
enum class ReduceOp { sum, mean, min, max };

namespace detail {
struct State {
  bool initialized = false;  // by dist::init (false when MPI was initialised by someone else)
  int rank = 0, world_size = 1, local_rank = 0, local_size = 1;
  double timeout_s = 300;
  MPI_Comm comm = MPI_COMM_NULL;
};
inline State& state() {
  static State s;
  return s;
}

inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(len));
}

inline void check_mpi(int code, const char* what) {
  EMBER_CHECK(code == MPI_SUCCESS, "dist: ", what, " failed on rank ", state().rank, ": ",
              mpi_error_string(code));
}

template <class T>
MPI_Datatype mpi_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "ember::dist reduces float and double tensors");
  return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

inline MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::min: return MPI_MIN;
    case ReduceOp::max: return MPI_MAX;
    default: return MPI_SUM;
  }
}

inline MPI_Comm comm() {
  EMBER_CHECK(state().comm != MPI_COMM_NULL, "dist: not initialised; call dist::init() first");
  return state().comm;
}

template <class T>
void check_cpu_contiguous(const Tensor<T>& t, const char* what) {
  EMBER_CHECK(t.defined(), "dist::", what, ": an undefined tensor");
  EMBER_CHECK(t.device().is_cpu(), "dist::", what, ": the MPI backend takes CPU tensors, got one on ",
              t.device().str(), " (CUDA tensors go through dist/nccl.hpp)");
  EMBER_CHECK(t.is_contiguous(), "dist::", what, ": the tensor must be contiguous");
}
}  // namespace detail

/// True when this process was started by mpirun (OpenMPI, MPICH/Hydra or PMIx variables).
[[nodiscard]] inline bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

/// Joins the job: MPI_Init_thread (funneled: MPI is called from the thread that called init),
/// errors returned rather than fatal, rank and world size from MPI_COMM_WORLD, the local rank
/// (this process's index among those on its node) from MPI_Comm_split_type. Also works without
/// mpirun, as a world of one. Idempotent.
inline void init(int* argc = nullptr, char*** argv = nullptr) {
  detail::State& s = detail::state();
  if (s.comm != MPI_COMM_NULL) return;
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    int provided = 0;
    detail::check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided),
                      "MPI_Init_thread");
    s.initialized = true;
  }
  detail::check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &s.comm), "MPI_Comm_dup");
  detail::check_mpi(MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  MPI_Comm_rank(s.comm, &s.rank);
  MPI_Comm_size(s.comm, &s.world_size);
  MPI_Comm node = MPI_COMM_NULL;
  detail::check_mpi(MPI_Comm_split_type(s.comm, MPI_COMM_TYPE_SHARED, s.rank, MPI_INFO_NULL, &node),
                    "MPI_Comm_split_type");
  MPI_Comm_rank(node, &s.local_rank);
  MPI_Comm_size(node, &s.local_size);
  MPI_Comm_free(&node);
  if (const char* t = std::getenv("EMBER_DIST_TIMEOUT")) {
    char* end = nullptr;
    const double v = std::strtod(t, &end);
    EMBER_CHECK(end != t && *end == '\0' && v > 0, "dist::init: EMBER_DIST_TIMEOUT must be a "
                "positive number of seconds, got '", t, "'");
    s.timeout_s = v;
  }
}

/// True between init() and finalize().
[[nodiscard]] inline bool is_initialized() { return detail::state().comm != MPI_COMM_NULL; }
/// This process's rank in [0, world_size()) (0 before init).
[[nodiscard]] inline int rank() { return detail::state().rank; }
/// The number of processes (1 before init).
[[nodiscard]] inline int world_size() { return detail::state().world_size; }
/// This process's index among the job's processes on its node (picks its GPU).
[[nodiscard]] inline int local_rank() { return detail::state().local_rank; }
/// The number of the job's processes on this node.
[[nodiscard]] inline int local_size() { return detail::state().local_size; }
/// The communicator (a duplicate of MPI_COMM_WORLD whose errors are returned).
[[nodiscard]] inline MPI_Comm communicator() { return detail::comm(); }
/// Seconds a collective may take before it throws.
[[nodiscard]] inline double timeout() { return detail::state().timeout_s; }
/// Sets that limit (> 0).
inline void set_timeout(double seconds) {
  EMBER_CHECK(seconds > 0, "dist::set_timeout: the timeout must be positive, got ", seconds);
  detail::state().timeout_s = seconds;
}

/// Ends every process of the job (MPI_Abort) after printing `message` on stderr.
[[noreturn]] inline void abort(const std::string& message, int code = 1) {
  std::fprintf(stderr, "ember::dist: rank %d aborts the job: %s\n", rank(), message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

/// Leaves the job (MPI_Finalize, when init() initialised MPI).
inline void finalize() {
  detail::State& s = detail::state();
  if (s.comm == MPI_COMM_NULL) return;
  MPI_Comm_free(&s.comm);
  s.comm = MPI_COMM_NULL;
  if (s.initialized) {
    int done = 0;
    MPI_Finalized(&done);
    if (!done) MPI_Finalize();
    s.initialized = false;
  }
}

/// A collective that was started and is completed by wait() (PyTorch's Work).
class Work {
 public:
  Work() = default;
  Work(MPI_Request request, std::string what) : request_(request), what_(std::move(what)) {}
  Work(const Work&) = delete;
  Work& operator=(const Work&) = delete;
  Work(Work&& o) noexcept : request_(o.request_), what_(std::move(o.what_)) {
    o.request_ = MPI_REQUEST_NULL;
  }
  Work& operator=(Work&& o) noexcept {
    std::swap(request_, o.request_);
    std::swap(what_, o.what_);
    return *this;
  }
  /// An unfinished request is left to MPI (it cannot be cancelled); waits are the caller's.
  ~Work() = default;

  /// True once the operation completed (also drives MPI's progress).
  bool test() {
    if (request_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    detail::check_mpi(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), what_.c_str());
    return done != 0;
  }
  /// Waits until it completes; throws ember::Error after dist::timeout() seconds.
  void wait() {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto limit = std::chrono::duration<double>(timeout());
    for (std::int64_t spins = 0; !test(); ++spins) {
      if (clock::now() - start > limit) {
        throw Error("dist: " + what_ + " did not complete within " +
                    std::to_string(timeout()) + " s on rank " + std::to_string(rank()) +
                    " of " + std::to_string(world_size()) +
                    ": another process died or stopped taking part (EMBER_DIST_TIMEOUT sets "
                    "the limit)");
      }
      // Poll at full speed for a moment, then politely: processes may share cores.
      if (spins < 200) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
  /// True when started and not yet known to be complete.
  [[nodiscard]] bool pending() const { return request_ != MPI_REQUEST_NULL; }

 private:
  MPI_Request request_ = MPI_REQUEST_NULL;
  std::string what_;
};

/// Starts all-reduce over `count` values in place: sum, min or max (mean is the caller's
/// division by world_size()).
template <class T>
[[nodiscard]] Work all_reduce_async(T* data, std::int64_t count, ReduceOp op = ReduceOp::sum) {
  EMBER_CHECK(count >= 0 && count <= std::int64_t{INT32_MAX}, "dist::all_reduce: ", count,
              " values is more than one MPI call takes");
  MPI_Request r = MPI_REQUEST_NULL;
  detail::check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count),
                                   detail::mpi_type<T>(), detail::mpi_op(op), detail::comm(), &r),
                    "MPI_Iallreduce");
  return Work(r, "all_reduce of " + std::to_string(count) + " values");
}

/// All-reduce of a contiguous CPU tensor in place; mean divides the sum by world_size().
template <class T>
void all_reduce(Tensor<T>& t, ReduceOp op = ReduceOp::sum) {
  detail::check_cpu_contiguous(t, "all_reduce");
  all_reduce_async(t.data(), t.numel(), op).wait();
  t.bump_version("dist::all_reduce");
  if (op == ReduceOp::mean) {
    const T inv = T(1) / static_cast<T>(world_size());
    T* p = t.data();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] *= inv;
  }
}

/// Starts a broadcast of `count` values from `root`.
template <class T>
[[nodiscard]] Work broadcast_async(T* data, std::int64_t count, int root = 0) {
  EMBER_CHECK(root >= 0 && root < world_size(), "dist::broadcast: root ", root,
              " is not a rank of a world of ", world_size());
  EMBER_CHECK(count >= 0 && count <= std::int64_t{INT32_MAX}, "dist::broadcast: ", count,
              " values is more than one MPI call takes");
  MPI_Request r = MPI_REQUEST_NULL;
  detail::check_mpi(MPI_Ibcast(data, static_cast<int>(count), detail::mpi_type<T>(), root,
                               detail::comm(), &r),
                    "MPI_Ibcast");
  return Work(r, "broadcast of " + std::to_string(count) + " values from rank " +
                     std::to_string(root));
}

/// Overwrites a contiguous CPU tensor with root's (same shape on every process).
template <class T>
void broadcast(Tensor<T>& t, int root = 0) {
  detail::check_cpu_contiguous(t, "broadcast");
  broadcast_async(t.data(), t.numel(), root).wait();
  t.bump_version("dist::broadcast");
}

/// Waits for every process (MPI_Ibarrier, bounded by timeout()).
inline void barrier() {
  MPI_Request r = MPI_REQUEST_NULL;
  detail::check_mpi(MPI_Ibarrier(detail::comm(), &r), "MPI_Ibarrier");
  Work(r, "barrier").wait();
}

/// Broadcasts a 64-bit value from root (a seed, a step count).
inline std::int64_t broadcast_value(std::int64_t v, int root = 0) {
  MPI_Request r = MPI_REQUEST_NULL;
  detail::check_mpi(MPI_Ibcast(&v, 1, MPI_INT64_T, root, detail::comm(), &r), "MPI_Ibcast");
  Work(r, "broadcast of a value").wait();
  return v;
}

/// Every process's value of v, by rank (MPI_Allgather): checks that settings agree.
inline std::vector<std::int64_t> all_gather_value(std::int64_t v) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(world_size()));
  MPI_Request r = MPI_REQUEST_NULL;
  detail::check_mpi(MPI_Iallgather(&v, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, detail::comm(),
                                   &r),
                    "MPI_Iallgather");
  Work(r, "all_gather of a value").wait();
  return out;
}

}  // namespace ember::dist
