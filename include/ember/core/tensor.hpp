#pragma once
// Tensor<T>: a cheap, shared handle to (storage, shape, strides, offset) plus autograd
// metadata. Copies share everything; views share storage; clone() copies the data.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/autograd/grad_mode.hpp"
#include "ember/autograd/node.hpp"
#include "ember/core/device.hpp"
#include "ember/core/dtype.hpp"
#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/shape.hpp"
#include "ember/core/storage.hpp"

namespace ember {

template <class T>
struct TensorImpl {
  /// The memory, shared by every view of it.
  std::shared_ptr<Storage<T>> storage;
  /// Sizes, outermost first.
  Shape shape;
  /// Strides in elements.
  Shape strides;
  /// Offset of the first element in the storage, in elements.
  std::int64_t offset = 0;
  std::int64_t numel = 0;  ///< product of shape, cached
  /// autograd; meaningful for float and double only
  bool requires_grad = false;
  /// The accumulated gradient (leaves), or null.
  std::shared_ptr<TensorImpl<T>> grad;
  /// The operation that made this tensor (null for leaves).
  std::shared_ptr<autograd::Node<T>> grad_fn;
  /// Called by backward() once a leaf's gradient for that pass is complete (every edge into the
  /// leaf has delivered), with its id (Tensor::register_post_accumulate_grad_hook).
  std::vector<std::pair<std::uint64_t, std::function<void(const std::shared_ptr<TensorImpl>&)>>>
      post_grad_hooks;
};

/// Calls f(i, storage_index) for every element in C order, i counting from 0.
template <class F>
void for_each_strided(const Shape& shape, const Shape& strides, std::int64_t offset, F&& f) {
  const std::int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::size_t rank = shape.size();
  if (rank == 0) {
    f(std::int64_t{0}, offset);
    return;
  }
  std::vector<std::int64_t> idx(rank, 0);
  const std::int64_t inner = shape[rank - 1], inner_stride = strides[rank - 1];
  std::int64_t base = offset;
  for (std::int64_t i = 0; i < n; i += inner) {
    for (std::int64_t j = 0; j < inner; ++j) f(i + j, base + j * inner_stride);
    for (std::size_t d = rank - 1; d-- > 0;) {
      base += strides[d];
      if (++idx[d] < shape[d]) break;
      base -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

template <class T>
class Tensor {
  static_assert(Element<T>, "ember::Tensor<T>: T must be float, double, int64_t, int32_t or "
                            "uint8_t (YOU_USED_AN_UNSUPPORTED_ELEMENT_TYPE)");

 public:
  /// The element type.
  using value_type = T;

  Tensor() = default;
  /// Wraps an implementation (shared, not copied).
  explicit Tensor(std::shared_ptr<TensorImpl<T>> impl) : impl_(std::move(impl)) {}

  // ---- factories --------------------------------------------------------------------------
  /// An uninitialised tensor of `shape` on `device` (torch.empty); throws ember::Error when the
  /// device is not available.
  [[nodiscard]] static Tensor empty(const Shape& shape, Device device = Device::cpu()) {
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = std::make_shared<Storage<T>>(numel_of(shape), device);
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    impl->numel = impl->storage->size();
    return Tensor(std::move(impl));
  }
  /// A tensor of `shape` filled with `value` (torch.full).
  [[nodiscard]] static Tensor full(const Shape& shape, T value, Device device = Device::cpu()) {
    Tensor t = empty(shape, device);
    if (device.is_cpu()) std::fill_n(t.data(), t.numel(), value);
    else if (t.numel() > 0) backend::cuda_copy<T>().fill(device.index, t.data(), t.numel(), value);
    return t;
  }
  /// Zeros (torch.zeros).
  [[nodiscard]] static Tensor zeros(const Shape& shape, Device d = Device::cpu()) {
    return full(shape, T(0), d);
  }
  /// Ones (torch.ones).
  [[nodiscard]] static Tensor ones(const Shape& shape, Device d = Device::cpu()) {
    return full(shape, T(1), d);
  }
  /// A 0-dimensional tensor holding `value` (torch.tensor(value)).
  [[nodiscard]] static Tensor scalar(T value) { return full({}, value); }
  /// [start, end) in steps of step, PyTorch's arange.
  [[nodiscard]] static Tensor arange(double start, double end, double step = 1) {
    EMBER_CHECK(step != 0, "arange: step must be non-zero");
    const auto n = static_cast<std::int64_t>(std::max(0.0, std::ceil((end - start) / step)));
    Tensor t = empty({n});
    for (std::int64_t i = 0; i < n; ++i) t.data()[i] = static_cast<T>(start + step * i);
    return t;
  }
  /// 0, 1, ..., end - 1 (torch.arange(end)).
  [[nodiscard]] static Tensor arange(std::int64_t end) {
    return arange(0.0, static_cast<double>(end));
  }
  /// Copies `values` into a new tensor of the given shape (1-D when shape is empty).
  [[nodiscard]] static Tensor from_vector(const std::vector<T>& values, Shape shape = {}) {
    if (shape.empty() && values.size() != 1) shape = {static_cast<std::int64_t>(values.size())};
    EMBER_CHECK(numel_of(shape) == static_cast<std::int64_t>(values.size()), "from_vector: ",
                values.size(), " values do not fill shape ", shape_str(shape));
    Tensor t = empty(shape);
    std::copy(values.begin(), values.end(), t.data());
    return t;
  }
  /// The values of a braced list, in the given shape (1-D when empty): Tensor<float>::from_list({1,
  /// 2, 3}).
  [[nodiscard]] static Tensor from_list(std::initializer_list<T> values, Shape shape = {}) {
    return from_vector(std::vector<T>(values), std::move(shape));
  }
  /// Uniform in [low, high) from the Philox generator.
  [[nodiscard]] static Tensor uniform(const Shape& shape, double low, double high,
                                      Generator& gen = default_generator())
    requires Real<T>
  {
    Tensor t = empty(shape);
    const std::uint64_t first = gen.reserve(static_cast<std::uint64_t>(t.numel()));
    T* p = t.data();
    for (std::int64_t i = 0; i < t.numel(); ++i)
      p[i] = static_cast<T>(low + (high - low) * Philox::uniform<double>(gen.seed(), first + i));
    return t;
  }
  /// Uniform in [0, 1) from `gen` (torch.rand); float and double only.
  [[nodiscard]] static Tensor rand(const Shape& shape, Generator& gen = default_generator())
    requires Real<T>
  {
    Tensor t = empty(shape);
    const std::uint64_t first = gen.reserve(static_cast<std::uint64_t>(t.numel()));
    T* p = t.data();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = Philox::uniform<T>(gen.seed(), first + i);
    return t;
  }
  /// Standard normal from `gen` (torch.randn); float and double only.
  [[nodiscard]] static Tensor randn(const Shape& shape, Generator& gen = default_generator())
    requires Real<T>
  {
    Tensor t = empty(shape);
    const std::uint64_t first = gen.reserve(static_cast<std::uint64_t>(t.numel()));
    T* p = t.data();
    for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = Philox::normal<T>(gen.seed(), first + i);
    return t;
  }

  // ---- metadata ---------------------------------------------------------------------------
  /// False for a default-constructed tensor (no storage); most calls on one throw ember::Error.
  [[nodiscard]] bool defined() const { return impl_ != nullptr; }
  /// The sizes (x.shape).
  [[nodiscard]] const Shape& shape() const { return impl().shape; }
  /// The strides in elements (x.stride()).
  [[nodiscard]] const Shape& strides() const { return impl().strides; }
  /// The offset of the first element in the storage, in elements.
  [[nodiscard]] std::int64_t offset() const { return impl().offset; }
  /// The number of dimensions (x.dim()).
  [[nodiscard]] std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  /// Size of dimension d; negative d counts from the end (x.size(d)); throws when out of range.
  [[nodiscard]] std::int64_t size(std::int64_t d) const {
    EMBER_CHECK(dim() > 0, "size(", d, "): a 0-d tensor has no dimensions");
    return shape()[static_cast<std::size_t>(wrap_dim(d, dim()))];
  }
  /// The number of elements.
  [[nodiscard]] std::int64_t numel() const { return impl().numel; }
  /// Where the storage lives.
  [[nodiscard]] Device device() const { return impl().storage->device(); }
  /// The element type as a DType value (f32, f64, i64, i32 or u8).
  [[nodiscard]] static constexpr DType dtype() { return dtype_of<T>(); }
  /// True when the elements are laid out in C order without gaps.
  [[nodiscard]] bool is_contiguous() const {
    return numel() == 0 || is_contiguous_layout(shape(), strides());  // empty: as PyTorch
  }
  /// True when both tensors view the same storage.
  [[nodiscard]] bool shares_storage(const Tensor& o) const {
    return impl().storage == o.impl().storage;
  }
  /// The shared implementation (for ember's internals and tests).
  [[nodiscard]] const std::shared_ptr<TensorImpl<T>>& impl_ptr() const { return impl_; }

  /// Pointer to the first element (storage + offset). Strides apply.
  [[nodiscard]] T* data() const { return impl().storage->data() + impl().offset; }

  // ---- element access (bounds-checked) ----------------------------------------------------
  /// Element (i, j, ...) by reference, one index per dimension, bounds-checked (throws
  /// ember::Error); CPU only.
  template <std::integral... I>
  [[nodiscard]] T& operator()(I... idx) const {
    const std::int64_t list[] = {static_cast<std::int64_t>(idx)..., 0};
    return element(list, sizeof...(I));
  }
  /// Element at the index list `idx`, bounds-checked.
  [[nodiscard]] T& at(const Shape& idx) const {
    return element(idx.data(), idx.size());
  }
  /// The only element's value (x.item()); throws unless numel() == 1.
  [[nodiscard]] T item() const {
    EMBER_CHECK(numel() == 1, "item(): tensor of shape ", shape_str(shape()),
                " has ", numel(), " elements, not one");
    if (device().is_cuda()) return to_vector()[0];
    return *data();
  }
  /// The elements in C order, as a std::vector (any layout).
  [[nodiscard]] std::vector<T> to_vector() const {
    std::vector<T> out(static_cast<std::size_t>(numel()));
    if (device().is_cuda()) {
      const Tensor c = contiguous();
      if (numel() > 0)
        backend::cuda_runtime().copy_to_host(device().index, out.data(), c.data(),
                                             out.size() * sizeof(T));
      return out;
    }
    const T* base = impl().storage->data();
    for_each_strided(shape(), strides(), offset(),
                     [&](std::int64_t i, std::int64_t s) { out[static_cast<std::size_t>(i)] = base[s]; });
    return out;
  }

  // ---- views and copies (recorded by autograd) --------------------------------------------
  [[nodiscard]] Tensor reshape(Shape shape) const;  ///< a view when the layout allows it
  [[nodiscard]] Tensor view(Shape shape) const;     ///< must be a view, else an error
  /// Dimensions start_dim..end_dim merged into one (x.flatten); a view when the layout allows it.
  [[nodiscard]] Tensor flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  /// Dimensions d0 and d1 swapped: a view (x.transpose).
  [[nodiscard]] Tensor transpose(std::int64_t d0, std::int64_t d1) const;
  /// transpose(0, 1) (x.t()).
  [[nodiscard]] Tensor t() const { return transpose(0, 1); }
  /// Dimensions reordered as `dims`: a view (x.permute).
  [[nodiscard]] Tensor permute(const Shape& dims) const;
  /// Elements start, start + step, ... below end along `dim`: a view (x[..., start:end:step]).
  [[nodiscard]] Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end,
                             std::int64_t step = 1) const;
  /// Index `index` of dimension `dim`, which is removed: a view (x.select).
  [[nodiscard]] Tensor select(std::int64_t dim, std::int64_t index) const;
  /// A new dimension of size 1 at `dim`: a view (x.unsqueeze).
  [[nodiscard]] Tensor unsqueeze(std::int64_t dim) const;
  /// Dimension `dim` removed if its size is 1: a view (x.squeeze(dim)).
  [[nodiscard]] Tensor squeeze(std::int64_t dim) const;
  /// This tensor if contiguous, else a contiguous copy (x.contiguous()).
  [[nodiscard]] Tensor contiguous() const;
  /// A contiguous copy, recorded by autograd (x.clone()).
  [[nodiscard]] Tensor clone() const;
  /// Same storage, no autograd history, requires_grad false.
  [[nodiscard]] Tensor detach() const {
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = this->impl().storage;
    impl->shape = shape();
    impl->strides = strides();
    impl->offset = offset();
    impl->numel = numel();
    return Tensor(std::move(impl));
  }
  /// Element type conversion (a copy; not recorded).
  template <Element U>
  [[nodiscard]] Tensor<U> cast() const {
    Tensor<U> out = Tensor<U>::empty(shape(), device());
    if (device().is_cuda()) {
      const Tensor c = contiguous();
      if (numel() > 0)
        backend::cuda_copy<T>().cast(device().index, c.data(), out.data(), dtype_of<U>(), numel());
      return out;
    }
    const T* base = impl().storage->data();
    U* o = out.data();
    for_each_strided(shape(), strides(), offset(),
                     [&](std::int64_t i, std::int64_t s) { o[i] = static_cast<U>(base[s]); });
    return out;
  }
  /// A copy on device d (this tensor itself when it is already there). Recorded by autograd:
  /// the gradient flows back to this tensor's device.
  [[nodiscard]] Tensor to(Device d) const;
  /// A copy on the CPU (this tensor when already there), recorded by autograd (x.cpu()).
  [[nodiscard]] Tensor cpu() const { return to(Device::cpu()); }
  /// Moves the data to device d in place (as a contiguous buffer): every handle to this tensor
  /// sees the move, which is how a module's parameters change device. A gradient moves too.
  Tensor& move_to_(Device d) {
    if (d == device()) return *this;
    const Tensor moved = detach().to_copy(d);
    impl().storage = moved.impl().storage;
    impl().strides = moved.strides();
    impl().offset = 0;
    if (impl().grad) Tensor(impl().grad).move_to_(d);
    return *this;
  }

  // ---- in-place (never recorded; refused on leaves that require grad while recording) -----
  /// Each one bumps the storage's version (shared by every view), in grad mode or not, so that
  /// backward() can refuse a saved tensor changed since it was saved.
  Tensor& fill_(T value) { return fill_as(value, "fill_"); }
  /// Sets every element to 0 in place (x.zero_()).
  Tensor& zero_() { return fill_as(T(0), "zero_"); }
  /// Copies src's elements (same shape; any devices) in place (x.copy_(src)); throws for a shape
  /// mismatch.
  Tensor& copy_(const Tensor& src) {
    check_inplace("copy_");
    EMBER_CHECK(src.shape() == shape(), "copy_: source shape ", shape_str(src.shape()),
                " differs from destination shape ", shape_str(shape()));
    bump_version("copy_");
    if (device().is_cuda() || src.device().is_cuda()) {
      if (numel() == 0) return *this;
      // Bring the source to this device first (a fresh buffer, so overlap cannot bite).
      Tensor s = src.device() == device() && !shares_storage(src) ? src : src.detach().to_copy(device());
      if (device().is_cpu()) {  // s is now on the CPU
        const std::vector<T> values = s.to_vector();
        T* base = impl().storage->data();
        for_each_strided(shape(), strides(), offset(), [&](std::int64_t i, std::int64_t st) {
          base[st] = values[static_cast<std::size_t>(i)];
        });
        return *this;
      }
      backend::cuda_copy<T>().strided_copy(device().index, s.impl().storage->data(), s.view_desc(),
                                           impl().storage->data(), view_desc(), numel());
      return *this;
    }
    if (is_contiguous() && src.is_contiguous() && !shares_storage(src)) {
      std::copy_n(src.data(), numel(), data());
      return *this;
    }
    const std::vector<T> values = src.to_vector();  // safe when src and *this overlap
    T* base = impl().storage->data();
    for_each_strided(shape(), strides(), offset(),
                     [&](std::int64_t i, std::int64_t s) { base[s] = values[static_cast<std::size_t>(i)]; });
    return *this;
  }

  // ---- autograd -----------------------------------------------------------------------------
  /// True when autograd tracks this tensor (x.requires_grad).
  [[nodiscard]] bool requires_grad() const { return defined() && impl().requires_grad; }
  /// Marks a float or double leaf as a parameter whose gradient backward() accumulates
  /// (x.requires_grad_()).
  Tensor& requires_grad_(bool on = true) {
    static_assert(Real<T>, "only float and double tensors can require gradients");
    EMBER_CHECK(is_leaf() || on, "requires_grad_(false) on a non-leaf tensor; use detach()");
    impl().requires_grad = on;
    return *this;
  }
  /// True for tensors no recorded op made (parameters, inputs).
  [[nodiscard]] bool is_leaf() const { return impl().grad_fn == nullptr; }
  /// The node that made this tensor (x.grad_fn), null for leaves.
  [[nodiscard]] const std::shared_ptr<autograd::Node<T>>& grad_fn() const {
    return impl().grad_fn;
  }
  /// The accumulated gradient (undefined until a backward pass reaches this leaf).
  [[nodiscard]] Tensor grad() const {
    return impl().grad ? Tensor(impl().grad) : Tensor();
  }
  /// PyTorch's register_post_accumulate_grad_hook for a leaf that requires grad: backward()
  /// calls hook(leaf) once per pass, right after the last gradient reaching the leaf was
  /// accumulated into its .grad(), while the rest of the graph may still be running (what
  /// DistributedDataParallel starts its all-reduce from). Returns an id for
  /// remove_post_accumulate_grad_hook.
  std::uint64_t register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) {
    static_assert(Real<T>, "only float and double tensors have gradients");
    EMBER_CHECK(is_leaf() && requires_grad(), "register_post_accumulate_grad_hook: the tensor ",
                "must be a leaf that requires grad");
    EMBER_CHECK(hook != nullptr, "register_post_accumulate_grad_hook: an empty function");
    auto& hooks = impl().post_grad_hooks;
    const std::uint64_t id = hooks.empty() ? 1 : hooks.back().first + 1;
    hooks.emplace_back(id, [h = std::move(hook)](const std::shared_ptr<TensorImpl<T>>& leaf) {
      h(Tensor(leaf));
    });
    return id;
  }
  /// Removes the hook with this id (nothing when there is none).
  void remove_post_accumulate_grad_hook(std::uint64_t id) {
    auto& hooks = impl().post_grad_hooks;
    std::erase_if(hooks, [id](const auto& h) { return h.first == id; });
  }
  /// Replaces the gradient (x.grad = g); an undefined g clears it.
  void set_grad(const Tensor& g) { impl().grad = g.defined() ? g.impl_ : nullptr; }
  /// Zeroes the gradient in place (set_to_none=true drops it instead, as PyTorch does).
  void zero_grad(bool set_to_none = false) {
    if (!impl().grad) return;
    if (set_to_none) impl().grad.reset();
    else if (impl().grad->storage->device().is_cuda()) {
      Tensor(impl().grad).fill_as(T(0), "zero_grad");
    } else {  // the gradient's own elements only: it may be a view into a larger storage
      TensorImpl<T>& g = *impl().grad;
      g.storage->version_counter().bump("zero_grad");
      T* base = g.storage->data();
      for_each_strided(g.shape, g.strides, g.offset,
                       [&](std::int64_t, std::int64_t s) { base[s] = T(0); });
    }
  }
  /// How many in-place writes this tensor's storage has had (PyTorch's _version): shared by
  /// every view of the storage. The in-place ops above, SGD's update and gradient accumulation
  /// bump it; code that writes through data() calls bump_version() itself.
  [[nodiscard]] std::uint64_t version() const {
    return impl().storage->version_counter().version();
  }
  /// `op` (a string literal) names the write in backward()'s error.
  void bump_version(const char* op = "a write through data()") const {
    impl().storage->version_counter().bump(op);
  }
  /// Back-propagates from this tensor. A non-scalar needs an explicit gradient. Defined by the
  /// autograd engine (autograd/engine.hpp), which every op header and <ember/ember.hpp> include.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

  /// This tensor's geometry as a kernel operand (rank <= 8).
  [[nodiscard]] StridedView view_desc() const {
    EMBER_CHECK(dim() <= kMaxDims, "tensors on CUDA devices have at most ", kMaxDims,
                " dimensions, got ", shape_str(shape()));
    StridedView v;
    v.rank = static_cast<int>(dim());
    for (int d = 0; d < v.rank; ++d) {
      v.shape[d] = shape()[static_cast<std::size_t>(d)];
      v.strides[d] = strides()[static_cast<std::size_t>(d)];
    }
    v.offset = offset();
    return v;
  }

  /// The implementation; throws ember::Error for an undefined tensor.
  [[nodiscard]] TensorImpl<T>& impl() const {
    EMBER_CHECK(impl_ != nullptr, "use of an undefined (default-constructed) tensor");
    return *impl_;
  }

 private:
  static bool is_contiguous_layout(const Shape& shape, const Shape& strides) {
    std::int64_t expected = 1;
    for (std::size_t i = shape.size(); i-- > 0;) {
      if (shape[i] == 1) continue;
      if (strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }
  // A contiguous copy of this tensor on device d (not recorded).
  Tensor to_copy(Device d) const {
    check_device_available(d);
    const Tensor src = contiguous();
    Tensor out = empty(shape(), d);
    const std::size_t bytes = static_cast<std::size_t>(numel()) * sizeof(T);
    if (bytes == 0) return out;
    const Device from = device();
    if (from.is_cpu() && d.is_cpu()) std::memcpy(out.data(), src.data(), bytes);
    else if (from.is_cpu()) backend::cuda_runtime().copy_to_device(d.index, out.data(), src.data(), bytes);
    else if (d.is_cpu()) backend::cuda_runtime().copy_to_host(from.index, out.data(), src.data(), bytes);
    else if (from == d) backend::cuda_runtime().copy_on_device(d.index, out.data(), src.data(), bytes);
    else return to_copy(Device::cpu()).to_copy(d);  // between two GPUs: through the host
    return out;
  }
  T& element(const std::int64_t* idx, std::size_t n) const {
    EMBER_CHECK(device().is_cpu(), "element access to a tensor on ", device().str(),
                ": copy it to the CPU first (.cpu())");
    EMBER_CHECK(static_cast<std::int64_t>(n) == dim(), "element access with ", n,
                " indices into a tensor of rank ", dim());
    std::int64_t off = offset();
    for (std::size_t d = 0; d < n; ++d) {
      std::int64_t i = idx[d];
      const std::int64_t size = shape()[d];
      if (i < 0) i += size;
      EMBER_CHECK(i >= 0 && i < size, "index ", idx[d], " out of range for dimension ", d,
                  " of size ", size);
      off += i * strides()[d];
    }
    return impl().storage->data()[off];
  }
  Tensor& fill_as(T value, const char* op) {
    check_inplace(op);
    bump_version(op);
    if (device().is_cuda()) {
      if (numel() == 0) return *this;
      if (is_contiguous()) {
        backend::cuda_copy<T>().fill(device().index, data(), numel(), value);
      } else {
        const Tensor filled = full(shape(), value, device());
        backend::cuda_copy<T>().strided_copy(device().index, filled.data(), filled.view_desc(),
                                             impl().storage->data(), view_desc(), numel());
      }
      return *this;
    }
    T* base = impl().storage->data();
    for_each_strided(shape(), strides(), offset(),
                     [&](std::int64_t, std::int64_t s) { base[s] = value; });
    return *this;
  }
  void check_inplace(const char* op) const {
    if constexpr (Real<T>) {
      EMBER_CHECK(!(GradMode::enabled() && impl().requires_grad && is_leaf()), op,
                  ": a leaf tensor that requires grad is used in an in-place operation "
                  "(wrap the update in ember::NoGradGuard)");
    }
  }
  // A view of this tensor's storage with new geometry.
  Tensor make_view(Shape shape, Shape strides, std::int64_t offset) const {
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = this->impl().storage;
    impl->shape = std::move(shape);
    impl->strides = std::move(strides);
    impl->offset = offset;
    impl->numel = numel_of(impl->shape);
    return Tensor(std::move(impl));
  }
  template <class U>
  friend class Tensor;

  std::shared_ptr<TensorImpl<T>> impl_;
};

/// Free-function factories: ember::zeros<float>({2, 3}) and friends (float by default).
template <Element T = float>
[[nodiscard]] Tensor<T> empty(const Shape& s, Device d = Device::cpu()) {
  return Tensor<T>::empty(s, d);
}
/// Zeros (torch.zeros).
template <Element T = float>
[[nodiscard]] Tensor<T> zeros(const Shape& s, Device d = Device::cpu()) {
  return Tensor<T>::zeros(s, d);
}
/// Ones (torch.ones).
template <Element T = float>
[[nodiscard]] Tensor<T> ones(const Shape& s, Device d = Device::cpu()) {
  return Tensor<T>::ones(s, d);
}
/// A tensor filled with `v` (torch.full).
template <Element T = float>
[[nodiscard]] Tensor<T> full(const Shape& s, T v, Device d = Device::cpu()) {
  return Tensor<T>::full(s, v, d);
}
/// [start, end) in steps of step (torch.arange).
template <Element T = float>
[[nodiscard]] Tensor<T> arange(double start, double end, double step = 1) {
  return Tensor<T>::arange(start, end, step);
}
/// Uniform in [0, 1) from `g` (torch.rand).
template <Real T = float>
[[nodiscard]] Tensor<T> rand(const Shape& s, Generator& g = default_generator()) {
  return Tensor<T>::rand(s, g);
}
/// Standard normal from `g` (torch.randn).
template <Real T = float>
[[nodiscard]] Tensor<T> randn(const Shape& s, Generator& g = default_generator()) {
  return Tensor<T>::randn(s, g);
}
/// Uniform in [lo, hi) from `g` (torch.empty(s).uniform_(lo, hi)).
template <Real T = float>
[[nodiscard]] Tensor<T> uniform(const Shape& s, double lo, double hi,
                                Generator& g = default_generator()) {
  return Tensor<T>::uniform(s, lo, hi, g);
}

namespace autograd {
/// The versions of the tensors an op's backward function captures (inputs, its output, a
/// target), taken when the op runs: record() stores them in the node, and backward() checks
/// them before it calls the function. Undefined tensors are skipped.
template <class... U>
[[nodiscard]] SavedVersions saved(const Tensor<U>&... tensors) {
  static_assert(sizeof...(U) <= SavedVersions::kMax, "autograd::saved: too many tensors");
  SavedVersions out;
  auto add = [&out](const auto& t) {
    if (!t.defined()) return;
    const VersionCounter& c = t.impl().storage->version_counter();
    out.items[out.count++] = SavedVersion{&c, c.version()};
  };
  (add(tensors), ...);
  return out;
}

/// Records `out` as produced by an op named `name` from `inputs`, when grad mode is on and
/// an input requires grad. `backward` maps the output's gradient to one gradient per input.
/// It must not capture `out` itself (that would be a cycle): capture out.detach(). Every tensor
/// it captures whose values it reads goes in `saved` (autograd::saved(a, b)), so that an
/// in-place change to one of them between the op and backward() is an error, not a silently
/// wrong gradient; shapes and other values copied into the function need nothing.
template <class T, class F>
void record(Tensor<T>& out, const char* name, std::vector<Tensor<T>> inputs, SavedVersions saved,
            F&& backward) {
  if constexpr (Real<T>) {
    if (!GradMode::enabled()) return;
    bool needed = false;
    for (const auto& in : inputs) needed = needed || in.requires_grad();
    if (!needed) return;
    auto node = std::make_shared<Node<T>>();
    node->name = name;
    for (auto& in : inputs) node->inputs.push_back(in.impl_ptr());
    node->backward = std::forward<F>(backward);
    node->saved = saved;
    out.impl().grad_fn = std::move(node);
    out.impl().requires_grad = true;
  } else {
    (void)out, (void)name, (void)inputs, (void)saved, (void)backward;
  }
}
/// The same for a backward function that reads no tensor it captured (only shapes, scalars).
template <class T, class F>
void record(Tensor<T>& out, const char* name, std::vector<Tensor<T>> inputs, F&& backward) {
  record(out, name, std::move(inputs), SavedVersions{}, std::forward<F>(backward));
}
}  // namespace autograd

// ---- view definitions ---------------------------------------------------------------------

namespace detail {
// Strides for viewing (shape, strides) as new_shape without copying, if possible
// (PyTorch's computeStride): empty result when a copy is needed.
inline Shape view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape) {
  if (shape.empty()) return contiguous_strides(new_shape);
  Shape out(new_shape.size());
  std::int64_t view_d = static_cast<std::int64_t>(new_shape.size()) - 1;
  std::int64_t chunk_base_stride = strides.back();
  std::int64_t tensor_numel = 1, view_numel = 1;
  for (std::int64_t d = static_cast<std::int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[static_cast<std::size_t>(d)];
    if (d == 0 || (shape[static_cast<std::size_t>(d - 1)] != 1 &&
                   strides[static_cast<std::size_t>(d - 1)] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[static_cast<std::size_t>(view_d)] == 1)) {
        out[static_cast<std::size_t>(view_d)] = view_numel * chunk_base_stride;
        view_numel *= new_shape[static_cast<std::size_t>(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return {};
      if (d > 0) {
        chunk_base_stride = strides[static_cast<std::size_t>(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return {};
  return out;
}

inline Shape infer_shape(Shape shape, std::int64_t numel) {
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      EMBER_CHECK(infer < 0, "reshape: only one dimension can be -1 in ", shape_str(shape));
      infer = static_cast<std::int64_t>(i);
    } else {
      EMBER_CHECK(shape[i] >= 0, "reshape: invalid dimension in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    EMBER_CHECK(known > 0 && numel % known == 0, "reshape: shape ", shape_str(shape),
                " is invalid for input of size ", numel);
    shape[static_cast<std::size_t>(infer)] = numel / known;
  }
  EMBER_CHECK(numel_of(shape) == numel, "reshape: shape ", shape_str(shape),
              " is invalid for input of size ", numel);
  return shape;
}
}  // namespace detail

template <class T>
Tensor<T> Tensor<T>::view(Shape new_shape) const {
  new_shape = detail::infer_shape(std::move(new_shape), numel());
  Shape st = numel() == 0 ? contiguous_strides(new_shape)
                          : detail::view_strides(shape(), strides(), new_shape);
  EMBER_CHECK(!st.empty() || new_shape.empty(), "view: shape ", shape_str(new_shape),
              " is not compatible with the input's size and strides (use reshape)");
  if (new_shape.empty()) st = {};
  Tensor out = make_view(new_shape, st, offset());
  const Shape in_shape = shape();
  autograd::record(out, "ViewBackward0", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::reshape(Shape new_shape) const {
  new_shape = detail::infer_shape(std::move(new_shape), numel());
  const Shape st = detail::view_strides(shape(), strides(), new_shape);
  if (!st.empty() || new_shape.empty() || numel() == 0) return view(new_shape);
  return contiguous().view(new_shape);
}

template <class T>
Tensor<T> Tensor<T>::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  const std::int64_t s = wrap_dim(start_dim, dim()), e = wrap_dim(end_dim, dim());
  EMBER_CHECK(s <= e, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape ns(shape().begin(), shape().begin() + s);
  std::int64_t prod = 1;
  for (std::int64_t d = s; d <= e; ++d) prod *= shape()[static_cast<std::size_t>(d)];
  ns.push_back(prod);
  ns.insert(ns.end(), shape().begin() + e + 1, shape().end());
  return reshape(ns);
}

template <class T>
Tensor<T> Tensor<T>::permute(const Shape& dims) const {
  EMBER_CHECK(static_cast<std::int64_t>(dims.size()) == dim(), "permute: ", dims.size(),
              " dimensions given for a tensor of rank ", dim());
  Shape ns(dims.size()), nst(dims.size()), inverse(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (std::size_t i = 0; i < dims.size(); ++i) {
    const auto d = static_cast<std::size_t>(wrap_dim(dims[i], dim()));
    EMBER_CHECK(!seen[d], "permute: dimension ", d, " repeated in ", shape_str(dims));
    seen[d] = true;
    ns[i] = shape()[d];
    nst[i] = strides()[d];
    inverse[d] = static_cast<std::int64_t>(i);
  }
  Tensor out = make_view(ns, nst, offset());
  autograd::record(out, "PermuteBackward0", {*this}, [inverse](const Tensor& g) {
    return std::vector<Tensor>{g.permute(inverse)};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::transpose(std::int64_t d0, std::int64_t d1) const {
  if (dim() == 0) return permute({});  // d0 and d1 can only name the one pseudo-dimension
  Shape dims(static_cast<std::size_t>(dim()));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[static_cast<std::size_t>(wrap_dim(d0, dim()))],
            dims[static_cast<std::size_t>(wrap_dim(d1, dim()))]);
  return permute(dims);
}

template <class T>
Tensor<T> Tensor<T>::slice(std::int64_t d, std::int64_t start, std::int64_t end,
                           std::int64_t step) const {
  EMBER_CHECK(dim() > 0, "slice() cannot be applied to a 0-d tensor");
  const auto dd = static_cast<std::size_t>(wrap_dim(d, dim()));
  EMBER_CHECK(step > 0, "slice: step must be positive");
  const std::int64_t size = shape()[dd];
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<std::int64_t>(start, 0, size);
  end = std::clamp<std::int64_t>(end, start, size);
  Shape ns = shape(), nst = strides();
  ns[dd] = (end - start + step - 1) / step;
  nst[dd] *= step;
  Tensor out = make_view(ns, nst, offset() + start * strides()[dd]);
  const Shape in_shape = shape();
  autograd::record(out, "SliceBackward0", {*this}, [=](const Tensor& g) {
    Tensor gi = Tensor::zeros(in_shape, g.device());
    NoGradGuard guard;
    gi.slice(static_cast<std::int64_t>(dd), start, end, step).copy_(g);
    return std::vector<Tensor>{gi};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::select(std::int64_t d, std::int64_t index) const {
  EMBER_CHECK(dim() > 0, "select() cannot be applied to a 0-d tensor");
  const auto dd = static_cast<std::size_t>(wrap_dim(d, dim()));
  const std::int64_t size = shape()[dd];
  EMBER_CHECK(index >= -size && index < size, "select: index ", index,
              " out of range for dimension ", dd, " of size ", size);
  if (index < 0) index += size;
  Shape ns = shape(), nst = strides();
  ns.erase(ns.begin() + static_cast<std::ptrdiff_t>(dd));
  nst.erase(nst.begin() + static_cast<std::ptrdiff_t>(dd));
  Tensor out = make_view(ns, nst, offset() + index * strides()[dd]);
  const Shape in_shape = shape();
  autograd::record(out, "SelectBackward0", {*this}, [=](const Tensor& g) {
    Tensor gi = Tensor::zeros(in_shape, g.device());
    NoGradGuard guard;
    gi.select(static_cast<std::int64_t>(dd), index).copy_(g);
    return std::vector<Tensor>{gi};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::unsqueeze(std::int64_t d) const {
  const std::int64_t dd = wrap_dim(d, dim() + 1);
  Shape ns = shape();
  ns.insert(ns.begin() + dd, 1);
  return reshape(ns);
}

template <class T>
Tensor<T> Tensor<T>::squeeze(std::int64_t d) const {
  const std::int64_t dd = wrap_dim(d, dim());
  if (dim() == 0 || shape()[static_cast<std::size_t>(dd)] != 1) return *this;
  Shape ns = shape();
  ns.erase(ns.begin() + dd);
  return reshape(ns);
}

template <class T>
Tensor<T> Tensor<T>::to(Device d) const {
  if (d == device()) return *this;
  Tensor out = detach().to_copy(d);
  const Device from = device();
  autograd::record(out, "ToCopyBackward0", {*this}, [from](const Tensor& g) {
    return std::vector<Tensor>{g.to(from)};
  });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::clone() const {
  Tensor out = empty(shape(), device());
  {
    NoGradGuard guard;
    out.copy_(*this);
  }
  autograd::record(out, "CloneBackward0", {*this},
                   [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

template <class T>
Tensor<T> Tensor<T>::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

}  // namespace ember
