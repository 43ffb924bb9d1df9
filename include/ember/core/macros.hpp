#pragma once
// Portability macros for code that is compiled both by the host compiler and by nvcc.

// A function callable from host code and from CUDA device code (kernels/ uses Philox and the
// parameter structs on the device).
#if defined(__CUDACC__)
#define EMBER_HOST_DEVICE __host__ __device__
#else
#define EMBER_HOST_DEVICE
#endif
