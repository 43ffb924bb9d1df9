// matmul (torch.matmul's rules: dot, matrix-vector, matrix, batched with broadcast batch
// dimensions) and bmm (ops/linear.hpp, on the GEMM ops: bmm and its backward are one batched
// GEMM each): PyTorch goldens, finite-difference gradients (summed over broadcast batch
// dimensions), CPU vs CUDA on odd shapes, and the shape errors. Runs on every backend
// (support/op_case.hpp).
//
// The goldens are PyTorch 2.15 in float64, made by:
//   def operand(shape, phase):
//       n = math.prod(shape)
//       return (torch.sin(torch.arange(n, dtype=torch.float64) * 0.9 + phase) * 1.25).reshape(shape)
//   a = operand(a_shape, 0.3).requires_grad_(); b = operand(b_shape, 1.1).requires_grad_()
//   y = torch.bmm(a, b) if bmm else torch.matmul(a, b)
//   y.backward(((torch.arange(y.numel()) % 7 + 1) / 4).double().reshape(y.shape))
// The operands are computed here with std::sin, which may differ from torch.sin in the last bit;
// the margins (1e-14) cover that.

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/ops/linear.hpp"

#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Shape;
using ember::Tensor;
using I64 = std::int64_t;
using TD = Tensor<double>;

