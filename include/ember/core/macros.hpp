#pragma once
// Portability macros for code that is compiled both by the host compiler and by nvcc.

// A function callable from host code and from CUDA device code (kernels/ uses Philox and the
// parameter structs on the device).
#if defined(__CUDACC__)
#define EMBER_HOST_DEVICE __host__ __device__
#else
#define EMBER_HOST_DEVICE
#endif

// EMBER_FP_CONTRACT_OFF ... EMBER_FP_CONTRACT_RESTORE: the code between computes a * b + c as
// a multiply and an add, never a fused multiply-add, as Python does (g++ fuses by default in
// GNU mode on an FMA target, clang within an expression): for numbers that must equal
// PyTorch's Python-side arithmetic bit for bit (the schedulers' rates, Adam's step scalars).
// nvcc's front end knows neither pragma, so a translation unit it compiles may fuse them.
#if defined(__clang__) && !defined(__CUDACC__)
#define EMBER_FP_CONTRACT_OFF _Pragma("clang fp contract(off)")
#define EMBER_FP_CONTRACT_RESTORE _Pragma("clang fp contract(on)")
#elif defined(__GNUC__) && !defined(__CUDACC__)
#define EMBER_FP_CONTRACT_OFF _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define EMBER_FP_CONTRACT_RESTORE _Pragma("GCC pop_options")
#else
#define EMBER_FP_CONTRACT_OFF
#define EMBER_FP_CONTRACT_RESTORE
#endif
