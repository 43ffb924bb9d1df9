#pragma once
// Training checkpoints: everything a training run needs to continue exactly where it stopped,
// in one safetensors file written atomically (io/atomic_file.hpp), so that a crash or a kill
// during a save leaves the previous checkpoint whole. Any optimizer (optim/optimizer.hpp) and
// any scheduler (optim/lr_scheduler.hpp) is stored through its state_dict().
//
// A file (format "ember-checkpoint", version 2) holds
//   tensors, all F32:
//     model.<name>                          the model's state_dict, PyTorch names
//     optimizer.state.<param>.<key>         the optimizer's state of parameter <param> (the
//                                           model's name): momentum_buffer, exp_avg, ...; a
//                                           step count has shape []
//   metadata, all strings:
//     format, version                       "ember-checkpoint", "2"
//     epoch                                 completed epochs
//     optimizer                             "SGD", "Adam", "AdamW" or "RMSprop"
//     optimizer.steps                       calls of step()
//     optimizer.param_groups                the number of groups, G
//     optimizer.param_groups.<g>.params     the group's parameters: model names, comma-separated
//     optimizer.param_groups.<g>.<option>   each option (lr, momentum, beta1, initial_lr, ...);
//                                           booleans as 0 or 1
//     optimizer.state.<param>               the state keys stored for <param>, comma-separated
//                                           (empty before its first step)
//     scheduler                             its type ("StepLR", "OneCycleLR", ...) or "none";
//     scheduler.value.<key>, scheduler.list.<key> (comma-separated), scheduler.text.<key>
//                                           its state_dict; SequentialLR's children under
//                                           scheduler.child.<i>. (scheduler.children: their count)
//     generator.seed, .offset               the generator behind initialisation and dropout
//     loader_generator.seed, .offset        the data loader's shuffle generator, when recorded
//     setting.<key>                         free-form run settings (batch size, seed, ...)
// Integers are decimal; doubles are written in the shortest form that reads back to the same
// value (std::to_chars), so learning rates and 64-bit generator offsets round-trip exactly.
// Version 1 files (SGD and StepLR only, before optimizers had a common interface) still load.
//
// Nothing changes until everything has been checked: load_checkpoint checks the file on its
// own (format, version, every number, dtypes, each state tensor listed and stored),
// restore_checkpoint checks it against the live objects (names, shapes, optimizer and
// scheduler types) and only then copies it in. A checkpoint that fails leaves the model,
// optimiser, scheduler and generators as they were. As PyTorch's load_state_dict, the
// optimizer's options and the scheduler's settings come from the checkpoint.
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
#include "ember/optim/lr_scheduler.hpp"
#include "ember/optim/optimizer.hpp"

namespace ember::io {

/// The "format" written in every checkpoint's metadata.
inline constexpr std::string_view checkpoint_format = "ember-checkpoint";
/// The checkpoint version this code writes (it reads versions 1 and 2).
inline constexpr std::string_view checkpoint_version = "2";

/// A Generator's whole state.
struct GeneratorState {
  /// The generator's seed.
  std::uint64_t seed = 0;
  /// Counters drawn so far.
  std::uint64_t offset = 0;

  /// The state of `g`.
  [[nodiscard]] static GeneratorState of(const Generator& g) { return {g.seed(), g.offset()}; }
  /// Puts `g` in this state (reseeds it and sets its offset).
  void apply_to(Generator& g) const {
    g.manual_seed(seed);
    g.set_offset(offset);
  }
  friend bool operator==(const GeneratorState&, const GeneratorState&) = default;
};

/// A training run's whole state, as a checkpoint file holds it (load_checkpoint, save_checkpoint).
struct Checkpoint {
  std::int64_t epoch = 0;  ///< completed epochs: training continues with epoch + 1
  nn::NamedTensors model;  ///< the state_dict, on the CPU
  /// The optimizer's state_dict (tensors on the CPU); the lr is the one the next step uses.
  optim::OptimizerState optimizer;
  std::vector<std::string> optimizer_params;  ///< the model's name of each optimizer parameter
  /// The scheduler's state_dict, or none when the run has no scheduler.
  std::optional<optim::SchedulerState> scheduler;
  GeneratorState generator;                        ///< initialisation and dropout
  std::optional<GeneratorState> loader_generator;  ///< the training data's shuffle
  /// Free-form run settings (batch size, seed, ...) that check_settings compares on resume.
  std::map<std::string, std::string> settings;
  std::string source = "<memory>";  ///< the file it was loaded from, for messages

