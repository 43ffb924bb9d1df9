#pragma once
// A CPU execution harness for CUDA kernels (test-only).
//
// kernels/*.cuh compile with the host compiler once this header is included: it supplies the
// CUDA vocabulary those kernels use (threadIdx, blockIdx, blockDim, gridDim, __syncthreads,
// __syncwarp, warp shuffles, __shared__, dynamic shared memory, atomics, vector types, launch
// syntax and the error API) and runs each launch on the CPU:
//   * blocks run one after another; the threads of a block are fibers (ucontext) on the calling
//     thread, each with its own stack, switched at barriers;
//   * __syncthreads() is a real barrier over the block's threads; __syncwarp() and the
//     __shfl_*_sync() exchanges are real barriers over the 32 lanes of a warp (a warp's lanes
//     must all call them, with the full mask);
//   * a barrier that some threads never reach (divergent __syncthreads, an early return before
//     it) is reported as an ember::Error naming the kernel instead of hanging;
//   * between barriers each thread runs alone, in ascending thread order in even blocks and
//     descending order in odd blocks, so a missing barrier between a shared-memory write and a
//     read by another thread shows up as a wrong result in one of the two orders;
//   * dynamic shared memory is filled with 0xFF bytes (NaN as float) before every block, so a
//     read of shared memory that no thread wrote is visible;
//   * the launch limits of a real device are enforced (at most 1024 threads per block, grid
//     and block dimensions, 48 KiB of dynamic shared memory unless raised with
//     cudaFuncSetAttribute): a bad configuration fails the launch with
//     cudaErrorInvalidConfiguration, reported by cudaGetLastError() as on a GPU.
// Not emulated (kernels must not use them): cooperative groups, inline PTX, textures, __half,
// printf, clock(), memory fences beyond barriers, warp-synchronous code without __syncwarp,
// partial-warp shuffle masks. docs/cuda.md keeps this list.
//
// Under AddressSanitizer the fiber switches are annotated, and device buffers are exact-size
// host allocations, so a kernel that reads or writes past a buffer is caught.

#define EMBER_CUDA_EMULATION 1

#include <math.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ember/core/error.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define EMBER_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMBER_EMU_ASAN 1
#endif
#endif
#if defined(EMBER_EMU_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

// ---- CUDA vocabulary ----------------------------------------------------------------------------

