// Tests for ember/io/checkpoint.hpp: every field of a checkpoint round-trips bit for bit; a run
// stopped after k epochs and resumed from its checkpoint ends bit-identical to an uninterrupted
// run (and does not when a piece of the state is left out); a save killed at any moment, or
// failing midway, leaves one whole checkpoint; corrupt and mismatched checkpoints give clear
// errors and change nothing.

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ember/data/dataloader.hpp"
#include "ember/io/checkpoint.hpp"
#include "ember/models/mnist_net.hpp"
#include "ember/nn/evaluate.hpp"
#include "ember/nn/layers.hpp"
#include "ember/nn/clip_grad.hpp"
#include "ember/optim/adam.hpp"
#include "ember/optim/lr_scheduler.hpp"
#include "ember/optim/rmsprop.hpp"
#include "ember/optim/sgd.hpp"
#include "ember/ops/loss.hpp"
#include "support/tmp.hpp"

namespace {

namespace fs = std::filesystem;
using namespace ember;
using Catch::Contains;

fs::path temp_dir(const std::string& name) { return ember::test::tmp_dir(name, /*fresh=*/true); }

// Bitwise equality (NaN payloads and -0.0 included), of tensors on the CPU.
bool same_bits(const Tensor<float>& a, const Tensor<float>& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  if (a.shape() != b.shape()) return false;
  const std::vector<float> va = a.to_vector(), vb = b.to_vector();
  return va.empty() || std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

bool same_bits(const nn::NamedTensors& a, const nn::NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || !same_bits(a[i].second, b[i].second)) return false;
  return true;
}

bool same_bits(const std::vector<Tensor<float>>& a, const std::vector<Tensor<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return false;
  return true;
}

// 300 12x12 images: noise plus a bright row at the label's height, so the net learns something.
std::shared_ptr<const data::ImageDataset> synthetic_images() {
  constexpr std::int64_t n = 300, side = 12;
  auto d = std::make_shared<data::ImageDataset>();
  d->images = Tensor<std::uint8_t>::empty({n, side, side});
  d->labels = Tensor<std::int64_t>::empty({n});
  Generator g(123);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t label = static_cast<std::int64_t>(g.below(10));
    d->labels.data()[i] = label;
    for (std::int64_t r = 0; r < side; ++r)
      for (std::int64_t c = 0; c < side; ++c)
        d->images.data()[(i * side + r) * side + c] =
            static_cast<std::uint8_t>(r == label + 1 ? 200 + g.below(56) : g.below(100));
  }
  return d;
}

struct Split {
  data::Subset train, val;
};

Split synthetic_split() {
  const auto d = synthetic_images();
  Split s{data::Subset::all(d), data::Subset::all(d)};
  s.train.indices.resize(240);
  s.val.indices.erase(s.val.indices.begin(), s.val.indices.begin() + 240);
  return s;
}

// Every kind of layer of the MNIST net, small: (N, 1, 12, 12) -> (N, 10).
std::shared_ptr<nn::Sequential> small_net(Generator& gen) {
  auto net = std::make_shared<nn::Sequential>();
  net->push_back(std::make_shared<nn::Conv2d>(1, 4, 3, Conv2dOptions{}, true, gen));  // 10x10
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::MaxPool2d>(2));  // (N, 4, 5, 5)
  net->push_back(std::make_shared<nn::Dropout2d>(0.25, gen));
  net->push_back(std::make_shared<nn::Flatten>());
  net->push_back(std::make_shared<nn::Linear>(100, 16, true, gen));
  net->push_back(std::make_shared<nn::ReLU>());
  net->push_back(std::make_shared<nn::Dropout>(0.5, gen));
  net->push_back(std::make_shared<nn::Linear>(16, 10, true, gen));
  net->push_back(std::make_shared<nn::LogSoftmax>(1));
  return net;
}

// One training run's objects, made the way a training program makes them: the generator
// initialises the model and drives its dropout; the loader shuffles with its own generator.
struct Run {
  Run(const Split& data, std::uint64_t seed)
      : gen(seed),
        model(small_net(gen)),
        loader(data.train, {.batch_size = 32, .shuffle = true, .seed = seed + 1}),
        val_loader(data.val, {.batch_size = 25}),
        opt(model->parameters(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3}),
        sched(opt, 2, 0.5) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  [[nodiscard]] io::TrainingState state() {
    return {.model = model.get(),
            .optimizer = &opt,
            .scheduler = &sched,
            .generator = &gen,
            .loader_generator = &loader.generator()};
  }
  // One epoch as mnist_train runs it: train, evaluate, step the scheduler.
  void train_epoch() {
    model->train();
    for (const data::Batch& b : loader.epoch()) {
      opt.zero_grad();
      Tensor<float> loss = nll_loss((*model)(b.images), b.labels);
      loss.backward();
      opt.step();
    }
    (void)nn::evaluate(*model, val_loader);
    sched.step();
  }

  Generator gen;
  std::shared_ptr<nn::Sequential> model;
  data::DataLoader loader, val_loader;
  optim::SGD opt;
  optim::StepLR sched;
};

// All of a run's state, copied, to compare before and after.
struct Snapshot {
  explicit Snapshot(Run& r)
      : model(r.model->state_dict()),
        momentum(r.opt.momentum_buffers()),
        lr(r.opt.lr()),
        steps(r.opt.steps()),
        sched_epoch(r.sched.last_epoch()),
        gen(io::GeneratorState::of(r.gen)),
        loader_gen(io::GeneratorState::of(r.loader.generator())) {
    for (auto& [name, t] : model) t = t.detach().clone();
    for (auto& t : momentum)
      if (t.defined()) t = t.clone();
  }
  bool operator==(const Snapshot& o) const {
    return same_bits(model, o.model) && same_bits(momentum, o.momentum) && lr == o.lr &&
           steps == o.steps && sched_epoch == o.sched_epoch && gen == o.gen &&
           loader_gen == o.loader_gen;
  }
  nn::NamedTensors model;
  std::vector<Tensor<float>> momentum;
  double lr;
  std::int64_t steps, sched_epoch;
  io::GeneratorState gen, loader_gen;
};