  /// The state tensor `key` of the optimizer parameter the model calls `param` (undefined when
  /// it has none).
  [[nodiscard]] Tensor<float> optimizer_tensor(const std::string& param,
                                               const std::string& key) const {
    for (std::size_t k = 0; k < optimizer_params.size() && k < optimizer.state.size(); ++k) {
      if (optimizer_params[k] != param) continue;
      const auto it = optimizer.state[k].find(key);
      return it == optimizer.state[k].end() ? Tensor<float>() : it->second;
    }
    return {};
  }
};

/// The live objects a checkpoint is taken from and restored into. model, optimizer and
/// generator are required; the optimiser's parameters must be parameters of the model.
struct TrainingState {
  /// The model (required).
  nn::Module* model = nullptr;
  /// Its optimizer (required); its parameters must be the model's.
  optim::Optimizer* optimizer = nullptr;
  /// The lr scheduler, or null for none.
  optim::LRScheduler* scheduler = nullptr;
  /// The generator behind initialisation and dropout (required).
  Generator* generator = &default_generator();
  /// The data loader's generator (its shuffle), or null.
  Generator* loader_generator = nullptr;
};

/// The shortest decimal text that reads back as the same double.
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
inline constexpr std::string_view state_prefix = "optimizer.state.";
inline constexpr std::string_view group_prefix = "optimizer.param_groups.";
inline constexpr std::string_view v1_momentum_prefix = "optimizer.momentum_buffer.";
inline constexpr std::string_view setting_prefix = "setting.";

// A copy on the CPU that shares nothing with t (the run goes on changing t).
inline Tensor<float> host_copy(const Tensor<float>& t) {
  NoGradGuard no_grad;
  return t.device().is_cpu() ? t.detach().clone() : t.detach().to(Device::cpu());
}

// The model's name for each of the optimiser's parameters, in the optimiser's order.
inline std::vector<std::string> optimizer_parameter_names(const nn::Module& model,
                                                          const optim::Optimizer& opt) {
  const nn::NamedTensors named = model.named_parameters();
  std::vector<std::string> names;
  const std::vector<Tensor<float>> params = opt.params();
  for (std::size_t k = 0; k < params.size(); ++k) {
    const Tensor<float>& p = params[k];
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

/// A copy of the run's state after `epoch` completed epochs (tensors copied to the CPU).
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
  c.optimizer_params = detail::optimizer_parameter_names(*state.model, *state.optimizer);
  c.optimizer = state.optimizer->state_dict();  // (its tensors are copies on the CPU)
  if (state.scheduler != nullptr) c.scheduler = state.scheduler->state_dict();
  c.generator = GeneratorState::of(*state.generator);
  if (state.loader_generator != nullptr)
    c.loader_generator = GeneratorState::of(*state.loader_generator);
  c.settings = std::move(settings);
  return c;
}

namespace detail {

inline std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "," : "") + parts[i];
  return out;
}
inline std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  if (text.empty()) return parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) return parts;
    start = comma + 1;
  }
}

// A scheduler's state as metadata under `prefix` ("scheduler."), children under
// prefix + "child.<i>.".
inline void put_scheduler(std::map<std::string, std::string>& m, const std::string& prefix,
                          const optim::SchedulerState& s) {
  for (const auto& [key, v] : s.values) m[prefix + "value." + key] = double_to_string(v);
  for (const auto& [key, list] : s.lists) {
    std::vector<std::string> parts;
    for (double v : list) parts.push_back(double_to_string(v));
    m[prefix + "list." + key] = join(parts);
  }
  for (const auto& [key, text] : s.texts) m[prefix + "text." + key] = text;
  if (!s.children.empty()) {
    m[prefix + "children"] = std::to_string(s.children.size());
    for (std::size_t i = 0; i < s.children.size(); ++i) {
      const std::string child = prefix + "child." + std::to_string(i);
      m[child] = s.children[i].type;
      put_scheduler(m, child + ".", s.children[i]);
    }
  }
}

