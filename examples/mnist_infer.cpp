// mnist_infer: loads a model saved by mnist_train (safetensors, PyTorch names) or an int8 model
// written by mnist_quantize (the file says which; "format" reports it) and classifies
// 28 x 28 digits in batches: the MNIST test set, chosen test-set images, any IDX image file,
// and PGM and PNG files. It reports loss and accuracy where the labels are known, the
// throughput and per-batch latency of the model's forward pass, and each chosen image's
// prediction; --json prints all of it as one JSON object.
//
//   mnist_infer --model mnist_cnn.safetensors --threads 2          # the whole test set
//   mnist_infer --model mnist_cnn.safetensors --index 0,1,2 --png digit.png
//   mnist_infer --model mnist_int8.safetensors --threads 2           # the int8 model
//   mnist_infer --model mnist_cnn.safetensors --images x.idx3-ubyte.gz --idx-range 0:100 --json
//
// Inputs, in this order: --index and --idx-range pick images of the IDX source, which is the
// MNIST test set or --images FILE (labels from --labels FILE, optional; --images alone takes
// the whole file); then --pgm and --png files of any size, each made into a 28 x 28 digit as
// MNIST's were (data/digit_image.hpp: the ink cropped, scaled to 20 pixels, centred by its
// centre of mass). Their polarity is read from the border: a light border is paper with dark
// ink, inverted into MNIST's light ink on black; --invert and --no-invert force it. A PNG's
// transparent pixels become background (data::flatten_transparency). With no input chosen, the
// whole test set is classified.
//
// Batch mode: the inputs are normalised once, then run through the model in batches of
// --batch-size: one warm-up batch, untimed, then --repeat passes over all batches. Only the
// model's forward is timed, batch by batch (normalisation is not); latency percentiles are
// nearest-rank over every timed batch, and the last batch of a pass may be smaller.
//
// --json prints exactly one JSON object on stdout and nothing else (errors go to stderr, exit
// status 1). Its keys are fixed (--help shows the same schema, json_schema below):
//   {"model": "mnist_cnn.safetensors", "format": "float32", "threads": 2, "batch_size": 1000,
//    "eval": {"images": 10000, "correct": 9831, "accuracy": 98.31, "loss": 0.0494},
//    "throughput": {"images": 10000, "seconds": 3.1, "images_per_second": 3200.0,
//                   "latency_ms": {"p50": 300.1, "p99": 320.5, "min": 290.0, "max": 330.0}},
//    "predictions": [{"source": "test[3]", "label": 0, "predicted": 0, "probability": 0.9999,
//                     "log_probs": [-0.000123, ...]}, ...]}
// With "eval", "per_class" lists each class's {"class", "count", "correct", "accuracy"} (null
// for a class with no images) and "confusion" the 10 x 10 counts, row = label, column =
// prediction. "eval" is null unless every input has a label (and with --no-eval);
// throughput.images counts every timed image (inputs x --repeat); "label" is null for an image
// without one;
// "predictions" lists every input when inputs were chosen, and for the whole test set only
// with --predictions; "log_probs" holds the 10 log-probabilities (%.9g, a float's precision).
//
// Without --json, a run on the whole test set prints, for example:
//   Test set: Average loss: 0.0494, Accuracy: 9831/10000 (98.31%), 3200 images/s
//   class  count  correct  accuracy
//       0    980      975    99.49%
//   ... (one line per class; with --confusion, the 10 x 10 confusion matrix under it)
//   Batch mode: 10 batches of 1000, 3200 images/s, latency p50 300.1 ms, p99 320.5 ms
// and with --index 0 --png digit.png, one line per input after those:
//   test[0]: predicted 7 (p=1.0000), label 7
//   digit.png: predicted 1 (p=0.9873)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "ember/data/digit_image.hpp"
#include "ember/data/digit_png.hpp"
#include "ember/data/pgm.hpp"
#include "ember/data/png.hpp"
#include "ember/ember.hpp"
#include "ember/models/classifier.hpp"