const std::map<std::string, std::string> run_settings = {
    {"batch-size", "32"}, {"lr", "0.05"}, {"seed", "5"}};

}  // namespace

TEST_CASE("a checkpoint round-trips every field bit for bit", "[io][checkpoint]") {
  const Split data = synthetic_split();
  Run run(data, 5);
  run.train_epoch();
  run.opt.set_lr(0.1 * 3);  // 0.30000000000000004: needs all 17 digits
  run.gen.manual_seed(std::uint64_t{1} << 63 | 5);
  run.gen.set_offset(std::numeric_limits<std::uint64_t>::max() - 1);
  run.loader.generator().set_offset(std::uint64_t{9007199254740993});  // 2^53 + 1: not a double
  io::Checkpoint c = io::capture_checkpoint(
      run.state(), 7, {{"batch-size", "32"}, {"note", "a \"quoted\"\nvalue"}});
  // Special values survive, and a parameter without a momentum buffer is recorded as absent.
  float* w = c.model[0].second.data();
  w[0] = -0.0f;
  w[1] = std::numeric_limits<float>::denorm_min();
  w[2] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE(c.optimizer.state.size() == 6);
  c.optimizer.state[3].clear();

  const std::string path = (temp_dir("checkpoint_roundtrip") / "c.safetensors").string();
  io::save_checkpoint(path, c);
  const io::SafetensorsFile raw = io::load_safetensors(path);
  CHECK(raw.metadata.at("format") == "ember-checkpoint");
  CHECK(raw.metadata.at("version") == "2");
  CHECK(raw.metadata.at("epoch") == "7");
  CHECK(raw.metadata.at("generator.offset") == "18446744073709551614");
  CHECK(raw.metadata.at("generator.seed") == "9223372036854775813");
  CHECK(raw.metadata.at("loader_generator.offset") == "9007199254740993");
  CHECK(raw.metadata.at("optimizer") == "SGD");
  CHECK(raw.metadata.at("optimizer.param_groups") == "1");
  CHECK(raw.metadata.at("optimizer.param_groups.0.lr") == "0.30000000000000004");
  CHECK(raw.metadata.at("optimizer.param_groups.0.initial_lr") == "0.05");
  CHECK(raw.metadata.at("optimizer.param_groups.0.params") ==
        "0.weight,0.bias,5.weight,5.bias,8.weight,8.bias");
  CHECK(raw.metadata.at("optimizer.state.5.weight") == "momentum_buffer");
  CHECK(raw.metadata.at("optimizer.state.5.bias").empty());
  CHECK(raw.metadata.at("scheduler") == "StepLR");
  CHECK(raw.metadata.at("scheduler.value.last_epoch") == "1");
  CHECK(raw.metadata.at("scheduler.list.base_lrs") == "0.05");
  CHECK(raw.metadata.at("setting.batch-size") == "32");
  CHECK(raw.tensors.at("model.0.weight").dtype == "F32");
  CHECK(raw.tensors.at("model.0.weight").shape == std::vector<std::int64_t>{4, 1, 3, 3});
  CHECK(raw.tensors.count("optimizer.state.8.bias.momentum_buffer") == 1);
  CHECK(raw.tensors.count("optimizer.state.5.bias.momentum_buffer") == 0);
  CHECK(raw.tensors.size() == 6 + 5);

  const io::Checkpoint back = io::load_checkpoint(path);
  CHECK(back.source == path);
  CHECK(back.epoch == 7);
  std::map<std::string, Tensor<float>> saved_model(c.model.begin(), c.model.end());
  REQUIRE(back.model.size() == c.model.size());
  for (const auto& [name, t] : back.model) CHECK(same_bits(t, saved_model.at(name)));
  CHECK(back.optimizer_params == c.optimizer_params);
  REQUIRE(back.optimizer.state.size() == 6);
  for (std::size_t k = 0; k < 6; ++k) {
    INFO(c.optimizer_params[k]);
    REQUIRE(back.optimizer.state[k].size() == c.optimizer.state[k].size());
    for (const auto& [key, t] : back.optimizer.state[k])
      CHECK(same_bits(t, c.optimizer.state[k].at(key)));
  }
  CHECK(back.optimizer.state[3].empty());
  CHECK(same_bits(back.optimizer_tensor("8.bias", "momentum_buffer"),
                  run.opt.momentum_buffers()[5]));
  const std::map<std::string, double>& options = back.optimizer.param_groups.at(0).options;
  CHECK(options.at("lr") == 0.1 * 3);
  CHECK(options.at("momentum") == 0.9);
  CHECK(options.at("dampening") == 0.0);
  CHECK(options.at("weight_decay") == 1e-3);
  CHECK(options.at("nesterov") == 0);
  CHECK(back.optimizer.steps == run.opt.steps());
  CHECK(back.optimizer.steps == 8);  // 240 images in batches of 32
  REQUIRE(back.scheduler.has_value());
  CHECK(back.scheduler->type == "StepLR");
  CHECK(back.scheduler->values.at("last_epoch") == 1);
  CHECK(back.scheduler->values.at("step_size") == 2);
  CHECK(back.scheduler->values.at("gamma") == 0.5);
  CHECK(back.scheduler->lists.at("base_lrs") == std::vector<double>{0.05});
  CHECK(back.generator == io::GeneratorState{std::uint64_t{1} << 63 | 5,
                                             std::numeric_limits<std::uint64_t>::max() - 1});
  REQUIRE(back.loader_generator.has_value());
  CHECK(back.loader_generator->seed == 6);
  CHECK(back.loader_generator->offset == 9007199254740993u);
  CHECK(back.settings ==
        std::map<std::string, std::string>{{"batch-size", "32"}, {"note", "a \"quoted\"\nvalue"}});

  // Restored into fresh objects, everything matches the run it was taken from, but for the
  // poked weights and the buffer recorded as absent.
  Run fresh(data, 99);
  io::restore_checkpoint(back, fresh.state());
  const nn::NamedTensors restored = fresh.model->state_dict(), original = run.model->state_dict();
  REQUIRE(restored.size() == original.size());
  CHECK(same_bits(restored[0].second, c.model[0].second));
  CHECK_FALSE(same_bits(restored[0].second, original[0].second));
  for (std::size_t i = 1; i < restored.size(); ++i)
    CHECK(same_bits(restored[i].second, original[i].second));
  const std::vector<Tensor<float>>& buffers = fresh.opt.momentum_buffers();
  for (std::size_t k = 0; k < buffers.size(); ++k) {
    if (k == 3)
      CHECK_FALSE(buffers[k].defined());
    else
      CHECK(same_bits(buffers[k], run.opt.momentum_buffers()[k]));
  }
  CHECK(fresh.opt.lr() == 0.1 * 3);
  CHECK(fresh.opt.steps() == 8);
  CHECK(fresh.sched.last_epoch() == 1);
  CHECK(io::GeneratorState::of(fresh.gen) == back.generator);
  CHECK(io::GeneratorState::of(fresh.loader.generator()) == *back.loader_generator);
  // The restored buffers are the optimiser's own: training on does not touch the checkpoint.
  CHECK_FALSE(fresh.opt.momentum_buffers()[0].shares_storage(
      back.optimizer.state[0].at("momentum_buffer")));
}