// Any number std::from_chars reads (infinities included: ReduceLROnPlateau's best starts so).
inline double any_real(const MetadataReader& meta, const std::string& key) {
  const std::string& s = meta.text(key);
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) meta.bad(key, "a number");
  return v;
}

inline optim::SchedulerState get_scheduler(const std::map<std::string, std::string>& metadata,
                                           const MetadataReader& meta, const std::string& prefix,
                                           std::string type, int depth) {
  if (depth > 8) meta.bad(prefix.substr(0, prefix.size() - 1), "schedulers nested at most 8 deep");
  optim::SchedulerState s;
  s.type = std::move(type);
  for (auto it = metadata.lower_bound(prefix); it != metadata.end(); ++it) {
    const std::string& key = it->first;
    if (!key.starts_with(prefix)) break;
    const std::string rest = key.substr(prefix.size());
    if (rest.starts_with("value.")) {
      s.values[rest.substr(6)] = any_real(meta, key);
    } else if (rest.starts_with("list.")) {
      std::vector<double>& list = s.lists[rest.substr(5)];
      for (const std::string& part : split(it->second)) {
        double v = 0;
        const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        if (part.empty() || ec != std::errc() || end != part.data() + part.size())
          meta.bad(key, "comma-separated numbers");
        list.push_back(v);
      }
    } else if (rest.starts_with("text.")) {
      s.texts[rest.substr(5)] = it->second;
    }
  }
  if (meta.has(prefix + "children")) {
    const std::int64_t n = meta.count(prefix + "children");
    if (n > 64) meta.bad(prefix + "children", "at most 64");
    for (std::int64_t i = 0; i < n; ++i) {
      const std::string child = prefix + "child." + std::to_string(i);
      s.children.push_back(get_scheduler(metadata, meta, child + ".", meta.text(child), depth + 1));
    }
  }
  return s;
}

}  // namespace detail

/// The checkpoint as a safetensors file (the layout at the top of this header).
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

  const optim::OptimizerState& o = c.optimizer;
  EMBER_CHECK(o.state.size() == c.optimizer_params.size(), "save_checkpoint: ", o.state.size(),
              " optimizer parameter states for ", c.optimizer_params.size(), " parameter names");
  m["optimizer"] = o.type;
  m["optimizer.steps"] = std::to_string(o.steps);
  m["optimizer.param_groups"] = std::to_string(o.param_groups.size());
  for (std::size_t g = 0; g < o.param_groups.size(); ++g) {
    const std::string prefix = std::string(detail::group_prefix) + std::to_string(g) + ".";
    std::vector<std::string> names;
    for (std::size_t k : o.param_groups[g].params) {
      EMBER_CHECK(k < c.optimizer_params.size(), "save_checkpoint: group ", g, " lists parameter ",
                  k, " of ", c.optimizer_params.size());
      names.push_back(c.optimizer_params[k]);
    }
    m[prefix + "params"] = detail::join(names);
    for (const auto& [key, v] : o.param_groups[g].options) m[prefix + key] = double_to_string(v);
  }
  for (std::size_t k = 0; k < o.state.size(); ++k) {
    const std::string& name = c.optimizer_params[k];
    EMBER_CHECK(name.find(',') == std::string::npos, "save_checkpoint: parameter name \"", name,
                "\" has a comma");
    const std::string key = std::string(detail::state_prefix) + name;
    std::vector<std::string> keys;
    for (const auto& [what, t] : o.state[k]) {
      keys.push_back(what);
      add(key + "." + what, t);
    }
    EMBER_CHECK(m.emplace(key, detail::join(keys)).second,
                "save_checkpoint: two optimizer states for parameter \"", name, "\"");
  }
  m["scheduler"] = c.scheduler ? c.scheduler->type : "none";
  if (c.scheduler) detail::put_scheduler(m, "scheduler.", *c.scheduler);
  m["generator.seed"] = std::to_string(c.generator.seed);
  m["generator.offset"] = std::to_string(c.generator.offset);
  if (c.loader_generator) {
    m["loader_generator.seed"] = std::to_string(c.loader_generator->seed);
    m["loader_generator.offset"] = std::to_string(c.loader_generator->offset);
  }
  for (const auto& [key, value] : c.settings) m[std::string(detail::setting_prefix) + key] = value;
  return f;
}