namespace {

using namespace ember;

constexpr std::int64_t image_side = 28;
constexpr std::int64_t image_pixels = image_side * image_side;
constexpr std::int64_t num_classes = 10;

// ---- the model ---------------------------------------------------------------------------

// The model file made ready to classify (models/classifier.hpp, shared with ember_serve).
using models::Classifier;
using models::load_classifier;

// ---- the inputs --------------------------------------------------------------------------

// The images to classify, in order, with where each came from and its label (-1: none).
struct Inputs {
  std::vector<std::uint8_t> pixels;  // (N, 28, 28)
  std::vector<std::string> sources;
  std::vector<std::int64_t> labels;

  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  void add(const std::uint8_t* image, std::string source, std::int64_t label) {
    pixels.insert(pixels.end(), image, image + image_pixels);
    sources.push_back(std::move(source));
    labels.push_back(label);
  }
};

// Where --index and --idx-range pick from: the MNIST test set or an --images file.
struct IdxSource {
  std::string name;             // "test", or the file's path
  std::string description;      // for messages: "the test set", or the quoted path
  Tensor<std::uint8_t> images;  // (N, 28, 28), contiguous
  Tensor<std::int64_t> labels;  // (N); undefined when there are none
  [[nodiscard]] std::int64_t size() const { return images.size(0); }
  [[nodiscard]] std::int64_t label(std::int64_t i) const {
    return labels.defined() ? labels(i) : -1;
  }
  void add_to(Inputs& in, std::int64_t i) const {
    in.add(images.data() + i * image_pixels, name + "[" + std::to_string(i) + "]", label(i));
  }
};

// A whole-string decimal integer, or nullopt.
std::optional<std::int64_t> parse_int(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 18)
    return std::nullopt;
  return std::strtoll(s.c_str(), nullptr, 10);
}

IdxSource load_idx_source(const std::string& images, const std::string& labels,
                          const std::string& data_dir) {
  IdxSource src;
  if (images.empty()) {
    EMBER_CHECK(labels.empty(), "--labels needs --images (the test set has its own labels)");
    const auto test = data::load_mnist(data_dir, data::Split::test);
    src = {"test", "the test set", test->images.contiguous(), test->labels.contiguous()};
  } else if (!labels.empty()) {
    const data::ImageDataset d = data::load_idx_dataset(images, labels, num_classes);
    src = {images, "'" + images + "'", d.images.contiguous(), d.labels.contiguous()};
  } else {
    Tensor<std::uint8_t> pixels = data::read_idx_u8_tensor(images);
    EMBER_CHECK(pixels.dim() == 3, "IDX file '", images,
                "': expected 3 dimensions (N, H, W), got ", pixels.dim());
    src = {images, "'" + images + "'", std::move(pixels), {}};
  }
  EMBER_CHECK(src.images.size(1) == image_side && src.images.size(2) == image_side, "IDX file '",
              src.name, "' holds ", src.images.size(2), " x ", src.images.size(1),
              " images; the model takes 28 x 28 images");
  return src;
}

// Adds --index and --idx-range picks (or, for an --images file and neither, all of it).
void add_idx_inputs(Inputs& in, const IdxSource& src, const std::string& index,
                    const std::string& range, bool whole_if_none) {
  const std::string& what = src.description;
  for (const std::string& s : examples::split_list(index)) {
    const auto i = parse_int(s);
    EMBER_CHECK(i && *i < src.size(), "--index: '", s, "' is not an index of ", what, " [0, ",
                src.size(), ")");
    src.add_to(in, *i);
  }
  if (!range.empty()) {
    const auto colon = range.find(':');
    const auto a = parse_int(range.substr(0, colon));
    const auto b = colon == std::string::npos ? std::nullopt : parse_int(range.substr(colon + 1));
    EMBER_CHECK(a && b && *a < *b && *b <= src.size(), "--idx-range: '", range,
                "' is not a range A:B with 0 <= A < B <= ", src.size(), " (the size of ", what,
                ")");
    for (std::int64_t i = *a; i < *b; ++i) src.add_to(in, i);
  }
  if (index.empty() && range.empty() && whole_if_none)
    for (std::int64_t i = 0; i < src.size(); ++i) src.add_to(in, i);
}