// The layout before optimizers had a common interface: SGD's options and momentum buffers and
// StepLR's state under their own keys.
TEST_CASE("a version 1 checkpoint (SGD, StepLR) still restores", "[io][checkpoint]") {
  const Split data = synthetic_split();
  Run run(data, 5);
  run.train_epoch();
  run.train_epoch();
  io::SafetensorsFile f;
  f.metadata = {{"format", "ember-checkpoint"}, {"version", "1"}, {"epoch", "2"},
                {"optimizer.lr", io::double_to_string(run.opt.lr())},
                {"optimizer.momentum", "0.9"}, {"optimizer.dampening", "0"},
                {"optimizer.weight_decay", "0.001"}, {"optimizer.nesterov", "false"},
                {"optimizer.steps", std::to_string(run.opt.steps())},
                {"scheduler", "StepLR"}, {"scheduler.last_epoch", "2"},
                {"scheduler.step_size", "2"}, {"scheduler.gamma", "0.5"},
                {"scheduler.base_lr", "0.05"}};
  const io::GeneratorState g = io::GeneratorState::of(run.gen);
  const io::GeneratorState lg = io::GeneratorState::of(run.loader.generator());
  f.metadata["generator.seed"] = std::to_string(g.seed);
  f.metadata["generator.offset"] = std::to_string(g.offset);
  f.metadata["loader_generator.seed"] = std::to_string(lg.seed);
  f.metadata["loader_generator.offset"] = std::to_string(lg.offset);
  for (const auto& [name, t] : run.model->state_dict())
    f.tensors["model." + name] = io::to_record(t.detach().clone());
  const nn::NamedTensors params = run.model->named_parameters();
  for (std::size_t k = 0; k < params.size(); ++k) {
    const std::string key = "optimizer.momentum_buffer." + params[k].first;
    f.metadata[key] = "present";
    f.tensors[key] = io::to_record(run.opt.momentum_buffers()[k].clone());
  }
  const io::Checkpoint c = io::checkpoint_from_safetensors(f, "v1");
  Run resumed(data, 99);
  io::restore_checkpoint(c, resumed.state());
  CHECK(Snapshot(resumed) == Snapshot(run));
  CHECK(resumed.opt.initial_lr(0) == std::optional<double>(0.05));
  // Both go on alike.
  run.train_epoch();
  resumed.train_epoch();
  CHECK(Snapshot(resumed) == Snapshot(run));
  CHECK(resumed.opt.lr() == 0.025);
  // A version 1 file with a buffer marked absent but stored is refused, as before.
  f.metadata["optimizer.momentum_buffer.0.bias"] = "absent";
  CHECK_THROWS_WITH(io::checkpoint_from_safetensors(f, "v1"),
                    Contains("is stored but its metadata says \"absent\""));
}

TEST_CASE("evaluation draws no random numbers", "[io][checkpoint]") {
  const Split data = synthetic_split();
  Run run(data, 5);
  const io::GeneratorState before = io::GeneratorState::of(run.gen);
  const nn::EvalResult r = nn::evaluate(*run.model, run.val_loader);
  CHECK(r.total == 60);
  CHECK(io::GeneratorState::of(run.gen) == before);
}