namespace detail {

// Version 1 (SGD with one group, StepLR): its optimizer and scheduler metadata, read into
// version 2's structures.
inline void read_v1_optimizer(const SafetensorsFile& f, const MetadataReader& meta, Checkpoint& c,
                              const auto& tensor, const auto& fail) {
  optim::OptimizerState& o = c.optimizer;
  o.type = "SGD";
  o.steps = meta.count("optimizer.steps");
  optim::OptimizerState::Group g;
  g.options["lr"] = meta.real("optimizer.lr", 0.0);
  g.options["momentum"] = meta.real("optimizer.momentum", 0.0);
  g.options["dampening"] = meta.real("optimizer.dampening");
  g.options["weight_decay"] = meta.real("optimizer.weight_decay", 0.0);
  g.options["nesterov"] = meta.boolean("optimizer.nesterov") ? 1 : 0;
  g.options["maximize"] = 0;
  const std::string& scheduler = meta.text("scheduler");
  if (scheduler == "StepLR") {
    optim::SchedulerState s;
    s.type = "StepLR";
    const std::int64_t last_epoch = meta.count("scheduler.last_epoch");
    const std::int64_t step_size = meta.count("scheduler.step_size");
    if (step_size == 0) meta.bad("scheduler.step_size", "a positive integer");
    const double base_lr = meta.real("scheduler.base_lr", 0.0);
    s.values["last_epoch"] = static_cast<double>(last_epoch);
    s.values["_step_count"] = static_cast<double>(last_epoch + 1);
    s.values["step_size"] = static_cast<double>(step_size);
    s.values["gamma"] = meta.real("scheduler.gamma");
    s.lists["base_lrs"] = {base_lr};
    s.lists["_last_lr"] = {g.options["lr"]};
    g.options["initial_lr"] = base_lr;
    c.scheduler = s;
  } else if (scheduler != "none") {
    meta.bad("scheduler", "\"StepLR\" or \"none\"");
  }
  std::map<std::string, bool> listed;  // parameter name -> present
  for (const auto& [key, value] : f.metadata) {
    if (!key.starts_with(v1_momentum_prefix)) continue;
    if (value != "present" && value != "absent") meta.bad(key, "\"present\" or \"absent\"");
    listed[key.substr(v1_momentum_prefix.size())] = value == "present";
  }
  std::map<std::string, Tensor<float>> buffers;
  for (const auto& [name, record] : f.tensors) {
    if (!name.starts_with(v1_momentum_prefix)) continue;
    const std::string param = name.substr(v1_momentum_prefix.size());
    const auto it = listed.find(param);
    if (it == listed.end())
      fail("tensor \"", clip(name), "\" has no metadata entry \"", clip(name), "\"");
    if (!it->second) fail("tensor \"", clip(name), "\" is stored but its metadata says \"absent\"");
    buffers.emplace(param, tensor(record, name));
  }
  for (const auto& [param, present] : listed) {
    const auto it = buffers.find(param);
    if (present && it == buffers.end()) {
      fail("metadata says the momentum buffer of \"", clip(param), "\" is present but tensor \"",
           v1_momentum_prefix, clip(param), "\" is missing");
    }
    g.params.push_back(c.optimizer_params.size());
    c.optimizer_params.push_back(param);
    o.state.push_back(present
                          ? std::map<std::string, Tensor<float>>{{"momentum_buffer", it->second}}
                          : std::map<std::string, Tensor<float>>{});
  }
  // (Version 1 kept no parameter order: restore_checkpoint matches the names instead.)
  o.param_groups.push_back(std::move(g));
}

}  // namespace detail

