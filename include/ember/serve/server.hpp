#pragma once
// The inference server: the Open Inference Protocol (KServe v2) over HTTP/REST (cpp-httplib),
// for MNIST classifiers (models::Classifier: float32 or int8 files), with dynamic batching
// (batcher.hpp), a model repository, Prometheus metrics and JSON-lines access logs. Embed it:
//
//   ember::serve::ServerOptions o;               // 127.0.0.1, port 8000, 256 HTTP threads
//   ember::serve::InferenceServer server(o);
//   server.add_model("mnist", "mnist_cnn.safetensors", {});   // version 1
//   server.bind();                               // throws when the port is taken
//   server.run();                                // blocks until shutdown() from another thread
//
// Endpoints (docs/serving.md has them all with examples):
//   GET  /v2/health/live, /v2/health/ready, /v2, /metrics
//   GET  /v2/models/{name}[/versions/{v}], .../ready, .../config
//   POST /v2/models/{name}[/versions/{v}]/infer
//   POST /v2/repository/index, /v2/repository/models/{name}/load, .../unload
// Every refusal is a 4xx (or 503 when busy or shutting down, 504 on a timeout) with a body
// {"error": "..."} naming the problem.
//
// Links cpp-httplib (Debian's libcpp-httplib-dev: header and libcpp-httplib.so; compile with
// the Cflags of `pkg-config cpp-httplib`, which ember::serve carries) and nlohmann-json.
// Include it before any <httplib.h> of your own (see the note at the include below).

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "ember/models/classifier.hpp"
#include "ember/serve/batcher.hpp"
#include "ember/serve/metrics.hpp"
#include "ember/serve/model_config.hpp"
#include "ember/serve/protocol.hpp"

// After Eigen (through ember's headers): httplib.h includes <resolv.h>, whose macro _res
// (glibc's resolver state) would rewrite Eigen's parameters of that name. A program that
// includes <httplib.h> itself must do so after ember's headers too.
#include <httplib.h>

namespace ember::serve {

/// How the server listens and what it accepts.
struct ServerOptions {
  std::string host = "127.0.0.1";        ///< loopback only unless told otherwise
  int port = 8000;                       ///< 0: any free port (bind() returns it)
  int http_threads = 256;                ///< threads that read requests and write responses
  std::size_t max_body_bytes = 64 << 20;  ///< larger bodies: 413
  std::size_t max_header_bytes = 16 << 10;  ///< all headers together; more: 431
  std::size_t max_headers = 64;          ///< header lines; more: 431
  DecodeLimits limits;                   ///< JSON depth and tensor bounds
  std::string api_key;                   ///< when set, required as "Authorization: Bearer KEY"
                                         ///< or "X-API-Key: KEY" (health endpoints exempt)
  std::string repository;                ///< model repository folder ("" for none)
  ModelConfig defaults;                  ///< for models from flags, and under config.json
  std::function<void(const std::string&)> access_log;  ///< one JSON line per request
  int keep_alive_seconds = 5;            ///< idle keep-alive connections close after this
  /// Requests on one connection before the server closes it: each connection holds an HTTP
  /// thread while open, so a small count lets connections beyond http_threads take turns.
  int keep_alive_max_requests = 100;
  int read_timeout_seconds = 5;          ///< a client slower than this is cut off
};

/// One loaded model version.
struct LoadedModel {
  std::string name;                  ///< the model's name
  std::string version;               ///< its version, "1", "2", ...
  std::string path;                  ///< the file it was loaded from
  std::string format;                ///< "float32" or "int8"
  ModelConfig config;                ///< its settings
  std::shared_ptr<Batcher> batcher;  ///< its queue and inference threads
};

/// The inference server; see the top of this file.
class InferenceServer {
 public:
  /// A server with `options`; nothing listens until bind().
  explicit InferenceServer(ServerOptions options) : options_(std::move(options)) {
    options_.defaults.validate("server defaults");
    setup_routes();
  }
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;
  ~InferenceServer() { shutdown(); }

  /// Loads a model file as version `version` of `name` (replacing one there). Throws
  /// ember::Error naming the file or the bad name.
  void add_model(const std::string& name, const std::string& path, const ModelConfig& config,
                 int version = 1) {
    check_model_name(name);
    EMBER_CHECK(version >= 1, "model '", name, "': version must be >= 1, got ", version);
    config.validate("model '" + name + "'");
    models::Classifier c = models::load_classifier(path);
    auto m = std::make_shared<LoadedModel>();
    m->name = name;
    m->version = std::to_string(version);
    m->path = path;
    m->format = c.format;
    m->config = config;
    m->batcher = std::make_shared<Batcher>(std::move(c.forward), config,
                                           metrics_.model(name, m->version));
    std::unique_lock lock(models_mutex_);
    models_[name][version] = std::move(m);
  }