TD operand(const Shape& shape, double phase) {
  std::vector<double> v(static_cast<std::size_t>(ember::numel_of(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<double>(i) * 0.9 + phase) * 1.25;
  return TD::from_vector(v, shape);
}

struct Golden {
  bool bmm;
  Shape a, b, out;
  std::vector<double> y, ga, gb;
};

const std::vector<Golden>& goldens() {
  static const std::vector<Golden> g = {
  {false, {3}, {3}, {},
   {2.0584262308381103},
   {0.27850230001919857, 0.28415544588302555, 0.07476541537936937},
   {0.09235006458166861, 0.2912622143647582, 0.26975292707777304}},
  {false, {2, 3}, {3}, {2},
   {2.0584262308381103, -1.1530445678430787},
   {0.27850230001919857, 0.28415544588302555, 0.07476541537936937, 0.5570046000383971, 0.5683108917660511, 0.14953083075873874},
   {0.18055006961908562, -0.13859163512522543, -0.3528499534446274}},
  {false, {3}, {3, 4}, {4},
   {0.1721334397363583, -0.1988261798266816, -0.41931811040324113, -0.32247845477946524},
   {0.3062870742449588, 0.6180424419378783, -1.41475659716396},
   {0.09235006458166861, 0.18470012916333722, 0.27705019374500583, 0.36940025832667445, 0.2912622143647582, 0.5825244287295164, 0.8737866430942746, 1.1650488574590327, 0.26975292707777304, 0.5395058541555461, 0.8092587812333192, 1.0790117083110922}},
  {false, {2, 3}, {3, 4}, {2, 4},
   {0.1721334397363583, -0.1988261798266816, -0.41931811040324113, -0.32247845477946524, -0.13317356829387372, 0.5319513235308695, 0.7945060589769983, 0.4557944486922152},
   {0.3062870742449588, 0.6180424419378783, -1.41475659716396, 3.4295964921301323, -1.994583782071281, 0.14772309518189802},
   {0.3128500771752111, 0.4493001442755883, 0.5857502113759654, 0.41350026084538294, -0.7833724093602009, -0.7070371197404344, -0.630701830120668, 0.9501219327140409, -1.286754274228228, -1.3283027874116553, -1.3698513005950823, 0.767710268049892}},
  {false, {2, 2, 3}, {3, 4}, {2, 2, 4},
   {0.1721334397363583, -0.1988261798266816, -0.41931811040324113, -0.32247845477946524, -0.13317356829387372, 0.5319513235308695, 0.7945060589769983, 0.4557944486922152, 0.06866358655863802, -0.7630185652000456, -1.0172634787664956, -0.5016636723178484, 0.009019896736591204, 0.8476963337475114, 1.044853085511308, 0.45128585291686873},
   {0.3062870742449588, 0.6180424419378783, -1.41475659716396, 3.4295964921301323, -1.994583782071281, 0.14772309518189802, 0.7525046446069523, 0.45636687583257174, -1.5710063182849114, 3.3524561548365397, -2.6268343221186834, 1.3588154185141263},
   {1.5710445657172136, 1.8024675595334165, 0.16445544190650607, 0.08717841809174953, -0.355307013088599, -0.14272304002494512, -0.20238311838298895, 1.5146893278956073, -2.0127693279819105, -1.9799036882962144, -0.4160621694996411, 1.795913552014457}},
  {false, {2, 2, 3}, {3}, {2, 2},
   {2.0584262308381103, -1.1530445678430787, 0.026444713743946968, 1.1052287098440408},
   {0.27850230001919857, 0.28415544588302555, 0.07476541537936937, 0.5570046000383971, 0.5683108917660511, 0.14953083075873874, 0.8355069000575956, 0.8524663376490766, 0.2242962461381081, 1.1140092000767943, 1.1366217835321022, 0.2990616615174775},
   {0.732531008544151, 0.30904642255239345, -0.3483183347102392}},
  {false, {3}, {2, 3, 4}, {2, 4},
   {0.1721334397363583, -0.1988261798266816, -0.41931811040324113, -0.32247845477946524, 0.349525883907536, 0.4089661782166698, 0.15890902222254288, -0.21140731369331145},
   {2.0359269985336477, -2.631818971910896, 2.6842846281243076},
   {0.09235006458166861, 0.18470012916333722, 0.27705019374500583, 0.36940025832667445, 0.2912622143647582, 0.5825244287295164, 0.8737866430942746, 1.1650488574590327, 0.26975292707777304, 0.5395058541555461, 0.8092587812333192, 1.0790117083110922, 0.46175032290834306, 0.5541003874900117, 0.6464504520716803, 0.09235006458166861, 1.4563110718237908, 1.7475732861885491, 2.0388355005533074, 0.2912622143647582, 1.3487646353888652, 1.6185175624666384, 1.8882704895444113, 0.26975292707777304}},
  {false, {2, 3}, {2, 3, 4}, {2, 2, 4},
   {0.1721334397363583, -0.1988261798266816, -0.41931811040324113, -0.32247845477946524, -0.13317356829387372, 0.5319513235308695, 0.7945060589769983, 0.4557944486922152, 0.349525883907536, 0.4089661782166698, 0.15890902222254288, -0.21140731369331145, -0.7439320752519119, -0.6842264033238777, -0.10671183046830146, 0.5515601282208636},
   {2.667546474484621, -2.0459097204032806, 1.0018270471783506, 3.6193724886545207, -3.6937656447882956, 3.0054583712051444},
   {0.3128500771752111, 0.4493001442755883, 0.5857502113759654, 0.41350026084538294, -0.7833724093602009, -0.7070371197404344, -0.630701830120668, 0.9501219327140409, -1.286754274228228, -1.3283027874116553, -1.3698513005950823, 0.767710268049892, 0.4493001442755883, 0.5857502113759654, 0.41350026084538294, 0.54995032794576, -0.7070371197404344, -0.630701830120668, 0.9501219327140409, 1.026457222333807, -1.3283027874116553, -1.3698513005950823, 0.767710268049892, 0.7261617548664647}},
  {false, {2, 1, 2, 3}, {3, 3, 2}, {2, 3, 2, 2},
   {-0.5887243945578937, -1.3226171571691685, 1.495793372392566, 1.8405948362652111, 0.5701013683041606, -0.6091756231873904, 0.050855837305321505, 1.5151318852048197, 1.312402948613491, 0.5493383006992619, -1.4312376971169951, 0.08269199104085789, -2.115885841829848, -2.0054438752464936, 2.330033518180801, 1.7855370437129778, -0.6620560598375475, -2.1304014346035482, 1.1462370430000917, 2.336941291471681, 1.2754813125227633, -0.6988573516351904, -0.8750165475133818, 1.1809429346735356},
   {2.698720618703809, 2.9250047505468535, -4.0278550313267605, 2.312612648897791, 4.033182501313043, -4.145307674053448, 3.705333917218952, 2.4959500827045202, -4.839504091298654, 2.698720618703809, 2.9250047505468535, -4.0278550313267605},
   {-0.5408231614551886, -0.30940016763898565, 0.2695135040633231, 0.4820974771269768, 0.8758877228738253, 0.9087533625595215, 1.5894934382419557, 1.5122164144271992, 0.43835266363242387, 2.1554251099110204, -1.0445246675781306, 1.1674510539359675, -0.30940016763898565, 1.1266474506095496, 0.4820974771269768, 0.013184717505116406, 0.9087533625595215, -1.1102559469495232}},
  {true, {2, 3, 4}, {2, 4, 2}, {2, 3, 2},
   {-0.5412904344754077, -1.1244520107247862, -0.36501862728294066, 0.9558458349382474, 1.1959574867448364, -0.5898735836728415, 0.14165642602288653, 1.929868791380627, 0.36926841720742565, -1.519144233101259, -0.8039455480571844, 0.7947419619374463},
   {0.8468131917852497, -0.30764576645983016, -0.7070176666589825, 0.6289175561597092, 1.9721286835896978, -0.5405261175402909, -1.7265113513067465, 1.3250601085968607, 3.097444175394146, -0.7734064686207518, -2.7460050359545107, 2.021202661034012, 2.0431539844982187, -1.6798389840002745, -1.2798281126742792, 2.261398240093668, 0.7728166905666655, -1.3281599741993357, -0.16929523411545302, 1.4050884378245114, 1.4759802829770035, -2.343823008851577, -0.410937288575137, 2.530554634355115},
   {0.9131942540572229, 1.0837423866360054, 0.6926686874690958, 0.9396916203502415, -0.052054732377728286, 0.08450096998423981, -0.7573841685524119, -0.834638329808755, -2.299877754265307, -0.3340172009090145, -0.6772635644139235, 0.4697695884366835, 1.4578901886928697, 0.9180441188343114, 2.4897417122849035, 0.6715611627226522}},
  };
  return g;
}

TD product(bool bmm, const TD& a, const TD& b) { return bmm ? ember::bmm(a, b) : ember::matmul(a, b); }

}  // namespace

TEST_CASE("matmul and bmm match PyTorch's values and gradients on every device", "[op][matmul]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    for (const Golden& c : goldens()) {
      INFO("on " << dev.str() << ": " << (c.bmm ? "bmm " : "matmul ") << ember::shape_str(c.a) << " @ "
                 << ember::shape_str(c.b));
      TD a = operand(c.a, 0.3).to(dev), b = operand(c.b, 1.1).to(dev);
      a.requires_grad_();
      b.requires_grad_();
      const TD y = product(c.bmm, a, b);
      REQUIRE(y.shape() == c.out);
      std::vector<double> gv(c.y.size());
      for (std::size_t i = 0; i < gv.size(); ++i) gv[i] = static_cast<double>(i % 7 + 1) / 4.0;
      y.backward(TD::from_vector(gv, y.shape()).to(dev));
      ember::test::check_golden(y, c.y, 1e-14, "output");
      ember::test::check_golden(a.grad(), c.ga, 1e-14, "gradient of a");
      ember::test::check_golden(b.grad(), c.gb, 1e-14, "gradient of b");
    }
  }
}

