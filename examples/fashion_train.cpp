// fashion_train: a small CNN with BatchNorm and pooling on Fashion-MNIST, end to end.
// Trains with AdamW (no weight decay on biases and BatchNorm parameters), a linear warm-up and
// then a cosine decay of the learning rate stepped after every batch, and augmentation
// (RandomCrop 28 with padding 2, RandomHorizontalFlip) made by the DataLoader's worker threads;
// evaluates on a validation split (the last --val-size training images, not augmented) after
// every epoch and on the test set at the end; then saves the model (safetensors, PyTorch's
// nn.Sequential names), exports it to ONNX and quantizes it to int8, calibrated on training
// images, and reports the int8 model's test accuracy.
//
//   fashion_train --threads 2                       # 10 epochs, the recipe of docs/training.md
//   fashion_train --data DIR --epochs 1 --max-train 2000   # a short run (no warm-up)
//
// The data: --data, else $EMBER_FASHION_DATA, else /usr/share/datasets/fashion-mnist (Debian's
// dataset-fashion-mnist). bench/peer/fashion_torch.py is the same recipe in PyTorch, printing the
// same lines.
//
// The network (fashion_net() below; 6.0 M multiply-adds per image):
//   conv(1->32, 3x3, pad 1) BN ReLU maxpool2     (N, 32, 14, 14)
//   conv(32->64, 3x3, pad 1) BN ReLU maxpool2    (N, 64, 7, 7)
//   conv(64->64, 3x3, pad 1) BN ReLU             (N, 64, 7, 7)
//   flatten, linear(3136->128) ReLU, linear(128->10), log_softmax
//
// With the defaults (--seed 1, 10 epochs), a run on 2 threads printed at its end (docs/training.md,
// "Fashion-MNIST: a BatchNorm CNN with AdamW", has every epoch, seed 2 and PyTorch's runs:
// 92.87% and 92.66%; on a quiet machine an epoch took about 18 s):
//   Epoch 10: train loss 0.1695, train accuracy 93.73%, validation accuracy 4678/5000 (93.56%), ...
//   Test set: Average loss: 0.1997, Accuracy: 9282/10000 (92.82%)
//   int8 test set: Average loss: 0.2007, Accuracy: 9278/10000 (92.78%), -0.04 points against float
//
// Data-parallel under mpirun when built with MPI (examples/dist_run.hpp, docs/distributed.md):
// `mpirun -np 2 fashion_train --threads 1`: --batch-size stays the global batch, each process
// reads its share of every epoch (the same augmentation per image as one process: a sample's
// random stream depends on the seed, the epoch and its index only); rank 0 alone prints,
// evaluates and writes files. Each process's BatchNorm uses its own batch's statistics.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <ctime>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "cli.hpp"
#include "dist_run.hpp"
#include "ember/dist/sampler.hpp"
#include "ember/ember.hpp"
#include "ember/io/metrics.hpp"
#include "ember/quant/quantize.hpp"
#include "ember/quant/serialize.hpp"
#include "plots.hpp"

namespace {

using namespace ember;
namespace T = ember::data::transforms;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The process's CPU time (all threads), which a machine shared with other work inflates less
// than wall-clock time.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Fashion-MNIST's pixel mean and standard deviation (of the 60,000 training images, / 255).
constexpr double kMean = 0.2860, kStd = 0.3530;

// The network as an nn.Sequential, so that its parameters have the names PyTorch's
// nn.Sequential of the same layers gives them ("0.weight", "1.running_mean", ...).
std::shared_ptr<nn::Sequential> fashion_net(Generator& gen) {
  auto conv = [&](std::int64_t in, std::int64_t out) {  // no bias: a BatchNorm follows
    return std::make_shared<nn::Conv2d>(in, out, 3, Conv2dOptions{.padding = 1}, false, gen);
  };
  return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
      conv(1, 32), std::make_shared<nn::BatchNorm2d>(32), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(Size2{2}),                     // (N, 32, 14, 14)
      conv(32, 64), std::make_shared<nn::BatchNorm2d>(64), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(Size2{2}),                     // (N, 64, 7, 7)
      conv(64, 64), std::make_shared<nn::BatchNorm2d>(64), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Flatten>(),                               // (N, 3136)
      std::make_shared<nn::Linear>(64 * 7 * 7, 128, true, gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(128, 10, true, gen),              // (N, 10)
      std::make_shared<nn::LogSoftmax>(1)});
}

