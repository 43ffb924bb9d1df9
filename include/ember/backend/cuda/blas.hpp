#pragma once
// cuBLAS path for ember's GEMM: the row-major ember::GemmParams contract of ember::cpu::gemm
// on column-major cuBLAS.
//
// Handles: one per device, created on first use with its stream set to cuda::stream(device)
// and never destroyed. Create it outside any graph capture (any eager GEMM before capturing
// does it). The stream is never changed after creation, so the handle may be used from several
// host threads; its work is ordered on the device's one stream.
//
// Numerics: math mode CUBLAS_DEFAULT_MATH. For cublasSgemm that computes in full FP32 (no TF32
// tensor cores: those need CUBLAS_TF32_TENSOR_OP_MATH; BF16x9 emulation needs
// CUBLAS_FP32_EMULATED_BF16X9_MATH). We do not use CUBLAS_PEDANTIC_MATH: it forbids nothing
// more for plain FP32/FP64 GEMM that we rely on and may select slower kernels. Note that the
// environment variables NVIDIA_TF32_OVERRIDE and cuBLAS's emulation variables are outside
// ember's control. cuBLAS GEMM results are bit-wise reproducible run to run on the same GPU
// model and library version with one stream per handle (our case), not across versions or
// GPU models.
//
// Workspace: set explicitly (cublasSetWorkspace, a fixed buffer from cudaMalloc, never freed),
// so cuBLAS never allocates during a graph capture and its memory does not grow with captures.

#if !defined(__CUDACC__)
#error "ember/backend/cuda/blas.hpp is CUDA host code: compile this translation unit with nvcc"
#endif

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <type_traits>

#include "ember/backend/cuda/runtime.hpp"
#include "ember/backend/params.hpp"
#include "ember/core/error.hpp"