// Adds greyscale images of any size read by `read` (PGM or PNG files), each made into an
// MNIST digit (28 x 28, light ink on black).
template <class Read>
void add_files(Inputs& in, const std::string& list, const char* kind, data::Polarity polarity,
               Read read) {
  for (const std::string& path : examples::split_list(list)) {
    const Tensor<std::uint8_t> img = read(path);
    Tensor<std::uint8_t> digit;
    try {
      digit = data::to_mnist_digit(img, polarity);
    } catch (const Error& e) {
      throw Error(::ember::detail::concat(kind, " file '", path, "': ", e.what()));
    }
    in.add(digit.data(), path, -1);
  }
}

// (N, 1, 28, 28), normalised as in training.
Tensor<float> normalise(const Inputs& in, const data::PixelNormalization& norm) {
  auto x = Tensor<float>::empty({in.size(), 1, image_side, image_side});
  float* p = x.data();
  for (std::size_t i = 0; i < in.pixels.size(); ++i) p[i] = norm(in.pixels[i]);
  return x;
}

// ---- batch mode --------------------------------------------------------------------------

struct Timing {
  std::int64_t batches_per_pass = 0;
  std::int64_t images = 0;       // timed images: inputs x passes
  double seconds = 0;            // sum of the timed forwards
  std::vector<double> batch_ms;  // every timed batch, sorted
  // Nearest-rank percentile: the smallest latency that p% of the batches do not exceed.
  [[nodiscard]] double percentile(double p) const {
    const auto n = static_cast<double>(batch_ms.size());
    const auto rank = static_cast<std::size_t>(std::max(1.0, std::ceil(p / 100.0 * n)));
    return batch_ms[std::min(rank, batch_ms.size()) - 1];
  }
  [[nodiscard]] double images_per_second() const {
    return seconds > 0 ? static_cast<double>(images) / seconds : 0.0;
  }
};

// Runs x (N, 1, 28, 28) through the classifier in batches: one untimed warm-up batch, then
// `repeat` timed passes. Returns the log-probabilities (N, 10) of the first pass.
Tensor<float> run_batches(const Classifier& model, const Tensor<float>& x, std::int64_t batch,
                          std::int64_t repeat, Timing& t) {
  using Clock = std::chrono::steady_clock;
  const std::int64_t n = x.size(0);
  auto forward = [&](std::int64_t lo, std::int64_t hi) {
    Tensor<float> out = model.forward(x.slice(0, lo, hi));
    EMBER_CHECK(out.dim() == 2 && out.size(0) == hi - lo && out.size(1) == num_classes,
                "the model returned ", shape_str(out.shape()), " for a batch of ", hi - lo,
                " images; expected [", hi - lo, ", ", num_classes, "]");
    return out;
  };
  (void)forward(0, std::min(batch, n));  // warm-up

  auto log_probs = Tensor<float>::empty({n, num_classes});
  t.batches_per_pass = (n + batch - 1) / batch;
  for (std::int64_t pass = 0; pass < repeat; ++pass) {
    for (std::int64_t lo = 0; lo < n; lo += batch) {
      const std::int64_t hi = std::min(lo + batch, n);
      const auto t0 = Clock::now();
      const Tensor<float> out = forward(lo, hi);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      t.seconds += s;
      t.images += hi - lo;
      t.batch_ms.push_back(1000.0 * s);
      if (pass == 0) {
        const Tensor<float> c = out.contiguous();
        std::memcpy(log_probs.data() + lo * num_classes, c.data(),
                    static_cast<std::size_t>(c.numel()) * sizeof(float));
      }
    }
  }
  std::sort(t.batch_ms.begin(), t.batch_ms.end());
  return log_probs;
}

// ---- results -----------------------------------------------------------------------------

struct Prediction {
  std::int64_t predicted = 0;
  double probability = 0;
};

Prediction predict(const float* log_probs) {
  const float* best = std::max_element(log_probs, log_probs + num_classes);  // first on ties
  return {best - log_probs, std::exp(static_cast<double>(*best))};
}

struct Eval {
  std::int64_t images = 0, correct = 0;
  double loss = 0;  // mean negative log-likelihood
  nn::ConfusionMatrix confusion{num_classes};  // row = label, column = prediction
  [[nodiscard]] double accuracy() const {
    return 100.0 * static_cast<double>(correct) / static_cast<double>(images);
  }
};