/// Reads a checkpoint back from its safetensors form, checking everything that can be checked
/// without the live objects. source names the file in errors.
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
  const std::string& version = meta.text("version");
  if (version != checkpoint_version && version != "1") {
    fail("version \"", detail::clip(version),
         "\" is not supported (this ember reads versions 1 and ", checkpoint_version, ")");
  }
  Checkpoint c;
  c.source = source;
  c.epoch = meta.count("epoch");
  c.generator = {meta.u64("generator.seed"), meta.u64("generator.offset")};
  if (meta.has("loader_generator.seed") || meta.has("loader_generator.offset"))
    c.loader_generator = {meta.u64("loader_generator.seed"), meta.u64("loader_generator.offset")};
  for (const auto& [key, value] : f.metadata) {
    if (key.starts_with(detail::setting_prefix))
      c.settings[key.substr(detail::setting_prefix.size())] = value;
  }
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
    } else if (!name.starts_with(version == "1" ? detail::v1_momentum_prefix
                                                : detail::state_prefix)) {
      fail("unexpected tensor \"", clip(name), "\" (expected \"", detail::model_prefix,
           "...\" or \"", version == "1" ? detail::v1_momentum_prefix : detail::state_prefix,
           "...\")");
    }
  }
  if (version == "1") {
    detail::read_v1_optimizer(f, meta, c, tensor, fail);
    return c;
  }

  // The optimizer: groups of named parameters, then each parameter's state.
  optim::OptimizerState& o = c.optimizer;
  o.type = meta.text("optimizer");
  o.steps = meta.count("optimizer.steps");
  const std::int64_t groups = meta.count("optimizer.param_groups");
  if (groups < 1 || groups > 1'000'000) meta.bad("optimizer.param_groups", "a count of groups");
  std::map<std::string, std::size_t> index;  // parameter name -> its number
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::string prefix = std::string(detail::group_prefix) + std::to_string(g) + ".";
    optim::OptimizerState::Group group;
    for (const std::string& name : detail::split(meta.text(prefix + "params"))) {
      if (!index.emplace(name, c.optimizer_params.size()).second)
        fail("parameter \"", clip(name), "\" is in two optimizer groups");
      group.params.push_back(c.optimizer_params.size());
      c.optimizer_params.push_back(name);
    }
    for (auto it = f.metadata.lower_bound(prefix); it != f.metadata.end(); ++it) {
      if (!it->first.starts_with(prefix)) break;
      const std::string option = it->first.substr(prefix.size());
      if (option != "params") group.options[option] = meta.real(it->first);
    }
    if (group.options.count("lr") == 0) (void)meta.text(prefix + "lr");  // (throws: missing)
    if (group.options.at("lr") < 0) meta.bad(prefix + "lr", "a number of at least 0");
    o.param_groups.push_back(std::move(group));
  }
  o.state.resize(c.optimizer_params.size());
  std::map<std::string, std::size_t> stored;  // "<param>.<key>" -> parameter number
  for (std::size_t k = 0; k < c.optimizer_params.size(); ++k) {
    const std::string key = std::string(detail::state_prefix) + c.optimizer_params[k];
    for (const std::string& what : detail::split(meta.text(key))) {
      const std::string name = key + "." + what;
      const auto it = f.tensors.find(name);
      if (it == f.tensors.end())
        fail("metadata \"", clip(key), "\" lists \"", clip(what), "\" but tensor \"", clip(name),
             "\" is missing");
      o.state[k][what] = tensor(it->second, name);
      stored[name] = k;
    }
  }
  for (const auto& [name, record] : f.tensors) {
    if (name.starts_with(detail::state_prefix) && stored.count(name) == 0)
      fail("tensor \"", clip(name), "\" is not listed in the optimizer's state");
  }
  for (const auto& [key, value] : f.metadata) {
    if (key.starts_with(detail::state_prefix) &&
        f.tensors.count(key) == 0 &&  // (a state list, not a tensor name)
        std::find(c.optimizer_params.begin(), c.optimizer_params.end(),
                  key.substr(detail::state_prefix.size())) == c.optimizer_params.end())
      fail("metadata \"", clip(key), "\" names a parameter in no optimizer group");
  }
  const std::string& scheduler = meta.text("scheduler");
  if (scheduler != "none")
    c.scheduler = detail::get_scheduler(f.metadata, meta, "scheduler.", scheduler, 0);
  return c;
}

/// Writes a checkpoint atomically: path holds either its previous contents or the whole new
/// checkpoint, whatever happens during the write.
inline void save_checkpoint(const std::string& path, const Checkpoint& c) {
  save_safetensors(path, checkpoint_to_safetensors(c));
}
/// Captures `state` after `epoch` completed epochs and writes it atomically to `path`, with
/// free-form `settings`.
inline void save_checkpoint(const std::string& path, const TrainingState& state, std::int64_t epoch,
                            const std::map<std::string, std::string>& settings = {}) {
  save_checkpoint(path, capture_checkpoint(state, epoch, settings));
}