// Fashion-MNIST's classes, in label order (the dataset's documentation).
const std::vector<std::string> kClassNames = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};

// One epoch's numbers: what the per-epoch line prints (and what a metrics file would hold).
struct EpochStats {
  std::int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0;  // over the epoch's (augmented) batches, in train mode
  nn::EvalResult val;
  double lr = 0;               // after the epoch's last step
  double seconds = 0;          // training and validation
  double cpu_seconds = 0;      // the same, CPU time of all threads
  double images_per_second = 0;  // training alone
};

void print_epoch(const EpochStats& s) {
  std::printf("Epoch %lld: train loss %.4f, train accuracy %.2f%%, validation accuracy "
              "%lld/%lld (%.2f%%), lr %.6g, %.1f s (%.0f img/s, CPU %.1f s)\n",
              static_cast<long long>(s.epoch), s.train_loss, s.train_accuracy,
              static_cast<long long>(s.val.correct), static_cast<long long>(s.val.total),
              s.val.accuracy(), s.lr, s.seconds, s.images_per_second, s.cpu_seconds);
  std::fflush(stdout);
}

std::string resolve_fashion_dir(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  if (const char* env = std::getenv("EMBER_FASHION_DATA"); env != nullptr && *env != '\0')
    return env;
  return data::FashionMNIST::default_root;
}

std::vector<std::int64_t> range(std::int64_t begin, std::int64_t end) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(end - begin));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

// The int8 model's mean NLL and accuracy over a loader.
nn::EvalResult evaluate_int8(const quant::QuantizedModel& q, data::DataLoader& loader) {
  NoGradGuard no_grad;
  nn::EvalResult r;
  double loss_sum = 0;
  for (const data::Batch& b : loader.epoch()) {
    const Tensor<float> out = q(b.images);
    loss_sum += nll_loss(out, b.labels, Reduction::sum).item();
    r.correct += count_correct(out, b.labels);
    r.total += b.labels.size(0);
  }
  r.loss = r.total ? loss_sum / static_cast<double>(r.total) : 0.0;
  return r;
}