// Loss and accuracy over the inputs, or nullopt when some input has no label.
std::optional<Eval> evaluate(const Inputs& in, const Tensor<float>& log_probs) {
  Eval e;
  double loss_sum = 0;
  for (std::int64_t i = 0; i < in.size(); ++i) {
    const std::int64_t label = in.labels[static_cast<std::size_t>(i)];
    if (label < 0) return std::nullopt;
    const float* lp = log_probs.data() + i * num_classes;
    loss_sum -= static_cast<double>(lp[label]);
    const std::int64_t predicted = predict(lp).predicted;
    e.correct += predicted == label ? 1 : 0;
    e.confusion.add(label, predicted);
  }
  e.images = in.size();
  e.loss = loss_sum / static_cast<double>(e.images);
  return e;
}

struct Report {
  std::string model, format;
  int threads = 0;
  std::int64_t batch_size = 0, repeat = 1;
  bool whole_test_set = false, list_predictions = false, confusion = false;
  std::optional<Eval> eval;
  Timing timing;
};

std::string to_json(const Report& r, const Inputs& in, const Tensor<float>& log_probs) {
  examples::JsonWriter j;
  j.begin_object();
  j.key("model").string(r.model).key("format").string(r.format);
  j.key("threads").integer(r.threads).key("batch_size").integer(r.batch_size);
  j.key("eval");
  if (r.eval) {
    j.begin_object().key("images").integer(r.eval->images).key("correct").integer(r.eval->correct);
    j.key("accuracy").number(r.eval->accuracy(), 10).key("loss").number(r.eval->loss, 9);
    const nn::ConfusionMatrix& m = r.eval->confusion;
    j.key("per_class").begin_array();
    for (std::int64_t c = 0; c < num_classes; ++c) {
      j.begin_object().key("class").integer(c).key("count").integer(m.class_total(c));
      j.key("correct").integer(m(c, c)).key("accuracy");
      if (m.class_total(c) > 0) {
        j.number(m.class_accuracy(c), 10);
      } else {
        j.null();
      }
      j.end_object();
    }
    j.end_array().key("confusion").begin_array();
    for (std::int64_t t = 0; t < num_classes; ++t) {
      j.begin_array();
      for (std::int64_t p = 0; p < num_classes; ++p) j.integer(m(t, p));
      j.end_array();
    }
    j.end_array().end_object();
  } else {
    j.null();
  }
  const Timing& t = r.timing;
  j.key("throughput").begin_object().key("images").integer(t.images);
  j.key("seconds").number(t.seconds, 6).key("images_per_second").number(t.images_per_second(), 6);
  j.key("latency_ms").begin_object();
  j.key("p50").number(t.percentile(50), 6).key("p99").number(t.percentile(99), 6);
  j.key("min").number(t.batch_ms.front(), 6).key("max").number(t.batch_ms.back(), 6);
  j.end_object().end_object();
  j.key("predictions").begin_array();
  for (std::int64_t i = 0; r.list_predictions && i < in.size(); ++i) {
    const auto k = static_cast<std::size_t>(i);
    const float* lp = log_probs.data() + i * num_classes;
    const Prediction p = predict(lp);
    j.begin_object().key("source").string(in.sources[k]).key("label");
    if (in.labels[k] >= 0) {
      j.integer(in.labels[k]);
    } else {
      j.null();
    }
    j.key("predicted").integer(p.predicted).key("probability").number(p.probability, 9);
    j.key("log_probs").begin_array();
    for (std::int64_t c = 0; c < num_classes; ++c) j.number(static_cast<double>(lp[c]), 9);
    j.end_array().end_object();
  }
  j.end_array().end_object();
  return j.str();
}

