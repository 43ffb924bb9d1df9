// test_k_compare on the GPU: the same source as the CPU-harness run, compiled by nvcc.
#include "../test_k_compare.cpp"
