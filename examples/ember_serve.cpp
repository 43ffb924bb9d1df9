// ember_serve: serves MNIST classifiers (float32 models from mnist_train, int8 models from
// mnist_quantize) over HTTP with the Open Inference Protocol (KServe v2), the protocol of
// Triton, TorchServe's KServe mode and MLServer, with dynamic batching (serve/server.hpp).
//
//   ember_serve --model mnist=mnist_cnn.safetensors,mnist_int8=mnist_int8.safetensors
//   ember_serve --model-repository models/ --port 8000 --http-threads 32 --threads 2
//
// A repository holds one folder per model, numbered version folders each with a
// model.safetensors, and an optional config.json (serve/model_config.hpp, docs/serving.md):
//   models/mnist/config.json   models/mnist/1/model.safetensors   models/mnist/2/...
// Then, for example:
//   curl localhost:8000/v2/health/ready
//   curl -X POST localhost:8000/v2/models/mnist/infer -d '{"inputs": [{"name": "input",
//        "datatype": "UINT8", "shape": [1, 28, 28], "data": [0, 0, ...]}]}'
//
// It listens on 127.0.0.1 unless --host says otherwise, writes one JSON line per request to
// the access log (stderr by default), and on SIGTERM or SIGINT shuts down gracefully: readiness
// turns false, the listener closes, requests being handled are answered, then it exits 0.
// At start it prints one line on stderr:
//   ember_serve: listening on http://127.0.0.1:8000 (models: mnist/1 float32, mnist_int8/1 int8)

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"
#include "ember/ember.hpp"
#include "ember/serve/server.hpp"

