// mse_loss, l1_loss, binary_cross_entropy, binary_cross_entropy_with_logits and cross_entropy's
// label_smoothing (ops/loss.hpp; compositions of elementwise ops, no kernels of their own):
// PyTorch goldens, finite-difference gradients, CPU vs CUDA, and the shape errors. Runs on every
// backend (support/op_case.hpp).
//
// The goldens are PyTorch 2 in float64 (values and d loss / d input):
//   x = ((arange(12) * 0.37) % 2.0 - 1.0).reshape(3, 4); x[1, 1] = 0.0
//   t = ((arange(12) * 0.61) % 1.0).reshape(3, 4)
//   p = sigmoid(x * 1.7)
//   w = tensor([0.5, 1.0, 1.5, 2.0]); pw = tensor([0.3, 1.0, 2.0, 3.5])
//   tt = t.clone(); tt[1, 1] = 0.0            # l1: input - target is exactly 0 at [1, 1]
//   lab = tensor([2, 0, 3])
//   for r in ["mean", "sum"]:
//     F.mse_loss(x, t, reduction=r); F.l1_loss(x, tt, reduction=r)
//     F.binary_cross_entropy(p, t, reduction=r); F.binary_cross_entropy(p, t, weight=w, reduction=r)
//     F.binary_cross_entropy_with_logits(x, t, reduction=r)
//     F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=r)
//     F.cross_entropy(x, lab, reduction=r, label_smoothing=0.1)
//   F.binary_cross_entropy(tensor([0., 1., .5]), tensor([1., 1., .25]), reduction="sum")  # the -100 clamp
// each loss's input given requires_grad and `loss.backward()`.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/loss.hpp"

#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Reduction;
using ember::Tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;

const std::vector<double> kX = {-1.0, -0.63, -0.26, 0.10999999999999988, 0.48, 0.0, -0.7800000000000002,
                                -0.41000000000000014, -0.040000000000000036, 0.33000000000000007, 0.7000000000000002,
                                -0.9299999999999997};
const std::vector<double> kT = {0.0, 0.61, 0.21999999999999997, 0.8300000000000001, 0.43999999999999995,
                                0.04999999999999982, 0.6600000000000001, 0.2699999999999996, 0.8799999999999999,
                                0.4900000000000002, 0.09999999999999964, 0.71};
const std::vector<double> kP = {0.1544652650835347, 0.25521295834379154, 0.39126451260924977, 0.546614241318943,
                                0.6933865920564957, 0.5, 0.20982178186118194, 0.33247770172632307,
                                0.48300654763905493, 0.6366838893983633, 0.7667410642285427, 0.1706539042568696};

TD mat(std::vector<double> v) { return TD::from_vector(v, {3, 4}); }
TD vec4(std::vector<double> v) { return TD::from_vector(v, {4}); }
TD weight() { return vec4({0.5, 1.0, 1.5, 2.0}); }
TD pos_weight() { return vec4({0.3, 1.0, 2.0, 3.5}); }
Tensor<I64> labels(ember::Device d = ember::Device::cpu()) {
  return Tensor<I64>::from_vector({2, 0, 3}, {3}).to(d);
}
TD target_l1() {
  std::vector<double> v = kT;
  v[5] = 0.0;
  return mat(v);
}

struct Golden {
  std::string name;
  Reduction r;
  double value;
  std::vector<double> grad;
};

// The loss of `in` (x or p, as the golden's comment says) with the other operands on `d`.
TD golden_loss(const std::string& name, const TD& in, Reduction r, ember::Device d) {
  const TD t = mat(kT).to(d);
  if (name == "mse") return ember::mse_loss(in, t, r);
  if (name == "l1") return ember::l1_loss(in, target_l1().to(d), r);
  if (name == "bce") return ember::binary_cross_entropy(in, t, {}, r);
  if (name == "bce_w") return ember::binary_cross_entropy(in, t, weight().to(d), r);
  if (name == "bcel") return ember::binary_cross_entropy_with_logits(in, t, {}, {}, r);
  if (name == "bcel_w_pw") return ember::binary_cross_entropy_with_logits(in, t, weight().to(d), pos_weight().to(d), r);
  return ember::cross_entropy(in, labels(d), r, 0.1);  // "ce_ls"
}