#define __global__ inline
#define __device__ inline
#define __host__
#define __forceinline__
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static thread_local
#define EMBER_KERNEL inline
#define EMBER_DEVICE inline
#define EMBER_LAUNCH(kernel, grid, block, smem, stream) \
  ((void)(stream), ::ember::emu::Launch(kernel, #kernel, (grid), (block), (smem)))
#define EMBER_DYNAMIC_SHARED(type, name) \
  type* name = reinterpret_cast<type*>(::ember::emu::dynamic_shared_memory())

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) double2 {
  double x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(8) int2 {
  int x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
enum cudaFuncAttribute : int { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;

inline constexpr int warpSize = 32;

namespace ember::emu {

inline constexpr std::size_t kDefaultDynamicShared = 48 * 1024;
inline constexpr std::size_t kMaxDynamicShared = 227 * 1024;  // Hopper's opt-in limit

namespace detail {

inline cudaError_t& last_error() {
  thread_local cudaError_t e = cudaSuccess;
  return e;
}

// Per-kernel opt-in dynamic shared memory limits (cudaFuncSetAttribute).
inline std::map<const void*, std::size_t>& smem_limits() {
  thread_local std::map<const void*, std::size_t> m;
  return m;
}

struct Fiber {
  ucontext_t ctx{};
  unsigned char* stack = nullptr;  // usable region (above the guard page)
  std::size_t stack_size = 0;
  uint3 tid{0, 0, 0};
  int linear = 0;
  bool done = false;
};

struct WarpState {
  int size = 32;
  int arrived = 0;
  std::uint64_t generation = 0;
  std::uint64_t slot[32] = {};
};

struct BlockRun {
  const char* kernel = "";
  dim3 grid, block;
  uint3 block_idx{0, 0, 0};
  int nthreads = 0;
  std::vector<Fiber>* fibers = nullptr;
  std::vector<WarpState> warps;
  std::vector<unsigned char> dynamic_smem;
  std::function<void()> body;
  // block barrier
  int arrived = 0;
  std::uint64_t generation = 0;
  std::uint64_t events = 0;  // arrivals and exits: the scheduler's progress measure
  int current = -1;
  ucontext_t scheduler{};
  const void* scheduler_stack_bottom = nullptr;
  std::size_t scheduler_stack_size = 0;
  std::exception_ptr error;
  std::string failure;  // deadlock description
};

inline BlockRun*& run() {
  thread_local BlockRun* r = nullptr;
  return r;
}
inline BlockRun& active() {
  BlockRun* r = run();
  if (r == nullptr) throw ember::Error("CUDA emulation: device code called outside a kernel launch");
  return *r;
}
inline Fiber& self() {
  BlockRun& r = active();
  return (*r.fibers)[static_cast<std::size_t>(r.current)];
}

// ---- fiber switching (annotated for AddressSanitizer) ----
inline void switch_to_fiber(BlockRun& r, Fiber& f) {
#if defined(EMBER_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f.stack, f.stack_size);
  swapcontext(&r.scheduler, &f.ctx);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  swapcontext(&r.scheduler, &f.ctx);
#endif
}
inline void yield_to_scheduler() {
  BlockRun& r = active();
  Fiber& f = self();
#if defined(EMBER_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, r.scheduler_stack_bottom, r.scheduler_stack_size);
  swapcontext(&f.ctx, &r.scheduler);
  __sanitizer_finish_switch_fiber(fake, &r.scheduler_stack_bottom, &r.scheduler_stack_size);
#else
  swapcontext(&f.ctx, &r.scheduler);
#endif
}

inline void fiber_main() {
  BlockRun& r = active();
#if defined(EMBER_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &r.scheduler_stack_bottom, &r.scheduler_stack_size);
#endif
  try {
    r.body();
  } catch (...) {
    if (!r.error) r.error = std::current_exception();
  }
  Fiber& f = self();
  f.done = true;
  ++r.events;
#if defined(EMBER_EMU_ASAN)
  __sanitizer_start_switch_fiber(nullptr, r.scheduler_stack_bottom, r.scheduler_stack_size);
#endif
  setcontext(&r.scheduler);
}

// Stacks are kept between launches (one per thread slot).
class StackPool {
 public:
  static constexpr std::size_t kStack = 256 * 1024;
  static StackPool& instance() {
    thread_local StackPool p;
    return p;
  }
  unsigned char* get(std::size_t i) {
    while (stacks_.size() <= i) {
      const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
      void* m = mmap(nullptr, kStack + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) throw ember::Error("CUDA emulation: cannot map a fiber stack");
      mprotect(m, page, PROT_NONE);  // guard page: a stack overflow faults instead of corrupting
      stacks_.push_back(static_cast<unsigned char*>(m) + page);
    }
    return stacks_[i];
  }
  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool() {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    for (unsigned char* s : stacks_) munmap(s - page, kStack + page);
  }

 private:
  std::vector<unsigned char*> stacks_;
};

// Points a fiber at the start of fiber_main on its own stack. Kept out of line: getcontext
// returns twice, which would otherwise put the caller's locals at risk (-Wclobbered).
[[gnu::noinline]] inline void start_fiber(Fiber& f) {
  f.done = false;
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = f.stack_size;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, fiber_main, 0);
}

// Runs one block to completion.
inline void run_block(BlockRun& r, std::vector<Fiber>& fibers, bool reverse) {
  r.arrived = 0;
  r.events = 0;
  for (auto& w : r.warps) w.arrived = 0;
  if (!r.dynamic_smem.empty()) std::memset(r.dynamic_smem.data(), 0xFF, r.dynamic_smem.size());
  for (int i = 0; i < r.nthreads; ++i) start_fiber(fibers[static_cast<std::size_t>(i)]);
  int remaining = r.nthreads;
  while (remaining > 0) {
    const std::uint64_t events_before = r.events;
    const std::uint64_t generation_before = r.generation;
    for (int k = 0; k < r.nthreads; ++k) {
      const int i = reverse ? r.nthreads - 1 - k : k;
      Fiber& f = fibers[static_cast<std::size_t>(i)];
      if (f.done) continue;
      r.current = i;
      switch_to_fiber(r, f);
      r.current = -1;
      if (f.done) --remaining;
    }
    if (remaining > 0 && r.events == events_before && r.generation == generation_before) {
      // Nobody arrived anywhere, nobody finished: the waiting threads wait forever.
      int finished = 0;
      for (int i = 0; i < r.nthreads; ++i) finished += fibers[static_cast<std::size_t>(i)].done ? 1 : 0;
      r.failure = std::string("kernel ") + r.kernel + ", block (" + std::to_string(r.block_idx.x) +
                  "," + std::to_string(r.block_idx.y) + "," + std::to_string(r.block_idx.z) +
                  "): a barrier (__syncthreads, __syncwarp or a warp shuffle) can never complete: " +
                  std::to_string(r.arrived) + " of " + std::to_string(r.nthreads) +
                  " threads wait at __syncthreads and " + std::to_string(finished) +
                  " have exited";
      break;
    }
  }
  // Abandon fibers still waiting (their stacks are simply reused by the next launch).
}

inline std::string config_str(dim3 g, dim3 b, std::size_t smem) {
  return "grid (" + std::to_string(g.x) + "," + std::to_string(g.y) + "," + std::to_string(g.z) +
         "), block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) +
         "), " + std::to_string(smem) + " bytes of dynamic shared memory";
}

inline void launch(const void* fn, const char* name, dim3 grid, dim3 block, std::size_t smem,
                   std::function<void()> body) {
  if (run() != nullptr) throw ember::Error("CUDA emulation: nested launch from device code");
  const unsigned long long threads =
      static_cast<unsigned long long>(block.x) * block.y * block.z;
  std::size_t smem_limit = kDefaultDynamicShared;
  if (auto it = smem_limits().find(fn); it != smem_limits().end()) smem_limit = it->second;
  const bool bad = block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 ||
                   grid.z == 0 || threads > 1024 || block.z > 64 || grid.x > 2147483647u ||
                   grid.y > 65535 || grid.z > 65535 || smem > smem_limit;
  if (bad) {
    last_error() = cudaErrorInvalidConfiguration;
    return;
  }
  std::vector<Fiber> fibers(static_cast<std::size_t>(threads));
  BlockRun r;
  r.kernel = name;
  r.grid = grid;
  r.block = block;
  r.nthreads = static_cast<int>(threads);
  r.fibers = &fibers;
  r.body = std::move(body);
  r.dynamic_smem.assign(smem, 0xFF);
  const int nwarps = (r.nthreads + 31) / 32;
  r.warps.resize(static_cast<std::size_t>(nwarps));
  for (int w = 0; w < nwarps; ++w) r.warps[static_cast<std::size_t>(w)].size = std::min(32, r.nthreads - 32 * w);
  for (int i = 0; i < r.nthreads; ++i) {
    Fiber& f = fibers[static_cast<std::size_t>(i)];
    f.linear = i;
    f.tid = {static_cast<unsigned>(i) % block.x, (static_cast<unsigned>(i) / block.x) % block.y,
             static_cast<unsigned>(i) / (block.x * block.y)};
    f.stack = StackPool::instance().get(static_cast<std::size_t>(i));
    f.stack_size = StackPool::kStack;
  }
  run() = &r;
  std::uint64_t block_number = 0;
  try {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x, ++block_number) {
          r.block_idx = {x, y, z};
          run_block(r, fibers, block_number % 2 == 1);
          if (r.error) std::rethrow_exception(r.error);
          if (!r.failure.empty()) throw ember::Error("CUDA emulation: " + r.failure);
        }
  } catch (...) {
    run() = nullptr;
    throw;
  }
  run() = nullptr;
}

// Warp barrier: every lane of the calling thread's warp arrives before any proceeds.
inline void warp_barrier() {
  BlockRun& r = active();
  WarpState& w = r.warps[static_cast<std::size_t>(self().linear / 32)];
  const std::uint64_t gen = w.generation;
  ++r.events;
  if (++w.arrived == w.size) {
    w.arrived = 0;
    ++w.generation;
    return;
  }
  while (w.generation == gen) yield_to_scheduler();
}

inline void check_mask(unsigned mask, const char* what) {
  const WarpState& w = active().warps[static_cast<std::size_t>(self().linear / 32)];
  const unsigned full = w.size == 32 ? 0xffffffffu : ((1u << w.size) - 1u);
  if (mask != full)
    throw ember::Error(std::string("CUDA emulation: ") + what + " with mask " + std::to_string(mask) +
                       ": only the full mask of the warp's lanes is supported");
}

template <class T>
T shuffle(unsigned mask, T v, int (*source)(int lane, int arg, int width), int arg, int width,
          const char* what) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of an unsupported type");
  check_mask(mask, what);
  BlockRun& r = active();
  const int lane = self().linear % 32;
  WarpState& w = r.warps[static_cast<std::size_t>(self().linear / 32)];
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slot[lane] = bits;
  warp_barrier();
  int src = source(lane, arg, width);
  if (src < 0 || src >= w.size) src = lane;
  T out;
  std::memcpy(&out, &w.slot[src], sizeof(T));
  warp_barrier();  // nobody overwrites a slot before every lane has read
  return out;
}

}  // namespace detail

// Pointer to this block's dynamic shared memory.
inline unsigned char* dynamic_shared_memory() { return detail::active().dynamic_smem.data(); }

// Graph capture on the harness: while a recorder is set, launches are stored (arguments by
// value, as a CUDA graph stores them) instead of run; replaying runs them in order.
using Recorded = std::function<void()>;
inline std::vector<Recorded>*& recorder() {
  thread_local std::vector<Recorded>* r = nullptr;
  return r;
}

template <class... P>
struct Launch {
  void (*fn)(P...);
  const char* name;
  dim3 grid, block;
  std::size_t smem;
  Launch(void (*f)(P...), const char* n, dim3 g, dim3 b, std::size_t s)
      : fn(f), name(n), grid(g), block(b), smem(s) {}
  template <class... A>
  void operator()(A&&... args) const {
    auto* f = fn;
    if (recorder() != nullptr) {
      recorder()->push_back([f, n = name, g = grid, b = block, s = smem,
                             saved = std::tuple<std::decay_t<P>...>(static_cast<P>(args)...)]() {
        detail::launch(reinterpret_cast<const void*>(f), n, g, b, s,
                       [&]() { std::apply(f, saved); });
      });
      return;
    }
    detail::launch(reinterpret_cast<const void*>(f), name, grid, block, smem,
                   [&]() { f(static_cast<P>(args)...); });
  }
};

}  // namespace ember::emu

// ---- built-in variables -------------------------------------------------------------------------
#define threadIdx (::ember::emu::detail::self().tid)
#define blockIdx (::ember::emu::detail::active().block_idx)
#define blockDim (::ember::emu::detail::active().block)
#define gridDim (::ember::emu::detail::active().grid)

// ---- synchronisation ----------------------------------------------------------------------------
inline void __syncthreads() {
  using namespace ember::emu::detail;
  BlockRun& r = active();
  const std::uint64_t gen = r.generation;
  ++r.events;
  if (++r.arrived == r.nthreads) {
    r.arrived = 0;
    ++r.generation;
    return;
  }
  while (r.generation == gen) yield_to_scheduler();
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ember::emu::detail::check_mask(mask, "__syncwarp");
  ember::emu::detail::warp_barrier();
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  return ember::emu::detail::shuffle(
      mask, v, [](int lane, int s, int w) { return (lane / w) * w + (s % w); }, src_lane, width,
      "__shfl_sync");
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ember::emu::detail::shuffle(
      mask, v, [](int lane, int d, int w) { return (lane % w) + d < w ? lane + d : lane; },
      static_cast<int>(delta), width, "__shfl_down_sync");
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ember::emu::detail::shuffle(
      mask, v, [](int lane, int d, int w) { return (lane % w) >= d ? lane - d : lane; },
      static_cast<int>(delta), width, "__shfl_up_sync");
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ember::emu::detail::shuffle(
      mask, v,
      [](int lane, int m, int w) {
        const int s = lane ^ m;
        return s / w == lane / w ? s : lane;
      },
      lane_mask, width, "__shfl_xor_sync");
}

// ---- atomics: fibers never interleave inside one, so plain read-modify-write is atomic ----
template <class T>
  requires std::is_arithmetic_v<T>
T atomicAdd(T* p, std::type_identity_t<T> v) {
  const T old = *p;
  *p = static_cast<T>(old + v);
  return old;
}
inline int atomicMax(int* p, int v) {
  const int old = *p;
  if (v > old) *p = v;
  return old;
}
inline int atomicMin(int* p, int v) {
  const int old = *p;
  if (v < old) *p = v;
  return old;
}
inline int atomicCAS(int* p, int compare, int v) {
  const int old = *p;
  if (old == compare) *p = v;
  return old;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long compare,
                                    unsigned long long v) {
  const unsigned long long old = *p;
  if (old == compare) *p = v;
  return old;
}
inline int atomicExch(int* p, int v) {
  const int old = *p;
  *p = v;
  return old;
}

// ---- intrinsics ---------------------------------------------------------------------------------
template <class T>
T __ldg(const T* p) {
  return *p;
}
inline float __expf(float x) { return ::expf(x); }
inline float __logf(float x) { return ::logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }

// ---- runtime API subset -------------------------------------------------------------------------
inline cudaError_t cudaGetLastError() {
  const cudaError_t e = ember::emu::detail::last_error();
  ember::emu::detail::last_error() = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return ember::emu::detail::last_error(); }
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}
template <class... P>
cudaError_t cudaFuncSetAttribute(void (*fn)(P...), cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<std::size_t>(value) > ember::emu::kMaxDynamicShared)
    return cudaErrorInvalidValue;
  ember::emu::detail::smem_limits()[reinterpret_cast<const void*>(fn)] = static_cast<std::size_t>(value);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t = nullptr) {
  if (auto* r = ember::emu::recorder()) {
    r->push_back([=] { std::memset(p, value, bytes); });
    return cudaSuccess;
  }
  std::memset(p, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
  if (auto* r = ember::emu::recorder()) {
    r->push_back([=] { std::memmove(dst, src, bytes); });
    return cudaSuccess;
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
