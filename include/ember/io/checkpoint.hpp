#pragma once
// Training checkpoints: everything a training run needs to continue exactly where it stopped,
// in one safetensors file written atomically (io/atomic_file.hpp), so that a crash or a kill
// during a save leaves the previous checkpoint whole.
//
// A file (format "ember-checkpoint", version 1) holds
//   tensors, all F32:
//     model.<name>                        the model's state_dict, PyTorch names
//     optimizer.momentum_buffer.<name>    SGD's momentum buffer of parameter <name>
//   metadata, all strings:
//     format, version                     "ember-checkpoint", "1"
//     epoch                               completed epochs
//     optimizer.lr, .momentum, .dampening, .weight_decay, .nesterov, .steps
//     optimizer.momentum_buffer.<name>    "present", or "absent" before the parameter's first step
//     scheduler                           "StepLR" or "none"; with StepLR also
//     scheduler.last_epoch, .step_size, .gamma, .base_lr
//     generator.seed, .offset             the generator behind initialisation and dropout
//     loader_generator.seed, .offset      the data loader's shuffle generator, when recorded
//     setting.<key>                       free-form run settings (batch size, seed, ...)
// Integers are decimal; doubles are written in the shortest form that reads back to the same
// value (std::to_chars), so learning rates and 64-bit generator offsets round-trip exactly.
//
// Nothing changes until everything has been checked: load_checkpoint checks the file on its
// own (format, version, every number, dtypes, each momentum buffer listed and stored),
// restore_checkpoint checks it against the live objects (names, shapes, hyper-parameters) and
// only then copies it in. A checkpoint that fails leaves the model, optimiser, scheduler and
// generators as they were.
//
//   io::TrainingState state{.model = &model, .optimizer = &opt, .scheduler = &sched,
//                           .loader_generator = &loader.generator()};
//   io::save_checkpoint(path, state, epoch, settings);  // after each epoch
//   ...
//   const io::Checkpoint c = io::load_checkpoint(path);
//   io::check_settings(c, settings);   // refuses a resume with different settings
//   io::restore_checkpoint(c, state);  // then train epochs c.epoch + 1, ...

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/io/safetensors.hpp"
#include "ember/io/state_dict.hpp"
#include "ember/nn/module.hpp"
#include "ember/optim/sgd.hpp"

namespace ember::io {

inline constexpr std::string_view checkpoint_format = "ember-checkpoint";
inline constexpr std::string_view checkpoint_version = "1";

// A Generator's whole state.
struct GeneratorState {
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;

