#pragma once
// DistributedDataParallel: torch.nn.parallel.DistributedDataParallel, over a process group:
// MPI for modules on the CPU (MpiProcessGroup, the default), NCCL for modules on a CUDA device
// (NcclProcessGroup, dist/nccl.hpp, nvcc translation units). The group is DDP's only contact
// with the transport (ProcessGroup below): both are existing engines, nothing is home-made.
//
// - At construction every parameter and buffer is broadcast from rank 0, so all processes start
//   from rank 0's model.
// - Gradients are averaged over the processes in buckets: the parameters, in reverse order of
//   parameters() (about the order backward produces their gradients), are packed into buckets
//   of at most bucket_cap_mb (PyTorch's default 25 MiB), the first of at most first_bucket_mb
//   (PyTorch's 1 MiB: the last layers' small gradients start on the wire early). Each parameter has a post-accumulate-grad
//   hook (autograd engine); when the last gradient of a bucket is ready, the bucket is copied
//   into one flat buffer and its all-reduce starts (MPI_Iallreduce) while backward goes on
//   computing the earlier layers' gradients. Buckets start in index order on every process (an
//   MPI requirement for collectives), so a bucket that is ready before its predecessor waits for
//   it. When the last bucket has started (the end of backward), all are waited on, divided by the
//   world size and copied back into .grad(): after backward() the gradients are the average and
//   the optimizer step can follow.
// - buffers (BatchNorm's running statistics) are broadcast from rank 0 at every forward
//   (PyTorch's broadcast_buffers=True). SyncBatchNorm is not provided: each process normalises
//   with its own batch's statistics.
// - no_sync(): backward passes inside it accumulate gradients locally; the first backward after
//   it averages the accumulated gradients (gradient accumulation over micro-batches).
//
// Every parameter must receive a gradient in each synchronised backward (PyTorch's default
// find_unused_parameters=False); otherwise the next forward() throws, naming the parameter.
//
// OpenMPI progresses a started all-reduce only inside MPI calls; each hook tests the buckets in
// flight, which moves them on while backward runs.
//
//   dist::init(&argc, &argv);
//   auto model = std::make_shared<Net>();
//   dist::DistributedDataParallel ddp(model);       // rank 0's weights everywhere
//   optim::SGD opt(ddp.parameters(), {.lr = 0.01});
//   loss = nll_loss(ddp(x), y); loss.backward();    // gradients averaged when it returns
//   opt.step();
//
// On GPUs (one process per GPU, the model on cuda:local_rank()):
//   auto group = std::make_shared<dist::NcclProcessGroup>();   // dist/nccl.hpp
//   model->to(Device::cuda(group->device()));
//   dist::DistributedDataParallel ddp(model, {}, group);

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ember/autograd/engine.hpp"
#include "ember/dist/comm.hpp"
#include "ember/nn/module.hpp"
#include "ember/ops/elementwise.hpp"

namespace ember::dist {

/// DistributedDataParallel's settings (PyTorch's names and defaults).
struct DDPOptions {
  /// Largest bucket, in MiB of float gradients (PyTorch: bucket_cap_mb=25).
  double bucket_cap_mb = 25;
  /// Largest first bucket (PyTorch's _DEFAULT_FIRST_BUCKET_BYTES, 1 MiB), at most bucket_cap_mb.
  double first_bucket_mb = 1;
  /// Broadcast rank 0's buffers at every forward (PyTorch: broadcast_buffers=True).
  bool broadcast_buffers = true;
};

/// What happened to bucket b during a backward: when its all-reduce started, counted in
/// gradients made ready so far (of the module's total) — the proof that it overlapped backward.
struct BucketLaunch {
  std::size_t bucket = 0;           ///< bucket index (0 holds the last parameters)
  std::size_t grads_ready = 0;      ///< gradients ready, of all parameters, when it started
};

/// A started all-reduce of a process group.
class PendingReduce {
 public:
  virtual ~PendingReduce() = default;
  /// True once it completed; drives the transport's progress (MPI progresses only inside calls).
  virtual bool test() = 0;
  /// Waits until it completed, as far as the next ops on the tensor's device see; throws
  /// ember::Error past dist::timeout() (a peer gone) rather than hang.
  virtual void wait() = 0;
};

/// The collectives DistributedDataParallel needs (PyTorch's ProcessGroup, reduced to them), on
/// contiguous float tensors of the devices the group accepts.
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  /// "mpi", "nccl", ...: for messages.
  [[nodiscard]] virtual std::string name() const = 0;
  /// Whether tensors on `d` can take part in this group's collectives.
  [[nodiscard]] virtual bool accepts(const Device& d) const = 0;
  /// rank `root`'s values everywhere, in place, complete on return.
  virtual void broadcast(Tensor<float>& t, int root) = 0;
  /// Starts the sum over the processes of `flat`, in place.
  [[nodiscard]] virtual std::unique_ptr<PendingReduce> all_reduce_sum(Tensor<float>& flat) = 0;
};

