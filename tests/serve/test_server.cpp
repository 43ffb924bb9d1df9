// serve/: the inference server started in-process on an ephemeral loopback port and driven
// with httplib::Client: every endpoint, JSON and binary tensors (FP32, UINT8, BYTES holding
// PNG files), the model repository, dynamic batching (batches > 1 in /metrics, a full queue
// answers 503, queue timeouts 504), the error paths (4xx with a JSON error), the API key and a
// graceful shutdown. Served log-probabilities are checked against the model's own forward on
// the same input, for a float and an int8 model made here with fixed seeds.

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/data/digit_png.hpp"
#include "ember/ember.hpp"
#include "ember/models/classifier.hpp"
#include "ember/quant/quantize.hpp"
#include "ember/serve/server.hpp"
#include "support/tmp.hpp"

// After ember's headers (serve/server.hpp says why).
#include <httplib.h>

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace ember;

namespace {

// The MNIST net with fixed seeds, saved once (float and int8) for every test case.
struct ModelFiles {
  fs::path dir, float_path, int8_path;
  ModelFiles() {
    dir = test::tmp_dir("serve_models", true);
    float_path = dir / "mnist.safetensors";
    int8_path = dir / "mnist_int8.safetensors";
    Generator gen(7);
    models::MnistNet net(gen);
    net.eval();
    io::save(net, float_path.string());
    Generator data_gen(11);
    std::vector<Tensor<float>> calibration{Tensor<float>::randn({32, 1, 28, 28}, data_gen)};
    quant::save_quantized(quant::quantize(net, calibration), int8_path.string());
  }
};
const ModelFiles& files() {
  static const ModelFiles f;
  return f;
}

// Raw MNIST-like images: a bright bar on black, different per image.
std::vector<std::uint8_t> test_images(std::int64_t n) {
  std::vector<std::uint8_t> px(static_cast<std::size_t>(n * 784), 0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t r = 4; r < 24; ++r)
      for (std::int64_t c = 8 + i % 5; c < 12 + i % 7; ++c)
        px[static_cast<std::size_t>(i * 784 + r * 28 + c + (r * i) % 3)] =
            static_cast<std::uint8_t>(120 + (r * 7 + c * 13 + i) % 136);
  return px;
}

// The model's own log-probabilities for raw pixels, normalised as in training.
std::vector<float> reference(const std::string& path, const std::vector<std::uint8_t>& px) {
  const models::Classifier c = models::load_classifier(path);
  const auto n = static_cast<std::int64_t>(px.size() / 784);
  auto x = Tensor<float>::empty({n, 1, 28, 28});
  for (std::size_t i = 0; i < px.size(); ++i) x.data()[i] = c.normalization(px[i]);
  const Tensor<float> out = c.forward(x).contiguous();
  return {out.data(), out.data() + out.numel()};
}

std::vector<float> normalised(const std::vector<std::uint8_t>& px) {
  std::vector<float> out;
  for (std::uint8_t p : px) out.push_back((static_cast<float>(p) - 127.5f) / 127.5f);
  return out;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).margin(1e-5));
}

std::vector<std::int64_t> argmax_rows(const std::vector<float>& lp) {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < lp.size(); i += 10)
    out.push_back(std::max_element(lp.begin() + static_cast<long>(i),
                                   lp.begin() + static_cast<long>(i) + 10) -
                  (lp.begin() + static_cast<long>(i)));
  return out;
}

struct Served {
  std::unique_ptr<serve::InferenceServer> server;
  std::unique_ptr<httplib::Client> client;
  int port = 0;
  explicit Served(serve::ServerOptions o = {}, serve::ModelConfig c = {}) {
    o.port = 0;
    server = std::make_unique<serve::InferenceServer>(o);
    server->add_model("mnist", files().float_path.string(), c);
    server->add_model("mnist_int8", files().int8_path.string(), c);
    port = server->start();
    client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_read_timeout(30, 0);
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& h = {}) {
    return client->Post(path.c_str(), h, body, "application/json");
  }
};

json infer_json(const std::string& datatype, std::vector<std::int64_t> shape, json data) {
  return {{"id", "req-1"},
          {"inputs", json::array({{{"name", "input"}, {"datatype", datatype}, {"shape", shape},
                                   {"data", data}}})}};
}