TEST_CASE("a resumed run ends bit-identical to an uninterrupted one", "[io][checkpoint]") {
  const Split data = synthetic_split();
  constexpr int epochs = 3;
  Run straight(data, 5);
  for (int e = 1; e <= epochs; ++e) straight.train_epoch();

  const std::string path = (temp_dir("checkpoint_resume") / "run.safetensors").string();
  const int k = GENERATE(1, 2);  // with StepLR(2), k = 2 resumes just after an lr change
  {
    Run first(data, 5);
    for (int e = 1; e <= k; ++e) first.train_epoch();
    io::save_checkpoint(path, first.state(), k, run_settings);
  }
  // Fresh objects, built as a new process builds them, then the checkpoint, then the rest.
  enum class Skip { nothing, generator, loader_generator, momentum };
  const auto resume = [&](Skip skip) {
    auto run = std::make_unique<Run>(data, 5);
    const io::Checkpoint c = io::load_checkpoint(path);
    REQUIRE(c.epoch == k);
    io::check_settings(c, run_settings);
    io::TrainingState state = run->state();
    Generator unused;
    if (skip == Skip::generator) state.generator = &unused;
    if (skip == Skip::loader_generator) state.loader_generator = nullptr;
    io::restore_checkpoint(c, state);
    if (skip == Skip::momentum)
      for (auto& b : run->opt.momentum_buffers()) b = Tensor<float>();
    for (std::int64_t e = c.epoch + 1; e <= epochs; ++e) run->train_epoch();
    return run;
  };

  SECTION("with the whole state restored: the same bits") {
    const auto resumed = resume(Skip::nothing);
    CHECK(same_bits(resumed->model->state_dict(), straight.model->state_dict()));
    CHECK(same_bits(resumed->opt.momentum_buffers(), straight.opt.momentum_buffers()));
    CHECK(resumed->opt.lr() == straight.opt.lr());
    CHECK(resumed->opt.lr() == 0.025);
    CHECK(resumed->opt.steps() == straight.opt.steps());
    CHECK(resumed->sched.last_epoch() == epochs);
    CHECK(io::GeneratorState::of(resumed->gen) == io::GeneratorState::of(straight.gen));
    CHECK(io::GeneratorState::of(resumed->loader.generator()) ==
          io::GeneratorState::of(straight.loader.generator()));
  }
  // Controls: each piece of state matters, so the comparison above can fail.
  SECTION("without the dropout generator: different bits") {
    CHECK_FALSE(
        same_bits(resume(Skip::generator)->model->state_dict(), straight.model->state_dict()));
  }
  SECTION("without the shuffle generator: different bits") {
    CHECK_FALSE(same_bits(resume(Skip::loader_generator)->model->state_dict(),
                          straight.model->state_dict()));
  }
  SECTION("without the momentum buffers: different bits") {
    CHECK_FALSE(
        same_bits(resume(Skip::momentum)->model->state_dict(), straight.model->state_dict()));
  }
}

namespace {

// A run with any optimizer and scheduler: two parameter groups (no weight decay on biases),
// gradients clipped, the schedule stepped per batch (OneCycleLR), per epoch, or on the
// validation loss (ReduceLROnPlateau).
struct AnyRun {
  enum Kind { adamw_onecycle, adam_sequential, rmsprop_plateau, sgd_multistep };
  AnyRun(const Split& data, std::uint64_t seed, Kind kind)
      : kind(kind),
        gen(seed),
        model(small_net(gen)),
        loader(data.train, {.batch_size = 32, .shuffle = true, .seed = seed + 1}),
        val_loader(data.val, {.batch_size = 25}) {
    const nn::NamedTensors named = model->named_parameters();
    switch (kind) {
      case adamw_onecycle:
        opt = std::make_unique<optim::AdamW>(optim::decay_groups<optim::AdamWOptions>(
            named, {.lr = 0.01, .weight_decay = 0.05}));
        sched = std::make_unique<optim::OneCycleLR>(
            *opt, optim::OneCycleLROptions{.max_lr = {0.02}, .total_steps = 8 * 3});
        break;
      case adam_sequential:
        opt = std::make_unique<optim::Adam>(optim::decay_groups<optim::AdamOptions>(
            named, {.lr = 0.01, .weight_decay = 1e-3, .amsgrad = true}));
        sched = std::make_unique<optim::SequentialLR>(
            *opt,
            std::vector<std::shared_ptr<optim::LRScheduler>>{
                std::make_shared<optim::LinearLR>(*opt, 0.1, 1.0, 2),
                std::make_shared<optim::CosineAnnealingLR>(*opt, 4)},
            std::vector<std::int64_t>{2});
        break;
      case rmsprop_plateau:
        opt = std::make_unique<optim::RMSprop>(optim::decay_groups<optim::RMSpropOptions>(
            named, {.lr = 0.002, .weight_decay = 1e-3, .momentum = 0.5, .centered = true}));
        sched = std::make_unique<optim::ReduceLROnPlateau>(
            *opt, optim::ReduceLROnPlateauOptions{.factor = 0.5, .patience = 0});
        break;
      case sgd_multistep:
        opt = std::make_unique<optim::SGD>(optim::decay_groups<optim::SGDOptions>(
            named, {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true}));
        sched = std::make_unique<optim::MultiStepLR>(*opt, std::vector<std::int64_t>{1, 2}, 0.5);
        break;
    }
  }
  [[nodiscard]] io::TrainingState state() {
    return {.model = model.get(),
            .optimizer = opt.get(),
            .scheduler = sched.get(),
            .generator = &gen,
            .loader_generator = &loader.generator()};
  }
  void train_epoch() {
    model->train();
    for (const data::Batch& b : loader.epoch()) {
      opt->zero_grad();
      Tensor<float> loss = nll_loss((*model)(b.images), b.labels);
      loss.backward();
      (void)nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      opt->step();
      if (kind == adamw_onecycle) sched->step();
    }
    const nn::EvalResult val = nn::evaluate(*model, val_loader);
    if (kind == rmsprop_plateau)
      static_cast<optim::ReduceLROnPlateau&>(*sched).step(val.loss);
    else if (kind != adamw_onecycle)
      sched->step();
  }
  // Everything that must match, as bits: parameters, optimizer state, rates.
  [[nodiscard]] std::vector<Tensor<float>> everything() const {
    std::vector<Tensor<float>> out;
    for (const auto& [name, t] : model->state_dict()) out.push_back(t.detach().clone());
    const optim::OptimizerState s = opt->state_dict();
    for (const auto& state : s.state)
      for (const auto& [key, t] : state) out.push_back(t);
    std::vector<float> rates;
    for (std::size_t g = 0; g < opt->num_param_groups(); ++g) {
      for (const char* option : {"lr", "momentum", "beta1"}) {
        if (opt->has_option(option)) rates.push_back(static_cast<float>(opt->option(g, option)));
      }
    }
    out.push_back(Tensor<float>::from_vector(rates));
    return out;
  }