// The accuracy of each class (its labelled images predicted right), and with `matrix` the
// confusion matrix: one row per label, one column per prediction.
void print_per_class(const nn::ConfusionMatrix& m, bool matrix) {
  std::printf("class  count  correct  accuracy\n");
  for (std::int64_t c = 0; c < num_classes; ++c) {
    std::printf("%5lld  %5lld  %7lld  ", static_cast<long long>(c),
                static_cast<long long>(m.class_total(c)), static_cast<long long>(m(c, c)));
    if (m.class_total(c) > 0) {
      std::printf("%7.2f%%\n", m.class_accuracy(c));
    } else {
      std::printf("%8s\n", "-");
    }
  }
  if (!matrix) return;
  std::printf("Confusion matrix (rows: label, columns: predicted):\n      ");
  for (std::int64_t p = 0; p < num_classes; ++p) std::printf("%6lld", static_cast<long long>(p));
  std::printf("\n");
  for (std::int64_t t = 0; t < num_classes; ++t) {
    std::printf("%6lld", static_cast<long long>(t));
    for (std::int64_t p = 0; p < num_classes; ++p)
      std::printf("%6lld", static_cast<long long>(m(t, p)));
    std::printf("\n");
  }
}

void print_human(const Report& r, const Inputs& in, const Tensor<float>& log_probs) {
  const Timing& t = r.timing;
  if (r.eval) {
    std::printf("%s: Average loss: %.4f, Accuracy: %lld/%lld (%.2f%%), %.0f images/s\n",
                r.whole_test_set ? "Test set" : "Chosen images", r.eval->loss,
                static_cast<long long>(r.eval->correct), static_cast<long long>(r.eval->images),
                r.eval->accuracy(), t.images_per_second());
    print_per_class(r.eval->confusion, r.confusion);
  }
  // A batch is at most --batch-size images, and at most all of them.
  const std::int64_t batch = std::min(r.batch_size, in.size());
  std::printf("Batch mode: %lld %s of %lld", static_cast<long long>(t.batches_per_pass),
              t.batches_per_pass == 1 ? "batch" : "batches", static_cast<long long>(batch));
  if (r.repeat > 1) std::printf(" (%lld passes)", static_cast<long long>(r.repeat));
  std::printf(", %.0f images/s, latency p50 %.1f ms, p99 %.1f ms\n", t.images_per_second(),
              t.percentile(50), t.percentile(99));
  for (std::int64_t i = 0; r.list_predictions && i < in.size(); ++i) {
    const auto k = static_cast<std::size_t>(i);
    const Prediction p = predict(log_probs.data() + i * num_classes);
    std::printf("%s: predicted %lld (p=%.4f)", in.sources[k].c_str(),
                static_cast<long long>(p.predicted), p.probability);
    const std::int64_t label = in.labels[k];
    if (label >= 0)
      std::printf(", label %lld%s", static_cast<long long>(label),
                  p.predicted == label ? "" : "  <- wrong");
    std::printf("\n");
  }
}

constexpr const char* about =
    "Classify MNIST digits with a model saved by mnist_train (or its int8 version written by\n"
    "mnist_quantize), in batches. With no input chosen, the whole test set. Timing covers the\n"
    "model's forward only: the inputs are normalised before, untimed.\n"
    "\n"
    "PGM and PNG files may be of any size and either polarity: each is made into a 28 x 28\n"
    "digit as MNIST's were (the ink cropped, scaled to 20 pixels, centred by its centre of\n"
    "mass). A light border means dark ink on paper, which is inverted; --invert and\n"
    "--no-invert force it.\n";

// The --json output, for --help (the top of this file has an example).
constexpr const char* json_schema =
    "\n"
    "--json prints one JSON object on stdout and nothing else (errors: stderr, exit 1):\n"
    "  {\"model\": path, \"format\": \"float32\" or \"int8\", \"threads\": int,\n"
    "   \"batch_size\": int,\n"
    "   \"eval\": null or {\"images\": int, \"correct\": int, \"accuracy\": percent,\n"
    "                      \"loss\": mean negative log-likelihood,\n"
    "                      \"per_class\": [{\"class\", \"count\", \"correct\",\n"
    "                                     \"accuracy\"}, ...],\n"
    "                      \"confusion\": [[10 counts: row = label, column = predicted], ...]},\n"
    "   \"throughput\": {\"images\": timed images (inputs x --repeat), \"seconds\": forward time,\n"
    "                  \"images_per_second\": number,\n"
    "                  \"latency_ms\": {\"p50\", \"p99\", \"min\", \"max\": per batch}},\n"
    "   \"predictions\": [{\"source\": \"test[3]\", \"FILE[3]\" or a PGM/PNG path,\n"
    "                    \"label\": int or null, \"predicted\": int, \"probability\": number,\n"
    "                    \"log_probs\": [10 numbers]}, ...]}\n"
    "\"eval\" is null when some input has no label, or with --no-eval; \"predictions\" lists\n"
    "every input when inputs were chosen, and for the whole test set only with --predictions.";