std::vector<float> json_log_probs(const json& r) {
  for (const json& o : r["outputs"])
    if (o["name"] == "log_probs") return o["data"].get<std::vector<float>>();
  FAIL("no log_probs output");
  return {};
}

// Expects status `code` with a JSON body {"error": "..."} containing `words`.
void expect_error(const httplib::Result& r, int code, const std::string& words) {
  REQUIRE(r);
  CHECK(r->status == code);
  const json body = json::parse(r->body);
  REQUIRE(body.contains("error"));
  INFO(body["error"].get<std::string>());
  CHECK(body["error"].get<std::string>().find(words) != std::string::npos);
}

std::string le_bytes(const void* p, std::size_t n) {
  return std::string(static_cast<const char*>(p), n);  // x86-64 is little-endian
}

std::string metrics_text(Served& s) {
  auto r = s.client->Get("/metrics");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return r->body;
}

// The value of a metric line that starts with `prefix`, or -1.
double metric(const std::string& text, const std::string& prefix) {
  std::size_t at = 0;
  while ((at = text.find(prefix, at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') {
      const std::size_t sp = text.find(' ', at + prefix.size());
      return std::stod(text.substr(sp + 1, text.find('\n', sp) - sp - 1));
    }
    at += prefix.size();
  }
  return -1;
}

}  // namespace

TEST_CASE("serve: health, server and model metadata, ready, config", "[serve]") {
  Served s;
  auto live = s.client->Get("/v2/health/live");
  REQUIRE(live);
  CHECK(live->status == 200);
  auto ready = s.client->Get("/v2/health/ready");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  const json meta = json::parse(s.client->Get("/v2")->body);
  CHECK(meta["name"] == "ember");
  CHECK(meta["extensions"] == json({"binary_tensor_data", "model_repository"}));

  const json m = json::parse(s.client->Get("/v2/models/mnist")->body);
  CHECK(m["name"] == "mnist");
  CHECK(m["versions"] == json({"1"}));
  CHECK(m["platform"] == "ember_float32");
  CHECK(m["inputs"][0]["name"] == "input");
  CHECK(m["inputs"][0]["shape"] == json({-1, 1, 28, 28}));
  CHECK(m["outputs"][0]["name"] == "log_probs");
  CHECK(m["outputs"][1]["datatype"] == "INT64");
  CHECK(json::parse(s.client->Get("/v2/models/mnist_int8/versions/1")->body)["platform"] ==
        "ember_int8");
  CHECK(s.client->Get("/v2/models/mnist/ready")->status == 200);
  CHECK(s.client->Get("/v2/models/mnist/versions/1/ready")->status == 200);
  const json cfg = json::parse(s.client->Get("/v2/models/mnist/config")->body);
  CHECK(cfg["max_batch_size"] == 64);

  expect_error(s.client->Get("/v2/models/nosuch"), 404, "unknown model 'nosuch'");
  expect_error(s.client->Get("/v2/models/nosuch/ready"), 404, "unknown model");
  expect_error(s.client->Get("/v2/models/mnist/versions/2"), 404, "has no version '2'");
  expect_error(s.client->Get("/v2/models/mnist/versions/x/ready"), 404, "has no version 'x'");
  expect_error(s.client->Get("/v2/nothing"), 404, "no endpoint GET /v2/nothing");
  expect_error(s.client->Get("/v2/models/mnist/infer"), 405, "inference takes POST");
  expect_error(s.client->Get("/v2/models/..%2Fetc"), 400, "is not allowed");
}

