// The code of docs/pytorch-to-ember.md. Each region between two "// [name]" lines is quoted
// in the cheat sheet (scripts/check_doc_samples.sh checks the quotes are exact); CTest builds
// this file with the project's -Werror flags and runs it: a few training steps on random data,
// a save and load, a checkpoint, an ONNX export and an int8 model, in a temporary folder.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <ember/ember.hpp>

namespace fs = std::filesystem;

// [model]
using namespace ember;

struct Net : nn::Module {                // class Net(nn.Module):
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Linear> fc;
  Net() : nn::Module("Net") {            // super().__init__(); the name is what print() shows
    conv = register_module("conv", std::make_shared<nn::Conv2d>(1, 8, 3,
                                                                Conv2dOptions{.padding = 1}));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(8));
    fc = register_module("fc", std::make_shared<nn::Linear>(8 * 14 * 14, 10));
  }
  nn::Tensor forward(const nn::Tensor& x) override {  // nn::Tensor is Tensor<float>
    nn::Tensor h = max_pool2d(relu((*bn)((*conv)(x))), 2);
    return log_softmax((*fc)(h.flatten(1)), 1);
  }
};
// [model]

namespace {

void tensors() {
  // [tensors]
  Tensor<float> x = Tensor<float>::randn({4, 3});        // torch.randn(4, 3)
  Tensor<float> z = Tensor<float>::zeros({4, 3});        // torch.zeros(4, 3)
  auto r = Tensor<float>::arange(0, 12).reshape({4, 3});  // torch.arange(0., 12.).reshape(4, 3)
  auto v = Tensor<float>::from_list({1, 2, 3});          // torch.tensor([1., 2., 3.])
  Tensor<double> xd = x.cast<double>();                   // x.double(): the dtype is the type
  Tensor<std::int64_t> labels = Tensor<std::int64_t>::from_list({0, 2, 1, 2});
  float first = x(0, 0);                                  // x[0, 0].item()
  double total = sum(x * 2.0 + 1).item();                // (x * 2 + 1).sum().item()
  auto mask = gt(x, 0.0);                                 // x > 0: a uint8 tensor
  auto pos = where(mask, x, z);                           // torch.where(x > 0, x, z)
  auto best = argmax(x, 1);                               // x.argmax(1): int64

  Tensor<float> w = Tensor<float>::randn({3, 2});
  w.requires_grad_();                                     // w.requires_grad_()
  sum(matmul(x, w)).backward();                           // (x @ w).sum().backward()
  Tensor<float> g = w.grad();                             // w.grad
  {
    NoGradGuard no_grad;                                  // with torch.no_grad():
    w.copy_(w - g * 0.1f);                                //     w -= 0.1 * w.grad
  }
  Device dev = Device::cpu();                             // or Device::cuda(0) in a CUDA build
  Tensor<float> on_dev = x.to(dev);                       // x.to(dev); x.cpu()
  // [tensors]
  EMBER_CHECK(r.size(0) == 4 && v.numel() == 3 && xd.numel() == 12 && labels.numel() == 4 &&
                  best.numel() == 4 && pos.numel() == 12 && on_dev.numel() == 12,
              "tensors sample: a shape is wrong");
  std::printf("tensors: x[0,0] = %.4f, sum(2x+1) = %.4f\n", first, total);
}

void functional() {
  Tensor<float> x = Tensor<float>::randn({2, 1, 28, 28});
  Tensor<float> w = Tensor<float>::randn({8, 1, 3, 3});
  Tensor<std::int64_t> target = Tensor<std::int64_t>::from_list({3, 7});
  // [functional]
  auto y = conv2d(x, w, {}, {.stride = 1, .padding = 1});  // F.conv2d(x, w, padding=1)
  y = max_pool2d(relu(y), 2);                              // F.max_pool2d(F.relu(y), 2)
  y = dropout(y, 0.25, /*training=*/true);                 // F.dropout(y, 0.25)
  auto logits = linear(y.flatten(1), Tensor<float>::randn({10, 8 * 14 * 14}) * 0.01f);
  auto l1 = cross_entropy(logits, target);                 // F.cross_entropy(logits, target)
  auto l2 = nll_loss(log_softmax(logits, 1), target);      // F.nll_loss(F.log_softmax(...))
  auto l3 = cross_entropy(logits, target, Reduction::sum, /*label_smoothing=*/0.1);
  auto l4 = mse_loss(softmax(logits, 1), Tensor<float>::zeros({2, 10}));
  // [functional]
  EMBER_CHECK(std::abs(l1.item() - l2.item()) <= 1e-5f * std::abs(l2.item()),
              "functional sample: cross_entropy differs from nll_loss(log_softmax)");
  std::printf("functional: cross_entropy %.4f = nll(log_softmax) %.4f; %.4f, %.4f\n", l1.item(),
              l2.item(), l3.item(), l4.item());
}

// A map-style dataset of random 1x28x28 images.
// [dataset]
struct Noise : data::Dataset {                         // class Noise(torch.utils.data.Dataset)
  std::int64_t size() const override { return 256; }   // __len__
  data::Example get(std::int64_t i) const override {   // __getitem__: (image (C, H, W), label)
    Generator gen(static_cast<std::uint64_t>(i));
    return {Tensor<float>::rand({1, 28, 28}, gen), i % 10};
  }
  std::int64_t num_classes() const override { return 10; }
};
// [dataset]

void train(const fs::path& dir) {
  // [data]
  namespace T = ember::data::transforms;               // torchvision.transforms as T
  auto augment = T::Compose({T::RandomCrop(28, {.padding = 2}), T::RandomHorizontalFlip(),
                             T::Normalize({0.5}, {0.25})});
  auto train_set = std::make_shared<data::TransformedDataset>(std::make_shared<Noise>(),
                                                              augment);
  data::DataLoader loader(train_set, {.batch_size = 32, .shuffle = true, .drop_last = true,
                                      .seed = 1, .num_workers = 2});
  // [data]

  // [optim]
  auto model = std::make_shared<Net>();
  // AdamW with no weight decay on biases and BatchNorm weights (rank-1 parameters):
  optim::AdamW opt(optim::decay_groups<optim::AdamWOptions>(
      model->named_parameters(), {.lr = 1e-3, .weight_decay = 0.05}));
  // or by hand: optim::SGD sgd({{decay, {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4}},
  //                             {no_decay, {.lr = 0.1, .momentum = 0.9}}});
  const int epochs = 3;
  // LinearLR warm-up for 1 epoch, then cosine: stepped once per epoch.
  optim::SequentialLR sched(opt, {std::make_shared<optim::LinearLR>(opt, 0.1, 1.0, 1),
                                  std::make_shared<optim::CosineAnnealingLR>(opt, epochs - 1)},
                            {1});
  // [optim]

  // [loop]
  for (int epoch = 0; epoch < epochs; ++epoch) {
    model->train();                                      // model.train()
    for (const data::Batch& b : loader.epoch()) {        // for images, labels in loader:
      opt.zero_grad();                                   //     opt.zero_grad()
      Tensor<float> loss = nll_loss((*model)(b.images), b.labels);
      loss.backward();                                   //     loss.backward()
      nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      opt.step();                                        //     opt.step()
    }
    sched.step();                                        // sched.step(), per epoch
    std::printf("epoch %d: lr %.6f\n", epoch, sched.get_last_lr()[0]);
  }
  model->eval();                                         // model.eval()
  {
    NoGradGuard no_grad;                                 // with torch.no_grad():
    Tensor<float> scores = (*model)(Tensor<float>::rand({4, 1, 28, 28}));
    std::printf("predictions: %lld\n", static_cast<long long>(argmax(scores, 1)(0)));
  }
  // [loop]

  const std::string weights = (dir / "net.safetensors").string();
  const std::string ckpt = (dir / "run.ckpt").string();
  const std::string onnx = (dir / "net.onnx").string();
  const std::string int8 = (dir / "net_int8.safetensors").string();
  // [save]
  io::save(*model, weights);                  // safetensors.torch.save_file(model.state_dict())
  Net copy;
  io::load(copy, weights);                    // model.load_state_dict(load_file(...)); strict
  nn::NamedTensors sd = model->state_dict();  // model.state_dict(): (name, tensor) pairs
  copy.load_state_dict(sd);                   // model.load_state_dict(sd)

  // A checkpoint: model, optimizer, scheduler and generators; resumes bit-identically.
  io::TrainingState state{.model = model.get(), .optimizer = &opt, .scheduler = &sched,
                          .loader_generator = &loader.generator()};
  io::save_checkpoint(ckpt, state, /*epoch=*/epochs);
  const io::Checkpoint c = io::load_checkpoint(ckpt);
  io::restore_checkpoint(c, state);           // then continue from epoch c.epoch + 1
  // [save]
  {
    NoGradGuard no_grad;
    copy.eval();
    const Tensor<float> probe = Tensor<float>::rand({2, 1, 28, 28});
    EMBER_CHECK((*model)(probe).to_vector() == copy(probe).to_vector(),
                "save sample: the loaded model computes something else");
  }

  // [deploy]
  // torch.onnx.export(model, x, "net.onnx"): the eval-mode forward of a model that lists its
  // steps; a Sequential of ember's layers does, a Module of your own overrides list_steps.
  nn::Sequential seq({std::make_shared<nn::Conv2d>(1, 8, 3, Conv2dOptions{.padding = 1}),
                      std::make_shared<nn::BatchNorm2d>(8), std::make_shared<nn::ReLU>(),
                      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
                      std::make_shared<nn::Linear>(8 * 14 * 14, 10),
                      std::make_shared<nn::LogSoftmax>(1)});
  seq.eval();
  io::export_onnx(seq, onnx, {.input_shape = {-1, 1, 28, 28}});
  // int8 post-training quantization, calibrated on a few batches (torch.ao.quantization):
  quant::QuantizedModel q = quant::quantize(seq, loader, {.batches = 2});
  quant::save_quantized(q, int8);
  Tensor<float> log_probs = quant::load_quantized(int8)(Tensor<float>::rand({4, 1, 28, 28}));
  // [deploy]
  EMBER_CHECK(c.epoch == epochs && log_probs.size(1) == 10 && fs::file_size(onnx) > 0,
              "deploy sample: wrong result");
  std::printf("saved, checkpointed, exported and quantized in %s\n", dir.string().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "ember_docs";
  fs::create_directories(dir);
  tensors();
  functional();
  train(dir);
  std::cout << Net() << "\n";  // print(model)
  return 0;
}
