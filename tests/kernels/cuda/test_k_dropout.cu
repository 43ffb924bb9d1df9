// test_k_dropout on the GPU: the same source as the CPU-harness run, compiled by nvcc.
#include "../test_k_dropout.cpp"