/// The MPI process group of the job (dist::init): CPU tensors.
class MpiProcessGroup final : public ProcessGroup {
 public:
  [[nodiscard]] std::string name() const override { return "mpi"; }
  [[nodiscard]] bool accepts(const Device& d) const override { return d.is_cpu(); }
  void broadcast(Tensor<float>& t, int root) override { dist::broadcast(t, root); }
  [[nodiscard]] std::unique_ptr<PendingReduce> all_reduce_sum(Tensor<float>& flat) override {
    struct Pending final : PendingReduce {
      explicit Pending(Work w) : work(std::move(w)) {}
      bool test() override { return work.test(); }
      void wait() override { work.wait(); }
      Work work;
    };
    EMBER_CHECK(flat.device().is_cpu() && flat.is_contiguous(),
                "MpiProcessGroup::all_reduce_sum: expected a contiguous CPU tensor, got one on ",
                flat.device().str());
    return std::make_unique<Pending>(all_reduce_async(flat.data(), flat.numel()));
  }
};

/// Data parallelism over the processes of the job: wraps a module whose parameters are float
/// tensors on one device the process group takes (the CPU for MPI, the group's GPU for NCCL);
/// state_dict names are the module's prefixed with "module." as PyTorch's.
class DistributedDataParallel : public nn::Module {
 public:
  /// `group`: the collectives' backend; null takes MPI (CPU modules).
  explicit DistributedDataParallel(std::shared_ptr<nn::Module> module, DDPOptions options = {},
                                   std::shared_ptr<ProcessGroup> group = nullptr)
      : nn::Module("DistributedDataParallel"),
        options_(options),
        group_(group != nullptr ? std::move(group) : std::make_shared<MpiProcessGroup>()) {
    EMBER_CHECK(module != nullptr, "DistributedDataParallel: no module (a null pointer)");
    EMBER_CHECK(is_initialized(), "DistributedDataParallel: call dist::init() first");
    EMBER_CHECK(options.bucket_cap_mb > 0 && options.first_bucket_mb > 0,
                "DistributedDataParallel: bucket_cap_mb and first_bucket_mb must be positive, "
                "got ", options.bucket_cap_mb, " and ", options.first_bucket_mb);
    module_ = register_module("module", std::move(module));
    check_devices();
    // The same model on every process: rank 0's parameters and buffers.
    for (auto& [name, p] : module_->named_parameters()) sync_tensor(p, name);
    for (auto& [name, b] : module_->named_buffers()) sync_tensor(b, name);
    build_buckets();
  }
  ~DistributedDataParallel() override {
    for (std::size_t i = 0; i < params_.size(); ++i)
      params_[i].tensor.remove_post_accumulate_grad_hook(params_[i].hook);
  }
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  /// The process group the gradients are averaged over.
  [[nodiscard]] const std::shared_ptr<ProcessGroup>& process_group() const { return group_; }

  /// The wrapped module (PyTorch's ddp.module).
  [[nodiscard]] const std::shared_ptr<nn::Module>& module() const { return module_; }

  /// Broadcasts rank 0's buffers (when broadcast_buffers), then runs the module. Throws when the
  /// previous backward left a bucket unreduced (a parameter without a gradient).
  nn::Tensor forward(const nn::Tensor& x) override {
    check_previous_reduction();
    if (options_.broadcast_buffers && world_size() > 1) {
      for (auto& [name, b] : module_->named_buffers()) sync_tensor(b, name);
    }
    return module_->forward(x);
  }

  /// Inside its scope, backward passes do not average: gradients accumulate on each process
  /// (PyTorch's `with ddp.no_sync():`).
  class NoSyncGuard {
   public:
    explicit NoSyncGuard(DistributedDataParallel& d) : d_(d), before_(d.sync_) { d.sync_ = false; }
    ~NoSyncGuard() { d_.sync_ = before_; }
    NoSyncGuard(const NoSyncGuard&) = delete;
    NoSyncGuard& operator=(const NoSyncGuard&) = delete;

