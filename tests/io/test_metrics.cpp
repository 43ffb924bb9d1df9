// io/metrics.hpp: MetricsWriter's two files read back (exact text, numbers that round-trip,
// missing values, NaN, append, flushing), its refusals, and write_confusion_csv; and
// nn::ConfusionMatrix with evaluate()'s variant that fills one.

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ember/data/dataloader.hpp"
#include "ember/io/metrics.hpp"
#include "ember/nn/evaluate.hpp"
#include "ember/ops/activation.hpp"
#include "support/tmp.hpp"

namespace fs = std::filesystem;
using ember::io::MetricsRecord;
using ember::io::MetricsWriter;

namespace {

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

const char* const header = "step,epoch,split,loss,lr,accuracy,images_per_s,wall_s";

}  // namespace

TEST_CASE("MetricsWriter writes the same records to metrics.csv and metrics.jsonl",
          "[io][metrics]") {
  const fs::path dir = ember::test::tmp_dir("metrics_basic", true) / "run" / "a";  // created
  {
    MetricsWriter w(dir.string());
    REQUIRE(w.enabled());
    CHECK(w.csv_path() == (dir / "metrics.csv").string());
    w.write({.step = 100, .epoch = 0.125, .split = "train", .loss = 0.5234567890123,
             .lr = 0.01, .images_per_s = 1900.5, .wall_s = 3.25});
    w.write({.step = 800, .epoch = 1, .split = "val", .loss = 1e-7, .accuracy = 97.5,
             .wall_s = 60});
    // Everything missing but wall_s, which is then the time since the writer was opened.
    w.write({.step = 801, .epoch = 1, .split = "test"});
    // Still open: every record is on disk already (flushed), as a killed run would leave it.
    const auto csv = read_lines(dir / "metrics.csv");
    REQUIRE(csv.size() == 4);
    CHECK(csv[0] == header);
    CHECK(csv[1] == "100,0.125,train,0.5234567890123,0.01,,1900.5,3.25");
    CHECK(csv[2] == "800,1,val,1e-07,,97.5,,60");
    const auto jsonl = read_lines(dir / "metrics.jsonl");
    REQUIRE(jsonl.size() == 3);
    CHECK(jsonl[0] ==
          "{\"step\":100,\"epoch\":0.125,\"split\":\"train\",\"loss\":0.5234567890123,"
          "\"lr\":0.01,\"accuracy\":null,\"images_per_s\":1900.5,\"wall_s\":3.25}");
    CHECK(jsonl[1] ==
          "{\"step\":800,\"epoch\":1,\"split\":\"val\",\"loss\":1e-07,\"lr\":null,"
          "\"accuracy\":97.5,\"images_per_s\":null,\"wall_s\":60}");
    const auto last = split_csv(csv[3]);
    REQUIRE(last.size() == 8);
    CHECK(last[0] == "801");
    CHECK(last[2] == "test");
    for (int i = 3; i < 7; ++i) CHECK(last[static_cast<std::size_t>(i)].empty());
    const double wall = std::strtod(last[7].c_str(), nullptr);
    CHECK(wall >= 0);
    CHECK(wall < 60);  // seconds since opening, not since some epoch of the clock
    CHECK(jsonl[2].find("\"loss\":null,\"lr\":null,\"accuracy\":null,\"images_per_s\":null,"
                        "\"wall_s\":") != std::string::npos);
  }
}

TEST_CASE("MetricsWriter: numbers round-trip, NaN and infinities, no locale", "[io][metrics]") {
  const fs::path dir = ember::test::tmp_dir("metrics_numbers", true);
  const std::vector<double> values = {0.1, 1.0 / 3.0, 123456789.123456789, 5e-324, 1e300,
                                      -2.5, 0.0};
  {
    MetricsWriter w(dir.string());
    for (std::size_t i = 0; i < values.size(); ++i)
      w.write({.step = static_cast<std::int64_t>(i), .epoch = 0, .loss = values[i], .wall_s = 0});
    w.write({.step = 7, .loss = std::numeric_limits<double>::quiet_NaN(),
             .lr = std::numeric_limits<double>::infinity(),
             .accuracy = -std::numeric_limits<double>::infinity(), .wall_s = 0});
  }
  const auto csv = read_lines(dir / "metrics.csv");
  REQUIRE(csv.size() == values.size() + 2);
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto cells = split_csv(csv[i + 1]);
    REQUIRE(cells.size() == 8);
    CHECK(std::strtod(cells[3].c_str(), nullptr) == values[i]);  // the same double, bit for bit
  }
  CHECK(csv[values.size() + 1] == "7,0,train,nan,inf,-inf,,0");
  const auto jsonl = read_lines(dir / "metrics.jsonl");
  CHECK(jsonl[1].find("\"loss\":0.3333333333333333,") != std::string::npos);
  CHECK(jsonl.back() ==
        "{\"step\":7,\"epoch\":0,\"split\":\"train\",\"loss\":null,\"lr\":null,"
        "\"accuracy\":null,\"images_per_s\":null,\"wall_s\":0}");
}

