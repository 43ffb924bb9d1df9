// A training step captured into a CUDA graph and replayed gives exactly the eager steps'
// results: losses, dropout masks (fresh Philox offsets on every replay) and parameters, bit for
// bit. Runs on a GPU (test_cuda_graph) and, in CI, on the CPU execution harness
// (test_cuda_graph_emu), where graph capture records the kernel launches.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "ember/ember.hpp"

namespace {

using ember::Device;
using ember::Generator;
using ember::Tensor;

struct Run {
  Generator gen;
  ember::models::MnistNet model;
  ember::optim::SGD opt;
  Tensor<float> loss;
  explicit Run(std::uint64_t seed)
      : gen(seed), model(gen), opt((model.to(Device::cuda()), model.parameters()), {.lr = 0.05, .momentum = 0.5}) {}
  void step(const Tensor<float>& x, const Tensor<std::int64_t>& y) {
    opt.zero_grad();
    loss = ember::nll_loss(model(x), y);
    loss.backward();
    opt.step();
  }
};

std::vector<float> flat_parameters(ember::nn::Module& m) {
  std::vector<float> out;
  for (auto& p : m.parameters()) {
    const auto v = p.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace

TEST_CASE("a training step replayed as a CUDA graph matches eager steps bit for bit", "[cuda][graph]") {
  const Device cuda = Device::cuda();
  const std::int64_t batch = 3, steps = 4;
  Generator data_gen(7);
  std::vector<Tensor<float>> xs;
  std::vector<Tensor<std::int64_t>> ys;
  for (std::int64_t s = 0; s < steps; ++s) {
    xs.push_back(Tensor<float>::uniform({batch, 1, 28, 28}, -1, 1, data_gen).to(cuda));
    auto y = Tensor<std::int64_t>::empty({batch});
    for (std::int64_t i = 0; i < batch; ++i) y.data()[i] = static_cast<std::int64_t>(data_gen.below(10));
    ys.push_back(y.to(cuda));
  }

  Run eager(11), replayed(11);
  std::vector<float> eager_losses, replayed_losses;
  for (std::int64_t s = 0; s < steps; ++s) {
    eager.step(xs[static_cast<std::size_t>(s)], ys[static_cast<std::size_t>(s)]);
    eager_losses.push_back(eager.loss.item());
  }

  // As mnist_train does: one eager step, then capture the step reading fixed input buffers and
  // replay it, handing each replay its Philox offset through a device scalar.
  auto x_buf = Tensor<float>::empty({batch, 1, 28, 28}, cuda);
  auto y_buf = Tensor<std::int64_t>::empty({batch}, cuda);
  auto offset = Tensor<std::int64_t>::zeros({1}, cuda);
  auto* offset_ptr = reinterpret_cast<std::uint64_t*>(offset.data());
  ember::DeviceGraph graph;
  std::uint64_t draws = 0;
  for (std::int64_t s = 0; s < steps; ++s) {
    const auto i = static_cast<std::size_t>(s);
    if (s == 0) {
      replayed.step(xs[i], ys[i]);
    } else {
      x_buf.copy_(xs[i]);
      y_buf.copy_(ys[i]);
      if (!graph.captured()) {
        replayed.opt.zero_grad();
        replayed.gen.begin_capture(offset_ptr);
        graph.begin_capture(cuda);
        replayed.step(x_buf, y_buf);
        graph.end_capture();
        draws = replayed.gen.end_capture();
        CHECK(draws > 0);  // the two dropout layers draw
      }
      ember::backend::cuda<ember::op::SetU64, float>(cuda.index, offset_ptr, replayed.gen.offset());
      replayed.gen.reserve(draws);
      graph.replay();
    }
    replayed_losses.push_back(replayed.loss.item());
  }
  CHECK(replayed.gen.offset() == eager.gen.offset());
  CHECK(replayed_losses == eager_losses);
  CHECK(flat_parameters(replayed.model) == flat_parameters(eager.model));
  // the graph's tensors go before the graph
  replayed.opt.zero_grad();
  replayed.loss = Tensor<float>();
  graph.reset();
}

TEST_CASE("nothing in a capture reads on the host", "[cuda][graph]") {
  const Device cuda = Device::cuda();
  auto t = Tensor<float>::ones({4}, cuda);
  ember::DeviceGraph graph;
  graph.begin_capture(cuda);
  CHECK_THROWS_AS(t.to_vector(), ember::Error);
  graph.end_capture();
}
