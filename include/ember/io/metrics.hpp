#pragma once
// MetricsWriter: a training run's log as two files side by side in one folder, metrics.csv and
// metrics.jsonl, one record per event (a logged step, an epoch's validation, a test), written
// and flushed at once, so that a run killed half-way keeps every record it wrote and a plot can
// be drawn while it still trains (scripts/plot_metrics.py reads metrics.csv).
//
//   io::MetricsWriter metrics("runs/a");  // creates the folder; truncates both files
//   metrics.write({.step = 100, .epoch = 0.107, .split = "train", .loss = 0.52, .lr = 0.01,
//                  .images_per_s = 1900});
//   metrics.write({.step = 938, .epoch = 1, .split = "val", .loss = 0.08, .accuracy = 97.5});
//
// metrics.csv:   step,epoch,split,loss,lr,accuracy,images_per_s,wall_s
//                100,0.107,train,0.52,0.01,,1900,3.0125
// metrics.jsonl: {"step":100,"epoch":0.107,"split":"train","loss":0.52,"lr":0.01,
//                 "accuracy":null,"images_per_s":1900,"wall_s":3.0125}
//
// Every record has the same fields, in that order. A value not given is an empty CSV cell and
// JSON null; wall_s, when not given, is the seconds since the writer was opened. Numbers are
// the shortest decimal text that reads back as the same double (std::to_chars: no locale, so
// never "0,5"); a NaN or an infinity is "nan", "inf" or "-inf" in the CSV (Python's float()
// and pandas read them) and null in JSON, which cannot hold them. accuracy is in percent.
// split names what the record describes: "train", "val" and "test" by convention, any word of
// letters, digits, '_' and '-'. The CSV header is written once: when the file is new or empty
// (with append, an existing log is continued, as a resumed run does).
//
// write_confusion_csv() writes a ConfusionMatrix beside them (confusion.csv, rows = true
// classes), with the class names as the first row and column; the plot script draws it.
//
// A folder or file that cannot be created or written raises ember::Error naming the path.

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/io/atomic_file.hpp"
#include "ember/nn/confusion_matrix.hpp"

namespace ember::io {

/// One logged event of a training run; a field left empty is written as missing.
struct MetricsRecord {
  std::int64_t step = 0;                ///< optimizer steps taken so far in the run
  double epoch = 0;                     ///< epochs done: whole at an epoch's end, else a fraction
  std::string split = "train";          ///< what was measured: "train", "val", "test"
  std::optional<double> loss{};           ///< mean loss over what the record covers
  std::optional<double> lr{};             ///< learning rate in use
  std::optional<double> accuracy{};       ///< percent
  std::optional<double> images_per_s{};   ///< throughput of what the record covers
  std::optional<double> wall_s{};         ///< seconds since the run began (default: since opened)
};

namespace detail {

// A double as the shortest text that reads back as itself. NaN and infinities: "nan", "inf" and
// "-inf" (the CSV's spelling), or `not_finite_json` when given (JSON's "null").
inline std::string format_double(double v, std::string_view not_finite_json = {}) {
  if (!std::isfinite(v)) {
    if (!not_finite_json.empty()) return std::string(not_finite_json);
    return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  }
  std::array<char, 64> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  EMBER_CHECK(ec == std::errc(), "cannot format the double ", v);
  return std::string(buf.data(), end);
}

// A CSV field: quoted (RFC 4180) when it holds a comma, a quote or a line break.
inline std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

inline void check_split(const std::string& split) {
  bool ok = !split.empty() && split.size() <= 64;
  for (const char c : split)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-');
  EMBER_CHECK(ok, "MetricsWriter: split '", ::ember::detail::clip_text(split, 64),
              "' is not a word of letters, digits, '_' and '-' (such as train, val, test)");
}

// Opens `path` for writing (appending when asked), or throws naming it and the OS's reason.
inline std::FILE* open_for_writing(const std::string& path, bool append) {
  std::FILE* f = std::fopen(path.c_str(), append ? "ab" : "wb");
  EMBER_CHECK(f != nullptr, "MetricsWriter: cannot write '", path,
              "': ", std::generic_category().message(errno));
  return f;
}

}  // namespace detail

/// Options of MetricsWriter.
struct MetricsOptions {
  bool append = false;  ///< continue existing files (header only if a file is empty or new)
};

/// Writes metrics.csv and metrics.jsonl in a folder, one flushed record per write().
class MetricsWriter {
 public:
  /// The field names, in file order: the CSV header and the JSON keys.
  static constexpr std::array<const char*, 8> columns = {
      "step", "epoch", "split", "loss", "lr", "accuracy", "images_per_s", "wall_s"};

