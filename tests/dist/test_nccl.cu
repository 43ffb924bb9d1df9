// The NCCL backend (ember/dist/nccl.hpp) on CUDA tensors, under mpirun with one GPU per process:
// all_reduce (sum, mean, max) and broadcast against the values every rank computes on the CPU.
// Exit 77 (skipped) when the node has fewer CUDA devices than processes. Compiled by nvcc in
// every CUDA build (CI), run where there is a GPU.
#include <cstdio>
#include <string>
#include <vector>

#include "ember/dist/comm.hpp"
#include "ember/dist/nccl.hpp"
#include "ember/ember.hpp"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "rank %d: FAILED: %s\n", ember::dist::rank(), what.c_str());
    ++failures;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ember;
  dist::init(&argc, &argv);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
  const auto counts = dist::all_gather_value(count);
  for (auto c : counts)
    if (c < dist::local_size()) {
      if (dist::rank() == 0)
        std::printf("SKIPPED: %d processes on this node but %lld CUDA devices\n",
                    dist::local_size(), static_cast<long long>(c));
      dist::finalize();
      return 77;
    }
  try {
    dist::NcclCommunicator comm;
    const Device dev = Device::cuda(comm.device());
    const int w = dist::world_size(), r = dist::rank();
    const std::int64_t n = 1000003;  // odd, larger than one NCCL chunk
    // x[i] = (r + 1) * (i % 7): the sum over ranks is w (w + 1) / 2 * (i % 7).
    Tensor<float> host = Tensor<float>::empty({n});
    for (std::int64_t i = 0; i < n; ++i) host.data()[i] = static_cast<float>((r + 1) * (i % 7));
    Tensor<float> x = host.to(dev);
    comm.all_reduce(x);
    comm.wait();
    Tensor<float> got = x.to(Device::cpu());
    bool ok = true;
    for (std::int64_t i = 0; i < n && ok; ++i)
      ok = got.data()[i] == static_cast<float>(w * (w + 1) / 2 * (i % 7));
    expect(ok, "all_reduce sum");
    Tensor<double> m = Tensor<double>::full({17}, r + 1.0).to(dev);
    comm.all_reduce(m, dist::ReduceOp::mean);
    comm.wait();
    expect(m.to(Device::cpu()).data()[16] == (w + 1) / 2.0, "all_reduce mean");
    Tensor<float> mx = Tensor<float>::full({3}, static_cast<float>(r)).to(dev);
    comm.all_reduce(mx, dist::ReduceOp::max);
    comm.wait();
    expect(mx.to(Device::cpu()).data()[2] == static_cast<float>(w - 1), "all_reduce max");
    Tensor<float> b = Tensor<float>::full({5}, static_cast<float>(10 + r)).to(dev);
    comm.broadcast(b, w - 1);
    comm.wait();
    expect(b.to(Device::cpu()).data()[4] == static_cast<float>(10 + w - 1), "broadcast");
    Tensor<float> on_cpu = Tensor<float>::zeros({2});
    bool refused = false;
    try {
      comm.all_reduce(on_cpu);
    } catch (const Error& e) {
      refused = std::string(e.what()).find("expected a tensor on cuda:") != std::string::npos;
    }
    expect(refused, "a CPU tensor refused");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", dist::rank(), e.what());
    dist::abort(e.what());
  }
  const auto all = dist::all_gather_value(failures);
  int any = 0;
  for (auto f : all) any += f != 0;
  if (dist::rank() == 0) std::printf("%s\n", any == 0 ? "test_dist_nccl: passed" : "FAILED");
  dist::finalize();
  return any == 0 ? 0 : 1;
}
