// sigmoid, tanh, gelu (both forms), leaky_relu, elu, silu and softmax (ops/activation.hpp; CPU
// kernels in backend/cpu/activation.hpp, CUDA kernels in kernels/activation.cuh): PyTorch
// goldens, finite-difference gradients, CPU vs CUDA, the nn modules, and the errors. Runs on
// every backend (support/op_case.hpp).
//
// The goldens are PyTorch 2.15's, in float64, on x = (arange(41) - 20) * 0.3 (-6 .. 6, x[20] = 0)
// with upstream gradient g = (arange(41) % 5 + 1) / 4:
//   import torch, torch.nn.functional as F
//   x = (torch.arange(41, dtype=torch.float64) - 20) * 0.3
//   g = (torch.arange(41, dtype=torch.float64) % 5 + 1) / 4
//   for f in (torch.sigmoid, torch.tanh, F.gelu, lambda t: F.gelu(t, approximate="tanh"),
//             F.leaky_relu, lambda t: F.leaky_relu(t, 0.2), F.elu, lambda t: F.elu(t, 0.5), F.silu):
//     t = x.clone().requires_grad_(); y = f(t); y.backward(g)  # print y, t.grad
// softmax on xs = x[:40].reshape(2, 4, 5) * 0.7 with gs = g[:40].reshape(2, 4, 5), dim 0, 1, 2:
//   t = xs.clone().requires_grad_(); y = F.softmax(t, d); y.backward(gs)  # print y, t.grad flattened

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/nn/layers.hpp"
#include "ember/ops/activation.hpp"

#include "support/inputs.hpp"
#include "support/matchers.hpp"
#include "support/op_case.hpp"

