// The one CUDA translation unit a program needs for ember's CUDA backend: including ember under
// nvcc registers the backend (backend/cuda/register.hpp), after which every op of the program,
// in CUDA or plain C++ files alike, can run on CUDA devices. CMake's ember::cuda target adds
// this file to the programs that link it.
#include "ember/ember.hpp"