/// Reads and checks a checkpoint file (see checkpoint_from_safetensors); changes nothing.
[[nodiscard]] inline Checkpoint load_checkpoint(const std::string& path) {
  return checkpoint_from_safetensors(load_safetensors(path), path);
}

/// Refuses to resume when a setting of this run differs from the checkpoint's, or the
/// checkpoint does not record it. The error names the setting and both values.
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

/// Copies a checkpoint into the live objects, after checking that it fits them: the model's
/// names and shapes, the optimizer's type, groups and parameters (by the model's names) and
/// its state's shapes, the scheduler's type and state, and a loader generator state when a
/// loader generator is given. On any error nothing has changed. As PyTorch's load_state_dict,
/// the optimizer's options (lr included) and the scheduler's settings come from the checkpoint;
/// optimizer state tensors are placed on their parameter's device.
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

  optim::Optimizer& opt = *state.optimizer;
  const std::vector<std::string> names = detail::optimizer_parameter_names(model, opt);
  if (c.optimizer.type != opt.type_name()) {
    fail("has the state of a ", clip(c.optimizer.type), " optimizer, but the run's is ",
         opt.type_name());
  }
  // The checkpoint's groups renumbered in the live optimizer's order of names (a version 1
  // checkpoint kept its buffers by name only).
  optim::OptimizerState o = c.optimizer;
  const bool by_name = c.optimizer.param_groups.size() == 1 && opt.num_param_groups() == 1;
  if (by_name) {
    std::map<std::string, std::size_t> position;
    for (std::size_t k = 0; k < c.optimizer_params.size(); ++k)
      position.emplace(c.optimizer_params[k], k);
    for (const std::string& name : names) {
      if (position.count(name) == 0)
        fail("has no optimizer state entry for parameter \"", name, "\"");
    }
    for (const std::string& name : c.optimizer_params) {
      if (std::find(names.begin(), names.end(), name) == names.end())
        fail("has optimizer state for \"", clip(name), "\", which the optimizer does not update");
    }
    o.state.clear();
    o.param_groups[0].params.clear();
    for (std::size_t k = 0; k < names.size(); ++k) {
      o.state.push_back(c.optimizer.state[position.at(names[k])]);
      o.param_groups[0].params.push_back(k);
    }
  } else {
    if (c.optimizer.param_groups.size() != opt.num_param_groups()) {
      fail("has ", c.optimizer.param_groups.size(), " optimizer parameter groups, the run ",
           opt.num_param_groups());
    }
    if (c.optimizer_params != names) {
      fail("the optimizer's parameters differ from the run's (the checkpoint updates ",
           clip(detail::join(c.optimizer_params)), ")");
    }
  }
  if (state.scheduler != nullptr && !c.scheduler)
    fail("has no scheduler state, but the run has a ", state.scheduler->type_name(), " scheduler");
  if (state.scheduler == nullptr && c.scheduler)
    fail("has ", clip(c.scheduler->type), " scheduler state, but the run has no scheduler");
  if (state.scheduler != nullptr && c.scheduler->type != state.scheduler->type_name()) {
    fail("has ", clip(c.scheduler->type), " scheduler state, but the run's scheduler is a ",
         state.scheduler->type_name());
  }
  if (state.loader_generator != nullptr && !c.loader_generator)
    fail("has no data loader generator state");
  if (c.optimizer.steps < 0 || c.epoch < 0) fail("negative step or epoch count");

  // ---- then apply: the optimizer and scheduler check their states as they load them, and are
  // put back as they were if either refuses ----
  const optim::OptimizerState opt_before = opt.state_dict();
  const std::optional<optim::SchedulerState> sched_before =
      state.scheduler != nullptr ? std::optional(state.scheduler->state_dict()) : std::nullopt;
  try {
    opt.load_state_dict(o);
    if (state.scheduler != nullptr) state.scheduler->load_state_dict(*c.scheduler);
  } catch (const Error& e) {
    opt.load_state_dict(opt_before);
    if (state.scheduler != nullptr) state.scheduler->load_state_dict(*sched_before);
    fail(detail::error_text(e));
  }
  model.load_state_dict(c.model, /*strict=*/true);
  c.generator.apply_to(*state.generator);
  if (state.loader_generator != nullptr) c.loader_generator->apply_to(*state.loader_generator);
}

}  // namespace ember::io