  [[nodiscard]] static GeneratorState of(const Generator& g) { return {g.seed(), g.offset()}; }
  void apply_to(Generator& g) const {
    g.manual_seed(seed);
    g.set_offset(offset);
  }
  friend bool operator==(const GeneratorState&, const GeneratorState&) = default;
};

// optim::StepLR's state and its settings (checked on restore).
struct StepLRState {
  std::int64_t last_epoch = 0;
  std::int64_t step_size = 1;
  double gamma = 0.1;
  double base_lr = 0;
};

struct Checkpoint {
  std::int64_t epoch = 0;       // completed epochs: training continues with epoch + 1
  nn::NamedTensors model;       // the state_dict, on the CPU
  optim::SGDOptions optimizer;  // lr is the one the next step uses
  std::int64_t optimizer_steps = 0;
  // (parameter name, buffer), one per optimiser parameter; undefined before its first step.
  nn::NamedTensors momentum_buffers;
  std::optional<StepLRState> scheduler;
  GeneratorState generator;                        // initialisation and dropout
  std::optional<GeneratorState> loader_generator;  // the training data's shuffle
  std::map<std::string, std::string> settings;
  std::string source = "<memory>";  // the file it was loaded from, for messages
};

// The live objects a checkpoint is taken from and restored into. model, optimizer and
// generator are required; the optimiser's parameters must be parameters of the model.
struct TrainingState {
  nn::Module* model = nullptr;
  optim::SGD* optimizer = nullptr;
  optim::StepLR* scheduler = nullptr;
  Generator* generator = &default_generator();
  Generator* loader_generator = nullptr;
};

// The shortest decimal text that reads back as the same double.
[[nodiscard]] inline std::string double_to_string(double value) {
  std::array<char, 64> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  EMBER_CHECK(ec == std::errc(), "cannot format the double ", value);
  return std::string(buf.data(), end);
}

namespace detail {

// Names, keys and values from a file as messages show them (core/error.hpp's clip_text).
[[nodiscard]] inline std::string clip(const std::string& text) {
  return ::ember::detail::clip_text(text);
}

inline constexpr std::string_view model_prefix = "model.";
inline constexpr std::string_view momentum_prefix = "optimizer.momentum_buffer.";
inline constexpr std::string_view setting_prefix = "setting.";

// A copy on the CPU that shares nothing with t (the run goes on changing t).
inline Tensor<float> host_copy(const Tensor<float>& t) {
  NoGradGuard no_grad;
  return t.device().is_cpu() ? t.detach().clone() : t.detach().to(Device::cpu());
}

// The model's name for each of the optimiser's parameters, in the optimiser's order.
inline std::vector<std::string> optimizer_parameter_names(const nn::Module& model,
                                                          const optim::SGD& opt) {
  const nn::NamedTensors named = model.named_parameters();
  std::vector<std::string> names;
  for (std::size_t k = 0; k < opt.params().size(); ++k) {
    const Tensor<float>& p = opt.params()[k];
    const auto it = std::find_if(named.begin(), named.end(), [&](const auto& e) {
      return e.second.impl_ptr() == p.impl_ptr();
    });
    EMBER_CHECK(it != named.end(), "checkpoint: the optimizer's parameter ", k, " (shape ",
                shape_str(p.shape()), ") is not a parameter of the model ", model.type_name());
    names.push_back(it->first);
  }
  return names;
}

// Typed, checked access to a checkpoint's metadata; every error names the file and the key.
class MetadataReader {
 public:
  MetadataReader(const std::map<std::string, std::string>& metadata, const std::string& source)
      : metadata_(metadata), source_(source) {}

  [[nodiscard]] bool has(const std::string& key) const { return metadata_.count(key) != 0; }
  [[nodiscard]] const std::string& text(const std::string& key) const {
    const auto it = metadata_.find(key);
    EMBER_CHECK(it != metadata_.end(), "checkpoint '", source_, "': metadata \"", key,
                "\" is missing");
    return it->second;
  }
  [[nodiscard]] std::uint64_t u64(const std::string& key) const {
    return integer<std::uint64_t>(key, "an unsigned 64-bit integer");
  }
  // A non-negative int64 of at most 2^62, so that the run can go on counting from it
  // (epoch + 1, steps + 1) without overflow.
  [[nodiscard]] std::int64_t count(const std::string& key) const {
    const auto v = integer<std::int64_t>(key, "a non-negative 64-bit integer");
    if (v < 0) bad(key, "a non-negative 64-bit integer");
    if (v > max_count) bad(key, "a count of at most 2^62");
    return v;
  }
  static constexpr std::int64_t max_count = std::int64_t{1} << 62;
  // A finite double, at least `min`.
  [[nodiscard]] double real(const std::string& key, double min = -HUGE_VAL) const {
    const std::string& s = text(key);
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v))
      bad(key, "a finite number");
    if (v < min) bad(key, ::ember::detail::concat("a number of at least ", min));
    return v;
  }
  [[nodiscard]] bool boolean(const std::string& key) const {
    const std::string& s = text(key);
    if (s != "true" && s != "false") bad(key, "true or false");
    return s == "true";
  }
  [[noreturn]] void bad(const std::string& key, const std::string& expected) const {
    throw Error(::ember::detail::concat("checkpoint '", source_, "': metadata \"", clip(key),
                                        "\" is \"", clip(text(key)), "\", expected ", expected));
  }

 private:
  template <class T>
  [[nodiscard]] T integer(const std::string& key, const char* expected) const {
    const std::string& s = text(key);
    T v{};
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) bad(key, expected);
    return v;
  }

  const std::map<std::string, std::string>& metadata_;
  const std::string& source_;
};

}  // namespace detail

