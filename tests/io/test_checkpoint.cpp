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
  REQUIRE(c.momentum_buffers.size() == 6);
  c.momentum_buffers[3].second = Tensor<float>();

  const std::string path = (temp_dir("checkpoint_roundtrip") / "c.safetensors").string();
  io::save_checkpoint(path, c);
  const io::SafetensorsFile raw = io::load_safetensors(path);
  CHECK(raw.metadata.at("format") == "ember-checkpoint");
  CHECK(raw.metadata.at("version") == "1");
  CHECK(raw.metadata.at("epoch") == "7");
  CHECK(raw.metadata.at("generator.offset") == "18446744073709551614");
  CHECK(raw.metadata.at("generator.seed") == "9223372036854775813");
  CHECK(raw.metadata.at("loader_generator.offset") == "9007199254740993");
  CHECK(raw.metadata.at("optimizer.lr") == "0.30000000000000004");
  CHECK(raw.metadata.at("optimizer.momentum_buffer.5.weight") == "present");
  CHECK(raw.metadata.at("optimizer.momentum_buffer.5.bias") == "absent");
  CHECK(raw.metadata.at("scheduler") == "StepLR");
  CHECK(raw.metadata.at("setting.batch-size") == "32");
  CHECK(raw.tensors.at("model.0.weight").dtype == "F32");
  CHECK(raw.tensors.at("model.0.weight").shape == std::vector<std::int64_t>{4, 1, 3, 3});
  CHECK(raw.tensors.count("optimizer.momentum_buffer.8.bias") == 1);
  CHECK(raw.tensors.count("optimizer.momentum_buffer.5.bias") == 0);
  CHECK(raw.tensors.size() == 6 + 5);

  const io::Checkpoint back = io::load_checkpoint(path);
  CHECK(back.source == path);
  CHECK(back.epoch == 7);
  std::map<std::string, Tensor<float>> saved_model(c.model.begin(), c.model.end());
  REQUIRE(back.model.size() == c.model.size());
  for (const auto& [name, t] : back.model) CHECK(same_bits(t, saved_model.at(name)));
  std::map<std::string, Tensor<float>> saved_momentum(c.momentum_buffers.begin(),
                                                      c.momentum_buffers.end());
  REQUIRE(back.momentum_buffers.size() == 6);
  for (const auto& [name, t] : back.momentum_buffers) {
    INFO(name);
    CHECK(same_bits(t, saved_momentum.at(name)));
  }
  CHECK(back.optimizer.lr == 0.1 * 3);
  CHECK(back.optimizer.momentum == 0.9);
  CHECK(back.optimizer.dampening == 0.0);
  CHECK(back.optimizer.weight_decay == 1e-3);
  CHECK_FALSE(back.optimizer.nesterov);
  CHECK(back.optimizer_steps == run.opt.steps());
  CHECK(back.optimizer_steps == 8);  // 240 images in batches of 32
  REQUIRE(back.scheduler.has_value());
  CHECK(back.scheduler->last_epoch == 1);
  CHECK(back.scheduler->step_size == 2);
  CHECK(back.scheduler->gamma == 0.5);
  CHECK(back.scheduler->base_lr == 0.05);
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
  CHECK_FALSE(fresh.opt.momentum_buffers()[0].shares_storage(back.momentum_buffers[0].second));
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

// Version v of the big checkpoint used by the kill test: every element a function of
// (v, tensor, index), exact in float, so a loaded file shows whether it is one whole version.
float version_value(std::int64_t v, std::size_t tensor, std::int64_t i) {
  return static_cast<float>((v * 7 + static_cast<std::int64_t>(tensor)) % 4096) +
         static_cast<float>(i % 1024) / 1024.0f;
}

// Plain loops only: the child of fork() must not start parallel work (the pool's threads do
// not exist there).
void make_version(io::Checkpoint& c, std::int64_t v) {
  c.epoch = v;
  c.optimizer_steps = 10 * v;
  c.generator.offset = (std::uint64_t{1} << 63) + static_cast<std::uint64_t>(v);
  c.loader_generator->offset =
      std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(v);
  std::size_t tensor = 0;
  for (nn::NamedTensors* list : {&c.model, &c.momentum_buffers}) {
    for (auto& [name, t] : *list) {
      float* p = t.data();
      for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = version_value(v, tensor, i);
      ++tensor;
    }
  }
}