   private:
    DistributedDataParallel& d_;
    bool before_;
  };
  /// auto guard = ddp.no_sync(); ... backward() without averaging until the guard ends.
  [[nodiscard]] NoSyncGuard no_sync() { return NoSyncGuard(*this); }

  /// The buckets: indices into parameters(), in the order their all-reduces start.
  [[nodiscard]] std::vector<std::vector<std::size_t>> bucket_indices() const {
    std::vector<std::vector<std::size_t>> out;
    for (const Bucket& b : buckets_) out.push_back(b.params);
    return out;
  }
  /// When each bucket of the last synchronised backward started.
  [[nodiscard]] const std::vector<BucketLaunch>& last_launches() const { return launches_; }
  /// Seconds the last synchronised backward spent in all-reduce calls and waits (copy, start,
  /// progress tests, the final wait and the averaging).
  [[nodiscard]] double last_comm_seconds() const { return comm_seconds_; }
  /// Seconds of the final wait alone (the part not hidden behind backward).
  [[nodiscard]] double last_wait_seconds() const { return wait_seconds_; }

 private:
  struct Param {
    nn::Tensor tensor;
    std::string name;
    std::size_t bucket = 0, offset = 0;
    std::uint64_t hook = 0;
    bool ready = false;  // its gradient arrived in the current backward
  };
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_
    std::int64_t size = 0;            // elements
    nn::Tensor flat;                  // size elements, on the parameters' device
    std::size_t ready = 0;
    bool launched = false;
    std::unique_ptr<PendingReduce> work;
  };

  // Every parameter and buffer on one device, which the group takes.
  void check_devices() {
    std::optional<Device> first;
    std::string first_name;
    auto check = [&](const std::string& name, const nn::Tensor& t) {
      EMBER_CHECK(group_->accepts(t.device()), "DistributedDataParallel: ", name, " is on ",
                  t.device().str(), ", which the '", group_->name(), "' process group does not "
                  "take (MPI: CPU tensors; NCCL: its own GPU's)");
      if (!first) {
        first = t.device();
        first_name = name;
      }
      EMBER_CHECK(t.device() == *first, "DistributedDataParallel: ", name, " is on ",
                  t.device().str(), " but ", first_name, " on ", first->str(),
                  ": the module must be on one device");
    };
    for (auto& [name, p] : module_->named_parameters()) check(name, p);
    for (auto& [name, b] : module_->named_buffers()) check(name, b);
    if (first) device_ = *first;
  }

  void sync_tensor(nn::Tensor& t, const std::string& name) {
    if (world_size() == 1) return;
    EMBER_CHECK(t.is_contiguous(), "DistributedDataParallel: ", name, " is not contiguous");
    // Shapes must agree before MPI copies bytes.
    const auto sizes = all_gather_value(t.numel());
    for (std::size_t r = 0; r < sizes.size(); ++r)
      EMBER_CHECK(sizes[r] == t.numel(), "DistributedDataParallel: ", name, " has ", t.numel(),
                  " elements on rank ", rank(), " but ", sizes[r], " on rank ", r,
                  ": every process must build the same model");
    NoGradGuard no_grad;
    group_->broadcast(t, 0);
  }

  void build_buckets() {
    const nn::NamedTensors named = module_->named_parameters();
    const double cap_bytes = options_.bucket_cap_mb * 1024.0 * 1024.0;
    const double first_bytes = std::min(options_.first_bucket_mb * 1024.0 * 1024.0, cap_bytes);
    for (auto it = named.rbegin(); it != named.rend(); ++it) {
      if (!it->second.requires_grad()) continue;
      Param p{it->second, it->first};
      const std::size_t bytes = static_cast<std::size_t>(p.tensor.numel()) * sizeof(float);
      const double cap = buckets_.size() == 1 ? first_bytes : cap_bytes;  // the open bucket's
      if (buckets_.empty() ||
          (!buckets_.back().params.empty() &&
           static_cast<double>(static_cast<std::size_t>(buckets_.back().size) * sizeof(float) +
                               bytes) > cap))
        buckets_.emplace_back();
      Bucket& b = buckets_.back();
      p.bucket = buckets_.size() - 1;
      p.offset = static_cast<std::size_t>(b.size);
      b.size += p.tensor.numel();
      b.params.push_back(params_.size());
      params_.push_back(std::move(p));
    }
    for (Bucket& b : buckets_) b.flat = nn::Tensor::empty({b.size}, device_);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      params_[i].hook = params_[i].tensor.register_post_accumulate_grad_hook(
          [this, i](const nn::Tensor&) { on_grad_ready(i); });
    }
  }

  void on_grad_ready(std::size_t i) {
    if (!sync_ || world_size() == 1) return;
    const auto t0 = std::chrono::steady_clock::now();
    if (ready_count_ == 0) {
      launches_.clear();
      for (Bucket& b : buckets_) b.ready = 0;
      for (Param& p : params_) p.ready = false;
      comm_seconds_ = wait_seconds_ = 0;
    }
    ++ready_count_;
    params_[i].ready = true;
    ++buckets_[params_[i].bucket].ready;
    // Start every bucket that is complete and whose predecessors have started.
    while (next_launch_ < buckets_.size() &&
           buckets_[next_launch_].ready == buckets_[next_launch_].params.size()) {
      launch(next_launch_++);
    }
    for (Bucket& b : buckets_)
      if (b.launched) b.work->test();  // drives MPI's progress while backward goes on
    if (next_launch_ == buckets_.size()) {
      finish();
    }
    comm_seconds_ += seconds_since(t0);
  }

  void launch(std::size_t bi) {
    Bucket& b = buckets_[bi];
    NoGradGuard no_grad;
    for (std::size_t pi : b.params) {
      const Param& p = params_[pi];
      const nn::Tensor g = p.tensor.grad();
      EMBER_CHECK(g.defined() && g.is_contiguous() && g.device() == device_,
                  "DistributedDataParallel: the gradient of ", p.name,
                  " is not a contiguous tensor on ", device_.str());
      const auto at = static_cast<std::int64_t>(p.offset);
      if (device_.is_cpu()) {
        std::copy_n(g.data(), g.numel(), b.flat.data() + at);
      } else {  // a device copy on the device's stream, ordered before the all-reduce
        b.flat.slice(0, at, at + g.numel()).copy_(g.reshape({g.numel()}));
      }
    }
    b.work = group_->all_reduce_sum(b.flat);
    b.launched = true;
    launches_.push_back({bi, ready_count_});
  }

  void finish() {
    const auto t0 = std::chrono::steady_clock::now();
    const float inv = 1.0f / static_cast<float>(world_size());
    NoGradGuard no_grad;
    for (Bucket& b : buckets_) {
      b.work->wait();
      b.launched = false;
      if (!device_.is_cpu()) {  // the average on the device, then copies into the gradients
        const nn::Tensor mean = mul_scalar(b.flat, inv);
        for (std::size_t pi : b.params) {
          const Param& p = params_[pi];
          nn::Tensor g = p.tensor.grad();
          const auto at = static_cast<std::int64_t>(p.offset);
          g.copy_(mean.slice(0, at, at + g.numel()).reshape(g.shape()));
        }
        continue;
      }
      for (std::size_t pi : b.params) {
        const Param& p = params_[pi];
        nn::Tensor g = p.tensor.grad();
        float* dst = g.data();
        const float* src = b.flat.data() + p.offset;
        for (std::int64_t k = 0; k < g.numel(); ++k) dst[k] = src[k] * inv;
        g.bump_version("DistributedDataParallel gradient averaging");
      }
    }
    wait_seconds_ = seconds_since(t0);
    ready_count_ = 0;
    next_launch_ = 0;
  }

  void check_previous_reduction() {
    if (ready_count_ == 0) return;
    std::string missing;
    for (const Bucket& b : buckets_) {
      if (b.ready == b.params.size()) continue;
      for (std::size_t pi : b.params)
        if (!params_[pi].ready) missing += (missing.empty() ? "" : ", ") + params_[pi].name;
    }
    // Started all-reduces must still complete on every process before anything else.
    for (Bucket& b : buckets_) {
      if (b.launched) b.work->wait();
      b.launched = false;
      b.ready = 0;
    }
    ready_count_ = 0;
    next_launch_ = 0;
    throw Error("DistributedDataParallel: the previous backward did not produce gradients for "
                "every parameter" + (missing.empty() ? std::string() : " (" + missing + ")") +
                ", so its gradients were not averaged; every parameter must take part in the "
                "loss (unused parameters are not supported)");
  }

  static double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  std::shared_ptr<nn::Module> module_;
  DDPOptions options_;
  std::shared_ptr<ProcessGroup> group_;
  Device device_ = Device::cpu();  // of the parameters
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  std::vector<BucketLaunch> launches_;
  std::size_t ready_count_ = 0, next_launch_ = 0;
  bool sync_ = true;
  double comm_seconds_ = 0, wait_seconds_ = 0;
};

}  // namespace ember::dist