const std::vector<Golden>& goldens() {
  static const std::vector<Golden> g = {
  {"mse", Reduction::mean, 0.8123416666666667, {-0.16666666666666666, -0.20666666666666667, -0.07999999999999999, -0.12000000000000002, 0.006666666666666672, -0.008333333333333304, -0.24000000000000005, -0.11333333333333329, -0.15333333333333332, -0.02666666666666669, 0.10000000000000009, -0.27333333333333326}},
  {"mse", Reduction::sum, 9.7481, {-2.0, -2.48, -0.96, -1.4400000000000004, 0.08000000000000007, -0.09999999999999964, -2.880000000000001, -1.3599999999999994, -1.8399999999999999, -0.3200000000000003, 1.200000000000001, -3.2799999999999994}},
  {"l1", Reduction::mean, 0.7433333333333333, {-0.08333333333333333, -0.08333333333333333, -0.08333333333333333, -0.08333333333333333, 0.08333333333333333, 0.0, -0.08333333333333333, -0.08333333333333333, -0.08333333333333333, -0.08333333333333333, 0.08333333333333333, -0.08333333333333333}},
  {"l1", Reduction::sum, 8.92, {-1.0, -1.0, -1.0, -1.0, 1.0, 0.0, -1.0, -1.0, -1.0, -1.0, 1.0, -1.0}},
  {"bce", Reduction::mean, 0.8056551092004288, {0.09855696033772789, -0.15554342921935824, 0.05992210439665089, -0.09529013856178321, 0.09931979229910758, 0.15000000000000005, -0.22627032835948035, 0.02345932424246851, -0.13248418455267133, 0.052843631329356384, 0.3106625800198447, -0.3175661910942618}},
  {"bce", Reduction::sum, 9.667861310405145, {1.1826835240527347, -1.866521150632299, 0.7190652527598107, -1.1434816627413986, 1.1918375075892909, 1.8000000000000007, -2.7152439403137643, 0.28151189090962214, -1.5898102146320559, 0.6341235759522766, 3.7279509602381364, -3.8107942931311416}},
  {"bce_w", Reduction::mean, 1.0725717750668522, {0.04927848016886394, -0.15554342921935824, 0.08988315659497632, -0.19058027712356643, 0.04965989614955379, 0.15000000000000005, -0.33940549253922053, 0.04691864848493702, -0.06624209227633567, 0.052843631329356384, 0.46599387002976705, -0.6351323821885236}},
  {"bce_w", Reduction::sum, 12.870861300802227, {0.5913417620263673, -1.866521150632299, 1.078597879139716, -2.2869633254827972, 0.5959187537946454, 1.8000000000000007, -4.072865910470647, 0.5630237818192443, -0.7949051073160279, 0.6341235759522766, 5.591926440357205, -7.621588586262283}},
  {"bcel", Reduction::mean, 0.7343117212981968, {0.02241178511416626, -0.02187412184939537, 0.0179469756830809, -0.0252106413046172, 0.014812322897437419, 0.03750000000000001, -0.02880667616152117, 0.010742676762635886, -0.032499888906663776, 0.007646614736819675, 0.04734898101401388, -0.03558960712441437}},
  {"bcel", Reduction::sum, 8.811740655578362, {0.2689414213699951, -0.26248946219274444, 0.21536370819697082, -0.3025276956554064, 0.17774787476924903, 0.4500000000000002, -0.34568011393825404, 0.12891212115163064, -0.3899986668799653, 0.0917593768418361, 0.5681877721681665, -0.42707528549297247}},
  {"bcel_w_pw", Reduction::mean, 1.7531474899708395, {0.01120589255708313, -0.021874121849395373, 0.011392965500038044, -0.21383711069006242, 0.01231173038918001, 0.03750000000000001, -0.09977862364218772, -0.04613703284516971, -0.003159978670079443, 0.007646614736819675, 0.06687581867312291, -0.28331398620716647}},
  {"bcel_w_pw", Reduction::sum, 21.037769879650075, {0.13447071068499755, -0.2624894621927445, 0.13671558600045652, -2.566045328280749, 0.14774076467016012, 0.4500000000000002, -1.1973434837062527, -0.5536443941420366, -0.037919744040953315, 0.0917593768418361, 0.8025098240774748, -3.3997678344859974}},
  {"ce_ls", Reduction::mean, 1.5346166169938353, {0.03565348095425301, 0.055347900299572685, -0.21613980709851305, 0.12513842584468735, -0.16422615360359033, 0.08083779612345418, 0.03254324844453435, 0.05084510903560181, 0.05894793586021107, 0.0890720889966421, 0.13268386822967204, -0.28070389308652516}},
  {"ce_ls", Reduction::sum, 4.603849850981505, {0.10696044286275902, 0.16604370089871803, -0.6484194212955392, 0.375415277534062, -0.4926784608107711, 0.2425133883703625, 0.09762974533360302, 0.1525353271068054, 0.1768438075806332, 0.26721626698992623, 0.398051604689016, -0.8421116792595755}},
  };
  return g;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol * (1.0 + std::abs(want[i])));
  }
}