// A copy of the run's state after `epoch` completed epochs (tensors copied to the CPU).
[[nodiscard]] inline Checkpoint capture_checkpoint(
    const TrainingState& state, std::int64_t epoch,
    std::map<std::string, std::string> settings = {}) {
  EMBER_CHECK(state.model != nullptr && state.optimizer != nullptr && state.generator != nullptr,
              "capture_checkpoint: the training state needs a model, an optimizer and a generator");
  EMBER_CHECK(epoch >= 0, "capture_checkpoint: invalid epoch ", epoch);
  Checkpoint c;
  c.epoch = epoch;
  for (const auto& [name, t] : state.model->state_dict())
    c.model.emplace_back(name, detail::host_copy(t));
  optim::SGD& opt = *state.optimizer;
  c.optimizer = opt.options();
  c.optimizer_steps = opt.steps();
  const std::vector<std::string> names = detail::optimizer_parameter_names(*state.model, opt);
  const std::vector<Tensor<float>>& buffers = opt.momentum_buffers();
  for (std::size_t k = 0; k < names.size(); ++k) {
    c.momentum_buffers.emplace_back(
        names[k], buffers[k].defined() ? detail::host_copy(buffers[k]) : Tensor<float>());
  }
  if (state.scheduler != nullptr) {
    const optim::StepLR& s = *state.scheduler;
    c.scheduler = StepLRState{s.last_epoch(), s.step_size(), s.gamma(), s.base_lr()};
  }
  c.generator = GeneratorState::of(*state.generator);
  if (state.loader_generator != nullptr)
    c.loader_generator = GeneratorState::of(*state.loader_generator);
  c.settings = std::move(settings);
  return c;
}

// The checkpoint as a safetensors file (the layout at the top of this header).
[[nodiscard]] inline SafetensorsFile checkpoint_to_safetensors(const Checkpoint& c) {
  SafetensorsFile f;
  auto& m = f.metadata;
  m["format"] = std::string(checkpoint_format);
  m["version"] = std::string(checkpoint_version);
  m["epoch"] = std::to_string(c.epoch);
  const auto add = [&](const std::string& name, const Tensor<float>& t) {
    EMBER_CHECK(t.defined(), "save_checkpoint: tensor \"", name, "\" is undefined");
    const Tensor<float> host = t.device().is_cpu() ? t : detail::host_copy(t);
    EMBER_CHECK(f.tensors.emplace(name, to_record(host)).second,
                "save_checkpoint: duplicate tensor \"", name, "\"");
  };
  for (const auto& [name, t] : c.model) add(std::string(detail::model_prefix) + name, t);
  m["optimizer.lr"] = double_to_string(c.optimizer.lr);
  m["optimizer.momentum"] = double_to_string(c.optimizer.momentum);
  m["optimizer.dampening"] = double_to_string(c.optimizer.dampening);
  m["optimizer.weight_decay"] = double_to_string(c.optimizer.weight_decay);
  m["optimizer.nesterov"] = c.optimizer.nesterov ? "true" : "false";
  m["optimizer.steps"] = std::to_string(c.optimizer_steps);
  for (const auto& [name, t] : c.momentum_buffers) {
    const std::string key = std::string(detail::momentum_prefix) + name;
    EMBER_CHECK(m.emplace(key, t.defined() ? "present" : "absent").second,
                "save_checkpoint: two momentum buffers for parameter \"", name, "\"");
    if (t.defined()) add(key, t);
  }
  m["scheduler"] = c.scheduler ? "StepLR" : "none";
  if (c.scheduler) {
    m["scheduler.last_epoch"] = std::to_string(c.scheduler->last_epoch);
    m["scheduler.step_size"] = std::to_string(c.scheduler->step_size);
    m["scheduler.gamma"] = double_to_string(c.scheduler->gamma);
    m["scheduler.base_lr"] = double_to_string(c.scheduler->base_lr);
  }
  m["generator.seed"] = std::to_string(c.generator.seed);
  m["generator.offset"] = std::to_string(c.generator.offset);
  if (c.loader_generator) {
    m["loader_generator.seed"] = std::to_string(c.loader_generator->seed);
    m["loader_generator.offset"] = std::to_string(c.loader_generator->offset);
  }
  for (const auto& [key, value] : c.settings) m[std::string(detail::setting_prefix) + key] = value;
  return f;
}