TEST_CASE("MetricsWriter: truncate or append, one header", "[io][metrics]") {
  const fs::path dir = ember::test::tmp_dir("metrics_append", true);
  {
    MetricsWriter w(dir.string());
    w.write({.step = 1, .epoch = 1, .loss = 2.0, .wall_s = 1});
  }
  {
    MetricsWriter w(dir.string(), {.append = true});  // a resumed run continues the log
    w.write({.step = 2, .epoch = 2, .loss = 1.0, .wall_s = 2});
  }
  auto csv = read_lines(dir / "metrics.csv");
  REQUIRE(csv.size() == 3);
  CHECK(csv[0] == header);
  CHECK(csv[1] == "1,1,train,2,,,,1");
  CHECK(csv[2] == "2,2,train,1,,,,2");
  CHECK(read_lines(dir / "metrics.jsonl").size() == 2);
  {
    MetricsWriter w(dir.string());  // a new run starts over
    w.write({.step = 5, .epoch = 1, .loss = 3.0, .wall_s = 1});
  }
  csv = read_lines(dir / "metrics.csv");
  REQUIRE(csv.size() == 2);
  CHECK(csv[1] == "5,1,train,3,,,,1");
  CHECK(read_lines(dir / "metrics.jsonl").size() == 1);
}

TEST_CASE("MetricsWriter refuses what it cannot write, naming the path", "[io][metrics]") {
  const fs::path dir = ember::test::tmp_dir("metrics_refused", true);
  std::ofstream(dir / "file") << "x";
  REQUIRE_THROWS_WITH(MetricsWriter((dir / "file").string()),
                      Catch::Contains("cannot create the folder '" + (dir / "file").string()));
  REQUIRE_THROWS_WITH(MetricsWriter((dir / "file" / "sub").string()),
                      Catch::Contains("'" + (dir / "file" / "sub").string() + "'"));
  fs::create_directories(dir / "blocked" / "metrics.csv");  // a folder where the file goes
  REQUIRE_THROWS_WITH(MetricsWriter((dir / "blocked").string()),
                      Catch::Contains("cannot write '" +
                                      (dir / "blocked" / "metrics.csv").string() + "'"));
  REQUIRE_THROWS_WITH(MetricsWriter(""), Catch::Contains("empty folder name"));

  MetricsWriter w((dir / "ok").string());
  REQUIRE_THROWS_WITH(w.write({.split = "val,x"}), Catch::Contains("split 'val,x'"));
  REQUIRE_THROWS_WITH(w.write({.split = ""}), Catch::Contains("split ''"));
  CHECK(read_lines(dir / "ok" / "metrics.csv").size() == 1);  // nothing half-written

  MetricsWriter off;  // no folder: writes nothing
  CHECK_FALSE(off.enabled());
  off.write({.step = 1});
}

