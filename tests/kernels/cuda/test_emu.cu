// test_emu on the GPU: the same source as the CPU-harness run, compiled by nvcc.
#include "../test_emu.cpp"