namespace {

using ember::Tensor;
using I64 = std::int64_t;

struct Golden {
  const char* name;
  std::vector<double> y, gx;
};

template <class T>
using Fn = std::function<Tensor<T>(const Tensor<T>&)>;

// The golden's function, for element type T.
template <class T>
Fn<T> function_named(const std::string& name) {
  if (name == "sigmoid") return [](const Tensor<T>& x) { return ember::sigmoid(x); };
  if (name == "tanh") return [](const Tensor<T>& x) { return ember::tanh(x); };
  if (name == "gelu") return [](const Tensor<T>& x) { return ember::gelu(x); };
  if (name == "gelu_tanh") return [](const Tensor<T>& x) { return ember::gelu(x, "tanh"); };
  if (name == "leaky_relu") return [](const Tensor<T>& x) { return ember::leaky_relu(x); };
  if (name == "leaky_relu_0.2") return [](const Tensor<T>& x) { return ember::leaky_relu(x, 0.2); };
  if (name == "elu") return [](const Tensor<T>& x) { return ember::elu(x); };
  if (name == "elu_0.5") return [](const Tensor<T>& x) { return ember::elu(x, 0.5); };
  if (name == "silu") return [](const Tensor<T>& x) { return ember::silu(x); };
  FAIL("no function " << name);
  return {};
}

const std::vector<Golden>& goldens() {
  static const std::vector<Golden> g = {
      {"sigmoid",
       {0.0024726231566347743, 0.0033348073074133443, 0.0044962731609411825, 0.0060598014915841155, 0.008162571153159897, 0.01098694263059318, 0.014774031693273055, 0.01984030573407751, 0.026596993576865863, 0.03557118927263618, 0.04742587317756678, 0.06297335605699651, 0.08317269649392238, 0.10909682119561293, 0.14185106490048782, 0.18242552380635635, 0.23147521650098238, 0.28905049737499605, 0.35434369377420455, 0.425557483188341, 0.5, 0.574442516811659, 0.6456563062257954, 0.7109495026250039, 0.7685247834990175, 0.8175744761936437, 0.8581489350995123, 0.8909031788043871, 0.9168273035060777, 0.9370266439430035, 0.9525741268224334, 0.9644288107273639, 0.973403006423134, 0.9801596942659225, 0.9852259683067269, 0.9890130573694068, 0.9918374288468401, 0.9939401985084158, 0.9955037268390589, 0.9966651926925867, 0.9975273768433653},
       {0.000616627322840012, 0.0016618431838178835, 0.0033570425164525367, 0.00602308029746671, 0.010119929481661873, 0.0027165574305563086, 0.007277879840399609, 0.014585001001841881, 0.02588959350953802, 0.042882349707958095, 0.011294164932728034, 0.029503856241957626, 0.05719124928888919, 0.09719470480062539, 0.15216167535885677, 0.037286613017583216, 0.08894722032340285, 0.15412523050669757, 0.2287842404566573, 0.30557288961343226, 0.0625, 0.12222915584537293, 0.17158818034249299, 0.2055003073422635, 0.22236805080850722, 0.037286613017583216, 0.060864670143542667, 0.07289602860046904, 0.07625499905185222, 0.07375964060489405, 0.011294164932728, 0.017152939883183217, 0.01941719513215358, 0.0194466680024558, 0.01819469960099904, 0.0027165574305563107, 0.004047971792664741, 0.004517310223100132, 0.0044760566886033444, 0.004154607959544669, 0.0006166273228399827}},
      {"tanh",
       {-0.9999877116507956, -0.9999776092809898, -0.9999592018254402, -0.9999256621257943, -0.9998645517007605, -0.9997532108480275, -0.9995503664595334, -0.999180865670028, -0.9985079423323266, -0.9972829600991421, -0.9950547536867305, -0.9910074536781176, -0.9836748576936802, -0.9704519366134539, -0.9468060128462683, -0.9051482536448664, -0.8336546070121552, -0.7162978701990244, -0.5370495669980353, -0.2913126124515909, 0.0, 0.2913126124515909, 0.5370495669980353, 0.7162978701990244, 0.8336546070121552, 0.9051482536448664, 0.9468060128462683, 0.9704519366134539, 0.9836748576936802, 0.9910074536781176, 0.9950547536867305, 0.9972829600991421, 0.9985079423323266, 0.999180865670028, 0.9995503664595334, 0.9997532108480275, 0.9998645517007605, 0.9999256621257943, 0.9999592018254402, 0.9999776092809898, 0.9999877116507956},
       {6.144136851325744e-06, 2.2390468338074594e-05, 6.119601347144384e-05, 0.00014867022229194502, 0.0003385978152965527, 0.00012337934976487476, 0.00044953245530620896, 0.0012281982591701693, 0.0029818890992630415, 0.006783371869866234, 0.0024665092913600415, 0.0089521133772068, 0.02428783075598845, 0.05822303872319694, 0.12944796754769003, 0.04517665973091215, 0.15250999810370452, 0.36518802086125624, 0.7115777625872228, 1.1439212022832865, 0.25, 0.4575684809133146, 0.5336833219404171, 0.48691736114834167, 0.38127499525926134, 0.04517665973091215, 0.05177918701907601, 0.0436672790423977, 0.03238377434131793, 0.022380283443017, 0.0024665092913600415, 0.0027133487479464933, 0.002236416824447281, 0.001637597678893559, 0.0011238311382655223, 0.00012337934976487476, 0.00013543912611862108, 0.00011150266671895877, 8.159468462859179e-05, 5.597617084518649e-05, 6.144136851325744e-06}},
      {"gelu",
       {-5.919525869479969e-09, -3.4145117100425894e-08, -1.7993042196184915e-07, -8.661163777012869e-07, -3.8079751293551564e-06, -1.5289529061324192e-05, -5.605214586679175e-05, -0.00018757574166859968, -0.0005727909245671902, -0.0015952996698664788, -0.00404969409489031, -0.009360829268209818, -0.019674086219030773, -0.037515283181914785, -0.06467457440326647, -0.10021080190328704, -0.13808360426604993, -0.16565411281208356, -0.16455187065004412, -0.1146265733433142, 0.0, 0.1853734266566858, 0.43544812934995586, 0.7343458871879164, 1.0619163957339501, 1.399789198096713, 1.7353254255967332, 2.0624847168180853, 2.380325913780969, 2.69063917073179, 2.99595030590511, 3.2984047003301336, 3.5994272090754325, 3.8998124242583314, 4.199943947854133, 4.4999847104709385, 4.799996192024871, 5.099999133883622, 5.399999820069578, 5.699999965854883, 5.999999994080474},
       {-8.867177363506598e-09, -9.71525344918187e-08, -7.272412106613061e-07, -4.406115192089759e-06, -2.2776134356256213e-05, -1.7132290464083983e-05, -0.0001171075677807823, -0.0005449949958106679, -0.00204373835825203, -0.0065013166956167075, -0.00298641180104598, -0.012334775097950178, -0.0341620025872701, -0.07450113099608054, -0.1327249572858546, -0.0318672980574949, -0.05897679787907363, -0.041562449671589875, 0.07431835601499376, 0.33459029146611263, 0.125, 0.36616388341355494, 0.6942612329887548, 1.0554165995621199, 1.397441994697684, 0.2818672980574949, 0.5530899829143419, 0.8058758482470605, 1.0455493367830269, 1.2808369377448756, 0.252986411801046, 0.5026005266782467, 0.751532803768689, 1.0007266599944142, 1.250292768919452, 0.2500171322904641, 0.5000091104537425, 0.7500033045863941, 1.0000009696549474, 1.2500002428813362, 0.2500000088671773}},
      {"gelu_tanh",
       {-8.43964897967453e-11, -1.1658327303543105e-09, -1.2893157541604692e-08, -1.1544521635320492e-07, -8.463372778599875e-07, -5.136737411925996e-06, -2.6097066957342375e-05, -0.00011219769187020834, -0.00041258021416361583, -0.0013112281183358498, -0.0036373920817729943, -0.008887594639467882, -0.019276846155601702, -0.037330995038887836, -0.06474047315407028, -0.10042842301976707, -0.13829723086213513, -0.16577151129027942, -0.16458480076918525, -0.11462907645724074, 0.0, 0.18537092354275922, 0.43541519923081473, 0.7342284887097206, 1.0617027691378647, 1.3995715769802328, 1.7352595268459294, 2.062669004961112, 2.3807231538443983, 2.691112405360532, 2.996362607918227, 3.2986887718816638, 3.5995874197858364, 3.89988780230813, 4.199973902933043, 4.499994863262588, 4.799999153662722, 5.099999884554784, 5.399999987106842, 5.699999998834167, 5.9999999999156035},
       {-1.9274940032090823e-10, -4.882090377928277e-09, -7.40006314199607e-08, -8.043653347971522e-07, -6.685513887154951e-06, -7.3305676106421736e-06, -6.698774410100854e-05, -0.0003866730389373767, -0.0016881815972330596, -0.005937143122152965, -0.002896041657742412, -0.012333932717595164, -0.03454496895429622, -0.0753508892075991, -0.13364391443386722, -0.03192769828785827, -0.05886306736655632, -0.04130040356971245, 0.07450846666751695, 0.3346306854514977, 0.125, 0.3661477258194009, 0.6941186499993622, 1.0550672047596166, 1.3971576684163909, 0.28192769828785824, 0.5534575657735469, 0.8065131669056993, 1.0460599586057284, 1.280834831793988, 0.2528960416577424, 0.5023748572488612, 0.7512661361979249, 1.0005155640519166, 1.2501674693602525, 0.25000733056761065, 0.5000026742055549, 0.7500006032740011, 1.0000000986675086, 1.250000012205226, 0.2500000001927494}},
      {"leaky_relu",
       {-0.06, -0.057, -0.05399999999999999, -0.051, -0.048, -0.045, -0.042, -0.039, -0.036, -0.033, -0.03, -0.026999999999999996, -0.024, -0.021, -0.018, -0.015, -0.012, -0.009, -0.006, -0.003, 0.0, 0.3, 0.6, 0.8999999999999999, 1.2, 1.5, 1.7999999999999998, 2.1, 2.4, 2.6999999999999997, 3.0, 3.3, 3.5999999999999996, 3.9, 4.2, 4.5, 4.8, 5.1, 5.3999999999999995, 5.7, 6.0},
       {0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.0025, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25}},
      {"leaky_relu_0.2",
       {-1.2000000000000002, -1.1400000000000001, -1.0799999999999998, -1.02, -0.96, -0.9, -0.8400000000000001, -0.78, -0.72, -0.66, -0.6000000000000001, -0.5399999999999999, -0.48, -0.42000000000000004, -0.36, -0.30000000000000004, -0.24, -0.18, -0.12, -0.06, 0.0, 0.3, 0.6, 0.8999999999999999, 1.2, 1.5, 1.7999999999999998, 2.1, 2.4, 2.6999999999999997, 3.0, 3.3, 3.5999999999999996, 3.9, 4.2, 4.5, 4.8, 5.1, 5.3999999999999995, 5.7, 6.0},
       {0.05, 0.1, 0.15000000000000002, 0.2, 0.25, 0.05, 0.1, 0.15000000000000002, 0.2, 0.25, 0.05, 0.1, 0.15000000000000002, 0.2, 0.25, 0.05, 0.1, 0.15000000000000002, 0.2, 0.25, 0.05, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25}},
      {"elu",
       {-0.9975212478233336, -0.9966540345425288, -0.9954834190573874, -0.9939032534344844, -0.99177025295098, -0.9888910034617577, -0.9850044231795223, -0.9797580885541957, -0.9726762775527075, -0.96311683259876, -0.950212931632136, -0.9327944872602503, -0.9092820467105875, -0.8775435717470181, -0.8347011117784134, -0.7768698398515702, -0.6988057880877979, -0.5934303402594009, -0.45118836390597356, -0.2591817793182821, 0.0, 0.3, 0.6, 0.8999999999999999, 1.2, 1.5, 1.7999999999999998, 2.1, 2.4, 2.6999999999999997, 3.0, 3.3, 3.5999999999999996, 3.9, 4.2, 4.5, 4.8, 5.1, 5.3999999999999995, 5.7, 6.0},
       {0.0006196880441665896, 0.001672982728735636, 0.0033874357069595025, 0.006096746565515638, 0.010287183811275039, 0.0027772491345605765, 0.007497788410238852, 0.015181433584353293, 0.02732372244729257, 0.04610395925155002, 0.012446767091965986, 0.03360275636987489, 0.06803846496705938, 0.1224564282529819, 0.2066236102769832, 0.055782540037107455, 0.15059710595610107, 0.30492724480544936, 0.5488116360940265, 0.9260227758521473, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25}},
      {"elu_0.5",
       {-0.4987606239116668, -0.4983270172712644, -0.4977417095286937, -0.4969516267172422, -0.49588512647549, -0.49444550173087887, -0.49250221158976115, -0.48987904427709783, -0.48633813877635373, -0.48155841629938, -0.475106465816068, -0.46639724363012514, -0.45464102335529377, -0.43877178587350907, -0.4173505558892067, -0.3884349199257851, -0.34940289404389896, -0.29671517012970045, -0.22559418195298678, -0.12959088965914106, 0.0, 0.3, 0.6, 0.8999999999999999, 1.2, 1.5, 1.7999999999999998, 2.1, 2.4, 2.6999999999999997, 3.0, 3.3, 3.5999999999999996, 3.9, 4.2, 4.5, 4.8, 5.1, 5.3999999999999995, 5.7, 6.0},
       {0.0003098440220832948, 0.000836491364367818, 0.0016937178534797512, 0.003048373282757819, 0.005143591905637519, 0.0013886245672802883, 0.003748894205119426, 0.007590716792176646, 0.013661861223646285, 0.02305197962577501, 0.006223383545982993, 0.016801378184937446, 0.03401923248352969, 0.06122821412649095, 0.1033118051384916, 0.027891270018553727, 0.07529855297805053, 0.15246362240272468, 0.27440581804701325, 0.46301138792607366, 0.125, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25, 0.5, 0.75, 1.0, 1.25, 0.25}},
      {"silu",
       {-0.014835738939808647, -0.019008401652256063, -0.024279875069082385, -0.03090498760707899, -0.0391803415351675, -0.04944124183766931, -0.06205093311174684, -0.07737719236290229, -0.09574917687671711, -0.11738492459969939, -0.14227761953270035, -0.17002806135389056, -0.19961447158541368, -0.22910332451078713, -0.255331916820878, -0.2736382857095345, -0.2777702598011788, -0.2601454476374964, -0.21260621626452272, -0.1276672449565023, 0.0, 0.1723327550434977, 0.3873937837354772, 0.6398545523625034, 0.9222297401988211, 1.2263617142904655, 1.544668083179122, 1.870896675489213, 2.200385528414586, 2.5299719386461095, 2.8577223804672998, 3.1826150754003004, 3.5042508231232823, 3.8226228076370976, 4.137949066888253, 4.450558758162331, 4.760819658464833, 5.06909501239292, 5.375720124930917, 5.680991598347744, 5.985164261060192},
       {-0.003081608147881378, -0.007805102494055264, -0.014755824718137812, -0.024657908025496104, -0.03837244757052712, -0.009477772779855093, -0.023180079483041835, -0.0420012746066252, -0.066605543057471, -0.09704776744546648, -0.022026026503792404, -0.04817373382478733, -0.07487947592289226, -0.0950120588857004, -0.09657718452033237, -0.010323538574785737, 0.00900094386240776, 0.07807516557521924, 0.2170731495002102, 0.4402749871013966, 0.125, 0.32389000515944144, 0.5871951378748423, 0.895899779233041, 1.2274976403439803, 0.26032353857478574, 0.5386308738081329, 0.8212590441642753, 1.099839301230523, 1.3704343345619683, 0.2720260265037923, 0.5388191069781865, 0.7999541572931033, 1.0560016994755002, 1.3079501987076045, 0.25947777277985506, 0.5153489790282109, 0.7684934310191225, 1.019674432957517, 1.2695127562351378, 0.2530816081478812}},
  };
  return g;
}

struct SoftmaxGolden {
  I64 dim;
  std::vector<double> y, gx;
};

const std::vector<SoftmaxGolden>& softmax_goldens() {
  static const std::vector<SoftmaxGolden> g = {
      {0,
       {0.014774031693273069, 0.014774031693273055, 0.014774031693273069, 0.014774031693273069, 0.014774031693273055, 0.014774031693273069, 0.014774031693273069, 0.014774031693273055, 0.014774031693273069, 0.014774031693273069, 0.014774031693273069, 0.014774031693273069, 0.014774031693273069, 0.014774031693273055, 0.014774031693273069, 0.014774031693273069, 0.014774031693273055, 0.014774031693273069, 0.014774031693273069, 0.014774031693273055, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269, 0.9852259683067269},
       {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {1,
       {0.028280634473339297, 0.028280634473339287, 0.028280634473339297, 0.028280634473339297, 0.028280634473339287, 0.08081618672227366, 0.08081618672227366, 0.08081618672227366, 0.08081618672227368, 0.08081618672227368, 0.23094446634450677, 0.23094446634450677, 0.23094446634450672, 0.23094446634450672, 0.23094446634450677, 0.6599587124598804, 0.6599587124598804, 0.6599587124598804, 0.6599587124598804, 0.6599587124598804, 0.028280634473339287, 0.028280634473339287, 0.028280634473339297, 0.028280634473339294, 0.028280634473339287, 0.08081618672227366, 0.08081618672227366, 0.08081618672227368, 0.08081618672227367, 0.08081618672227366, 0.23094446634450666, 0.23094446634450666, 0.23094446634450677, 0.23094446634450683, 0.23094446634450677, 0.6599587124598804, 0.6599587124598804, 0.6599587124598804, 0.6599587124598802, 0.6599587124598804},
       {0.0, 0.0, 0.0, 0.0, -6.279562308661843e-18, 0.0, 0.0, 0.0, 0.0, -1.794479825229482e-17, 0.0, 0.0, 0.0, 0.0, -5.1279972789088195e-17, 0.0, 0.0, 0.0, 0.0, -1.4654027157498647e-16, 0.0, 0.0, -3.1397811543309226e-18, 0.0, 0.0, 0.0, 0.0, -8.97239912614741e-18, 0.0, 0.0, 0.0, 0.0, -2.5639986394544098e-17, 0.0, 0.0, 0.0, 0.0, -7.327013578749324e-17, 0.0, 0.0}},
      {2,
       {0.12579222098516663, 0.1551871031426302, 0.1914509243353071, 0.23618880491090694, 0.29138094662598923, 0.12579222098516654, 0.15518710314263018, 0.19145092433530703, 0.2361888049109069, 0.29138094662598935, 0.12579222098516657, 0.15518710314263026, 0.19145092433530703, 0.23618880491090682, 0.2913809466259893, 0.12579222098516657, 0.1551871031426302, 0.19145092433530708, 0.23618880491090685, 0.2913809466259893, 0.12579222098516657, 0.1551871031426302, 0.19145092433530705, 0.23618880491090685, 0.2913809466259893, 0.12579222098516654, 0.1551871031426302, 0.19145092433530708, 0.23618880491090688, 0.29138094662598923, 0.12579222098516654, 0.15518710314263018, 0.19145092433530703, 0.2361888049109069, 0.29138094662598935, 0.1257922209851666, 0.1551871031426303, 0.19145092433530703, 0.2361888049109068, 0.29138094662598935},
       {-0.07585834326906697, -0.05478799797005761, -0.019728019960787904, 0.03470917583571401, 0.11566518536419841, -0.07585834326906692, -0.0547879979700576, -0.019728019960787893, 0.034709175835714, 0.11566518536419845, -0.07585834326906693, -0.05478799797005763, -0.019728019960787893, 0.03470917583571399, 0.11566518536419844, -0.07585834326906693, -0.05478799797005761, -0.0197280199607879, 0.03470917583571399, 0.11566518536419844, -0.07585834326906693, -0.05478799797005761, -0.019728019960787897, 0.03470917583571399, 0.11566518536419844, -0.07585834326906692, -0.05478799797005761, -0.0197280199607879, 0.034709175835714, 0.11566518536419841, -0.07585834326906692, -0.0547879979700576, -0.019728019960787893, 0.034709175835714, 0.11566518536419845, -0.07585834326906696, -0.054787997970057636, -0.019728019960787893, 0.034709175835713986, 0.11566518536419845}},
  };
  return g;
}

std::vector<double> golden_x() {
  std::vector<double> v(41);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(static_cast<I64>(i) - 20) * 0.3;
  return v;
}
std::vector<double> golden_g(std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<double>(i % 5 + 1) / 4.0;
  return v;
}

const char* const kNames[] = {"sigmoid", "tanh", "gelu", "gelu_tanh", "leaky_relu", "leaky_relu_0.2",
                              "elu", "elu_0.5", "silu"};

}  // namespace

TEST_CASE("activations match PyTorch's values and gradients on every device", "[op][activations]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    for (const Golden& c : goldens()) {
      INFO(c.name << " on " << dev.str());
      Tensor<double> x = Tensor<double>::from_vector(golden_x(), {41}).to(dev);
      x.requires_grad_();
      const Tensor<double> y = function_named<double>(c.name)(x);
      REQUIRE(y.shape() == ember::Shape{41});
      y.backward(Tensor<double>::from_vector(golden_g(41), {41}).to(dev));
      const std::vector<double> yv = y.to(ember::Device::cpu()).to_vector();
      const std::vector<double> gx = x.grad().to(ember::Device::cpu()).to_vector();
      REQUIRE(yv.size() == c.y.size());
      REQUIRE(gx.size() == c.gx.size());
      for (std::size_t i = 0; i < yv.size(); ++i) CHECK(yv[i] == Approx(c.y[i]).epsilon(1e-14).margin(1e-15));
      for (std::size_t i = 0; i < gx.size(); ++i) CHECK(gx[i] == Approx(c.gx[i]).epsilon(1e-14).margin(1e-15));
    }
  }
}