namespace ember::cuda {

namespace detail {

[[noreturn]] inline void throw_cublas_error(cublasStatus_t s, const char* expr, const char* file,
                                            int line) {
  throw ::ember::Error(::ember::detail::concat("cuBLAS call `", expr, "` failed with ",
                                               cublasGetStatusName(s), " (",
                                               cublasGetStatusString(s), ") at ", file, ":",
                                               line));
}

// cuBLAS workspace per handle: NVIDIA recommends 32 MiB for Hopper (4 MiB before), which is
// also plenty for the smaller parts.
inline constexpr std::size_t kCublasWorkspaceBytes = std::size_t(32) << 20;

inline int to_blas_int(std::int64_t v, const char* what) {
  EMBER_CHECK(v >= 0 && v <= std::numeric_limits<int>::max(), "cublas_gemm: ", what, " = ", v,
              " does not fit cuBLAS's 32-bit int arguments");
  return static_cast<int>(v);
}

}  // namespace detail

// The cuBLAS handle of cuda:device (created on first use; thread-safe; never destroyed).
[[nodiscard]] inline cublasHandle_t blas_handle(int device) {
  detail::check_device_index(device);
  static std::once_flag flags[kMaxDevices];
  static cublasHandle_t handles[kMaxDevices] = {};
  std::call_once(flags[device], [device] {
    cudaStream_t s = stream(device);  // validates the device
    DeviceGuard guard(device);
    cublasHandle_t h = nullptr;
    EMBER_CUBLAS_CHECK(cublasCreate(&h));
    try {
      // Stream first: cublasSetStream resets the workspace to cuBLAS's default pool.
      EMBER_CUBLAS_CHECK(cublasSetStream(h, s));
      void* workspace = nullptr;
      EMBER_CUDA_CHECK(cudaMalloc(&workspace, detail::kCublasWorkspaceBytes));
      const cublasStatus_t ws = cublasSetWorkspace(h, workspace, detail::kCublasWorkspaceBytes);
      if (ws != CUBLAS_STATUS_SUCCESS) {
        (void)cudaFree(workspace);
        detail::throw_cublas_error(ws, "cublasSetWorkspace(h, workspace, size)", __FILE__,
                                   __LINE__);
      }
      EMBER_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
      EMBER_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    } catch (...) {
      (void)cublasDestroy(h);
      throw;
    }
    handles[device] = h;
  });
  return handles[device];
}

namespace detail {
// cublas_gemm's arguments for a GemmParams (see there).
struct BlasGemmArgs {
  int m, n, k, ld_first, ld_second, ldc;
  cublasOperation_t op_first, op_second;
};
inline BlasGemmArgs blas_gemm_args(const GemmParams& p) {
  BlasGemmArgs r;
  r.m = to_blas_int(p.n, "N");
  r.n = to_blas_int(p.m, "M");
  r.k = to_blas_int(p.k, "K");
  // Leading dimensions as cuBLAS sees them: the first cuBLAS operand is B, stored with rows of
  // length N (no transpose) or K (transposed); the second is A, rows of length K or M.
  const std::int64_t b_cols = p.trans_b ? p.k : p.n;
  const std::int64_t a_cols = p.trans_a ? p.m : p.k;
  // With K == 0 the operands are not read; their strides may be anything (0 included), but
  // cuBLAS still validates them.
  const std::int64_t ldb_min = b_cols > 1 ? b_cols : 1;
  const std::int64_t lda_min = a_cols > 1 ? a_cols : 1;
  r.ld_first = to_blas_int(p.k == 0 && p.ldb < ldb_min ? ldb_min : p.ldb, "ldb");
  r.ld_second = to_blas_int(p.k == 0 && p.lda < lda_min ? lda_min : p.lda, "lda");
  r.ldc = to_blas_int(p.ldc, "ldc");
  EMBER_CHECK(p.k == 0 || (p.ldb >= ldb_min && p.lda >= lda_min),
              "cublas_gemm: row strides too small (lda ", p.lda, " needs >= ", lda_min,
              ", ldb ", p.ldb, " needs >= ", ldb_min, ")");
  EMBER_CHECK(p.ldc >= p.n, "cublas_gemm: ldc ", p.ldc, " < N ", p.n);
  r.op_first = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  r.op_second = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  return r;
}
}  // namespace detail

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C on cuda:device, asynchronous on
// cuda::stream(device), with exactly the row-major semantics of ember::cpu::gemm (GemmParams:
// A stored [M,K], or [K,M] when trans_a; B stored [K,N], or [N,K] when trans_b; lda, ldb, ldc
// row strides). All pointers are device pointers on `device`. beta == 0 overwrites C without
// reading it; K == 0 scales C by beta.
//
// Mapping: a row-major matrix X[r,c] with row stride ld is the column-major matrix X^T[c,r]
// with leading dimension ld. So the row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T: call cuBLAS with the operands swapped (B first), m = N, n = M, and
// each operand transposed for cuBLAS exactly when it is transposed for ember.
template <class T>
void cublas_gemm(const GemmParams& p, T alpha, const T* a, const T* b, T beta, T* c, int device) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "cublas_gemm supports float and double");
  if (p.m == 0 || p.n == 0) return;
  const detail::BlasGemmArgs g = detail::blas_gemm_args(p);
  cublasHandle_t h = blas_handle(device);
  DeviceGuard guard(device);
  if constexpr (std::is_same_v<T, float>) {
    EMBER_CUBLAS_CHECK(cublasSgemm(h, g.op_first, g.op_second, g.m, g.n, g.k, &alpha, b,
                                   g.ld_first, a, g.ld_second, &beta, c, g.ldc));
  } else {
    EMBER_CUBLAS_CHECK(cublasDgemm(h, g.op_first, g.op_second, g.m, g.n, g.k, &alpha, b,
                                   g.ld_first, a, g.ld_second, &beta, c, g.ldc));
  }
}

// Every entry of a batch of products (BatchedGemmParams) in one strided batched cuBLAS call,
// with cublas_gemm's mapping (B's entries are the first cuBLAS operand).
template <class T>
void cublas_gemm_batched(const BatchedGemmParams& bp, T alpha, const T* a, const T* b, T beta,
                         T* c, int device) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "cublas_gemm_batched supports float and double");
  if (bp.batch == 0 || bp.gemm.m == 0 || bp.gemm.n == 0) return;
  const detail::BlasGemmArgs g = detail::blas_gemm_args(bp.gemm);
  const int count = detail::to_blas_int(bp.batch, "batch");
  const long long sa = bp.stride_a, sb = bp.stride_b, sc = bp.stride_c;
  cublasHandle_t h = blas_handle(device);
  DeviceGuard guard(device);
  if constexpr (std::is_same_v<T, float>) {
    EMBER_CUBLAS_CHECK(cublasSgemmStridedBatched(h, g.op_first, g.op_second, g.m, g.n, g.k,
                                                 &alpha, b, g.ld_first, sb, a, g.ld_second, sa,
                                                 &beta, c, g.ldc, sc, count));
  } else {
    EMBER_CUBLAS_CHECK(cublasDgemmStridedBatched(h, g.op_first, g.op_second, g.m, g.n, g.k,
                                                 &alpha, b, g.ld_first, sb, a, g.ld_second, sa,
                                                 &beta, c, g.ldc, sc, count));
  }
}

}  // namespace ember::cuda
