// Tests for ember/dist/comm.hpp and ddp.hpp, run by CTest under `mpirun -np 2` and `-np 3`
// (loopback only, EMBER_DIST_TIMEOUT bounding every wait):
// - the collectives (all_reduce sum/mean/max, broadcast, a timed-out barrier);
// - DistributedDataParallel starts every process from rank 0's model;
// - equivalence: N processes with batch B each, after several SGD steps, hold the model one
//   process gets with batch N*B over the same samples (no BatchNorm; |diff| <= 2e-5 (1 + |w|)),
//   and with BatchNorm the model one process gets from the same N chunks of B (each normalised
//   with its own statistics, as DDP without SyncBatchNorm does) accumulated into one step;
// - bit-identical models on every rank and on a repeated run;
// - the first bucket's all-reduce starts before backward has made every gradient (the hooks);
// - no_sync accumulates locally, the next backward averages the sum;
// - a parameter without a gradient is refused at the next forward.

#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ember/dist/ddp.hpp"
#include "ember/dist/sampler.hpp"
#include "ember/ember.hpp"

namespace {

using namespace ember;

// A small conv net, with or without BatchNorm: (N, 1, 8, 8) -> 3 classes.
struct SmallNet : nn::Module {
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Linear> fc1, fc2;
  SmallNet(bool with_bn, std::uint64_t seed) : nn::Module("SmallNet") {
    Generator gen(seed);
    conv = register_module("conv", std::make_shared<nn::Conv2d>(
                                       1, 4, 3, Conv2dOptions{.padding = 1}, true, gen));
    if (with_bn) bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(4));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4 * 4 * 4, 16, true, gen));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(16, 3, true, gen));
  }
  nn::Tensor forward(const nn::Tensor& x) override {
    nn::Tensor h = (*conv)(x);
    if (bn) h = (*bn)(h);
    h = max_pool2d(relu(h), 2).flatten(1);
    return log_softmax((*fc2)(relu((*fc1)(h))), 1);
  }
};

// Sample i: a 1x8x8 image from Generator(1000 + i), label i % 3.
struct Images : data::Dataset {
  std::int64_t size() const override { return 61; }
  data::Example get(std::int64_t i) const override {
    Generator gen(1000 + static_cast<std::uint64_t>(i));
    return {Tensor<float>::randn({1, 8, 8}, gen), i % 3};
  }
  std::int64_t num_classes() const override { return 3; }
};

// The samples at these positions as one batch.
data::Batch batch_of(const data::Dataset& ds, const std::vector<std::int64_t>& idx) {
  data::Batch b;
  const auto n = static_cast<std::int64_t>(idx.size());
  b.images = Tensor<float>::empty({n, 1, 8, 8});
  b.labels = Tensor<std::int64_t>::empty({n});
  for (std::int64_t k = 0; k < n; ++k) {
    data::Example e = ds.get(idx[static_cast<std::size_t>(k)]);
    const auto& img = std::get<Tensor<float>>(e.image);
    std::copy_n(img.data(), 64, b.images.data() + k * 64);
    b.labels.data()[k] = e.label;
  }
  return b;
}

// The module's parameters, then (with_buffers) its buffers, in one vector.
std::vector<float> flat_state(nn::Module& m, bool with_buffers = true) {
  std::vector<float> out;
  for (auto& [name, t] : with_buffers ? m.state_dict() : m.named_parameters()) {
    const Tensor<float> c = t.contiguous();
    out.insert(out.end(), c.data(), c.data() + c.numel());
  }
  return out;
}

constexpr std::int64_t kBatch = 4;  // per process
constexpr int kSteps = 5;
constexpr float kLr = 0.1f;

