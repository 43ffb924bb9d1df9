#pragma once
// The compiler's x86 intrinsics (<immintrin.h>), included by ember through here only; ember
// includes Eigen after this header (backend/cpu/gemm.hpp).
//
// g++ before 13 (GCC bug 105593, Debian 12's g++ 12.2 among them) writes the "undefined"
// vectors of avx512fintrin.h as `__m512 __Y = __Y;`. With -march=x86-64-v4 or -march=native
// on an AVX-512 CPU, once Eigen's GEMM packing (ptranspose, gemm_pack_lhs/rhs) is inlined
// into a translation unit, -Wmaybe-uninitialized and -Wuninitialized then fire *inside that
// compiler header*, and -Werror turns them into hundreds of errors. -isystem does not help:
// these warnings are issued after inlining, where the outermost frame is the user's code.
//
// The narrowest correct remedy: ignore exactly these two warnings for the text of
// <immintrin.h> and nothing else. g++ honours a diagnostic pragma at any level of the inlining
// stack, so the region below covers the intrinsics wherever they are inlined, while
// uninitialized reads in ember's code, in Eigen's and in the user's own stay diagnosed. A
// program that includes <immintrin.h> itself *before* any ember header does not get this;
// include an ember header first, or include this one. Other compilers are left alone.

#if defined(__x86_64__) || defined(_M_X64)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#define EMBER_X86 1
#else
#define EMBER_X86 0
#endif