int run(int argc, char** argv) {
  examples::Flags f;
  f.add("data", "", "Fashion-MNIST folder (default: $EMBER_FASHION_DATA, else " +
                        std::string(data::FashionMNIST::default_root) + ")")
      .add_int("epochs", 10, 1, 1'000'000, "epochs to train")
      .add_int("batch-size", 128, 1, 65'536, "images per training step")
      .add_int("test-batch-size", 1000, 1, 65'536, "images per evaluation batch")
      .add_real("lr", "2e-3", examples::RealRange::positive(), "AdamW's peak learning rate")
      .add_real("weight-decay", "5e-4", examples::RealRange::non_negative(),
                "AdamW's decoupled weight decay (not on biases and BatchNorm parameters)")
      .add_int("warmup-epochs", 1, 0, 1'000'000,
               "epochs of linear warm-up from lr * --warmup-factor, then cosine to 0 (by default "
               "none when --epochs is 1)")
      .add_real("warmup-factor", "0.1", examples::RealRange::factor(),
                "the warm-up's first lr, as a fraction of --lr")
      .add_bool("no-augment", "train without RandomCrop and RandomHorizontalFlip")
      .add_int("seed", 1, 0, std::numeric_limits<std::int64_t>::max(),
               "initialisation, shuffle and augmentation")
      .add_int("val-size", 5000, 1, 59'999, "the last this many training images: validation")
      .add_int("max-train", 0, 0, 1'000'000, "train on only the first N images (0: all)")
      .add_int("workers", 1, 0, 64, "DataLoader worker threads for the training batches")
      .add("save-model", "fashion_cnn.safetensors", "where to save the model ('' for none)")
      .add("onnx", "fashion_cnn.onnx", "where to export the model to ONNX ('' for none)")
      .add("int8", "fashion_int8.safetensors", "where to save the int8 model ('' for none)")
      .add_int("calibration-batches", 20, 1, 1'000'000,
               "batches of --batch-size training images (in file order) to calibrate int8")
      .add("metrics", "",
           "write metrics.csv, metrics.jsonl (train and validation per epoch, test at the end) "
           "and confusion.csv into this folder ('': none)")
      .add("plots", "",
           "draw loss, accuracy and confusion plots (PNG, SVG; scripts/plot_metrics.py) into "
           "this folder ('': none)")
      .add_threads()
      .add_bool("dist", "train data-parallel over the processes mpirun started (also when mpirun "
                "is detected; needs a build with MPI); --batch-size is the global batch");
  if (!f.parse(argc, argv, "Train a BatchNorm CNN on Fashion-MNIST with AdamW, a warm-up + "
                           "cosine schedule and augmentation; save, export ONNX, quantize."))
    return 0;
  set_num_threads(f.threads());
  const std::int64_t epochs = f.integer("epochs"), batch_size = f.integer("batch-size");
  const examples::DistRun dr = examples::start_dist(f.flag("dist"), batch_size);
  const std::int64_t warmup_epochs =
      f.given("warmup-epochs") ? f.integer("warmup-epochs")
                               : std::min(f.integer("warmup-epochs"), epochs - 1);
  EMBER_CHECK(warmup_epochs < epochs, "--warmup-epochs ", warmup_epochs,
              " leaves no epoch for the cosine decay of --epochs ", epochs);
  // The outputs: checked before anything is read or trained.
  std::vector<examples::SafeOutput> outputs;
  for (const char* flag : {"save-model", "onnx", "int8"}) {  // rank 0 alone writes files
    if (dr.leader()) examples::check_output_path(flag, f.str(flag));
    outputs.emplace_back(flag, dr.leader() ? f.str(flag) : std::string());
  }
  examples::SafeOutput &model_out = outputs[0], &onnx_out = outputs[1], &int8_out = outputs[2];
  // --metrics (or, without it, --plots) holds the records; both folders are made before any work.
  const std::string plots_dir = f.str("plots");
  const std::string metrics_flag = f.str("metrics").empty() ? "plots" : "metrics";
  if (dr.leader()) examples::prepare_output_dir("plots", plots_dir);
  io::MetricsWriter metrics;
  if (dr.leader() && !f.str(metrics_flag).empty())
    metrics = examples::open_metrics(metrics_flag, f.str(metrics_flag));

  // The data: one copy of the training pixels behind an augmented view (training) and a plain
  // one (validation, calibration).
  const std::string dir = resolve_fashion_dir(f.str("data"));
  const auto pixels = data::FashionMNIST::load(dir, data::Split::train);
  const std::int64_t val_size = f.integer("val-size");
  EMBER_CHECK(val_size < pixels->size(), "--val-size ", val_size, " leaves no training image of ",
              pixels->size());
  std::int64_t train_size = pixels->size() - val_size;
  if (f.integer("max-train") > 0) train_size = std::min(train_size, f.integer("max-train"));
  const T::Transform normalize = T::Compose({T::ToTensor(), T::Normalize({kMean}, {kStd})});
  const T::Transform augment =
      f.flag("no-augment")
          ? normalize
          : T::Compose({T::RandomCrop(28, {.padding = 2}), T::RandomHorizontalFlip(),
                        T::ToTensor(), T::Normalize({kMean}, {kStd})});
  auto augmented = std::make_shared<data::FashionMNIST>(pixels, augment);
  auto plain = std::make_shared<data::FashionMNIST>(pixels, normalize);
  auto train_set = std::make_shared<data::DatasetSubset>(augmented, range(0, train_size));
  auto val_set = std::make_shared<data::DatasetSubset>(
      plain, range(pixels->size() - val_size, pixels->size()));
  auto test_set = std::make_shared<data::FashionMNIST>(dir, data::Split::test, normalize);

  const auto seed = static_cast<std::uint64_t>(f.integer("seed"));
  data::DataLoader train_loader(train_set, {.batch_size = batch_size / dr.world,
                                            .shuffle = !dr.on, .seed = seed + 1,
                                            .num_workers = static_cast<int>(f.integer("workers"))});
  std::shared_ptr<dist::DistributedSampler> sampler;
  if (dr.on) {  // each process reads its share of every epoch
    sampler = std::make_shared<dist::DistributedSampler>(
        train_set->size(), dist::DistributedSamplerOptions{.num_replicas = dr.world,
                                                           .rank = dr.rank, .seed = seed + 1});
    train_loader.set_sampler(sampler);
  }
  const std::int64_t eval_batch = f.integer("test-batch-size");
  data::DataLoader val_loader(val_set, {.batch_size = eval_batch});
  data::DataLoader test_loader(test_set, {.batch_size = eval_batch});

  Generator gen(seed);
  const std::shared_ptr<nn::Sequential> model = fashion_net(gen);
#ifdef EMBER_WITH_MPI
  std::unique_ptr<dist::DistributedDataParallel> ddp;
  if (dr.on) ddp = std::make_unique<dist::DistributedDataParallel>(model);
  nn::Module& net = ddp ? static_cast<nn::Module&>(*ddp) : *model;
#else
  nn::Module& net = *model;
#endif
  optim::AdamW opt(optim::decay_groups<optim::AdamWOptions>(
      model->named_parameters(), {.lr = f.real("lr"), .weight_decay = f.real("weight-decay")}));
  // Warm-up then cosine, both stepped after every batch (as the PyTorch script does).
  const std::int64_t steps_per_epoch = train_loader.num_batches(),
                     warmup_steps = warmup_epochs * steps_per_epoch,
                     total_steps = epochs * steps_per_epoch;
  std::unique_ptr<optim::LRScheduler> sched;
  if (warmup_steps > 0) {
    auto warmup =
        std::make_shared<optim::LinearLR>(opt, f.real("warmup-factor"), 1.0, warmup_steps);
    auto cosine = std::make_shared<optim::CosineAnnealingLR>(opt, total_steps - warmup_steps);
    sched = std::make_unique<optim::SequentialLR>(
        opt, std::vector<std::shared_ptr<optim::LRScheduler>>{warmup, cosine},
        std::vector<std::int64_t>{warmup_steps});
  } else {
    sched = std::make_unique<optim::CosineAnnealingLR>(opt, total_steps);
  }

  std::printf("ember: data %s: %lld train, %lld validation, %lld test images; %d threads, "
              "%lld loader workers; AdamW lr %g weight decay %g, batch %lld, %lld epochs "
              "(%lld warm-up), augmentation %s\n",
              dir.c_str(), static_cast<long long>(train_set->size()),
              static_cast<long long>(val_set->size()), static_cast<long long>(test_set->size()),
              get_num_threads(), static_cast<long long>(f.integer("workers")), f.real("lr"),
              f.real("weight-decay"), static_cast<long long>(batch_size),
              static_cast<long long>(epochs), static_cast<long long>(warmup_epochs),
              f.flag("no-augment") ? "none" : "RandomCrop(28, padding 2) + RandomHorizontalFlip");
  std::fflush(stdout);

  std::vector<EpochStats> history;
  const auto t_start = Clock::now();
  const double cpu_start = cpu_seconds();
  for (std::int64_t epoch = 1; epoch <= epochs; ++epoch) {
    const auto t0 = Clock::now();
    const double cpu0 = cpu_seconds();
    model->train();
    double loss_sum = 0;
    std::int64_t correct = 0, seen = 0;
    if (sampler) sampler->set_epoch(epoch - 1);
    for (const data::Batch& b : train_loader.epoch()) {
      opt.zero_grad();
      const Tensor<float> out = net(b.images);
      Tensor<float> loss = nll_loss(out, b.labels);
      loss.backward();
      opt.step();
      sched->step();
      NoGradGuard no_grad;
      const std::int64_t n = b.labels.size(0);
      loss_sum += loss.item() * static_cast<double>(n);
      correct += count_correct(out.detach(), b.labels);
      seen += n;
    }
    const double train_seconds = seconds_since(t0);
#ifdef EMBER_WITH_MPI
    if (dr.on) {  // the training loss and accuracy over every process's batches
      Tensor<double> sums = Tensor<double>::from_list(
          {loss_sum, static_cast<double>(correct), static_cast<double>(seen)});
      dist::all_reduce(sums);
      loss_sum = sums.data()[0];
      correct = static_cast<std::int64_t>(sums.data()[1]);
      seen = static_cast<std::int64_t>(sums.data()[2]);
    }
#endif
    EpochStats s{.epoch = epoch,
                 .train_loss = loss_sum / static_cast<double>(seen),
                 .train_accuracy = 100.0 * static_cast<double>(correct) / static_cast<double>(seen),
                 .val = dr.leader() ? nn::evaluate(*model, val_loader) : nn::EvalResult{},
                 .lr = opt.option(0, "lr"),
                 .seconds = seconds_since(t0),
                 .cpu_seconds = cpu_seconds() - cpu0,
                 .images_per_second = static_cast<double>(seen) / train_seconds};
    print_epoch(s);
    history.push_back(s);
    if (metrics.enabled()) {
      const std::int64_t step = epoch * steps_per_epoch;
      metrics.write({.step = step, .epoch = static_cast<double>(epoch), .split = "train",
                     .loss = s.train_loss, .lr = s.lr, .accuracy = s.train_accuracy,
                     .images_per_s = s.images_per_second});
      metrics.write({.step = step, .epoch = static_cast<double>(epoch), .split = "val",
                     .loss = s.val.loss, .lr = s.lr, .accuracy = s.val.accuracy()});
    }
  }
  const double train_total = seconds_since(t_start), train_cpu = cpu_seconds() - cpu_start;
  nn::ConfusionMatrix confusion(10);
  const nn::EvalResult test =
      dr.leader() ? nn::evaluate(*model, test_loader, confusion) : nn::EvalResult{};
  if (metrics.enabled()) {
    metrics.write({.step = epochs * steps_per_epoch, .epoch = static_cast<double>(epochs),
                   .split = "test", .loss = test.loss, .lr = opt.option(0, "lr"),
                   .accuracy = test.accuracy()});
    io::write_confusion_csv((std::filesystem::path(metrics.dir()) / "confusion.csv").string(),
                            confusion, kClassNames);
    std::printf("Metrics: %s, %s, %s/confusion.csv\n", metrics.csv_path().c_str(),
                metrics.jsonl_path().c_str(), metrics.dir().c_str());
    if (!plots_dir.empty() && examples::render_plots("fashion_train", metrics.dir(), plots_dir,
                                                     {"--title", "fashion_train"}))
      std::printf("Plots: %s/{loss,accuracy,confusion}.{png,svg}\n", plots_dir.c_str());
  }
  std::printf("Test set: Average loss: %.4f, Accuracy: %lld/%lld (%.2f%%)\n", test.loss,
              static_cast<long long>(test.correct), static_cast<long long>(test.total),
              test.accuracy());
  std::printf("Trained %lld epochs in %.1f s (CPU %.1f s); final test accuracy %.2f%%\n",
              static_cast<long long>(epochs), train_total, train_cpu, test.accuracy());
  std::fflush(stdout);

  // Save, export, quantize (the model is in eval mode: evaluate left it there).
  if (model_out.enabled()) {
    const std::string p = model_out.write([&](const std::string& path) {
      io::save(*model, path, {{"format", "pt"}, {"model", "fashion_net"}});
    });
    std::printf("Saved the model to %s\n", p.c_str());
  }
  if (onnx_out.enabled()) {
    const std::string p =
        onnx_out.write([&](const std::string& path) { io::export_onnx(*model, path); });
    std::printf("Exported ONNX to %s\n", p.c_str());
  }
  if (int8_out.enabled()) {
    data::DataLoader calib(
        std::make_shared<data::DatasetSubset>(plain, range(0, pixels->size() - val_size)),
        {.batch_size = batch_size});
    const auto t0 = Clock::now();
    const quant::QuantizedModel q =
        quant::quantize(*model, calib, {.batches = f.integer("calibration-batches")});
    const double quantize_s = seconds_since(t0);
    const std::string p =
        int8_out.write([&](const std::string& path) { quant::save_quantized(q, path); });
    const nn::EvalResult q_test = evaluate_int8(quant::load_quantized(p), test_loader);
    std::printf("Saved the int8 model to %s (calibrated on %s images in %.2f s)\n", p.c_str(),
                q.info().at("calibration_samples").c_str(), quantize_s);
    std::printf("int8 test set: Average loss: %.4f, Accuracy: %lld/%lld (%.2f%%), %+.2f points "
                "against float\n",
                q_test.loss, static_cast<long long>(q_test.correct),
                static_cast<long long>(q_test.total), q_test.accuracy(),
                q_test.accuracy() - test.accuracy());
  }
  std::fflush(stdout);
  int status = 0;
  for (const examples::SafeOutput& o : outputs) {
    if (!o.failed()) continue;
    std::fprintf(stderr, "fashion_train: '%s' could not be written; it is in '%s'\n",
                 o.asked().c_str(), o.path().c_str());
    status = 1;
  }
  examples::finish_dist(dr);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  return ember::examples::run_main_dist("fashion_train", run, argc, argv);
}