// Trains with DDP for kSteps steps of kBatch per process through a DistributedSampler;
// returns the module's state on this rank.
std::vector<float> train_ddp(bool with_bn, dist::DDPOptions options = {.bucket_cap_mb = 0.001},
                             bool with_buffers = true) {
  auto ds = std::make_shared<Images>();
  // Each rank builds its model from its own seed: DDP must replace it by rank 0's.
  auto net = std::make_shared<SmallNet>(with_bn, 11 + static_cast<std::uint64_t>(dist::rank()));
  dist::DistributedDataParallel ddp(net, options);
  optim::SGD opt(ddp.parameters(), {.lr = kLr, .momentum = 0.9});
  auto sampler = std::make_shared<dist::DistributedSampler>(
      ds->size(), dist::DistributedSamplerOptions{.num_replicas = dist::world_size(),
                                                  .rank = dist::rank(), .seed = 3});
  data::DataLoader loader(ds, {.batch_size = kBatch, .num_workers = 0});
  loader.set_sampler(sampler);
  int step = 0;
  for (std::int64_t epoch = 0; step < kSteps; ++epoch) {
    sampler->set_epoch(epoch);
    for (const data::Batch& b : loader.epoch()) {
      if (step == kSteps) break;
      opt.zero_grad();
      nll_loss(ddp(b.images), b.labels).backward();
      opt.step();
      ++step;
    }
  }
  return flat_state(*net, with_buffers);
}

// The same steps in one process: global batch s is the first kBatch * N samples of the padded
// epoch order from position s kBatch N. Without BatchNorm as one batch; with it as N chunks (the
// samples rank r had), each normalised alone, gradients summed with weight 1/N, and the running
// statistics of rank 0's chunk (DDP broadcasts rank 0's buffers at every forward).
std::vector<float> train_reference(bool with_bn, bool with_buffers = true) {
  const int world = dist::world_size();
  Images ds;
  auto net = std::make_shared<SmallNet>(with_bn, 11);  // rank 0's seed
  optim::SGD opt(net->parameters(), {.lr = kLr, .momentum = 0.9});
  dist::DistributedSampler whole(ds.size(), {.num_replicas = world, .rank = 0, .seed = 3});
  const std::int64_t steps_per_epoch = (whole.size() + kBatch - 1) / kBatch;
  int step = 0;
  for (std::int64_t epoch = 0; step < kSteps; ++epoch) {
    whole.set_epoch(epoch);
    const auto order = whole.global_order();
    for (std::int64_t s = 0; s < steps_per_epoch && step < kSteps; ++s, ++step) {
      // Rank r's batch s: positions (s kBatch + j) world + r of the epoch order.
      std::vector<std::vector<std::int64_t>> chunks(static_cast<std::size_t>(world));
      std::vector<std::int64_t> all;
      for (std::int64_t j = s * kBatch; j < std::min((s + 1) * kBatch, whole.size()); ++j)
        for (int r = 0; r < world; ++r) {
          const std::int64_t pos = order[static_cast<std::size_t>(j * world + r)];
          chunks[static_cast<std::size_t>(r)].push_back(pos);
        }
      for (const auto& c : chunks) all.insert(all.end(), c.begin(), c.end());
      opt.zero_grad();
      if (!with_bn) {
        const data::Batch b = batch_of(ds, all);
        nll_loss((*net)(b.images), b.labels).backward();
      } else {
        std::vector<Tensor<float>> kept;  // rank 0's running statistics
        for (int r = 0; r < world; ++r) {
          const data::Batch b = batch_of(ds, chunks[static_cast<std::size_t>(r)]);
          (nll_loss((*net)(b.images), b.labels) * (1.0f / static_cast<float>(world))).backward();
          if (r == 0)
            for (auto& [name, buf] : net->named_buffers()) kept.push_back(buf.clone());
          else {
            NoGradGuard g;
            std::size_t k = 0;
            for (auto& [name, buf] : net->named_buffers()) buf.copy_(kept[k++]);
          }
        }
      }
      opt.step();
    }
  }
  return flat_state(*net, with_buffers);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// True when every rank has the same bits (compares a checksum through MPI).
bool same_on_every_rank(const std::vector<float>& v) {
  std::uint64_t h = 1469598103934665603ULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ULL;
  const auto all = dist::all_gather_value(static_cast<std::int64_t>(h >> 1));
  for (auto x : all)
    if (x != all[0]) return false;
  return true;
}

}  // namespace

TEST_CASE("dist: rank, world size, local rank", "[dist]") {
  REQUIRE(dist::world_size() >= 2);
  REQUIRE(dist::rank() >= 0);
  REQUIRE(dist::rank() < dist::world_size());
  // One node: every process is local, local ranks are the ranks.
  REQUIRE(dist::local_size() == dist::world_size());
  REQUIRE(dist::local_rank() == dist::rank());
}