// Reads a checkpoint back from its safetensors form, checking everything that can be checked
// without the live objects. source names the file in errors.
[[nodiscard]] inline Checkpoint checkpoint_from_safetensors(const SafetensorsFile& f,
                                                 const std::string& source) {
  const auto fail = [&](const auto&... parts) {
    throw Error(::ember::detail::concat("checkpoint '", source, "': ", parts...));
  };
  using detail::clip;
  const auto format = f.metadata.find("format");
  if (format == f.metadata.end()) fail("not an ember checkpoint (its metadata has no \"format\")");
  if (format->second != checkpoint_format) {
    fail("not an ember checkpoint (metadata \"format\" is \"", format->second, "\", expected \"",
         checkpoint_format, "\")");
  }
  const detail::MetadataReader meta(f.metadata, source);
  if (meta.text("version") != checkpoint_version) {
    fail("version \"", detail::clip(meta.text("version")),
         "\" is not supported (this ember reads version ", checkpoint_version, ")");
  }
  Checkpoint c;
  c.source = source;
  c.epoch = meta.count("epoch");
  c.optimizer.lr = meta.real("optimizer.lr", 0.0);
  c.optimizer.momentum = meta.real("optimizer.momentum", 0.0);
  c.optimizer.dampening = meta.real("optimizer.dampening");
  c.optimizer.weight_decay = meta.real("optimizer.weight_decay", 0.0);
  c.optimizer.nesterov = meta.boolean("optimizer.nesterov");
  c.optimizer_steps = meta.count("optimizer.steps");
  const std::string& scheduler = meta.text("scheduler");
  if (scheduler == "StepLR") {
    StepLRState s;
    s.last_epoch = meta.count("scheduler.last_epoch");
    s.step_size = meta.count("scheduler.step_size");
    if (s.step_size == 0) meta.bad("scheduler.step_size", "a positive integer");
    s.gamma = meta.real("scheduler.gamma");
    s.base_lr = meta.real("scheduler.base_lr", 0.0);
    c.scheduler = s;
  } else if (scheduler != "none") {
    meta.bad("scheduler", "\"StepLR\" or \"none\"");
  }
  c.generator = {meta.u64("generator.seed"), meta.u64("generator.offset")};
  if (meta.has("loader_generator.seed") || meta.has("loader_generator.offset"))
    c.loader_generator = {meta.u64("loader_generator.seed"), meta.u64("loader_generator.offset")};

  // Momentum buffers: listed in the metadata, stored only when present.
  std::map<std::string, bool> listed;  // parameter name -> present
  for (const auto& [key, value] : f.metadata) {
    if (key.starts_with(detail::setting_prefix)) {
      c.settings[key.substr(detail::setting_prefix.size())] = value;
    } else if (key.starts_with(detail::momentum_prefix)) {
      if (value != "present" && value != "absent") meta.bad(key, "\"present\" or \"absent\"");
      listed[key.substr(detail::momentum_prefix.size())] = value == "present";
    }
  }
  std::map<std::string, Tensor<float>> buffers;
  const auto tensor = [&](const TensorRecord& record, const std::string& name) {
    try {
      return from_record<float>(record, name);
    } catch (const Error& e) {
      throw Error(::ember::detail::concat("checkpoint '", source, "': ", detail::error_text(e)));
    }
  };
  for (const auto& [name, record] : f.tensors) {
    if (record.dtype != "F32")
      fail("tensor \"", clip(name), "\" has dtype ", clip(record.dtype), ", expected F32");
    if (name.starts_with(detail::model_prefix)) {
      c.model.emplace_back(name.substr(detail::model_prefix.size()), tensor(record, name));
    } else if (name.starts_with(detail::momentum_prefix)) {
      const std::string param = name.substr(detail::momentum_prefix.size());
      const auto it = listed.find(param);
      if (it == listed.end())
        fail("tensor \"", clip(name), "\" has no metadata entry \"", clip(name), "\"");
      if (!it->second)
        fail("tensor \"", clip(name), "\" is stored but its metadata says \"absent\"");
      buffers.emplace(param, tensor(record, name));
    } else {
      fail("unexpected tensor \"", clip(name), "\" (expected \"", detail::model_prefix,
           "...\" or \"", detail::momentum_prefix, "...\")");
    }
  }
  for (const auto& [param, present] : listed) {
    const auto it = buffers.find(param);
    if (present && it == buffers.end()) {
      fail("metadata says the momentum buffer of \"", clip(param), "\" is present but tensor \"",
           detail::momentum_prefix, clip(param), "\" is missing");
    }
    c.momentum_buffers.emplace_back(param, present ? it->second : Tensor<float>());
  }
  return c;
}