  /// Loads every model of the repository folder (ServerOptions::repository): each sub-folder
  /// is a model, its numbered sub-folders versions holding model.safetensors, with an optional
  /// config.json beside them. Throws ember::Error for the first that fails.
  void load_repository() {
    for (const std::string& name : repository_names()) load_from_repository(name);
  }

  /// Binds the listening socket; returns the port (useful with port 0). Throws ember::Error.
  int bind() {
    if (options_.port == 0) {
      port_ = http_.bind_to_any_port(options_.host);
      EMBER_CHECK(port_ > 0, "cannot listen on ", options_.host, " (any port)");
    } else {
      EMBER_CHECK(http_.bind_to_port(options_.host, options_.port), "cannot listen on ",
                  options_.host, ":", options_.port, " (in use, or not an address of this "
                  "machine)");
      port_ = options_.port;
    }
    return port_;
  }

  /// Serves until shutdown(); bind() first.
  void run() {
    serving_ = true;
    ready_ = !shut_down_;
    http_.listen_after_bind();
    serving_ = false;
  }

  /// bind() and run() on a thread of the server's own; returns the port.
  int start() {
    const int port = bind();
    thread_ = std::thread([this] { run(); });
    while (!http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return port;
  }

  /// Graceful shutdown: readiness turns false first, the listener closes, requests being
  /// handled finish (and queued batches run), then the inference threads end. Idempotent;
  /// call from any thread but a handler's.
  void shutdown() {
    if (shut_down_.exchange(true)) return;
    ready_ = false;
    http_.stop();
    if (thread_.joinable()) thread_.join();
    // run() on another thread returns once the requests being handled are answered.
    while (serving_) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::unique_lock lock(models_mutex_);
    for (auto& [name, versions] : models_)
      for (auto& [v, m] : versions) m->batcher->stop();
  }

  /// Readiness turns false (health/ready answers 503) while serving goes on: the first step of
  /// a shutdown, for a load balancer to stop sending.
  void set_not_ready() { ready_ = false; }

  /// The repository index (POST /v2/repository/index) as JSON text: every model of the
  /// repository and every loaded one, [{"name", "version", "state"}, ...].
  [[nodiscard]] std::string index_json() { return repository_index().dump(); }

  /// The metrics (also at /metrics).
  [[nodiscard]] Metrics& metrics() { return metrics_; }
  /// The port bound, 0 before bind().
  [[nodiscard]] int port() const { return port_; }

 private:
  using json = nlohmann::json;
  using Clock = std::chrono::steady_clock;

  // What the handler of the request on this thread learnt, for the access log and metrics.
  struct RequestContext {
    Clock::time_point start;
    std::string model, version;
  };
  static RequestContext& context() {
    thread_local RequestContext c;
    return c;
  }

  static void check_model_name(const std::string& name) {
    const bool ok = !name.empty() && name.size() <= 128 && name[0] != '.' &&
                    name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789_.-") == std::string::npos;
    require(ok, 400, "model name ", detail::quoted(name),
            " is not allowed: 1 to 128 of A-Z a-z 0-9 _ . -, not starting with '.'");
  }

  static void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }
  static void send_error(httplib::Response& res, int status, const std::string& message) {
    res.status = status;
    res.set_content(error_json(message), "application/json");
  }