TEST_CASE("dist: all_reduce and broadcast of CPU tensors", "[dist]") {
  const int w = dist::world_size(), r = dist::rank();
  Tensor<double> t = Tensor<double>::from_list({1.0 * r, 2.0, -0.5 * r});
  dist::all_reduce(t);
  const double sum_r = w * (w - 1) / 2.0;
  REQUIRE(t(0) == sum_r);
  REQUIRE(t(1) == 2.0 * w);
  REQUIRE(t(2) == -0.5 * sum_r);
  Tensor<float> m = Tensor<float>::from_list({static_cast<float>(r + 1), 3.0f});
  dist::all_reduce(m, dist::ReduceOp::mean);
  REQUIRE(m(0) == Approx((w + 1) / 2.0));
  REQUIRE(m(1) == 3.0f);
  Tensor<float> mx = Tensor<float>::full({1}, static_cast<float>(r));
  dist::all_reduce(mx, dist::ReduceOp::max);
  REQUIRE(mx(0) == static_cast<float>(w - 1));
  Tensor<float> b = Tensor<float>::full({5}, static_cast<float>(10 + r));
  dist::broadcast(b, w - 1);
  for (int i = 0; i < 5; ++i) REQUIRE(b(i) == static_cast<float>(10 + w - 1));
  Tensor<float> strided = Tensor<float>::zeros({4, 4}).transpose(0, 1);
  REQUIRE_THROWS_WITH(dist::all_reduce(strided), Catch::Contains("contiguous"));
}

TEST_CASE("dist: a collective a peer does not join times out with a clear error", "[dist]") {
  const double before = dist::timeout();
  dist::set_timeout(0.5);
  const auto t0 = std::chrono::steady_clock::now();
  if (dist::rank() == 0) {
    // The others arrive 2 s late: rank 0 gives up after 0.5 s.
    REQUIRE_THROWS_WITH(dist::barrier(), Catch::Contains("barrier did not complete within") &&
                                             Catch::Contains("another process died"));
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(waited >= 0.5);
    REQUIRE(waited < 1.9);
  } else {
    std::this_thread::sleep_for(std::chrono::seconds(2));
    dist::set_timeout(before);
    dist::barrier();  // completes rank 0's abandoned barrier
  }
  dist::set_timeout(before);
  dist::barrier();
}

TEST_CASE("DDP: every process starts from rank 0's parameters and buffers", "[dist][ddp]") {
  auto net = std::make_shared<SmallNet>(true, 100 + static_cast<std::uint64_t>(dist::rank()));
  {
    NoGradGuard g;
    net->bn->running_mean.fill_(static_cast<float>(dist::rank()));
  }
  dist::DistributedDataParallel ddp(net);
  SmallNet rank0(true, 100);
  const auto got = flat_state(*net);
  auto want = flat_state(rank0);
  // running_mean is rank 0's (zeros, as rank0's fresh one).
  REQUIRE(same_bits(got, want));
  REQUIRE(ddp.named_parameters().front().first == "module.conv.weight");
}

TEST_CASE("DDP: N processes x batch B = one process x batch N*B (no BatchNorm)", "[dist][ddp]") {
  const auto ddp_state = train_ddp(false);
  const auto ref = train_reference(false);
  REQUIRE(ddp_state.size() == ref.size());
  float worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::abs(ddp_state[i] - ref[i]) / (1 + std::abs(ref[i])));
  INFO("largest |ddp - reference| / (1 + |reference|): " << worst);
  REQUIRE(worst <= 2e-5f);
  REQUIRE(!same_bits(ddp_state, flat_state(*std::make_shared<SmallNet>(false, 11))));  // trained
  REQUIRE(same_on_every_rank(ddp_state));
}

TEST_CASE("DDP with BatchNorm: equals the per-process chunks accumulated in one process",
          "[dist][ddp]") {
  // Buffers: rank 0's after its last forward; another rank's are rank 0's from the step before,
  // updated by its own last batch (they are broadcast at the start of the next forward).
  const bool buffers = dist::rank() == 0;
  const auto ddp_state = train_ddp(true, {.bucket_cap_mb = 0.001}, buffers);
  const auto ref = train_reference(true, buffers);
  REQUIRE(ddp_state.size() == ref.size());
  float worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::abs(ddp_state[i] - ref[i]) / (1 + std::abs(ref[i])));
  INFO("largest |ddp - reference| / (1 + |reference|): " << worst);
  REQUIRE(worst <= 2e-5f);
  REQUIRE(same_on_every_rank(train_ddp(true, {.bucket_cap_mb = 0.001}, false)));
}

