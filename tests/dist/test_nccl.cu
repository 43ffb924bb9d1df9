// The NCCL backend (ember/dist/nccl.hpp) on CUDA tensors, under mpirun with one GPU per process:
// all_reduce (sum, mean, max) and broadcast against the values every rank computes on the CPU,
// and DistributedDataParallel on NcclProcessGroup against the same model on the CPU over MPI.
// Exit 77 (skipped) when the node has fewer CUDA devices than processes. Compiled by nvcc in
// every CUDA build (CI), run where there is a GPU.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
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

    // DistributedDataParallel on the NCCL process group against the same model on the CPU over
    // MPI: every rank starts from its own random weights (rank 0's must win) and feeds its own
    // batch; after backward the averaged gradients agree.
    auto group = std::make_shared<dist::NcclProcessGroup>();
    auto make = [r] {
      manual_seed(static_cast<std::uint64_t>(100 + r));
      return std::shared_ptr<nn::Sequential>(new nn::Sequential{
          std::make_shared<nn::Linear>(5, 7), std::make_shared<nn::ReLU>(),
          std::make_shared<nn::Linear>(7, 3)});
    };
    auto on_cpu_model = make();
    auto on_gpu_model = make();
    on_gpu_model->to(dev);
    dist::DistributedDataParallel ddp_cpu(on_cpu_model);
    dist::DistributedDataParallel ddp_gpu(on_gpu_model, {.bucket_cap_mb = 0.0001}, group);
    manual_seed(static_cast<std::uint64_t>(200 + r));
    const Tensor<float> in = randn({4 + r, 5});
    Tensor<float> out_cpu = ddp_cpu(in), out_gpu = ddp_gpu(in.to(dev));
    sum(mul(out_cpu, out_cpu)).backward();
    sum(mul(out_gpu, out_gpu)).backward();
    const auto pc = ddp_cpu.parameters(), pg = ddp_gpu.parameters();
    float worst = 0;
    for (std::size_t i = 0; i < pc.size(); ++i) {
      const Tensor<float> a = pc[i].grad(), b = pg[i].grad().to(Device::cpu());
      for (std::int64_t k = 0; k < a.numel(); ++k)
        worst = std::max(worst, std::abs(a.data()[k] - b.data()[k]) / (1e-3f + std::abs(a.data()[k])));
    }
    expect(ddp_gpu.bucket_indices().size() > 1, "DDP on NCCL: several buckets");
    expect(worst <= 1e-4f, "DDP on NCCL: gradients as DDP on MPI's (worst relative difference " +
                               std::to_string(worst) + ")");
    bool wrong_device = false;
    try {
      dist::DistributedDataParallel bad(make(), {}, group);
    } catch (const Error& e) {
      wrong_device = std::string(e.what()).find("'nccl' process group does not take") != std::string::npos;
    }
    expect(wrong_device, "DDP on NCCL refuses a CPU module");
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