TEST_CASE("matmul and bmm gradients match finite differences", "[op][matmul]") {
  using Inputs = std::vector<TD>;
  struct Case {
    Shape a, b;
    bool bmm;
  };
  const std::vector<Case> cases = {
      {{4}, {4}, false},          {{3, 4}, {4}, false},         {{4}, {4, 2}, false},
      {{3, 4}, {4, 5}, false},    {{2, 3, 4}, {4, 5}, false},   {{2, 3, 4}, {4}, false},
      {{4}, {3, 4, 2}, false},    {{3, 4}, {2, 4, 5}, false},   {{2, 1, 3, 4}, {3, 4, 2}, false},
      {{1, 3, 4}, {2, 4, 2}, false}, {{3, 2, 4}, {3, 4, 5}, true}, {{2, 1, 4}, {2, 4, 1}, true},
      {{1, 3, 5}, {1, 5, 2}, true},  {{7, 2, 3}, {7, 3, 2}, true},
  };
  for (const Case& c : cases) {
    const std::string what = (c.bmm ? "bmm " : "matmul ") + ember::shape_str(c.a) + " @ " + ember::shape_str(c.b);
    const bool bmm = c.bmm;
    ember::test::check_gradients_cpu([bmm](const Inputs& in) { return product(bmm, in[0], in[1]); },
                                     {ember::test::random_tensor<double>(c.a, 61), ember::test::random_tensor<double>(c.b, 62)},
                                     what);
  }
  // a transposed (non-contiguous) batch operand
  ember::test::check_gradients_cpu(
      [](const Inputs& in) { return ember::matmul(in[0].transpose(1, 2), in[1]); },
      {ember::test::random_tensor<double>({2, 4, 3}, 63), ember::test::random_tensor<double>({2, 4, 2}, 64)},
      "matmul of a transposed batch");
  // only b differentiated: a's gradient is not computed
  TD a = ember::test::random_tensor<double>({2, 3, 4}, 65), b = ember::test::random_tensor<double>({2, 4, 5}, 66);
  b.requires_grad_();
  ember::sum(ember::bmm(a, b)).backward();
  CHECK_FALSE(a.grad().defined());
  CHECK(b.grad().shape() == Shape{2, 4, 5});
}