int run(int argc, char** argv) {
  examples::Flags f;
  f.add("model", "mnist_cnn.safetensors", "model file written by mnist_train")
      .add("data", "", "MNIST folder (default: $EMBER_DATA, else data/mnist)")
      .add("index", "", "comma-separated indices of test-set (or --images) images to classify")
      .add("idx-range", "", "A:B: classify images A .. B-1 of the test set (or --images)")
      .add("images", "", "IDX image file (N x 28 x 28, .gz or not) to use instead of the test set")
      .add("labels", "", "IDX label file for --images (optional)")
      .add("pgm", "", "comma-separated PGM files (any size) to classify")
      .add("png", "", "comma-separated PNG files (any size, colour type, bit depth) to classify")
      .add_bool("invert", "PGM/PNG files hold a dark digit on a light background (default: "
                          "from the border)")
      .add_bool("no-invert", "PGM/PNG files hold a light digit on a dark background, as MNIST")
      .add_int("batch-size", 1000, 1, 1 << 20, "images per forward pass")
      .add_int("repeat", 1, 1, 1'000'000, "timed passes over the inputs, after one warm-up batch")
      .add_threads()
      .add_bool("no-eval", "do not report loss and accuracy")
      .add_bool("predictions", "list every prediction for the whole test set too")
      .add_bool("confusion", "print the confusion matrix under the per-class accuracy table")
      .add_bool("json", "print one JSON object on stdout (schema above)");
  if (!f.parse(argc, argv, std::string(about) + json_schema)) return 0;
  const std::int64_t batch_size = f.integer("batch-size"), repeat = f.integer("repeat");
  EMBER_CHECK(!(f.flag("invert") && f.flag("no-invert")),
              "--invert and --no-invert exclude each other");
  const data::Polarity polarity = f.flag("invert")      ? data::Polarity::invert
                                  : f.flag("no-invert") ? data::Polarity::as_is
                                                        : data::Polarity::detect;
  set_num_threads(f.threads());

  const Classifier model = load_classifier(f.str("model"));

  // The inputs: IDX picks first, then the image files; the whole test set when none.
  const std::string index = f.str("index"), range = f.str("idx-range");
  const std::string images = f.str("images"), pgm = f.str("pgm"), png = f.str("png");
  const bool chosen =
      !index.empty() || !range.empty() || !images.empty() || !pgm.empty() || !png.empty();
  Inputs in;
  if (!chosen || !index.empty() || !range.empty() || !images.empty()) {
    const IdxSource src =
        load_idx_source(images, f.str("labels"), examples::resolve_data_dir(f.str("data")));
    add_idx_inputs(in, src, index, range, /*whole_if_none=*/!chosen || !images.empty());
  } else {
    EMBER_CHECK(f.str("labels").empty(), "--labels needs --images");
  }
  add_files(in, pgm, "PGM", polarity, [](const std::string& p) { return data::read_pgm(p); });
  add_files(in, png, "PNG", polarity,
            [&](const std::string& p) { return data::read_png_grey(p, polarity); });

  EMBER_CHECK(in.size() > 0, "no images to classify (empty --index, --pgm or --png list?)");

  Report r;
  r.model = f.str("model");
  r.format = model.format;
  r.threads = get_num_threads();
  r.batch_size = batch_size;
  r.repeat = repeat;
  r.whole_test_set = !chosen;
  r.list_predictions = chosen || f.flag("predictions");
  r.confusion = f.flag("confusion");
  const Tensor<float> log_probs =
      run_batches(model, normalise(in, model.normalization), batch_size, repeat, r.timing);
  if (!f.flag("no-eval")) r.eval = evaluate(in, log_probs);

  if (f.flag("json")) {
    std::printf("%s\n", to_json(r, in, log_probs).c_str());
  } else {
    print_human(r, in, log_probs);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ember::examples::run_main("mnist_infer", run, argc, argv);
}