TEST_CASE("DDP: a repeated run gives the same bits; bucket size does not change the result",
          "[dist][ddp]") {
  const auto first = train_ddp(true);
  const auto second = train_ddp(true);
  REQUIRE(same_bits(first, second));
  // One bucket of 25 MB against many tiny ones: the same sums element by element.
  const auto one_bucket = train_ddp(true, {});
  REQUIRE(same_bits(first, one_bucket));
}

TEST_CASE("DDP: buckets start while backward is still running", "[dist][ddp]") {
  auto net = std::make_shared<SmallNet>(true, 5);
  // 0.001 MB = 262 floats: {fc2.bias, fc2.weight, fc1.bias}, {fc1.weight (1024)},
  // {bn.bias, bn.weight, conv.bias, conv.weight}.
  dist::DistributedDataParallel ddp(net, {.bucket_cap_mb = 0.001});
  const auto buckets = ddp.bucket_indices();
  const std::size_t n_params = net->parameters().size();
  REQUIRE(buckets.size() == 3);
  // Reverse parameter order: the first bucket holds the last parameter (fc2.bias).
  REQUIRE(buckets.front().front() == 0);
  // With the defaults (first bucket 1 MiB, then 25 MiB) a small model is one bucket.
  dist::DistributedDataParallel whole(std::make_shared<SmallNet>(true, 5));
  REQUIRE(whole.bucket_indices().size() == 1);
  const data::Batch b = batch_of(Images(), {0, 1, 2, 3});
  nll_loss(ddp(b.images), b.labels).backward();
  const auto& launches = ddp.last_launches();
  REQUIRE(launches.size() == buckets.size());
  for (std::size_t i = 0; i < launches.size(); ++i) REQUIRE(launches[i].bucket == i);
  // The first all-reduce started before the conv and bn gradients existed (4 of 8).
  CAPTURE(launches.front().grads_ready, n_params);
  REQUIRE(n_params == 8);
  REQUIRE(launches.front().grads_ready >= buckets.front().size());
  REQUIRE(launches.front().grads_ready <= n_params - 4);
  REQUIRE(launches.back().grads_ready == n_params);
  // After backward the gradients are averaged: the same on every rank.
  std::vector<float> grads;
  for (const auto& p : net->parameters())
    grads.insert(grads.end(), p.grad().data(), p.grad().data() + p.numel());
  REQUIRE(same_on_every_rank(grads));
}

TEST_CASE("DDP: no_sync accumulates locally; the next backward averages the sum",
          "[dist][ddp]") {
  auto net = std::make_shared<SmallNet>(false, 9);
  dist::DistributedDataParallel ddp(net, {.bucket_cap_mb = 0.001});
  const int w = dist::world_size(), r = dist::rank();
  Images ds;
  // Micro-batch m of rank r: samples 8 (m w + r) .. + 4.
  auto micro = [&](int m, int rank) {
    std::vector<std::int64_t> idx;
    for (int k = 0; k < 4; ++k) idx.push_back(4 * (m * w + rank) + k);
    return batch_of(ds, idx);
  };
  {
    auto guard = ddp.no_sync();
    const data::Batch b = micro(0, r);
    nll_loss(ddp(b.images), b.labels).backward();
    REQUIRE(ddp.last_launches().empty());
  }
  std::vector<float> local;
  for (const auto& p : net->parameters())
    local.insert(local.end(), p.grad().data(), p.grad().data() + p.numel());
  REQUIRE(!same_on_every_rank(local));  // not averaged inside no_sync
  const data::Batch b1 = micro(1, r);
  nll_loss(ddp(b1.images), b1.labels).backward();
  // Reference: every rank's two micro-batches in one process, gradients summed / w.
  SmallNet ref(false, 9);
  for (int rank = 0; rank < w; ++rank)
    for (int m = 0; m < 2; ++m) {
      const data::Batch b = micro(m, rank);
      (nll_loss(ref(b.images), b.labels) * (1.0f / static_cast<float>(w))).backward();
    }
  const auto got = net->parameters();
  const auto want = ref.parameters();
  for (std::size_t i = 0; i < got.size(); ++i)
    for (std::int64_t k = 0; k < got[i].numel(); ++k)
      REQUIRE(got[i].grad().data()[k] ==
              Approx(want[i].grad().data()[k]).margin(1e-6).epsilon(1e-5));
}