  /// A writer that writes nothing (enabled() false): for a run without a metrics folder.
  MetricsWriter() = default;
  /// Creates `dir` (and its parents) if needed and opens DIR/metrics.csv and
  /// DIR/metrics.jsonl: truncated, or continued with `options.append`.
  explicit MetricsWriter(const std::string& dir, MetricsOptions options = {})
      : dir_(dir), t0_(std::chrono::steady_clock::now()) {
    namespace fs = std::filesystem;
    EMBER_CHECK(!dir.empty(), "MetricsWriter: empty folder name");
    std::error_code ec;
    fs::create_directories(dir, ec);
    EMBER_CHECK(fs::is_directory(dir), "MetricsWriter: cannot create the folder '", dir, "'",
                ec ? ": " + ec.message() : std::string(fs::exists(dir) ? ": not a folder" : ""));
    csv_path_ = (fs::path(dir) / "metrics.csv").string();
    jsonl_path_ = (fs::path(dir) / "metrics.jsonl").string();
    const bool csv_empty = !options.append || !fs::exists(csv_path_) ||
                           fs::file_size(csv_path_, ec) == 0;
    csv_ = File(detail::open_for_writing(csv_path_, options.append));
    jsonl_ = File(detail::open_for_writing(jsonl_path_, options.append));
    if (csv_empty) {
      std::string header;
      for (const char* c : columns) header += std::string(header.empty() ? "" : ",") + c;
      put(csv_, csv_path_, header + "\n");
    }
  }

  /// Whether this writer writes (it was opened on a folder).
  [[nodiscard]] bool enabled() const { return csv_.get() != nullptr; }
  /// The folder, and the two files in it.
  [[nodiscard]] const std::string& dir() const { return dir_; }
  /// DIR/metrics.csv.
  [[nodiscard]] const std::string& csv_path() const { return csv_path_; }
  /// DIR/metrics.jsonl.
  [[nodiscard]] const std::string& jsonl_path() const { return jsonl_path_; }
  /// Seconds since the writer was opened.
  [[nodiscard]] double elapsed_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

  /// Appends one record to both files and flushes them; does nothing when not enabled.
  void write(const MetricsRecord& r) {
    if (!enabled()) return;
    detail::check_split(r.split);
    const double wall = r.wall_s ? *r.wall_s : elapsed_s();
    const std::array<std::optional<double>, 5> values = {r.loss, r.lr, r.accuracy,
                                                         r.images_per_s, wall};
    std::string csv = std::to_string(r.step) + "," + detail::format_double(r.epoch) + "," +
                      r.split;
    std::string json = "{\"step\":" + std::to_string(r.step) +
                       ",\"epoch\":" + detail::format_double(r.epoch, "null") +
                       ",\"split\":\"" + r.split + "\"";
    for (std::size_t i = 0; i < values.size(); ++i) {
      csv += ",";
      json += std::string(",\"") + columns[i + 3] + "\":";
      if (values[i]) {
        csv += detail::format_double(*values[i]);
        json += detail::format_double(*values[i], "null");
      } else {
        json += "null";
      }
    }
    put(csv_, csv_path_, csv + "\n");
    put(jsonl_, jsonl_path_, json + "}\n");
  }

 private:
  // A FILE* closed with its owner.
  class File {
   public:
    File() = default;
    explicit File(std::FILE* f) : f_(f) {}
    File(File&& o) noexcept : f_(std::exchange(o.f_, nullptr)) {}
    File& operator=(File&& o) noexcept {
      if (this != &o) {
        reset();
        f_ = std::exchange(o.f_, nullptr);
      }
      return *this;
    }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    ~File() { reset(); }
    [[nodiscard]] std::FILE* get() const { return f_; }

   private:
    void reset() {
      if (f_ != nullptr) std::fclose(f_);
      f_ = nullptr;
    }
    std::FILE* f_ = nullptr;
  };

  static void put(const File& f, const std::string& path, const std::string& text) {
    errno = 0;
    const bool ok = std::fwrite(text.data(), 1, text.size(), f.get()) == text.size() &&
                    std::fflush(f.get()) == 0;
    EMBER_CHECK(ok, "MetricsWriter: cannot write '", path,
                "': ", std::generic_category().message(errno != 0 ? errno : EIO));
  }

  std::string dir_, csv_path_, jsonl_path_;
  File csv_, jsonl_;
  std::chrono::steady_clock::time_point t0_{};
};

/// Writes `m` to `path` as CSV (atomically): a header row "true\predicted" then the class
/// names, and one row per true class, its name then its counts. Without names, classes are
/// named by their index; names with commas or quotes are quoted.
inline void write_confusion_csv(const std::string& path, const nn::ConfusionMatrix& m,
                                const std::vector<std::string>& class_names = {}) {
  const std::int64_t n = m.num_classes();
  EMBER_CHECK(n > 0, "write_confusion_csv: the confusion matrix for '", path, "' is empty");
  EMBER_CHECK(class_names.empty() || static_cast<std::int64_t>(class_names.size()) == n,
              "write_confusion_csv: ", class_names.size(), " class names for ", n, " classes");
  const auto name = [&](std::int64_t k) {
    return detail::csv_field(class_names.empty() ? std::to_string(k)
                                                 : class_names[static_cast<std::size_t>(k)]);
  };
  std::string text = "true\\predicted";
  for (std::int64_t p = 0; p < n; ++p) {
    text += ',';
    text += name(p);
  }
  text += '\n';
  for (std::int64_t t = 0; t < n; ++t) {
    text += name(t);
    for (std::int64_t p = 0; p < n; ++p) {
      text += ',';
      text += std::to_string(m(t, p));
    }
    text += '\n';
  }
  write_file_atomic(path, [&](std::FILE* f) { std::fwrite(text.data(), 1, text.size(), f); });
}

}  // namespace ember::io