TEST_CASE("ConfusionMatrix counts, totals and per-class accuracy", "[io][metrics]") {
  ember::nn::ConfusionMatrix m(3);
  const std::vector<std::pair<int, int>> pairs = {{0, 0}, {0, 0}, {0, 1}, {1, 1}, {2, 0},
                                                  {2, 2}, {2, 2}, {2, 1}};
  for (const auto& [t, p] : pairs) m.add(t, p);
  CHECK(m(0, 0) == 2);
  CHECK(m(0, 1) == 1);
  CHECK(m(2, 1) == 1);
  CHECK(m(1, 0) == 0);
  CHECK(m.total() == 8);
  CHECK(m.correct() == 5);
  CHECK(m.class_total(2) == 4);
  CHECK(m.accuracy() == Approx(62.5));
  CHECK(m.class_accuracy(0) == Approx(200.0 / 3.0));
  CHECK(m.class_accuracy(1) == Approx(100.0));
  CHECK(m.class_accuracy(2) == Approx(50.0));
  REQUIRE_THROWS_WITH(m.add(3, 0), Catch::Contains("class 3 predicted as 0 is outside"));
  REQUIRE_THROWS_WITH(m.add(0, -1), Catch::Contains("outside the matrix's 3 classes"));
  REQUIRE_THROWS_WITH(ember::nn::ConfusionMatrix(0), Catch::Contains("number of classes"));

  const fs::path dir = ember::test::tmp_dir("metrics_confusion", true);
  ember::io::write_confusion_csv((dir / "c.csv").string(), m);
  CHECK(read_lines(dir / "c.csv") ==
        std::vector<std::string>{"true\\predicted,0,1,2", "0,2,1,0", "1,0,1,0", "2,1,1,2"});
  ember::io::write_confusion_csv((dir / "n.csv").string(), m, {"cat", "dog, big", "say \"hi\""});
  CHECK(read_lines(dir / "n.csv") ==
        std::vector<std::string>{"true\\predicted,cat,\"dog, big\",\"say \"\"hi\"\"\"",
                                 "cat,2,1,0", "\"dog, big\",0,1,0", "\"say \"\"hi\"\"\",1,1,2"});
  REQUIRE_THROWS_WITH(ember::io::write_confusion_csv((dir / "x.csv").string(), m, {"a"}),
                      Catch::Contains("1 class names for 3 classes"));
  REQUIRE_THROWS_WITH(
      ember::io::write_confusion_csv((dir / "missing" / "x.csv").string(), m),
      Catch::Contains("cannot write '" + (dir / "missing" / "x.csv").string()));
}

namespace {
// Predicts class (first pixel) % classes for each image, with certainty.
class PixelModulo : public ember::nn::Module {
 public:
  explicit PixelModulo(std::int64_t classes) : Module("PixelModulo"), classes_(classes) {}
  ember::Tensor<float> forward(const ember::Tensor<float>& x) override {
    auto s = ember::Tensor<float>::zeros({x.size(0), classes_});
    const ember::Tensor<float> xc = x.contiguous();
    const std::int64_t per = xc.numel() / std::max<std::int64_t>(x.size(0), 1);
    for (std::int64_t i = 0; i < x.size(0); ++i) {
      const auto v = static_cast<std::int64_t>(std::lround(xc.data()[i * per]));
      s(i, v % classes_) = 10.0f;
    }
    return ember::log_softmax(s, 1);
  }

 private:
  std::int64_t classes_;
};
}  // namespace

TEST_CASE("evaluate() with a ConfusionMatrix adds every prediction to it", "[io][metrics]") {
  // 11 images: image i has pixel value i and label i % 3; the model predicts i % 4 (mod 3).
  const std::int64_t n = 11;
  auto images = ember::Tensor<float>::empty({n, 1, 2, 2});
  auto labels = ember::Tensor<std::int64_t>::empty({n});
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t k = 0; k < 4; ++k) images.data()[i * 4 + k] = static_cast<float>(i);
    labels.data()[i] = i % 3;
  }
  auto d = std::make_shared<const ember::data::TensorDataset>(images, labels);
  ember::data::DataLoader loader(d, {.batch_size = 4});
  PixelModulo model(3);
  ember::nn::ConfusionMatrix m;  // sized from the model's scores
  const ember::nn::EvalResult r = ember::nn::evaluate(model, loader, m);
  REQUIRE(m.num_classes() == 3);
  CHECK(m.total() == n);
  CHECK(m.correct() == n);  // i % 3 predicted for label i % 3
  CHECK(r.correct == m.correct());
  CHECK(m(0, 0) == 4);
  CHECK(m(1, 1) == 4);
  CHECK(m(2, 2) == 3);

  PixelModulo wrong(4);  // predicts i % 4: right for i = 0, 1, 2 only
  ember::nn::ConfusionMatrix m4(4);
  const ember::nn::EvalResult r4 = ember::nn::evaluate(wrong, loader, m4);
  CHECK(m4.total() == n);
  CHECK(r4.correct == m4.correct());
  // labels i % 3 against predictions i % 4 for i = 0..10
  ember::nn::ConfusionMatrix want(4);
  for (std::int64_t i = 0; i < n; ++i) want.add(i % 3, i % 4);
  CHECK(m4.counts() == want.counts());
  CHECK(r4.correct == 3);  // i = 0, 1, 2

  ember::nn::ConfusionMatrix two(2);
  REQUIRE_THROWS_WITH(ember::nn::evaluate(model, loader, two),
                      Catch::Contains("the model scores 3 classes but the confusion matrix has 2"));
}