// Every loss as a function of all its floating operands, for gradcheck and the device comparison.
template <class T>
std::vector<std::pair<std::string, ember::test::OpFn<T>>> loss_fns(Reduction r) {
  using V = std::vector<Tensor<T>>;
  return {
    {"mse_loss", [r](const V& v) { return ember::mse_loss(v[0], v[1], r); }},
    {"l1_loss", [r](const V& v) { return ember::l1_loss(v[0], v[1], r); }},
    {"binary_cross_entropy", [r](const V& v) { return ember::binary_cross_entropy(v[0], v[1], v[2], r); }},
    {"binary_cross_entropy_with_logits",
     [r](const V& v) { return ember::binary_cross_entropy_with_logits(v[0], v[1], v[2], v[3], r); }},
    {"cross_entropy label_smoothing 0.1",
     [r](const V& v) { return ember::cross_entropy(v[0], labels(v[0].device()), r, 0.1); }},
  };
}

// Inputs for loss_fns: BCE's input kept inside (0, 1), l1's differences away from 0.
template <class T>
std::vector<std::vector<Tensor<T>>> loss_inputs() {
  using ember::test::random_tensor;
  const ember::Shape s{3, 4};
  return {
    {random_tensor<T>(s, 11), random_tensor<T>(s, 12)},
    {random_tensor<T>(s, 13), random_tensor<T>(s, 13) + 0.5},
    {random_tensor<T>(s, 14, 0.05, 0.95), random_tensor<T>(s, 15, 0.0, 1.0), random_tensor<T>({4}, 16, 0.5, 2.0)},
    {random_tensor<T>(s, 17, -3.0, 3.0), random_tensor<T>(s, 18, 0.0, 1.0), random_tensor<T>({3, 1}, 19, 0.5, 2.0),
     random_tensor<T>({4}, 20, 0.2, 3.0)},
    {random_tensor<T>(s, 21, -2.0, 2.0)},
  };
}

}  // namespace

TEST_CASE("losses match PyTorch's values and input gradients on every device", "[op][losses]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    for (const Golden& c : goldens()) {
      INFO("on " << dev.str() << ": " << c.name << (c.r == Reduction::mean ? " mean" : " sum"));
      TD in = mat(c.name.rfind("bce", 0) == 0 && c.name.rfind("bcel", 0) != 0 ? kP : kX).to(dev);
      in.requires_grad_();
      const TD y = golden_loss(c.name, in, c.r, dev);
      REQUIRE(y.dim() == 0);
      y.backward();
      check_close({y.to(ember::Device::cpu()).item()}, {c.value}, 1e-12);
      check_close(in.grad().to(ember::Device::cpu()).to_vector(), c.grad, 1e-12);
    }
  }
}

TEST_CASE("binary_cross_entropy clamps its logs at -100 as PyTorch does", "[op][losses]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    INFO("on " << dev.str());
    const TD p = TD::from_vector({0.0, 1.0, 0.5}, {3}).to(dev);
    const TD t = TD::from_vector({1.0, 1.0, 0.25}, {3}).to(dev);
    CHECK(std::abs(ember::binary_cross_entropy(p, t, {}, Reduction::sum).to(ember::Device::cpu()).item() -
                   100.69314718055995) <= 1e-12);
  }
}