TEST_CASE("matmul and bmm agree on every device", "[op][matmul]") {
  struct Case {
    Shape a, b;
    bool bmm;
  };
  const std::vector<Case> cases = {
      {{37}, {37}, false},           {{17, 37}, {37}, false},          {{37}, {37, 13}, false},
      {{3, 17, 37}, {37, 13}, false}, {{5, 1, 7, 9}, {3, 9, 11}, false}, {{9}, {4, 9, 3}, false},
      {{7, 5, 33}, {7, 33, 65}, true}, {{1, 1, 1}, {1, 1, 1}, true},     {{3, 0, 4}, {3, 4, 2}, true},
      // batches of 1, 3 and 7 whose N, K and M are no multiple of any tile (4 .. 128)
      {{1, 37, 29}, {1, 29, 45}, true}, {{3, 33, 65}, {3, 65, 17}, true}, {{7, 49, 70}, {7, 70, 131}, true},
      {{3, 5, 0}, {3, 0, 6}, true},
  };
  for (const Case& c : cases) {
    const std::string what = (c.bmm ? "bmm " : "matmul ") + ember::shape_str(c.a) + " @ " + ember::shape_str(c.b);
    const bool bmm = c.bmm;
    auto f32 = [bmm](const std::vector<Tensor<float>>& in) { return bmm ? ember::bmm(in[0], in[1]) : ember::matmul(in[0], in[1]); };
    auto f64 = [bmm](const std::vector<TD>& in) { return product(bmm, in[0], in[1]); };
    ember::test::check_devices_agree<float>(
        f32, {ember::test::random_tensor<float>(c.a, 5), ember::test::random_tensor<float>(c.b, 6)}, 1e-5, what + " f32");
    ember::test::check_devices_agree<double>(
        f64, {ember::test::random_tensor<double>(c.a, 7), ember::test::random_tensor<double>(c.b, 8)}, 1e-12, what + " f64");
  }
}