// Writes a checkpoint atomically: path holds either its previous contents or the whole new
// checkpoint, whatever happens during the write.
inline void save_checkpoint(const std::string& path, const Checkpoint& c) {
  save_safetensors(path, checkpoint_to_safetensors(c));
}
inline void save_checkpoint(const std::string& path, const TrainingState& state, std::int64_t epoch,
                            const std::map<std::string, std::string>& settings = {}) {
  save_checkpoint(path, capture_checkpoint(state, epoch, settings));
}

// Reads and checks a checkpoint file (see checkpoint_from_safetensors); changes nothing.
[[nodiscard]] inline Checkpoint load_checkpoint(const std::string& path) {
  return checkpoint_from_safetensors(load_safetensors(path), path);
}

// Refuses to resume when a setting of this run differs from the checkpoint's, or the
// checkpoint does not record it. The error names the setting and both values.
inline void check_settings(const Checkpoint& c, const std::map<std::string, std::string>& current) {
  for (const auto& [key, value] : current) {
    const auto it = c.settings.find(key);
    EMBER_CHECK(it != c.settings.end(), "checkpoint '", c.source, "' does not record the setting ",
                key, " (this run has ", key, " ", value, "), so it cannot be resumed safely");
    EMBER_CHECK(it->second == value, "checkpoint '", c.source, "' was written with ", key, " ",
                detail::clip(it->second), " but this run has ", key, " ", value,
                ": resume with the same ", key);
  }
}