TEST_CASE("Reduction::none gives the elementwise loss; cross_entropy's label_smoothing 0 is plain", "[op][losses]") {
  const TD x = mat(kX), t = mat(kT);
  const TD e = ember::mse_loss(x, t, Reduction::none);
  REQUIRE(e.shape() == ember::Shape{3, 4});
  const std::vector<double> ev = e.to_vector();
  for (std::size_t i = 0; i < ev.size(); ++i) CHECK(ev[i] == (kX[i] - kT[i]) * (kX[i] - kT[i]));
  CHECK(ember::l1_loss(x, t, Reduction::none).shape() == ember::Shape{3, 4});
  CHECK(ember::binary_cross_entropy(mat(kP), t, weight(), Reduction::none).shape() == ember::Shape{3, 4});
  CHECK(ember::binary_cross_entropy_with_logits(x, t, {}, pos_weight(), Reduction::none).shape() == ember::Shape{3, 4});
  CHECK(std::abs(ember::sum(ember::l1_loss(x, t, Reduction::none)).item() - ember::l1_loss(x, t, Reduction::sum).item()) <= 1e-12);
  for (const Reduction r : {Reduction::mean, Reduction::sum})
    CHECK(ember::cross_entropy(x, labels(), r, 0.0).item() == ember::cross_entropy(x, labels(), r).item());
}

TEST_CASE("losses' gradients match finite differences, and every device agrees with the CPU", "[op][losses]") {
  for (const Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
    const auto fd = loss_fns<double>(r);
    const auto ff = loss_fns<float>(r);
    const auto id = loss_inputs<double>();
    const auto inf = loss_inputs<float>();
    for (std::size_t k = 0; k < fd.size(); ++k) {
      if (r == Reduction::none && k == 4) continue;  // cross_entropy refuses none
      const std::string what = fd[k].first + (r == Reduction::mean ? " mean" : r == Reduction::sum ? " sum" : " none");
      ember::test::check_gradients_cpu(fd[k].second, id[k], what);
      ember::test::check_devices_agree<float>(ff[k].second, inf[k], 1e-6, what + " f32");
      ember::test::check_devices_agree<double>(fd[k].second, id[k], 1e-12, what + " f64");
    }
  }
}

TEST_CASE("losses refuse mismatched shapes, naming the op and both shapes", "[op][losses]") {
  using ember::test::ErrorContains;
  const TD a = TD::zeros({3, 4}), b = TD::zeros({4, 3}), p = TD::full({3, 4}, 0.5);
  CHECK_THROWS_MATCHES(ember::mse_loss(a, b), ember::Error, ErrorContains({"mse_loss", "[3, 4]", "[4, 3]"}));
  CHECK_THROWS_MATCHES(ember::l1_loss(a, b), ember::Error, ErrorContains({"l1_loss", "[3, 4]", "[4, 3]"}));
  CHECK_THROWS_MATCHES(ember::binary_cross_entropy(p, b), ember::Error,
                       ErrorContains({"binary_cross_entropy", "[3, 4]", "[4, 3]"}));
  CHECK_THROWS_MATCHES(ember::binary_cross_entropy(p, p, TD::ones({3})), ember::Error,
                       ErrorContains({"binary_cross_entropy", "weight", "[3]", "[3, 4]"}));
  CHECK_THROWS_MATCHES(ember::binary_cross_entropy_with_logits(a, b), ember::Error,
                       ErrorContains({"binary_cross_entropy_with_logits", "[3, 4]", "[4, 3]"}));
  CHECK_THROWS_MATCHES(ember::binary_cross_entropy_with_logits(a, a, {}, TD::ones({2})), ember::Error,
                       ErrorContains({"binary_cross_entropy_with_logits", "pos_weight", "[2]", "[3, 4]"}));
  CHECK_THROWS_MATCHES(ember::cross_entropy(a, labels(), Reduction::mean, 1.5), ember::Error,
                       ErrorContains({"label_smoothing must be in [0, 1]"}));
  CHECK_THROWS_MATCHES(ember::cross_entropy(a, labels(), Reduction::none), ember::Error,
                       ErrorContains({"reduction none is not supported"}));
}