// Whether c is exactly version c.epoch (its tensors in the capture's order by name).
bool is_whole_version(const io::Checkpoint& c, const io::Checkpoint& layout) {
  const std::int64_t v = c.epoch;
  if (c.optimizer_steps != 10 * v ||
      c.generator.offset != (std::uint64_t{1} << 63) + static_cast<std::uint64_t>(v) ||
      c.loader_generator->offset !=
          std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(v))
    return false;
  std::map<std::string, Tensor<float>> model(c.model.begin(), c.model.end());
  std::map<std::string, Tensor<float>> momentum(c.momentum_buffers.begin(),
                                                c.momentum_buffers.end());
  std::size_t tensor = 0;
  for (const auto* list : {&layout.model, &layout.momentum_buffers}) {
    const bool is_model = list == &layout.model;
    for (const auto& [name, unused] : *list) {
      const auto& loaded = is_model ? model : momentum;
      const auto it = loaded.find(name);
      if (it == loaded.end()) return false;
      const float* p = it->second.data();
      for (std::int64_t i = 0; i < it->second.numel(); ++i)
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
    CHECK_THROWS_WITH(restore(with_metadata("version", "2")),
                      Contains("version \"2\" is not supported"));
  }
  SECTION("a missing metadata entry") {
    for (const char* key : {"epoch", "optimizer.lr", "optimizer.steps", "generator.offset",
                            "loader_generator.seed", "scheduler", "scheduler.gamma"}) {
      CHECK_THROWS_WITH(restore(without_metadata(key)),
                        Contains(std::string("metadata \"") + key + "\" is missing"));
    }
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
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.lr", "fast")),
                      Contains("\"optimizer.lr\" is \"fast\", expected a finite number"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.lr", "nan")),
                      Contains("\"optimizer.lr\" is \"nan\", expected a finite number"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.lr", "-0.5")),
                      Contains("\"optimizer.lr\" is \"-0.5\", expected a number of at least 0"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.nesterov", "yes")),
                      Contains("\"optimizer.nesterov\" is \"yes\", expected true or false"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler", "CosineAnnealingLR")),
                      Contains("expected \"StepLR\" or \"none\""));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler.step_size", "0")),
                      Contains("\"scheduler.step_size\" is \"0\", expected a positive integer"));
  }
  SECTION("a missing tensor") {
    io::SafetensorsFile f = good;
    f.tensors.erase("model.5.bias");
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("has no tensor \"model.5.bias\" for the model's 5.bias"));
    f = good;
    f.tensors.erase("optimizer.momentum_buffer.8.weight");
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("the momentum buffer of \"8.weight\" is present but tensor "
                               "\"optimizer.momentum_buffer.8.weight\" is missing"));
    f.metadata.erase("optimizer.momentum_buffer.8.weight");
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("has no momentum buffer entry for parameter \"8.weight\""));
  }
  SECTION("a wrong shape") {
    io::SafetensorsFile f = good;
    f.tensors.at("model.5.weight").shape = {100, 16};
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("tensor \"model.5.weight\" has shape [100, 16] but the model's "
                               "5.weight has shape [16, 100]"));
    f = good;
    f.tensors.at("optimizer.momentum_buffer.0.weight").shape = {4, 9};
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("momentum buffer of \"0.weight\" has shape [4, 9] but the "
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
    f.metadata["optimizer.momentum_buffer.0.bias"] = "absent";
    CHECK_THROWS_WITH(restore(write(f)),
                      Contains("tensor \"optimizer.momentum_buffer.0.bias\" is stored but its "
                               "metadata says \"absent\""));
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
    CHECK_THROWS_WITH(restore(with_metadata("scheduler.last_epoch", "4611686018427387905")),
                      Contains("expected a count of at most 2^62"));
    try {
      restore(with_metadata("version", std::string(1'000'000, '9')));
      FAIL("a checkpoint of version 999... was accepted");
    } catch (const ember::Error& e) {
      CHECK_THAT(e.what(), Contains("is not supported") && Contains("... (1000000 bytes)"));
      CHECK(std::string(e.what()).size() < 600);
    }
  }
  SECTION("a checkpoint of a differently configured run") {
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.momentum", "0.5")),
                      Contains("SGD momentum is 0.5 in the checkpoint but 0.9 in the optimizer"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.weight_decay", "0.001000001")),
                      Contains("SGD weight_decay is 0.001000001 in the checkpoint but 0.001"));
    CHECK_THROWS_WITH(restore(with_metadata("optimizer.nesterov", "true")),
                      Contains("SGD nesterov is true in the checkpoint but false"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler.gamma", "0.7")),
                      Contains("StepLR gamma is 0.7 in the checkpoint but 0.5 in the scheduler"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler.base_lr", "0.01")),
                      Contains("StepLR base_lr is 0.01 in the checkpoint but 0.05"));
    CHECK_THROWS_WITH(restore(with_metadata("scheduler", "none")),
                      Contains("has no StepLR state, but the run has a StepLR scheduler"));
    // Found last of all checks: the model and optimiser were fine, and still nothing changed.
    io::SafetensorsFile f = good;
    f.metadata.erase("loader_generator.seed");
    f.metadata.erase("loader_generator.offset");
    CHECK_THROWS_WITH(restore(write(f)), Contains("has no data loader generator state"));
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