TEST_CASE("bmm and its backward on the CPU are each entry's own GEMM, bit for bit", "[op][matmul]") {
  // The batched CPU kernel shares one entry's block grid among the threads: every entry's bits
  // are those of mm on that entry, forward and both gradients (transposed operands).
  for (const auto& [batch, n, k, m] : std::vector<std::array<I64, 4>>{{1, 37, 29, 45}, {3, 33, 65, 17}, {7, 49, 64, 49}}) {
    INFO("bmm [" << batch << ", " << n << ", " << k << "] @ [" << batch << ", " << k << ", " << m << "]");
    Tensor<float> a = ember::test::random_tensor<float>({batch, n, k}, 71);
    Tensor<float> b = ember::test::random_tensor<float>({batch, k, m}, 72);
    const Tensor<float> g = ember::test::random_tensor<float>({batch, n, m}, 73);
    a.requires_grad_();
    b.requires_grad_();
    const Tensor<float> y = ember::bmm(a, b);
    y.backward(g);
    for (I64 i = 0; i < batch; ++i) {
      const Tensor<float> ai = a.detach().select(0, i), bi = b.detach().select(0, i), gi = g.select(0, i);
      using ember::detail::gemm_2d;  // one GEMM, as bmm ran per entry before it was batched
      CHECK(y.detach().select(0, i).contiguous().to_vector() == gemm_2d(ai, false, bi, false).to_vector());
      CHECK(a.grad().select(0, i).contiguous().to_vector() == gemm_2d(gi, false, bi, true).to_vector());
      CHECK(b.grad().select(0, i).contiguous().to_vector() == gemm_2d(ai, true, gi, false).to_vector());
    }
  }
}

TEST_CASE("matmul and bmm refuse mismatched shapes with errors naming both", "[op][matmul]") {
  using ember::test::ErrorContains;
  using TF = Tensor<float>;
  CHECK_THROWS_MATCHES(ember::matmul(TF::ones({2, 3}), TF::ones({4, 5})), ember::Error,
                       ErrorContains({"matmul", "[2, 3]", "[4, 5]", "cannot be multiplied", "3 != 4"}));
  CHECK_THROWS_MATCHES(ember::matmul(TF::ones({3}), TF::ones({4})), ember::Error,
                       ErrorContains({"matmul", "[3]", "[4]", "cannot be multiplied"}));
  CHECK_THROWS_MATCHES(ember::matmul(TF::ones({2, 3, 4}), TF::ones({5, 4, 2})), ember::Error,
                       ErrorContains({"matmul", "[2, 3, 4]", "[5, 4, 2]", "batch dimensions [2] and [5] do not broadcast"}));
  CHECK_THROWS_MATCHES(ember::matmul(TF::ones({2, 3, 4}), TF::ones({5})), ember::Error,
                       ErrorContains({"matmul", "[2, 3, 4]", "[5]"}));
  CHECK_THROWS_MATCHES(ember::matmul(TF::scalar(2.0f), TF::ones({2, 3})), ember::Error,
                       ErrorContains({"matmul", "at least 1-D", "[]", "[2, 3]"}));
  CHECK_THROWS_MATCHES(ember::bmm(TF::ones({2, 3, 4}), TF::ones({3, 4, 5})), ember::Error,
                       ErrorContains({"bmm", "[2, 3, 4]", "[3, 4, 5]", "cannot be multiplied"}));
  CHECK_THROWS_MATCHES(ember::bmm(TF::ones({3, 4}), TF::ones({4, 5})), ember::Error,
                       ErrorContains({"bmm", "3-D", "[3, 4]", "[4, 5]"}));
  // empty batches and inner sizes: zeros of the right shape
  CHECK(ember::matmul(TF::ones({0, 2, 3}), TF::ones({3, 4})).shape() == Shape{0, 2, 4});
  CHECK(ember::matmul(TF::ones({2, 0}), TF::ones({0, 3})).to_vector() == std::vector<float>(6, 0.0f));
  CHECK(ember::bmm(TF::ones({2, 3, 0}), TF::ones({2, 0, 1})).to_vector() == std::vector<float>(6, 0.0f));
}