  Kind kind;
  Generator gen;
  std::shared_ptr<nn::Sequential> model;
  data::DataLoader loader, val_loader;
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<optim::LRScheduler> sched;
};

}  // namespace

TEST_CASE("any optimizer and scheduler resume bit-identically from a checkpoint",
          "[io][checkpoint]") {
  const Split data = synthetic_split();
  constexpr int epochs = 3;
  const auto kind = GENERATE(AnyRun::adamw_onecycle, AnyRun::adam_sequential,
                             AnyRun::rmsprop_plateau, AnyRun::sgd_multistep);
  INFO("run kind " << static_cast<int>(kind));
  AnyRun straight(data, 5, kind);
  for (int e = 1; e <= epochs; ++e) straight.train_epoch();
  REQUIRE(straight.opt->num_param_groups() == 2);

  const std::string path = (temp_dir("checkpoint_any") / "run.safetensors").string();
  for (int k = 1; k < epochs; ++k) {
    INFO("saved after epoch " << k);
    {
      AnyRun first(data, 5, kind);
      for (int e = 1; e <= k; ++e) first.train_epoch();
      io::save_checkpoint(path, first.state(), k);
    }
    AnyRun resumed(data, 99, kind);  // another seed: everything must come from the file
    const io::Checkpoint c = io::load_checkpoint(path);
    io::restore_checkpoint(c, resumed.state());
    for (std::int64_t e = c.epoch + 1; e <= epochs; ++e) resumed.train_epoch();
    CHECK(same_bits(resumed.everything(), straight.everything()));
    CHECK(resumed.sched->get_last_lr() == straight.sched->get_last_lr());
    CHECK(resumed.sched->last_epoch() == straight.sched->last_epoch());
    CHECK(resumed.opt->steps() == straight.opt->steps());
  }
  // Control: a resume without the optimizer's state does not match.
  AnyRun first(data, 5, kind);
  first.train_epoch();
  io::save_checkpoint(path, first.state(), 1);
  io::Checkpoint c = io::load_checkpoint(path);
  for (auto& state : c.optimizer.state) state.clear();
  AnyRun resumed(data, 99, kind);
  io::restore_checkpoint(c, resumed.state());
  for (int e = 2; e <= epochs; ++e) resumed.train_epoch();
  CHECK_FALSE(same_bits(resumed.everything(), straight.everything()));
}

namespace {

// Version v of the big checkpoint used by the kill test: every element a function of
// (v, tensor, index), exact in float, so a loaded file shows whether it is one whole version.
float version_value(std::int64_t v, std::size_t tensor, std::int64_t i) {
  return static_cast<float>((v * 7 + static_cast<std::int64_t>(tensor)) % 4096) +
         static_cast<float>(i % 1024) / 1024.0f;
}

// Every tensor of a checkpoint in a fixed order: the model's, then the optimizer's state.
std::vector<Tensor<float>> all_tensors(const io::Checkpoint& c) {
  std::vector<Tensor<float>> out;
  for (const auto& [name, t] : c.model) out.push_back(t);
  for (const auto& state : c.optimizer.state)
    for (const auto& [key, t] : state) out.push_back(t);
  return out;
}

// Plain loops only: the child of fork() must not start parallel work (the pool's threads do
// not exist there).
void make_version(io::Checkpoint& c, std::int64_t v) {
  c.epoch = v;
  c.optimizer.steps = 10 * v;
  c.generator.offset = (std::uint64_t{1} << 63) + static_cast<std::uint64_t>(v);
  c.loader_generator->offset =
      std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(v);
  std::size_t tensor = 0;
  for (Tensor<float>& t : all_tensors(c)) {
    float* p = t.data();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = version_value(v, tensor, i);
    ++tensor;
  }
}

// Whether c is exactly version c.epoch (its tensors in the order of all_tensors).
bool is_whole_version(const io::Checkpoint& c, const io::Checkpoint& layout) {
  const std::int64_t v = c.epoch;
  if (c.optimizer.steps != 10 * v ||
      c.generator.offset != (std::uint64_t{1} << 63) + static_cast<std::uint64_t>(v) ||
      c.loader_generator->offset !=
          std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(v))
    return false;
  std::map<std::string, Tensor<float>> model(c.model.begin(), c.model.end());
  std::size_t tensor = 0;
  for (const auto& [name, unused] : layout.model) {
    const auto it = model.find(name);
    if (it == model.end()) return false;
    const float* p = it->second.data();
    for (std::int64_t i = 0; i < it->second.numel(); ++i)
      if (p[i] != version_value(v, tensor, i)) return false;
    ++tensor;
  }
  for (std::size_t k = 0; k < layout.optimizer.state.size(); ++k) {
    for (const auto& [key, unused] : layout.optimizer.state[k]) {
      const Tensor<float> t = c.optimizer_tensor(layout.optimizer_params[k], key);
      if (!t.defined()) return false;
      const float* p = t.data();
      for (std::int64_t i = 0; i < t.numel(); ++i)
        if (p[i] != version_value(v, tensor, i)) return false;
      ++tensor;
    }
  }
  return true;
}

std::vector<fs::path> temporary_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path());
  return out;
}