TEST_CASE("serve: JSON inference (FP32, UINT8) equals the model's own forward", "[serve]") {
  Served s;
  const std::vector<std::uint8_t> px = test_images(3);
  for (const std::string model : {"mnist", "mnist_int8"}) {
    INFO(model);
    const fs::path path = model == "mnist" ? files().float_path : files().int8_path;
    const std::vector<float> want = reference(path.string(), px);

    auto r = s.post("/v2/models/" + model + "/infer",
                    infer_json("UINT8", {3, 28, 28}, px).dump());
    REQUIRE(r);
    REQUIRE(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    const json body = json::parse(r->body);
    CHECK(body["model_name"] == model);
    CHECK(body["model_version"] == "1");
    CHECK(body["id"] == "req-1");
    check_close(json_log_probs(body), want);
    CHECK(body["outputs"][1]["name"] == "class");
    CHECK(body["outputs"][1]["shape"] == json({3}));
    CHECK(body["outputs"][1]["data"].get<std::vector<std::int64_t>>() == argmax_rows(want));

    // FP32, normalised by the client, nested as the shape: the same numbers.
    json nested = json::array();
    const std::vector<float> x = normalised(px);
    for (int i = 0; i < 3; ++i) {
      json rows = json::array();
      for (int row = 0; row < 28; ++row)
        rows.push_back(std::vector<float>(x.begin() + i * 784 + row * 28,
                                          x.begin() + i * 784 + row * 28 + 28));
      nested.push_back(json::array({rows}));
    }
    auto f = s.post("/v2/models/" + model + "/versions/1/infer",
                    infer_json("FP32", {3, 1, 28, 28}, nested).dump());
    REQUIRE(f);
    REQUIRE(f->status == 200);
    check_close(json_log_probs(json::parse(f->body)), want);
  }
}

TEST_CASE("serve: binary tensor data in and out, requested outputs", "[serve]") {
  Served s;
  const std::vector<std::uint8_t> px = test_images(2);
  const std::vector<float> want = reference(files().float_path.string(), px);
  const std::vector<float> x = normalised(px);
  const std::string bin = le_bytes(x.data(), x.size() * 4);
  const json head = {
      {"inputs", json::array({{{"name", "input"}, {"datatype", "FP32"}, {"shape", {2, 1, 28, 28}},
                               {"parameters", {{"binary_data_size", bin.size()}}}}})},
      {"outputs", json::array({{{"name", "class"}}, {{"name", "log_probs"},
                                                     {"parameters", {{"binary_data", true}}}}})}};
  const std::string text = head.dump();
  httplib::Headers h{{"Inference-Header-Content-Length", std::to_string(text.size())}};
  auto r = s.client->Post("/v2/models/mnist/infer", h, text + bin, "application/octet-stream");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  const std::size_t json_size = std::stoul(r->get_header_value("Inference-Header-Content-Length"));
  const json body = json::parse(r->body.substr(0, json_size));
  REQUIRE(body["outputs"].size() == 2);
  CHECK(body["outputs"][0]["name"] == "class");  // in the order asked
  CHECK(body["outputs"][0]["data"].get<std::vector<std::int64_t>>() == argmax_rows(want));
  CHECK(body["outputs"][1]["parameters"]["binary_data_size"] == 80);
  CHECK(!body["outputs"][1].contains("data"));
  REQUIRE(r->body.size() == json_size + 80);
  std::vector<float> got(20);
  std::memcpy(got.data(), r->body.data() + json_size, 80);
  check_close(got, want);

  // UINT8 binary with every output binary (binary_data_output): INT64 classes as 8 bytes each.
  const json head2 = {
      {"parameters", {{"binary_data_output", true}}},
      {"inputs", json::array({{{"name", "input"}, {"datatype", "UINT8"}, {"shape", {2, 28, 28}},
                               {"parameters", {{"binary_data_size", px.size()}}}}})}};
  const std::string text2 = head2.dump();
  auto r2 = s.client->Post("/v2/models/mnist/infer",
                           {{"Inference-Header-Content-Length", std::to_string(text2.size())}},
                           text2 + le_bytes(px.data(), px.size()), "application/octet-stream");
  REQUIRE(r2);
  REQUIRE(r2->status == 200);
  const std::size_t n2 = std::stoul(r2->get_header_value("Inference-Header-Content-Length"));
  REQUIRE(r2->body.size() == n2 + 80 + 16);
  std::memcpy(got.data(), r2->body.data() + n2, 80);
  check_close(got, want);
  std::int64_t classes[2];
  std::memcpy(classes, r2->body.data() + n2 + 80, 16);
  CHECK(std::vector<std::int64_t>(classes, classes + 2) == argmax_rows(want));
}

TEST_CASE("serve: BYTES inputs holding PNG files of any size and polarity", "[serve]") {
  Served s;
  // A dark digit on white paper, 56 x 40, and the same digit light on black, 28 x 28.
  auto paper = Tensor<std::uint8_t>::empty({56, 40});
  for (std::int64_t r = 0; r < 56; ++r)
    for (std::int64_t c = 0; c < 40; ++c)
      paper.data()[r * 40 + c] = (c > 14 && c < 22 && r > 8 && r < 48) || (r > 8 && r < 14 && c > 8 && c < 30)
                                     ? 20 : 235;
  const fs::path dir = test::tmp_dir("serve_png", true);
  data::write_png((dir / "a.png").string(), paper);
  std::ifstream in(dir / "a.png", std::ios::binary);
  const std::string png((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const Tensor<std::uint8_t> digit = data::png_to_mnist_digit(
      std::span(reinterpret_cast<const std::byte*>(png.data()), png.size()), "a",
      data::Polarity::detect);
  const std::vector<std::uint8_t> px(digit.data(), digit.data() + 784);
  const std::vector<float> want = reference(files().float_path.string(), px);

  std::string bin;
  const auto len = static_cast<std::uint32_t>(png.size());
  bin += le_bytes(&len, 4) + png;
  const json head = {
      {"inputs", json::array({{{"name", "input"}, {"datatype", "BYTES"}, {"shape", {1}},
                               {"parameters", {{"binary_data_size", bin.size()}}}}})}};
  const std::string text = head.dump();
  auto r = s.client->Post("/v2/models/mnist/infer",
                          {{"Inference-Header-Content-Length", std::to_string(text.size())}},
                          text + bin, "application/octet-stream");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  check_close(json_log_probs(json::parse(r->body)), want);

  // Not a PNG: a 400 naming the element.
  const std::string junk = "hello";
  const auto jlen = static_cast<std::uint32_t>(junk.size());
  const std::string bad = le_bytes(&jlen, 4) + junk;
  const json head2 = {
      {"inputs", json::array({{{"name", "input"}, {"datatype", "BYTES"}, {"shape", {1}},
                               {"parameters", {{"binary_data_size", bad.size()}}}}})}};
  const std::string text2 = head2.dump();
  expect_error(s.client->Post("/v2/models/mnist/infer",
                              {{"Inference-Header-Content-Length", std::to_string(text2.size())}},
                              text2 + bad, "application/octet-stream"),
               400, "input[0]");
}

TEST_CASE("serve: bad requests are 4xx with a JSON error naming the problem", "[serve]") {
  serve::ServerOptions o;
  o.max_body_bytes = 200'000;
  Served s(o);
  const std::string url = "/v2/models/mnist/infer";
  const std::vector<std::uint8_t> px = test_images(1);
  expect_error(s.post(url, "{\"inputs\": ["), 400, "not valid JSON");
  expect_error(s.post(url, "[1]"), 400, "must be a JSON object");
  expect_error(s.post(url, std::string(40, '[') + std::string(40, ']')), 400, "nests deeper");
  expect_error(s.post(url, R"({"inputs": []})"), 400, "non-empty array");
  expect_error(s.post(url, infer_json("UINT8", {1, 28, 27}, px).dump()), 400,
               "holds more elements than the shape's 756");
  expect_error(s.post(url, infer_json("UINT8", {1, 28, 28}, std::vector<int>(700, 1)).dump()),
               400, "\"data\" holds 700 elements, but the shape holds 784");
  expect_error(s.post(url, infer_json("UINT8", {1, 27, 28}, std::vector<int>(756, 0)).dump()),
               400, "UINT8 input must have shape [N, 28, 28]");
  expect_error(s.post(url, infer_json("INT32", {1, 28, 28}, px).dump()), 400,
               "datatype INT32 is not served");
  expect_error(s.post(url, infer_json("FLOAT", {1, 28, 28}, px).dump()), 400,
               "unknown datatype 'FLOAT'");
  expect_error(s.post(url, infer_json("UINT8", {1, 28, 28}, std::vector<int>(784, 300)).dump()),
               400, "integers in [0, 255]");
  expect_error(s.post(url, infer_json("UINT8", {-1, 28, 28}, px).dump()), 400, "non-negative");
  expect_error(s.post(url, infer_json("UINT8", {0, 28, 28}, json::array()).dump()), 400,
               "batch is empty");
  expect_error(s.post(url, infer_json("UINT8", {65, 28, 28}, std::vector<int>(65 * 784, 0)).dump()),
               400, "max_batch_size of 64");
  json wrong_name = infer_json("UINT8", {1, 28, 28}, px);
  wrong_name["inputs"][0]["name"] = "pixels";
  expect_error(s.post(url, wrong_name.dump()), 400, "unknown input 'pixels'");
  json wrong_output = infer_json("UINT8", {1, 28, 28}, px);
  wrong_output["outputs"] = json::array({{{"name", "probs"}}});
  expect_error(s.post(url, wrong_output.dump()), 400, "has no output 'probs'");
  // Binary data sizes that do not add up.
  const json head = {
      {"inputs", json::array({{{"name", "input"}, {"datatype", "UINT8"}, {"shape", {1, 28, 28}},
                               {"parameters", {{"binary_data_size", 784}}}}})}};
  const std::string text = head.dump();
  const std::string bin(700, '\0');
  expect_error(s.client->Post(url.c_str(), {{"Inference-Header-Content-Length",
                                             std::to_string(text.size())}},
                              text + bin, "application/octet-stream"),
               400, "only 700 bytes of binary data are left");
  expect_error(s.client->Post(url.c_str(), {{"Inference-Header-Content-Length", "99999"}},
                              text + bin, "application/octet-stream"),
               400, "more than the body's");
  expect_error(s.client->Post(url.c_str(), {{"Inference-Header-Content-Length", "-3"}},
                              text + bin, "application/octet-stream"),
               400, "is not a byte count");
  // Size limits: body (413) and headers (431).
  expect_error(s.post(url, std::string(300'000, ' ')), 413, "larger than the limit of 200000");
  httplib::Headers many;
  for (int i = 0; i < 100; ++i) many.emplace("X-Filler-" + std::to_string(i), "x");
  expect_error(s.client->Get("/v2/health/live", many), 431, "headers too large");
  expect_error(s.post("/v2/models/nosuch/infer", "{}"), 404, "unknown model 'nosuch'");
}

TEST_CASE("serve: API key", "[serve]") {
  serve::ServerOptions o;
  o.api_key = "s3cret";
  Served s(o);
  CHECK(s.client->Get("/v2/health/ready")->status == 200);  // health is exempt
  expect_error(s.client->Get("/v2/models/mnist"), 401, "API key");
  expect_error(s.client->Get("/v2/models/mnist", {{"X-API-Key", "s3cre"}}), 401, "API key");
  CHECK(s.client->Get("/v2/models/mnist", {{"X-API-Key", "s3cret"}})->status == 200);
  CHECK(s.client->Get("/v2/models/mnist", {{"Authorization", "Bearer s3cret"}})->status == 200);
}

TEST_CASE("serve: model repository, versions, load and unload", "[serve]") {
  const fs::path repo = test::tmp_dir("serve_repo", true);
  fs::create_directories(repo / "digits" / "1");
  fs::create_directories(repo / "digits" / "3");
  fs::copy_file(files().float_path, repo / "digits" / "1" / "model.safetensors");
  fs::copy_file(files().int8_path, repo / "digits" / "3" / "model.safetensors");
  std::ofstream(repo / "digits" / "config.json")
      << R"({"max_batch_size": 8, "version_policy": "all",
            "dynamic_batching": {"max_queue_delay_microseconds": 100}})";
  fs::create_directories(repo / "latest_only" / "2");
  fs::copy_file(files().int8_path, repo / "latest_only" / "2" / "model.safetensors");
  fs::create_directories(repo / "broken" / "1");
  std::ofstream(repo / "broken" / "config.json") << R"({"max_batch_size": 8, "colour": 1})";
  fs::copy_file(files().float_path, repo / "broken" / "1" / "model.safetensors");

  serve::ServerOptions o;
  o.repository = repo.string();
  o.port = 0;
  serve::InferenceServer server(o);
  CHECK_THROWS_WITH(server.load_repository(), Catch::Contains("unknown key 'colour'"));
  fs::remove_all(repo / "broken");
  server.load_repository();
  const int port = server.start();
  httplib::Client cli("127.0.0.1", port);

  const json m = json::parse(cli.Get("/v2/models/digits")->body);
  CHECK(m["versions"] == json({"1", "3"}));
  CHECK(m["platform"] == "ember_int8");  // the newest version
  CHECK(json::parse(cli.Get("/v2/models/digits/versions/1")->body)["platform"] == "ember_float32");
  CHECK(json::parse(cli.Get("/v2/models/digits/config")->body)["max_batch_size"] == 8);

  const std::vector<std::uint8_t> px = test_images(1);
  auto r = cli.Post("/v2/models/digits/versions/1/infer",
                    infer_json("UINT8", {1, 28, 28}, px).dump(), "application/json");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  check_close(json_log_probs(json::parse(r->body)), reference(files().float_path.string(), px));
  expect_error(cli.Post("/v2/models/digits/infer", infer_json("UINT8", {9, 28, 28},
                        std::vector<int>(9 * 784, 0)).dump(), "application/json"),
               400, "max_batch_size of 8");

  json index = json::parse(cli.Post("/v2/repository/index", "", "application/json")->body);
  CHECK(index == json::parse(R"([{"name": "digits", "version": "1", "state": "READY"},
                                 {"name": "digits", "version": "3", "state": "READY"},
                                 {"name": "latest_only", "version": "2", "state": "READY"}])"));

  CHECK(cli.Post("/v2/repository/models/digits/unload", "", "application/json")->status == 200);
  expect_error(cli.Get("/v2/models/digits/ready"), 404, "unknown model 'digits'");
  index = json::parse(cli.Post("/v2/repository/index", "", "application/json")->body);
  CHECK(index[0] == json({{"name", "digits"}, {"state", "UNAVAILABLE"}, {"reason", "unloaded"}}));
  CHECK(cli.Post("/v2/repository/models/digits/load", "", "application/json")->status == 200);
  CHECK(cli.Get("/v2/models/digits/versions/3/ready")->status == 200);

  expect_error(cli.Post("/v2/repository/models/nosuch/load", "", "application/json"), 404,
               "not in the repository");
  expect_error(cli.Post("/v2/repository/models/../load", "", "application/json"), 400,
               "is not allowed");
  expect_error(cli.Post("/v2/repository/models/..%2F..%2Fetc/load", "", "application/json"), 400,
               "is not allowed");
  expect_error(cli.Post("/v2/repository/models/a%2Fb/unload", "", "application/json"), 400,
               "is not allowed");
  server.shutdown();
}

TEST_CASE("serve: dynamic batching runs concurrent requests together", "[serve]") {
  serve::ModelConfig c;
  c.max_queue_delay_us = 200'000;  // long enough for every request to arrive
  c.max_batch_size = 64;
  serve::ServerOptions o;
  o.http_threads = 16;
  Served s(o, c);
  const std::vector<std::uint8_t> px = test_images(12);
  const std::vector<float> want = reference(files().float_path.string(), px);
  std::vector<std::future<std::vector<float>>> results;
  for (int i = 0; i < 12; ++i)
    results.push_back(std::async(std::launch::async, [&, i] {
      httplib::Client cli("127.0.0.1", s.port);
      const std::vector<std::uint8_t> one(px.begin() + i * 784, px.begin() + (i + 1) * 784);
      auto r = cli.Post("/v2/models/mnist/infer", infer_json("UINT8", {1, 28, 28}, one).dump(),
                        "application/json");
      if (!r || r->status != 200) return std::vector<float>{};
      return json_log_probs(json::parse(r->body));
    }));
  for (int i = 0; i < 12; ++i)
    check_close(results[static_cast<std::size_t>(i)].get(),
                std::vector<float>(want.begin() + i * 10, want.begin() + (i + 1) * 10));
  const std::string text = metrics_text(s);
  const std::string labels = "{model=\"mnist\",version=\"1\"";
  const double batches = metric(text, "ember_batch_size_count" + labels);
  const double images = metric(text, "ember_batch_size_sum" + labels);
  INFO(text);
  CHECK(images == 12);
  CHECK(batches < 12);  // some forward ran more than one request
  CHECK(metric(text, "ember_batch_size_bucket" + labels + ",le=\"1\"}") < batches);
  CHECK(metric(text, "ember_requests_total" + labels + ",code=\"200\"}") == 12);
  CHECK(metric(text, "ember_queue_duration_seconds_count" + labels) == 12);
  CHECK(metric(text, "ember_compute_duration_seconds_count" + labels) == 12);
  CHECK(metric(text, "ember_request_duration_seconds_count" + labels) == 12);
  CHECK(metric(text, "ember_queue_depth" + labels) == 0);
}

TEST_CASE("serve: a full queue answers 503 at once; a queue timeout 504", "[serve]") {
  serve::ModelConfig c;
  c.max_queue_delay_us = 1'500'000;  // the first request waits here, filling the queue
  c.max_queue_size = 1;
  Served s({}, c);
  const std::vector<std::uint8_t> px = test_images(1);
  const std::string body = infer_json("UINT8", {1, 28, 28}, px).dump();
  auto first = std::async(std::launch::async, [&] {
    httplib::Client cli("127.0.0.1", s.port);
    cli.set_read_timeout(30, 0);
    auto r = cli.Post("/v2/models/mnist/infer", body, "application/json");
    return r ? r->status : -1;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  expect_error(s.post("/v2/models/mnist/infer", body), 503, "the queue is full");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
  CHECK(first.get() == 200);
  const std::string text = metrics_text(s);
  CHECK(metric(text, "ember_request_failures_total{model=\"mnist\",version=\"1\",code=\"503\"}") == 1);

  // A request whose timeout (100 ms) passes while it waits for the batch.
  json timed = infer_json("UINT8", {1, 28, 28}, px);
  timed["parameters"] = {{"timeout", 100'000}};
  expect_error(s.post("/v2/models/mnist/infer", timed.dump()), 504, "timed out");
}

TEST_CASE("serve: graceful shutdown answers requests in flight", "[serve]") {
  serve::ModelConfig c;
  c.max_queue_delay_us = 400'000;
  Served s({}, c);
  const std::vector<std::uint8_t> px = test_images(1);
  const std::vector<float> want = reference(files().float_path.string(), px);
  auto inflight = std::async(std::launch::async, [&] {
    httplib::Client cli("127.0.0.1", s.port);
    cli.set_read_timeout(30, 0);
    auto r = cli.Post("/v2/models/mnist/infer", infer_json("UINT8", {1, 28, 28}, px).dump(),
                      "application/json");
    return r && r->status == 200 ? json_log_probs(json::parse(r->body)) : std::vector<float>{};
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  s.server->shutdown();
  check_close(inflight.get(), want);
  httplib::Client cli("127.0.0.1", s.port);
  CHECK(!cli.Get("/v2/health/live"));  // no longer listening
}

TEST_CASE("serve: the access log has one JSON line per request", "[serve]") {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto mutex = std::make_shared<std::mutex>();
  serve::ServerOptions o;
  o.access_log = [lines, mutex](const std::string& l) {
    std::lock_guard lock(*mutex);
    lines->push_back(l);
  };
  Served s(o);
  (void)s.client->Get("/v2/models/mnist");
  (void)s.client->Get("/v2/models/nosuch");
  s.server->shutdown();
  REQUIRE(lines->size() == 2);
  // Written after each response has gone out, so the two lines may come in either order.
  json a = json::parse((*lines)[0]), b = json::parse((*lines)[1]);
  if (a["path"] != "/v2/models/mnist") std::swap(a, b);
  CHECK(a["method"] == "GET");
  CHECK(a["path"] == "/v2/models/mnist");
  CHECK(a["status"] == 200);
  CHECK(a["model"] == "mnist");
  CHECK(b["path"] == "/v2/models/nosuch");
  CHECK(b["status"] == 404);
  CHECK(b["model"] == "nosuch");
  CHECK(a["ms"].get<double>() >= 0);
}