TEST_CASE("softmax matches PyTorch's values and gradients along every dim on every device", "[op][activations]") {
  for (const ember::Device dev : ember::test::op_devices()) {
    std::vector<double> xv = golden_x();
    xv.resize(40);
    for (double& v : xv) v *= 0.7;
    for (const SoftmaxGolden& c : softmax_goldens()) {
      for (const I64 dim : {c.dim, c.dim - 3}) {
        INFO("softmax dim " << dim << " on " << dev.str());
        Tensor<double> x = Tensor<double>::from_vector(xv, {2, 4, 5}).to(dev);
        x.requires_grad_();
        const Tensor<double> y = ember::softmax(x, dim);
        REQUIRE(y.shape() == ember::Shape{2, 4, 5});
        y.backward(Tensor<double>::from_vector(golden_g(40), {2, 4, 5}).to(dev));
        const std::vector<double> yv = y.to(ember::Device::cpu()).to_vector();
        const std::vector<double> gx = x.grad().to(ember::Device::cpu()).to_vector();
        for (std::size_t i = 0; i < yv.size(); ++i) CHECK(yv[i] == Approx(c.y[i]).epsilon(1e-14).margin(1e-15));
        for (std::size_t i = 0; i < gx.size(); ++i) CHECK(gx[i] == Approx(c.gx[i]).epsilon(1e-14).margin(1e-15));
      }
    }
  }
}