// Copies a checkpoint into the live objects, after checking that it fits them: the model's
// names and shapes, a momentum entry for every optimiser parameter, the same SGD momentum,
// dampening, weight decay and nesterov, the same StepLR settings, and a loader generator state
// when a loader generator is given. On any error nothing has changed. The optimiser's lr comes
// from the checkpoint (it is state, moved by the scheduler); momentum buffers are placed on
// their parameter's device.
inline void restore_checkpoint(const Checkpoint& c, const TrainingState& state) {
  EMBER_CHECK(state.model != nullptr && state.optimizer != nullptr && state.generator != nullptr,
              "restore_checkpoint: the training state needs a model, an optimizer and a generator");
  const auto fail = [&](const auto&... parts) {
    throw Error(::ember::detail::concat("checkpoint '", c.source, "': ", parts...));
  };
  using detail::clip;
  // ---- check everything ----
  nn::Module& model = *state.model;
  std::map<std::string, const Tensor<float>*> saved;
  for (const auto& [name, t] : c.model) {
    if (!t.defined()) fail("tensor \"model.", clip(name), "\" is undefined");
    if (!saved.emplace(name, &t).second) fail("two tensors for \"model.", clip(name), "\"");
  }
  const nn::NamedTensors own = model.state_dict();
  for (const auto& [name, t] : own) {
    const auto it = saved.find(name);
    if (it == saved.end()) fail("has no tensor \"model.", name, "\" for the model's ", name);
    if (it->second->shape() != t.shape()) {
      fail("tensor \"model.", name, "\" has shape ", shape_str(it->second->shape()),
           " but the model's ", name, " has shape ", shape_str(t.shape()));
    }
  }
  for (const auto& [name, t] : c.model) {
    if (std::none_of(own.begin(), own.end(), [&](const auto& e) { return e.first == name; }))
      fail("tensor \"model.", clip(name), "\" is not in the model (", model.type_name(), ")");
  }

  optim::SGD& opt = *state.optimizer;
  const std::vector<std::string> names = detail::optimizer_parameter_names(model, opt);
  std::map<std::string, const Tensor<float>*> buffers;
  for (const auto& [name, t] : c.momentum_buffers) {
    if (!buffers.emplace(name, &t).second) fail("two momentum buffers for \"", clip(name), "\"");
  }
  for (std::size_t k = 0; k < names.size(); ++k) {
    const auto it = buffers.find(names[k]);
    if (it == buffers.end()) fail("has no momentum buffer entry for parameter \"", names[k], "\"");
    const Shape& want = opt.params()[k].shape();
    if (it->second->defined() && it->second->shape() != want) {
      fail("momentum buffer of \"", names[k], "\" has shape ", shape_str(it->second->shape()),
           " but the parameter has shape ", shape_str(want));
    }
  }
  for (const auto& [name, t] : buffers) {
    if (std::find(names.begin(), names.end(), name) == names.end())
      fail("has a momentum buffer for \"", clip(name), "\", which the optimizer does not update");
  }
  // Hyper-parameters compare as their exact text (double_to_string round-trips).
  const auto text = [](const auto& v) {
    if constexpr (std::is_same_v<std::decay_t<decltype(v)>, bool>)
      return std::string(v ? "true" : "false");
    else if constexpr (std::is_floating_point_v<std::decay_t<decltype(v)>>)
      return double_to_string(v);
    else
      return std::to_string(v);
  };
  const auto same = [&](const char* what, const auto& in_file, const auto& in_run,
                        const char* holder) {
    if (text(in_file) != text(in_run)) {
      fail(what, " is ", text(in_file), " in the checkpoint but ", text(in_run), " in the ",
           holder);
    }
  };
  const optim::SGDOptions& now = opt.options();
  same("SGD momentum", c.optimizer.momentum, now.momentum, "optimizer");
  same("SGD dampening", c.optimizer.dampening, now.dampening, "optimizer");
  same("SGD weight_decay", c.optimizer.weight_decay, now.weight_decay, "optimizer");
  same("SGD nesterov", c.optimizer.nesterov, now.nesterov, "optimizer");
  if (!(c.optimizer.lr >= 0)) fail("invalid learning rate ", c.optimizer.lr);
  if (c.optimizer_steps < 0 || c.epoch < 0) fail("negative step or epoch count");

  if (state.scheduler != nullptr && !c.scheduler)
    fail("has no StepLR state, but the run has a StepLR scheduler");
  if (state.scheduler == nullptr && c.scheduler)
    fail("has StepLR state, but the run has no scheduler");
  if (state.scheduler != nullptr) {
    const optim::StepLR& s = *state.scheduler;
    same("StepLR step_size", c.scheduler->step_size, s.step_size(), "scheduler");
    same("StepLR gamma", c.scheduler->gamma, s.gamma(), "scheduler");
    same("StepLR base_lr", c.scheduler->base_lr, s.base_lr(), "scheduler");
    if (c.scheduler->last_epoch < 0) fail("negative StepLR last_epoch");
  }
  if (state.loader_generator != nullptr && !c.loader_generator)
    fail("has no data loader generator state");

  // ---- then apply ----
  model.load_state_dict(c.model, /*strict=*/true);
  std::vector<Tensor<float>>& momentum = opt.momentum_buffers();
  for (std::size_t k = 0; k < names.size(); ++k) {
    const Tensor<float>& t = *buffers.at(names[k]);
    const Device dev = opt.params()[k].device();
    NoGradGuard no_grad;
    momentum[k] = !t.defined()   ? Tensor<float>()
                  : dev.is_cpu() ? t.detach().clone()
                                 : t.detach().to(dev);
  }
  opt.set_lr(c.optimizer.lr);
  opt.set_steps(c.optimizer_steps);
  if (state.scheduler != nullptr) state.scheduler->set_last_epoch(c.scheduler->last_epoch);
  c.generator.apply_to(*state.generator);
  if (state.loader_generator != nullptr) c.loader_generator->apply_to(*state.loader_generator);
}

}  // namespace ember::io