  // Runs a handler, turning a RequestError into its status and any other error into a 500.
  template <class F>
  static void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const RequestError& e) {
      send_error(res, e.status(), e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what());
    }
  }

  // The model version a URL names: the version given, or the newest loaded one.
  std::shared_ptr<LoadedModel> find_model(const std::string& name, const std::string& version) {
    check_model_name(name);
    context().model = name;
    std::shared_lock lock(models_mutex_);
    const auto it = models_.find(name);
    require(it != models_.end() && !it->second.empty(), 404, "unknown model '", name, "'");
    if (version.empty()) {
      context().version = it->second.rbegin()->second->version;
      return it->second.rbegin()->second;
    }
    context().version = version;
    const bool digits = version.size() <= 9 &&
                        version.find_first_not_of("0123456789") == std::string::npos;
    const auto v = digits && !version.empty() ? it->second.find(std::stoi(version))
                                              : it->second.end();
    require(v != it->second.end(), 404, "model '", name, "' has no version ",
            detail::quoted(version));
    return v->second;
  }

  std::vector<std::string> versions_of(const std::string& name) {
    std::shared_lock lock(models_mutex_);
    std::vector<std::string> out;
    if (const auto it = models_.find(name); it != models_.end())
      for (const auto& [v, m] : it->second) out.push_back(m->version);
    return out;
  }

  json model_metadata(const LoadedModel& m) {
    return {{"name", m.name},
            {"versions", versions_of(m.name)},
            {"platform", "ember_" + m.format},
            {"inputs", json::array({{{"name", kInputName}, {"datatype", "FP32"},
                                     {"shape", {-1, 1, kSide, kSide}}}})},
            {"outputs", json::array({{{"name", kLogProbsName}, {"datatype", "FP32"},
                                      {"shape", {-1, kClasses}}},
                                     {{"name", kClassName}, {"datatype", "INT64"},
                                      {"shape", {-1}}}})}};
  }

  json model_config_json(const LoadedModel& m) {
    const ModelConfig& c = m.config;
    return {{"name", m.name},
            {"platform", "ember_" + m.format},
            {"max_batch_size", c.max_batch_size},
            {"input", {{"shape", {1, kSide, kSide}}, {"mean", c.mean}, {"std", c.std}}},
            {"dynamic_batching", {{"max_queue_delay_microseconds", c.max_queue_delay_us},
                                  {"max_queue_size", c.max_queue_size},
                                  {"default_timeout_microseconds", c.default_timeout_us}}},
            {"instance_count", c.instance_count},
            {"version_policy", c.all_versions ? "all" : "latest"}};
  }

  void infer(const httplib::Request& req, httplib::Response& res, const std::string& name,
             const std::string& version) {
    const std::shared_ptr<LoadedModel> m = find_model(name, version);
    std::optional<std::string_view> header_length;
    std::string header_value;
    if (req.has_header("Inference-Header-Content-Length")) {
      header_value = req.get_header_value("Inference-Header-Content-Length");
      header_length = header_value;
    }
    const InferRequest r = decode_infer_request(req.body, header_length, options_.limits);
    for (const RequestedOutput& o : r.outputs)
      require(o.name == kLogProbsName || o.name == kClassName, 400, "model '", m->name,
              "' has no output ", detail::quoted(o.name), "; its outputs are '", kLogProbsName,
              "', '", kClassName, "'");
    Tensor<float> x = prepare_input(r, m->config);
    const std::int64_t timeout_us = r.timeout_us.value_or(m->config.default_timeout_us);
    const auto deadline = timeout_us > 0 ? Clock::now() + std::chrono::microseconds(timeout_us)
                                         : Clock::time_point::max();
    auto job = std::make_shared<BatchJob>(std::move(x), deadline);
    require(m->batcher->submit(job), 503, "model '", m->name, "' version ", m->version,
            ": the queue is full (", m->config.max_queue_size,
            " requests waiting) or the model is unloading; retry later");
    const int status = job->wait();
    require(status == 0, status, job->error());
    const EncodedResponse out = encode_infer_response(
        r, m->name, m->version, make_outputs(job->log_probs().data(), job->images()));
    res.status = 200;
    if (out.header_length)
      res.set_header("Inference-Header-Content-Length", std::to_string(*out.header_length));
    res.set_content(out.body, out.content_type());
    metrics_.model(m->name, m->version)
        ->total.observe(std::chrono::duration<double>(Clock::now() - context().start).count());
  }

  // ---- the repository --------------------------------------------------------------------

  std::vector<std::string> repository_names() const {
    namespace fs = std::filesystem;
    std::vector<std::string> names;
    if (options_.repository.empty()) return names;
    std::error_code ec;
    EMBER_CHECK(fs::is_directory(options_.repository, ec), "model repository '",
                options_.repository, "' is not a folder");
    for (const auto& e : fs::directory_iterator(options_.repository, ec))
      if (e.is_directory() && e.path().filename().string()[0] != '.')
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  void load_from_repository(const std::string& name) {
    namespace fs = std::filesystem;
    check_model_name(name);
    require(!options_.repository.empty(), 400, "the server has no model repository "
            "(--model-repository)");
    const fs::path dir = fs::path(options_.repository) / name;
    require(fs::is_directory(dir), 404, "model '", name, "' is not in the repository");
    ModelConfig config = options_.defaults;
    if (const fs::path cfg = dir / "config.json"; fs::exists(cfg)) {
      std::ifstream in(cfg);
      std::stringstream text;
      text << in.rdbuf();
      config = parse_model_config(text.str(), cfg.string(), config);
    }
    std::vector<int> versions;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string v = e.path().filename().string();
      if (e.is_directory() && !v.empty() && v.size() <= 9 &&
          v.find_first_not_of("0123456789") == std::string::npos && std::stoi(v) >= 1 &&
          fs::exists(e.path() / "model.safetensors"))
        versions.push_back(std::stoi(v));
    }
    std::sort(versions.begin(), versions.end());
    require(!versions.empty(), 400, "model '", name, "': no version folder (1, 2, ...) holds "
            "a model.safetensors");
    if (!config.all_versions) versions.erase(versions.begin(), versions.end() - 1);
    std::map<int, std::shared_ptr<LoadedModel>> loaded;
    for (int v : versions) {
      const std::string path = (dir / std::to_string(v) / "model.safetensors").string();
      models::Classifier c;
      try {
        c = models::load_classifier(path);
      } catch (const Error& e) {
        throw RequestError(400, e.what());
      }
      auto m = std::make_shared<LoadedModel>();
      m->name = name;
      m->version = std::to_string(v);
      m->path = path;
      m->format = c.format;
      m->config = config;
      m->batcher = std::make_shared<Batcher>(std::move(c.forward), config,
                                             metrics_.model(name, m->version));
      loaded[v] = std::move(m);
    }
    std::map<int, std::shared_ptr<LoadedModel>> old;
    {
      std::unique_lock lock(models_mutex_);
      old = std::exchange(models_[name], std::move(loaded));
    }
    for (auto& [v, m] : old) m->batcher->stop();  // queued requests finish first
  }

  void unload(const std::string& name) {
    check_model_name(name);
    std::map<int, std::shared_ptr<LoadedModel>> old;
    {
      std::unique_lock lock(models_mutex_);
      const auto it = models_.find(name);
      require(it != models_.end(), 404, "unknown model '", name, "'");
      old = std::move(it->second);
      models_.erase(it);
    }
    for (auto& [v, m] : old) m->batcher->stop();
  }

  json repository_index() {
    json out = json::array();
    std::vector<std::string> names = repository_names();
    {
      std::shared_lock lock(models_mutex_);
      for (const auto& [name, versions] : models_)
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::vector<std::string> versions = versions_of(name);
      if (versions.empty()) {
        out.push_back({{"name", name}, {"state", "UNAVAILABLE"}, {"reason", "unloaded"}});
      }
      for (const std::string& v : versions)
        out.push_back({{"name", name}, {"version", v}, {"state", "READY"}});
    }
    return out;
  }

  // ---- routes ----------------------------------------------------------------------------

  bool authorised(const httplib::Request& req) const {
    if (options_.api_key.empty()) return true;
    std::string given = req.get_header_value("X-API-Key");
    const std::string auth = req.get_header_value("Authorization");
    if (given.empty() && auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
    // Compared in time that depends on the length only.
    if (given.size() != options_.api_key.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < given.size(); ++i)
      diff |= static_cast<unsigned char>(given[i] ^ options_.api_key[i]);
    return diff == 0;
  }

  void setup_routes() {
    httplib::Server& s = http_;
    const int http_threads = options_.http_threads;
    s.new_task_queue = [http_threads] {
      return new httplib::ThreadPool(static_cast<std::size_t>(http_threads));
    };
    s.set_payload_max_length(options_.max_body_bytes);
    s.set_keep_alive_timeout(options_.keep_alive_seconds);
    s.set_keep_alive_max_count(static_cast<std::size_t>(options_.keep_alive_max_requests));
    s.set_read_timeout(options_.read_timeout_seconds, 0);
    s.set_write_timeout(options_.read_timeout_seconds, 0);
    s.set_tcp_nodelay(true);

    s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      context() = {Clock::now(), "", ""};
      std::size_t bytes = 0;
      for (const auto& [k, v] : req.headers) bytes += k.size() + v.size() + 4;
      if (req.headers.size() > options_.max_headers || bytes > options_.max_header_bytes) {
        send_error(res, 431, ::ember::detail::concat(
                                 "request headers too large: ", req.headers.size(), " lines, ",
                                 bytes, " bytes (limits: ", options_.max_headers, " lines, ",
                                 options_.max_header_bytes, " bytes)"));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.path.rfind("/v2/health/", 0) != 0 && !authorised(req)) {
        send_error(res, 401, "missing or wrong API key (send \"Authorization: Bearer KEY\" or "
                             "\"X-API-Key: KEY\")");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    s.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      std::string message;
      if (res.status == 404) {
        message = "no endpoint " + req.method + " " + req.path;
      } else if (res.status == 400) {
        message = ::ember::detail::concat(
            "bad or incomplete HTTP request to ", req.method, " ", req.path,
            " (malformed, a POST without a Content-Length header (0 for no body), or not sent "
            "in full within the read timeout of ", options_.read_timeout_seconds, " s)");
      } else if (res.status == 413) {
        message = ::ember::detail::concat("request body larger than the limit of ",
                                          options_.max_body_bytes, " bytes");
      } else {
        message = ::ember::detail::concat("HTTP ", res.status, " for ", req.method, " ",
                                          req.path);
      }
      send_error(res, res.status, message);
    });
    s.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                               std::exception_ptr) {
      send_error(res, 500, "internal error");
    });
    // Counted before the response is written (httplib's logger runs after it is sent), so a
    // client that has its answer finds it in /metrics.
    s.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
      const RequestContext& c = context();
      metrics_.count_request(c.model, c.version, res.status);
    });
    s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      log_request(req, res);
    });

    s.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"live", true}});
    });
    s.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
      if (ready_) {
        send_json(res, 200, {{"ready", true}});
      } else {
        send_error(res, 503, "the server is not ready (starting or shutting down)");
      }
    });
    s.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"name", "ember"}, {"version", "0.1.0"},
                           {"extensions", {"binary_tensor_data", "model_repository"}}});
    });
    s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      res.set_content(metrics_.text(), "text/plain; version=0.0.4");
    });
    const std::string model = R"(/v2/models/(.+?)(?:/versions/([^/]*))?)";
    s.Get(model + "/ready", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        const auto m = find_model(req.matches[1], req.matches[2]);
        send_json(res, 200, {{"name", m->name}, {"version", m->version}, {"ready", true}});
      });
    });
    s.Get(model + "/config", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { send_json(res, 200, model_config_json(*find_model(req.matches[1],
                                                                           req.matches[2]))); });
    });
    s.Post(model + "/infer", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] { infer(req, res, req.matches[1], req.matches[2]); });
    });
    s.Get(model + "/infer", [](const httplib::Request& req, httplib::Response& res) {
      send_error(res, 405, "GET " + req.path + ": inference takes POST");
    });
    s.Get(model, [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        send_json(res, 200, model_metadata(*find_model(req.matches[1], req.matches[2])));
      });
    });
    s.Post("/v2/repository/index", [this](const httplib::Request&, httplib::Response& res) {
      guarded(res, [&] { send_json(res, 200, repository_index()); });
    });
    s.Post(R"(/v2/repository/models/(.+)/load)",
           [this](const httplib::Request& req, httplib::Response& res) {
             guarded(res, [&] {
               context().model = req.matches[1];
               load_from_repository(req.matches[1]);
               send_json(res, 200, json::object());
             });
           });
    s.Post(R"(/v2/repository/models/(.+)/unload)",
           [this](const httplib::Request& req, httplib::Response& res) {
             guarded(res, [&] {
               context().model = req.matches[1];
               unload(req.matches[1]);
               send_json(res, 200, json::object());
             });
           });
  }

  void log_request(const httplib::Request& req, const httplib::Response& res) {
    RequestContext& c = context();
    const bool known = c.start != Clock::time_point{};
    if (options_.access_log) {
      const double ms =
          known ? std::chrono::duration<double, std::milli>(Clock::now() - c.start).count() : 0;
      char when[32];
      const std::time_t t = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&t, &tm);
      std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
      json line = {{"time", when},          {"remote", req.remote_addr},
                   {"method", req.method},  {"path", req.path},
                   {"status", res.status},  {"model", c.model},
                   {"version", c.version},  {"bytes_in", req.body.size()},
                   {"bytes_out", res.body.size()}, {"ms", std::round(ms * 1000) / 1000}};
      options_.access_log(line.dump(-1, ' ', false, json::error_handler_t::replace));
    }
    c = {};
  }

  ServerOptions options_;
  httplib::Server http_;
  Metrics metrics_;
  std::shared_mutex models_mutex_;
  std::map<std::string, std::map<int, std::shared_ptr<LoadedModel>>> models_;
  std::atomic<bool> ready_{false}, shut_down_{false}, serving_{false};
  std::thread thread_;
  int port_ = 0;
};

}  // namespace ember::serve