TEST_CASE("activation gradients match finite differences", "[op][activations]") {
  // Clear of the kinks of leaky_relu and elu at 0 by 0.05 (finite differences step over them).
  const Tensor<double> x = ember::test::away_from_zero<double>({3, 7}, 21, 0.05);
  const Tensor<double> wide = ember::test::random_tensor<double>({3, 7}, 22, -4.0, 4.0);
  for (const char* name : kNames) {
    const Fn<double> f = function_named<double>(name);
    const std::string n = name;
    const bool kink = n.rfind("leaky_relu", 0) == 0 || n.rfind("elu", 0) == 0;
    const auto g = [f](const std::vector<Tensor<double>>& v) { return f(v[0]); };
    ember::test::check_gradients_cpu(g, {x}, n);
    if (!kink) ember::test::check_gradients_cpu(g, {wide}, n + " on [-4, 4]");
  }
  // (2, 3, 17): rows strided by 51 and 17 along dims 0 and 1, an inner width that is no multiple
  // of a packet's
  for (const ember::Shape& shape : {ember::Shape{3, 4, 5}, ember::Shape{2, 3, 17}}) {
    for (const I64 dim : {0, 1, -1}) {
      ember::test::check_gradients_cpu(
          [dim](const std::vector<Tensor<double>>& v) { return ember::softmax(v[0], dim); },
          {ember::test::random_tensor<double>(shape, 23, -3.0, 3.0)},
          "softmax dim " + std::to_string(dim) + " of " + ember::shape_str(shape));
    }
  }
}