// An MnistNet-sized checkpoint (about 9.6 MB: parameters and momentum buffers) at version 0.
io::Checkpoint big_checkpoint() {
  Generator init(3), gen(11), loader_gen(12);
  models::MnistNet net(init);
  optim::SGD opt(net.parameters(), {.lr = 0.01, .momentum = 0.5});
  for (std::size_t k = 0; k < opt.params().size(); ++k)
    opt.momentum_buffers()[k] = Tensor<float>::zeros(opt.params()[k].shape());
  io::Checkpoint c = io::capture_checkpoint(
      {.model = &net, .optimizer = &opt, .generator = &gen, .loader_generator = &loader_gen}, 0);
  make_version(c, 0);
  return c;
}

}  // namespace

TEST_CASE("a save killed at any moment leaves one whole checkpoint", "[io][checkpoint]") {
  const fs::path dir = temp_dir("checkpoint_kill");
  const std::string path = (dir / "big.safetensors").string();
  io::Checkpoint c = big_checkpoint();
  const auto t0 = std::chrono::steady_clock::now();
  io::save_checkpoint(path, c);
  const auto save_time =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  REQUIRE(fs::file_size(path) > 9'000'000);

  // Each round forks a child that saves versions first, first + 1, ... to the same path, and
  // kills it: in odd rounds after a random delay of up to six saves (anywhere in its loop),
  // in even rounds soon after a temporary file appears (in the middle of writing the file).
  Generator delays(2024);
  std::int64_t newest = 0, rounds_with_new_version = 0, kills_mid_write = 0;
  constexpr int rounds = 20;
  for (int round = 1; round <= rounds; ++round) {
    INFO("round " << round);
    const std::int64_t first = round * 1000;
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {  // the child only saves, forever, and never returns into Catch
      try {
        if (::write(ready[1], "r", 1) != 1) ::_exit(4);
        for (std::int64_t v = first;; ++v) {
          make_version(c, v);
          io::save_checkpoint(path, c);
        }
      } catch (...) {
        ::_exit(3);
      }
    }
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    ::close(ready[0]);
    ::close(ready[1]);
    std::uint64_t max_delay = static_cast<std::uint64_t>(6 * save_time.count());
    if (round % 2 == 0) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (temporary_files(dir).empty() && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      max_delay = static_cast<std::uint64_t>(save_time.count() / 8);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delays.below(max_delay + 1)));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));  // the child was saving, not failing
    CHECK(WTERMSIG(status) == SIGKILL);

    const io::Checkpoint loaded = io::load_checkpoint(path);
    CHECK(is_whole_version(loaded, c));
    CHECK((loaded.epoch == newest || (loaded.epoch >= first && loaded.epoch < first + 1000)));
    if (loaded.epoch != newest) ++rounds_with_new_version;
    newest = loaded.epoch;
    // A kill during a write leaves its temporary file behind (never the target): remove it.
    const auto leftovers = temporary_files(dir);
    kills_mid_write += static_cast<std::int64_t>(leftovers.size());
    for (const auto& p : leftovers) fs::remove(p);
  }
  CHECK(rounds_with_new_version > 0);  // some saves completed
  CHECK(kills_mid_write > 0);          // and some kills landed in the middle of one
  WARN("kill test: one save takes "
       << save_time.count() / 1000 << " ms; " << rounds_with_new_version << " of " << rounds
       << " rounds completed a save, " << kills_mid_write << " kills landed during a write");
}

