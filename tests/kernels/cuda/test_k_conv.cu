// test_k_conv on the GPU: the same source as the CPU-harness run, compiled by nvcc.
#include "../test_k_conv.cpp"