TEST_CASE("activations agree on every device", "[op][activations]") {
  // Not bit for bit in float: the CPU's float kernels take exp, expm1, tanh and erf from Eigen's
  // vectorised approximations, measured up to 6 ulp from glibc's (sigmoid 4-6, tanh 5, elu 2-4,
  // silu 4-6, softmax 5 ulp; where 1 + erf, 1 + tanh or 1 - sigmoid cancel, in the gelus and
  // silu near their zeros, up to 6 * 2^-24 * max(1, |x|) absolute), while the CUDA kernels
  // call the device's (or, on the harness, the host's) libm functions, within 2 ulp. Bound:
  // 1e-6 * (|want| + the largest |want|), i.e. 16.8 units of 2^-24 of the largest value, which
  // holds 8 units of the largest value (6 + 2) with |x| <= 6 and a factor 2 to spare. Double is
  // computed with scalar libm calls on both sides (within 2 ulp of each other on a GPU): 1e-13.
  const std::vector<ember::Shape> shapes = {{3, 5, 17}, {1, 1031}, {2, 1}};
  for (const char* name : kNames) {
    for (const ember::Shape& s : shapes) {
      const Fn<float> f32 = function_named<float>(name);
      const Fn<double> f64 = function_named<double>(name);
      ember::test::check_devices_agree<float>([f32](const std::vector<Tensor<float>>& v) { return f32(v[0]); },
                                              {ember::test::random_tensor<float>(s, 3, -6.0, 6.0)}, 1e-6,
                                              std::string(name) + " f32");
      ember::test::check_devices_agree<double>([f64](const std::vector<Tensor<double>>& v) { return f64(v[0]); },
                                               {ember::test::random_tensor<double>(s, 4, -6.0, 6.0)}, 1e-13,
                                               std::string(name) + " f64");
    }
  }
  // softmax along every dim (moved last on CUDA), short rows (a warp each) and long ones (a block each)
  struct Case {
    ember::Shape shape;
    I64 dim;
  };
  for (const Case& c : {Case{{3, 5, 17}, -1}, Case{{3, 5, 17}, 1}, Case{{3, 5, 17}, 0}, Case{{2, 1031}, 1},
                        Case{{1031, 3}, 0}, Case{{4, 1}, 1}, Case{{2, 9, 40}, 1}, Case{{5, 3, 7}, 1}}) {
    const I64 dim = c.dim;
    ember::test::check_devices_agree<float>(
        [dim](const std::vector<Tensor<float>>& v) { return ember::softmax(v[0], dim); },
        {ember::test::random_tensor<float>(c.shape, 5, -5.0, 5.0)}, 1e-6, "softmax f32");
    ember::test::check_devices_agree<double>(
        [dim](const std::vector<Tensor<double>>& v) { return ember::softmax(v[0], dim); },
        {ember::test::random_tensor<double>(c.shape, 6, -5.0, 5.0)}, 1e-13, "softmax f64");
  }
}

