// Embeds the installed ember::serve the way a user would: saves an MNIST net, serves it on a
// free loopback port, posts one image over HTTP (KServe v2 JSON) and checks the answer against
// the model's own forward. Exits 0 and prints "consumer_serve: ok".
#include <ember/ember.hpp>
#include <ember/models/classifier.hpp>
#include <ember/serve/server.hpp>

// after ember's headers (see serve/server.hpp)
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

int main() {
  using namespace ember;
  namespace fs = std::filesystem;
  const fs::path path = fs::temp_directory_path() / "ember_consumer_serve.safetensors";
  Generator gen(3);
  models::MnistNet net(gen);
  net.eval();
  io::save(net, path.string());

  std::vector<int> pixels(784);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = (i % 28 >= 12 && i % 28 < 16) ? 255 : 0;
  const models::Classifier c = models::load_classifier(path.string());
  auto x = Tensor<float>::empty({1, 1, 28, 28});
  for (std::size_t i = 0; i < pixels.size(); ++i)
    x.data()[i] = c.normalization(static_cast<std::uint8_t>(pixels[i]));
  const Tensor<float> want = c.forward(x).contiguous();

  serve::ServerOptions o;
  o.port = 0;
  o.http_threads = 2;
  serve::InferenceServer server(o);
  server.add_model("mnist", path.string(), {});
  const int port = server.start();
  httplib::Client cli("127.0.0.1", port);
  const nlohmann::json body = {
      {"inputs", {{{"name", "input"}, {"datatype", "UINT8"}, {"shape", {1, 28, 28}}, {"data", pixels}}}}};
  const auto r = cli.Post("/v2/models/mnist/infer", body.dump(), "application/json");
  server.shutdown();
  fs::remove(path);
  if (!r || r->status != 200) {
    std::printf("consumer_serve: FAILED: %s\n", r ? r->body.c_str() : "no answer");
    return 1;
  }
  std::vector<float> got;
  const nlohmann::json answer = nlohmann::json::parse(r->body);
  for (const auto& out : answer.at("outputs"))
    if (out.at("name") == "log_probs") got = out.at("data").get<std::vector<float>>();
  if (got.size() != 10) {
    std::printf("consumer_serve: FAILED: %zu log-probabilities in %s\n", got.size(), r->body.c_str());
    return 1;
  }
  for (std::size_t i = 0; i < 10; ++i)
    if (!(std::abs(got[i] - want.data()[i]) <= 1e-5f)) {
      std::printf("consumer_serve: FAILED: log_probs[%zu] %g, the model says %g\n", i, got[i],
                  want.data()[i]);
      return 1;
    }
  std::printf("consumer_serve: ok (port %d, log_probs as the model's own)\n", port);
  return 0;
}