namespace {

using namespace ember;

constexpr const char* about =
    "Serve MNIST classifiers over HTTP with the Open Inference Protocol (KServe v2), JSON and\n"
    "binary tensors, with dynamic batching. Models come from --model NAME=FILE (version 1\n"
    "each) and from --model-repository DIR (DIR/NAME/config.json, DIR/NAME/<version>/\n"
    "model.safetensors). Endpoints: /v2/health/live, /v2/health/ready, /v2, /metrics,\n"
    "/v2/models/NAME[/versions/V][/ready|/config|/infer], /v2/repository/index,\n"
    "/v2/repository/models/NAME/load|unload. SIGTERM: graceful shutdown.\n"
    "--max-batch-size, --max-queue-delay-us, --max-queue-size, --timeout-us and\n"
    "--infer-threads are the defaults that a model's config.json overrides.";

int run(int argc, char** argv) {
  // SIGTERM and SIGINT go to one thread that waits for them: they are blocked here, before any
  // thread starts (ember's compute pool, HTTP and inference threads inherit the mask), and
  // that thread starts the graceful shutdown.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  examples::Flags f;
  f.add("model", "", "NAME=FILE[,NAME=FILE...]: model files to serve, as version 1")
      .add("model-repository", "", "model repository folder: every model in it is loaded")
      .add("host", "127.0.0.1", "address to listen on (0.0.0.0: every interface)")
      .add_int("port", 8000, 0, 65535, "port to listen on (0: any free port, printed)")
      .add_int("http-threads", 256, 1, 1024, "threads that handle HTTP connections")
      .add_int("infer-threads", 1, 1, 64, "inference threads per model (instance_count)")
      .add_threads()
      .add_int("max-batch-size", 64, 1, 4096, "most images in one forward and one request")
      .add_int("max-queue-delay-us", 2000, 0, 10'000'000,
               "longest wait for a batch to fill, microseconds")
      .add_int("max-queue-size", 256, 1, 1'000'000, "requests waiting per model; more: 503")
      .add_int("timeout-us", 0, 0, 3'600'000'000LL,
               "default queue timeout per request, microseconds (0: none); more: 504")
      .add("api-key", "", "require this key (Authorization: Bearer KEY or X-API-Key: KEY); "
                          "default $EMBER_API_KEY")
      .add_int("max-body-bytes", 64 << 20, 1024, std::int64_t{1} << 32,
               "largest request body; more: 413")
      .add_int("max-header-bytes", 16 << 10, 256, 1 << 20, "largest request headers; more: 431")
      .add_int("max-json-depth", 16, 2, 256, "deepest JSON nesting in a request; more: 400")
      .add_int("keep-alive-seconds", 5, 1, 3600, "idle keep-alive connections close after this")
      .add_int("keep-alive-max-requests", 100, 1, 1'000'000,
               "requests per connection before it is closed (connections take turns on the "
               "HTTP threads)")
      .add_int("read-timeout-seconds", 5, 1, 3600,
               "a client that sends or reads nothing for this long is cut off")
      .add("access-log", "-", "JSON-lines access log: a file, '-' for stderr, 'off' for none");
  if (!f.parse(argc, argv, about)) return 0;
  set_num_threads(f.threads());

  serve::ServerOptions o;
  o.host = f.str("host");
  o.port = static_cast<int>(f.integer("port"));
  o.http_threads = static_cast<int>(f.integer("http-threads"));
  o.max_body_bytes = static_cast<std::size_t>(f.integer("max-body-bytes"));
  o.max_header_bytes = static_cast<std::size_t>(f.integer("max-header-bytes"));
  o.limits.max_json_depth = static_cast<std::size_t>(f.integer("max-json-depth"));
  o.api_key = f.str("api-key");
  if (const char* env = std::getenv("EMBER_API_KEY"); o.api_key.empty() && env != nullptr)
    o.api_key = env;
  o.keep_alive_seconds = static_cast<int>(f.integer("keep-alive-seconds"));
  o.keep_alive_max_requests = static_cast<int>(f.integer("keep-alive-max-requests"));
  o.read_timeout_seconds = static_cast<int>(f.integer("read-timeout-seconds"));
  o.repository = f.str("model-repository");
  o.defaults.max_batch_size = f.integer("max-batch-size");
  o.defaults.max_queue_delay_us = f.integer("max-queue-delay-us");
  o.defaults.max_queue_size = f.integer("max-queue-size");
  o.defaults.default_timeout_us = f.integer("timeout-us");
  o.defaults.instance_count = static_cast<int>(f.integer("infer-threads"));

  std::FILE* log = nullptr;
  const std::string log_path = f.str("access-log");
  if (log_path == "-") {
    log = stderr;
  } else if (log_path != "off") {
    log = std::fopen(log_path.c_str(), "a");
    EMBER_CHECK(log != nullptr, "--access-log: cannot open '", log_path, "' for appending");
  }
  auto log_mutex = std::make_shared<std::mutex>();
  if (log != nullptr) {
    o.access_log = [log, log_mutex](const std::string& line) {
      std::lock_guard lock(*log_mutex);
      std::fprintf(log, "%s\n", line.c_str());
      std::fflush(log);
    };
  }

  serve::InferenceServer server(o);
  std::string loaded;
  for (const std::string& item : examples::split_list(f.str("model"))) {
    const auto eq = item.find('=');
    EMBER_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "--model: '", item,
                "' is not NAME=FILE");
    server.add_model(item.substr(0, eq), item.substr(eq + 1), o.defaults);
  }
  if (!o.repository.empty()) server.load_repository();
  const int port = server.bind();
  std::string listing;
  const nlohmann::json index = nlohmann::json::parse(server.index_json());
  for (const auto& m : index)
    if (m.contains("version"))
      listing += (listing.empty() ? "" : ", ") + m["name"].get<std::string>() + "/" +
                 m["version"].get<std::string>();
  EMBER_CHECK(!listing.empty(), "no model to serve: give --model NAME=FILE or "
              "--model-repository DIR");
  std::fprintf(stderr, "ember_serve: listening on http://%s:%d (models: %s)\n", o.host.c_str(),
               port, listing.c_str());

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    std::fprintf(stderr, "ember_serve: %s: shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server.shutdown();
  });
  server.run();
  waiter.join();
  std::fprintf(stderr, "ember_serve: stopped\n");
  if (log != nullptr && log != stderr) std::fclose(log);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ember::examples::run_main("ember_serve", run, argc, argv);
}