TEST_CASE("float activations stay within 8 units of 2^-24 of the double ones, inf and NaN alike",
          "[op][activations]") {
  // The CPU's float kernels evaluate exp, expm1, tanh and erf with Eigen's vectorised
  // approximations (backend/cpu/activation.hpp), within 6 ulp of glibc's float functions; the
  // CUDA kernels call CUDA's (2 ulp). Bound: 8 * 2^-24 * max(1, |x|, |y|), where max(1, |x|)
  // covers 1 + erf, 1 + tanh and 1 - sigmoid in gelu, gelu_tanh and silu near their zeros,
  // exact only to |x| * 2^-24 in float with any erf. Inputs are floats, so both see the same x.
  std::vector<float> xs;
  for (int i = -4000; i <= 4000; ++i) xs.push_back(static_cast<float>(i) * 0.005f);  // -20 .. 20
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  for (float v : {-1e4f, -200.0f, -104.0f, -100.0f, -88.5f, -87.5f, -60.0f, 60.0f, 87.5f, 88.5f,
                  100.0f, 1e4f, 1e-30f, -1e-30f, 1e-6f, -1e-6f, inf, -inf, nan})
    xs.push_back(v);
  const I64 n = static_cast<I64>(xs.size());
  const std::vector<double> xd(xs.begin(), xs.end());
  for (const ember::Device dev : ember::test::op_devices()) {
    for (const char* name : kNames) {
      INFO(name << " on " << dev.str());
      Tensor<float> xf = Tensor<float>::from_vector(xs, {n}).to(dev);
      xf.requires_grad_();
      const Tensor<float> yf = function_named<float>(name)(xf);
      yf.backward(Tensor<float>::ones({n}).to(dev));
      Tensor<double> x64 = Tensor<double>::from_vector(xd, {n});
      x64.requires_grad_();
      const Tensor<double> y64 = function_named<double>(name)(x64);
      y64.backward(Tensor<double>::ones({n}));
      const std::vector<float> got[2] = {yf.to(ember::Device::cpu()).to_vector(),
                                         xf.grad().to(ember::Device::cpu()).to_vector()};
      const std::vector<double> want[2] = {y64.to_vector(), x64.grad().to_vector()};
      for (int k = 0; k < 2; ++k) {
        I64 bad = 0, first = -1;
        for (I64 i = 0; i < n; ++i) {
          const auto u = static_cast<std::size_t>(i);
          const double a = got[k][u], b = want[k][u];
          const bool ok =
              std::isnan(b) ? std::isnan(a)
              : std::isinf(b)
                  ? a == b
                  : std::abs(a - b) <= 8 * 0x1p-24 * std::max({1.0, std::abs(xd[u]), std::abs(b)});
          if (!ok && bad++ == 0) first = i;
        }
        INFO((k == 0 ? "output" : "gradient")
             << ": " << bad << " differ; first at x = "
             << (first >= 0 ? xd[static_cast<std::size_t>(first)] : 0.0));
        CHECK(bad == 0);
      }
      // Every element is computed alike wherever it falls in the packets and chunks (bit for
      // bit, NaN included).
      const std::vector<float> shifted =
          function_named<float>(name)(
              Tensor<float>::from_vector(std::vector<float>(xs.begin() + 3, xs.end()), {n - 3})
                  .to(dev))
              .to(ember::Device::cpu())
              .to_vector();
      REQUIRE(shifted.size() == got[0].size() - 3);
      CHECK(std::memcmp(shifted.data(), got[0].data() + 3, shifted.size() * sizeof(float)) == 0);
    }
    // softmax: x on a grid of 1/64 in [-8, 8], so that x - max is exact in float
    for (const I64 dim : {0, 1, 2}) {
      INFO("softmax dim " << dim << " on " << dev.str());
      std::vector<float> v(5 * 37 * 19);
      for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = static_cast<float>((i * 7919) % 1025) / 64.0f - 8.0f;
      const Tensor<float> yf =
          ember::softmax(Tensor<float>::from_vector(v, {5, 37, 19}).to(dev), dim);
      const Tensor<double> y64 = ember::softmax(
          Tensor<double>::from_vector(std::vector<double>(v.begin(), v.end()), {5, 37, 19}), dim);
      const std::vector<float> a = yf.to(ember::Device::cpu()).to_vector();
      const std::vector<double> b = y64.to_vector();
      I64 bad = 0;
      for (std::size_t i = 0; i < a.size(); ++i)
        bad += std::abs(a[i] - b[i]) > 8 * 0x1p-24 * b[i] + 1e-44;
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("activations keep NaN, handle empty and strided inputs", "[op][activations]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const char* name : kNames) {
    INFO(name);
    const Fn<float> f = function_named<float>(name);
    CHECK(std::isnan(f(Tensor<float>::from_list({nan}, {1})).item()));
    CHECK(f(Tensor<float>::zeros({0, 3})).shape() == ember::Shape{0, 3});
    const Tensor<float> m = ember::test::random_tensor<float>({4, 6}, 31, -3.0, 3.0);
    CHECK(f(m.t()).to_vector() == f(m.t().contiguous()).to_vector());
  }
  const Tensor<float> s = ember::softmax(Tensor<float>::from_list({1000, 0, -1000}, {3}), 0);
  CHECK(s.to_vector() == std::vector<float>{1, 0, 0});
}

TEST_CASE("activation modules compute their functions and print as PyTorch's", "[op][activations]") {
  namespace nn = ember::nn;
  const Tensor<float> x = ember::test::random_tensor<float>({2, 3, 4}, 41, -4.0, 4.0);
  struct Case {
    std::shared_ptr<nn::Module> m;
    Tensor<float> want;
    const char* repr;
  };
  const std::vector<Case> cases = {
      {std::make_shared<nn::Sigmoid>(), ember::sigmoid(x), "Sigmoid()"},
      {std::make_shared<nn::Tanh>(), ember::tanh(x), "Tanh()"},
      {std::make_shared<nn::GELU>(), ember::gelu(x), "GELU(approximate='none')"},
      {std::make_shared<nn::GELU>("tanh"), ember::gelu(x, "tanh"), "GELU(approximate='tanh')"},
      {std::make_shared<nn::LeakyReLU>(), ember::leaky_relu(x), "LeakyReLU(negative_slope=0.01)"},
      {std::make_shared<nn::LeakyReLU>(0.2), ember::leaky_relu(x, 0.2), "LeakyReLU(negative_slope=0.2)"},
      {std::make_shared<nn::ELU>(), ember::elu(x), "ELU(alpha=1.0)"},
      {std::make_shared<nn::ELU>(2.0), ember::elu(x, 2.0), "ELU(alpha=2.0)"},
      {std::make_shared<nn::SiLU>(), ember::silu(x), "SiLU()"},
      {std::make_shared<nn::Softmax>(1), ember::softmax(x, 1), "Softmax(dim=1)"},
      {std::make_shared<nn::LogSoftmax>(-1), ember::log_softmax(x, -1), "LogSoftmax(dim=-1)"},
  };
  for (const Case& c : cases) {
    std::ostringstream os;
    c.m->print(os);
    INFO(os.str());
    CHECK(os.str() == c.repr);
    CHECK(c.m->forward(x).to_vector() == c.want.to_vector());
  }
  // Each lists its step (nn/steps.hpp), so models of them export and quantize.
  for (const Case& c : cases) CHECK(nn::run_steps(c.m->steps(), x).to_vector() == c.want.to_vector());
}

TEST_CASE("activations refuse bad arguments with errors naming them", "[op][activations]") {
  using ember::test::ErrorContains;
  const Tensor<float> x = Tensor<float>::zeros({2, 3});
  CHECK_THROWS_MATCHES(ember::gelu(x, "exact"), ember::Error, ErrorContains({"approximate must be 'none' or 'tanh'", "exact"}));
  CHECK_THROWS_MATCHES(ember::nn::GELU("fast"), ember::Error, ErrorContains({"approximate must be 'none' or 'tanh'"}));
  CHECK_THROWS_MATCHES(ember::softmax(x, 2), ember::Error, ErrorContains({"dimension 2 out of range"}));
}