TEST_CASE("DDP: a parameter without a gradient is refused at the next forward", "[dist][ddp]") {
  auto net = std::make_shared<SmallNet>(false, 9);
  dist::DistributedDataParallel ddp(net, {.bucket_cap_mb = 0.001});
  const data::Batch b = batch_of(Images(), {0, 1});
  // Only fc2 and fc1's bias take part: conv and fc1.weight get no gradient.
  nn::Tensor out = ddp(b.images);
  nll_loss(log_softmax((*net->fc2)(relu(net->fc1->bias.reshape({1, 16}))), 1),
           Tensor<std::int64_t>::full({1}, 1))
      .backward();
  (void)out;
  REQUIRE_THROWS_WITH(ddp(b.images), Catch::Contains("conv.weight") &&
                                         Catch::Contains("unused parameters are not supported"));
  // The next round works again.
  nll_loss(ddp(b.images), b.labels).backward();
  REQUIRE(ddp.last_launches().size() == ddp.bucket_indices().size());
}

// A process group over MPI that counts its calls and can refuse every device: DDP reaches the
// transport only through ProcessGroup (as NcclProcessGroup does on GPUs).
struct CountingGroup : dist::ProcessGroup {
  dist::MpiProcessGroup mpi;
  bool take_cpu = true;
  int broadcasts = 0, reduces = 0;
  std::int64_t reduced = 0;
  std::string name() const override { return "counting"; }
  bool accepts(const Device& d) const override { return take_cpu && d.is_cpu(); }
  void broadcast(Tensor<float>& t, int root) override {
    ++broadcasts;
    mpi.broadcast(t, root);
  }
  std::unique_ptr<dist::PendingReduce> all_reduce_sum(Tensor<float>& flat) override {
    ++reduces;
    reduced += flat.numel();
    return mpi.all_reduce_sum(flat);
  }
};

TEST_CASE("DDP runs on the process group it is given, with the same result as MPI's",
          "[dist][ddp]") {
  auto group = std::make_shared<CountingGroup>();
  auto a = std::make_shared<SmallNet>(true, 70 + static_cast<std::uint64_t>(dist::rank()));
  auto b = std::make_shared<SmallNet>(true, 70 + static_cast<std::uint64_t>(dist::rank()));
  dist::DistributedDataParallel on_mpi(a, {.bucket_cap_mb = 0.001});
  dist::DistributedDataParallel on_group(b, {.bucket_cap_mb = 0.001}, group);
  REQUIRE(on_group.process_group() == group);
  REQUIRE(on_mpi.process_group()->name() == "mpi");
  const int w = dist::world_size();
  const std::size_t tensors = b->named_parameters().size() + b->named_buffers().size();
  CHECK(group->broadcasts == (w > 1 ? static_cast<int>(tensors) : 0));
  const data::Batch batch = batch_of(Images(), {dist::rank(), dist::rank() + 3});
  nll_loss(on_mpi(batch.images), batch.labels).backward();
  nll_loss(on_group(batch.images), batch.labels).backward();
  std::int64_t params = 0;
  for (const auto& [name, p] : b->named_parameters()) params += p.numel();
  if (w > 1) {
    CHECK(group->reduces == static_cast<int>(on_group.bucket_indices().size()));
    CHECK(group->reduced == params);
  }
  const auto pa = a->parameters(), pb = b->parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const std::vector<float> ga = pa[i].grad().to_vector(), gb = pb[i].grad().to_vector();
    REQUIRE(same_bits(ga, gb));
  }
  group->take_cpu = false;
  REQUIRE_THROWS_WITH(dist::DistributedDataParallel(std::make_shared<SmallNet>(false, 1), {}, group),
                      Catch::Contains("conv.weight is on cpu") &&
                          Catch::Contains("'counting' process group does not take"));
}

int main(int argc, char** argv) {
  ember::dist::init(&argc, &argv);
  int failed = Catch::Session().run(argc, argv);
  // Every rank's verdict: the job fails when any rank failed.
  const auto all = ember::dist::all_gather_value(failed);
  int any = 0;
  for (auto f : all) any += f != 0;
  ember::dist::finalize();
  return any == 0 ? 0 : 1;
}