TEST_CASE("a save that fails midway leaves the previous checkpoint intact", "[io][checkpoint]") {
  const fs::path dir = temp_dir("checkpoint_fail");
  const std::string path = (dir / "big.safetensors").string();
  io::Checkpoint c = big_checkpoint();
  make_version(c, 1);
  io::save_checkpoint(path, c);

  SECTION("the file system refuses the write after 1 MB") {
    // In a child, so that the file size limit stays there: the write fails with EFBIG partway
    // through the 9.6 MB.
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::signal(SIGXFSZ, SIG_IGN);
      const rlimit limit{1 << 20, 1 << 20};
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(4);
      make_version(c, 2);
      try {
        io::save_checkpoint(path, c);
      } catch (const Error& e) {
        const std::string what = e.what();
        ::_exit(what.find("cannot write '" + path + "'") != std::string::npos &&
                        what.find("File too large") != std::string::npos
                    ? 0
                    : 1);
      }
      ::_exit(2);  // no error
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  SECTION("the directory does not exist") {
    make_version(c, 2);
    const std::string missing = (dir / "no_such_dir" / "big.safetensors").string();
    CHECK_THROWS_WITH(io::save_checkpoint(missing, c), Contains("cannot write '" + missing + "'") &&
                                                           Contains("No such file or directory"));
  }
  SECTION("the checkpoint cannot be serialised (a name that is not UTF-8)") {
    make_version(c, 2);
    c.settings["\xff"] = "x";
    CHECK_THROWS_WITH(io::save_checkpoint(path, c), Contains("is not valid UTF-8"));
  }
  const io::Checkpoint loaded = io::load_checkpoint(path);
  CHECK(loaded.epoch == 1);
  CHECK(is_whole_version(loaded, c));
  CHECK(temporary_files(dir).empty());
}

TEST_CASE("corrupt or mismatched checkpoints give clear errors and change nothing",
          "[io][checkpoint]") {
  const Split data = synthetic_split();
  const fs::path dir = temp_dir("checkpoint_corrupt");
  io::SafetensorsFile good;
  {
    Run source(data, 5);
    source.train_epoch();
    good = io::checkpoint_to_safetensors(io::capture_checkpoint(source.state(), 1, run_settings));
  }
  Run target(data, 8);  // trained, so that every piece of its state is set
  target.train_epoch();
  const Snapshot before(target);
  int files = 0;
  const auto write = [&](const io::SafetensorsFile& f) {
    const std::string path = (dir / ("c" + std::to_string(files++) + ".safetensors")).string();
    io::save_safetensors(path, f);
    return path;
  };
  const auto with_metadata = [&](const std::string& key, const std::string& value) {
    io::SafetensorsFile f = good;
    f.metadata[key] = value;
    return write(f);
  };
  const auto without_metadata = [&](const std::string& key) {
    io::SafetensorsFile f = good;
    REQUIRE(f.metadata.erase(key) == 1);
    return write(f);
  };
  const auto restore = [&](const std::string& path) {
    io::restore_checkpoint(io::load_checkpoint(path), target.state());
  };
  // The good file itself restores (into a copy of the target, so the target stays as it was).
  {
    Run other(data, 8);
    CHECK_NOTHROW(io::restore_checkpoint(io::load_checkpoint(write(good)), other.state()));
  }

  SECTION("not a checkpoint") {
    const std::string model_only = (dir / "model.safetensors").string();
    io::save(*target.model, model_only, {{"format", "pt"}});
    CHECK_THROWS_WITH(restore(model_only),
                      Contains("checkpoint '" + model_only + "': not an ember checkpoint") &&
                          Contains("\"format\" is \"pt\""));
    CHECK_THROWS_WITH(restore(without_metadata("format")),
                      Contains("not an ember checkpoint (its metadata has no \"format\")"));
    CHECK_THROWS_WITH(restore(with_metadata("version", "3")),
                      Contains("version \"3\" is not supported"));
  }
  SECTION("a missing metadata entry") {
    for (const char* key :
         {"epoch", "optimizer", "optimizer.param_groups", "optimizer.param_groups.0.lr",
          "optimizer.param_groups.0.params", "optimizer.steps", "optimizer.state.0.bias",
          "generator.offset", "loader_generator.seed", "scheduler"}) {
      CHECK_THROWS_WITH(restore(without_metadata(key)),
                        Contains(std::string("metadata \"") + key + "\" is missing"));
    }
    // A scheduler's state without one of its fields: refused by the scheduler.
    CHECK_THROWS_WITH(restore(without_metadata("scheduler.value.gamma")),
                      Contains("StepLR.load_state_dict: no \"gamma\""));
  }
  SECTION("a bad metadata number") {
    CHECK_THROWS_WITH(restore(with_metadata("generator.offset", "12x")),
                      Contains("metadata \"generator.offset\" is \"12x\", expected an unsigned "
                               "64-bit integer"));
    CHECK_THROWS_WITH(restore(with_metadata("generator.offset", "18446744073709551616")),
                      Contains("\"18446744073709551616\", expected an unsigned 64-bit integer"));
    CHECK_THROWS_WITH(restore(with_metadata("loader_generator.seed", "-1")),
                      Contains("\"loader_generator.seed\" is \"-1\""));
    CHECK_THROWS_WITH(restore(with_metadata("epoch", "-3")),
                      Contains("\"epoch\" is \"-3\", expected a non-negative 64-bit integer"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.steps", " 8")),
                      Contains("\"optimizer.steps\" is \" 8\""));
    const std::string lr = "optimizer.param_groups.0.lr";
    CHECK_THROWS_WITH(restore(with_metadata(lr, "fast")),
                      Contains("\"" + lr + "\" is \"fast\", expected a finite number"));
    CHECK_THROWS_WITH(restore(with_metadata(lr, "nan")),
                      Contains("\"" + lr + "\" is \"nan\", expected a finite number"));
    CHECK_THROWS_WITH(restore(with_metadata(lr, "-0.5")),
                      Contains("\"" + lr + "\" is \"-0.5\", expected a number of at least 0"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.param_groups.0.nesterov", "yes")),
                      Contains("\"optimizer.param_groups.0.nesterov\" is \"yes\", expected a "
                               "finite number"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.param_groups.0.nesterov", "0.5")),
                      Contains("option \"nesterov\" of group 0 is 0.5, expected 0 or 1"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.param_groups", "2")),
                      Contains("\"optimizer.param_groups.1.params\" is missing"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler.value.step_size", "0")),
                      Contains("\"step_size\" is 0, expected a whole number >= 1"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler.list.base_lrs", "0.05,x")),
                      Contains("\"scheduler.list.base_lrs\" is \"0.05,x\", expected "
                               "comma-separated numbers"));
  }
  SECTION("a missing tensor") {
    io::SafetensorsFile f = good;
    f.tensors.erase("model.5.bias");
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("has no tensor \"model.5.bias\" for the model's 5.bias"));
    f = good;
    f.tensors.erase("optimizer.state.8.weight.momentum_buffer");
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("metadata \"optimizer.state.8.weight\" lists \"momentum_buffer\" "
                               "but tensor \"optimizer.state.8.weight.momentum_buffer\" is "
                               "missing"));
    f.metadata["optimizer.param_groups.0.params"] = "0.weight,0.bias,5.weight,5.bias,8.bias";
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("metadata \"optimizer.state.8.weight\" names a parameter in no "
                               "optimizer group"));
    f.metadata.erase("optimizer.state.8.weight");
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("has no optimizer state entry for parameter \"8.weight\""));
  }
  SECTION("a wrong shape") {
    io::SafetensorsFile f = good;
    f.tensors.at("model.5.weight").shape = {100, 16};
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("tensor \"model.5.weight\" has shape [100, 16] but the model's "
                               "5.weight has shape [16, 100]"));
    f = good;
    f.tensors.at("optimizer.state.0.weight.momentum_buffer").shape = {4, 9};
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("\"momentum_buffer\" of parameter 0 has shape [4, 9] but the "
                               "parameter has shape [4, 1, 3, 3]"));
  }
  SECTION("a wrong dtype") {
    io::SafetensorsFile f = good;
    f.tensors.at("model.8.bias") = io::to_record(Tensor<double>::zeros({10}));
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("tensor \"model.8.bias\" has dtype F64, expected F32"));
  }
  SECTION("tensors that do not belong") {
    io::SafetensorsFile f = good;
    f.tensors["model.9.weight"] = io::to_record(Tensor<float>::ones({2}));
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("tensor \"model.9.weight\" is not in the model (Sequential)"));
    f = good;
    f.tensors["fc.weight"] = io::to_record(Tensor<float>::ones({2}));
    CHECK_THROWS_WITH(restore(write(f)), Contains("unexpected tensor \"fc.weight\""));
    f = good;
    f.metadata["optimizer.state.0.bias"] = "";
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("tensor \"optimizer.state.0.bias.momentum_buffer\" is not listed "
                               "in the optimizer's state"));
    f = good;
    f.tensors["optimizer.state.0.bias.exp_avg"] = io::to_record(Tensor<float>::ones({4}));
    f.metadata["optimizer.state.0.bias"] = "exp_avg,momentum_buffer";
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("unexpected state \"exp_avg\" for parameter 1"));
  }
  SECTION("truncated or not safetensors at all") {
    const std::string path = write(good);
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    const auto write_bytes = [&](const std::string& content) {
      const std::string p = (dir / ("t" + std::to_string(files++) + ".safetensors")).string();
      std::ofstream(p, std::ios::binary) << content;
      return p;
    };
    CHECK_THROWS_WITH(restore(write_bytes(bytes.substr(0, bytes.size() - 100))),
                      Contains("run past the end of the data buffer"));
    CHECK_THROWS_WITH(restore(write_bytes(bytes.substr(0, 200))),
                      Contains("runs past the end of the file"));
    CHECK_THROWS_WITH(restore(write_bytes(bytes.substr(0, 5))),
                      Contains("shorter than the 8-byte header length"));
    CHECK_THROWS_WITH(restore(write_bytes("epoch 3, lr 0.01, not a checkpoint")),
                      Contains("exceeds the limit"));
    CHECK_THROWS_WITH(restore((dir / "absent.safetensors").string()),
                      Contains("cannot open safetensors file"));
  }
  SECTION("counts the run goes on from are bounded, texts from the file clipped") {
    CHECK_THROWS_WITH(restore(with_metadata("epoch", "9223372036854775807")),
                      Contains("\"epoch\" is \"9223372036854775807\", expected a count of at "
                               "most 2^62"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.steps", "4611686018427387905")),
                      Contains("expected a count of at most 2^62"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler.value.last_epoch", "4611686018427387905")),
                      Contains("\"last_epoch\" is") && Contains("expected a whole number"));
    try {
      restore(with_metadata("version", std::string(1'000'000, '9')));
      FAIL("a checkpoint of version 999... was accepted");
    } catch (const ember::Error& e) {
      CHECK_THAT(e.what(), Contains("is not supported") && Contains("... (1000000 bytes)"));
      CHECK(std::string(e.what()).size() < 600);
    }
  }
  SECTION("a checkpoint of a differently configured run") {
    CHECK_THROWS_WITH(restore(with_metadata("optimizer", "Adam")),
                      Contains("has the state of a Adam optimizer, but the run's is SGD"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler", "none")),
                      Contains("has no scheduler state, but the run has a StepLR scheduler"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler", "ExponentialLR")),
                      Contains("has ExponentialLR scheduler state, but the run's scheduler is a "
                               "StepLR"));
    // Refused by the optimizer as it loads (PyTorch's check of the option)...
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.param_groups.0.momentum", "-0.5")),
                      Contains("SGD: invalid momentum -0.5"));
    // ... or by the scheduler after the optimizer had loaded: the optimizer is put back.
    {
      io::SafetensorsFile f = good;
      f.metadata.erase("scheduler.value.step_size");
      f.metadata["optimizer.param_groups.0.momentum"] = "0.5";
      CHECK_THROWS_WITH(restore(write(f)), Contains("StepLR.load_state_dict: no \"step_size\""));
    }
    // Found last of all checks: the model and optimiser were fine, and still nothing changed.
    io::SafetensorsFile f = good;
    f.metadata.erase("loader_generator.seed");
    f.metadata.erase("loader_generator.offset");
    CHECK_THROWS_WITH(restore(write(f)), Contains("has no data loader generator state"));
    // As PyTorch's load_state_dict: the options come from the checkpoint.
    Run other(data, 8);
    io::restore_checkpoint(io::load_checkpoint(with_metadata("optimizer.param_groups.0.momentum",
                                                             "0.5")),
                           other.state());
    CHECK(other.opt.options().momentum == 0.5);
  }
  SECTION("different run settings") {
    const io::Checkpoint c = io::load_checkpoint(write(good));
    CHECK_NOTHROW(io::check_settings(c, run_settings));
    CHECK_NOTHROW(io::check_settings(c, {{"seed", "5"}}));
    CHECK_THROWS_WITH(io::check_settings(c, {{"seed", "5"}, {"batch-size", "64"}}),
                      Contains("was written with batch-size 32 but this run has batch-size 64: "
                               "resume with the same batch-size"));
    CHECK_THROWS_WITH(io::check_settings(c, {{"val-size", "5000"}}),
                      Contains("does not record the setting val-size"));
  }
  CHECK(Snapshot(target) == before);
}
