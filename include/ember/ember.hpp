#pragma once
// One include for users: the whole of ember.

#include "ember/backend/device_backend.hpp"
#include "ember/backend/dispatch.hpp"
#include "ember/backend/graph.hpp"
#include "ember/core/allocator.hpp"
#include "ember/core/device.hpp"
#include "ember/core/dtype.hpp"
#include "ember/core/error.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/print.hpp"
#include "ember/core/random.hpp"
#include "ember/core/shape.hpp"
#include "ember/core/tensor.hpp"
#include "ember/autograd/engine.hpp"
#include "ember/autograd/grad_mode.hpp"
#include "ember/ops/activation.hpp"
#include "ember/ops/conv.hpp"
#include "ember/ops/dropout.hpp"
#include "ember/ops/elementwise.hpp"
#include "ember/ops/linear.hpp"
#include "ember/ops/loss.hpp"
#include "ember/ops/pool.hpp"
#include "ember/ops/reduce.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/nn/evaluate.hpp"
#include "ember/nn/init.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/pooling.hpp"
#include "ember/optim/sgd.hpp"
#include "ember/data/dataloader.hpp"
#include "ember/data/device_loader.hpp"
#include "ember/data/idx.hpp"
#include "ember/data/mnist.hpp"
#include "ember/io/safetensors.hpp"
#include "ember/io/state_dict.hpp"
#include "ember/io/checkpoint.hpp"
#include "ember/io/onnx.hpp"
#include "ember/quant/quantize.hpp"
#include "ember/quant/serialize.hpp"

// EMBER_CUDA_NO_AUTO_REGISTER: for nvcc files that only want the kernels (the kernel tests),
// so that each does not compile the whole backend again; one file of the program must
// register it.
#if defined(__CUDACC__) && !defined(EMBER_CUDA_NO_AUTO_REGISTER)
#include "ember/backend/cuda/register.hpp"
#endif
