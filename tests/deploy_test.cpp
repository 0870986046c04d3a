// What deploy/ ships is checked like code: Prometheus rules pass `promtool check rules`,
// Grafana dashboards are valid JSON, and every gantry metric they query is one the code
// registers (so a renamed metric cannot leave a silent alert behind).
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "process.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
const fs::path kRepo = GANTRY_SOURCE_DIR;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every string literal in src/ that looks like a metric name.
std::set<std::string> registered_metrics() {
  std::set<std::string> names;
  std::regex lit(R"re("([a-z][a-z0-9_]+)")re");
  for (auto& e : fs::recursive_directory_iterator(kRepo / "src")) {
    if (e.path().extension() != ".cpp" && e.path().extension() != ".h") continue;
    std::string text = read(e.path());
    for (std::sregex_iterator it(text.begin(), text.end(), lit), end; it != end; ++it) names.insert((*it)[1]);
  }
  return names;
}

// Metric names in a PromQL expression (identifiers followed by '{', '[' or ')', minus the
// histogram suffixes), ignoring PromQL's own functions and keywords.
std::set<std::string> metrics_in(const std::string& expr) {
  static const std::set<std::string> promql = {"sum", "rate", "increase", "histogram_quantile", "clamp_min", "by", "up",
                                               "le", "status", "job", "reason", "client_id_hash"};
  std::set<std::string> out;
  std::regex ident(R"(([a-z_][a-z0-9_]*)\s*[\{\[\)])");
  for (std::sregex_iterator it(expr.begin(), expr.end(), ident), end; it != end; ++it) {
    std::string n = (*it)[1];
    if (promql.count(n)) continue;
    for (const char* suffix : {"_bucket", "_count", "_sum"})
      if (n.size() > strlen(suffix) && n.compare(n.size() - strlen(suffix), strlen(suffix), suffix) == 0)
        n.resize(n.size() - strlen(suffix));
    out.insert(n);
  }
  return out;
}

TEST(Deploy, PrometheusRulesPassPromtoolAndQueryRealMetrics) {
  auto known = registered_metrics();
  int files = 0;
  for (auto& e : fs::directory_iterator(kRepo / "deploy" / "prometheus")) {
    ++files;
    Child check({"promtool", "check", "rules", e.path().string()});
    EXPECT_EQ(check.wait(std::chrono::seconds(30)), 0) << check.out() << check.err();
    std::regex expr_line(R"(expr:\s*(.+))");
    std::string text = read(e.path());
    for (std::sregex_iterator it(text.begin(), text.end(), expr_line), end; it != end; ++it)
      for (const std::string& m : metrics_in((*it)[1])) EXPECT_TRUE(known.count(m)) << e.path() << ": no such metric " << m;
  }
  EXPECT_GT(files, 0);
}

TEST(Deploy, GrafanaDashboardsAreValidAndQueryRealMetrics) {
  auto known = registered_metrics();
  int files = 0;
  for (auto& e : fs::directory_iterator(kRepo / "deploy" / "grafana")) {
    ++files;
    boost::system::error_code ec;
    auto v = boost::json::parse(read(e.path()), ec);
    ASSERT_FALSE(ec) << e.path() << ": " << ec.message();
    ASSERT_TRUE(v.as_object().contains("panels"));
    int targets = 0;
    for (auto& p : v.at("panels").as_array())
      for (auto& t : p.at("targets").as_array()) {
        ++targets;
        for (const std::string& m : metrics_in(std::string(t.at("expr").as_string())))
          EXPECT_TRUE(known.count(m)) << e.path() << ": no such metric " << m;
      }
    EXPECT_GT(targets, 0);
  }
  EXPECT_GT(files, 0);
}

}  // namespace
}  // namespace gantry::testing
