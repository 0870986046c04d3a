// What deploy/ ships is checked like code: Prometheus rules pass `promtool check rules`,
// Grafana dashboards are valid JSON, and every gantry metric they query is one a running role
// exposes (so a renamed or misspelt metric cannot leave a silent alert behind). `up` is
// Prometheus' own.
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "core/http/client.h"
#include "env.h"
#include "private_servers.h"
#include "process.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
const fs::path kRepo = GANTRY_SOURCE_DIR;


// The metric names running roles expose: Telemetry's `gantry ingest` and `gantry aggregator`
// (on a private nats-server and a fresh database) and Fleet's controller, agent and worker
// (with Redis push on, so its metrics exist too), their /metrics read, every `# TYPE` line
// taken. (This used to take any lowercase string literal in src/ for a metric, so a rule on a
// misspelt metric passed.)
std::set<std::string> exposed_metrics() {
  std::set<std::string> names;
  PrivateNats nats;
  FreshDatabase db("telemetry");
  EXPECT_FALSE(db.url.empty());
  auto [redis_host, redis_port] = host_port(server_url("GANTRY_REDIS_URL"));
  auto port = [] { return std::to_string(core::http::testing::free_loopback_port()); };
  std::string ingest_port = port(), agg_port = port(), ctl_port = port(), agent_port = port(), worker_port = port();
  std::string dir = fs::temp_directory_path() / ("gantry-deploy-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::vector<std::string> redis{"--redis-enabled", "true", "--redis-host", redis_host, "--redis-port", std::to_string(redis_port)};
  auto with = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  std::vector<std::unique_ptr<Child>> roles;
  std::vector<std::string> ports;
  auto start = [&](std::vector<std::string> argv, const std::string& p) {
    roles.push_back(std::make_unique<Child>(std::move(argv)));
    ports.push_back(p);
  };
  start({GANTRY_BINARY, "ingest", "--port", ingest_port, "--address", "127.0.0.1", "--nats-url", nats.url()}, ingest_port);
  start({GANTRY_BINARY, "aggregator", "--metrics-port", agg_port, "--address", "127.0.0.1", "--nats-url", nats.url(),
         "--db-url", db.url},
        agg_port);
  start(with({GANTRY_BINARY, "controller", "--port", ctl_port, "--address", "127.0.0.1", "--database-path", dir + "/fleet.db"},
             redis),
        ctl_port);
  start({GANTRY_BINARY, "worker", "--port", worker_port, "--address", "127.0.0.1"}, worker_port);
  start(with({GANTRY_BINARY, "agent", "--port", agent_port, "--address", "127.0.0.1", "--controller-url",
              "http://127.0.0.1:" + ctl_port, "--worker-url", "http://127.0.0.1:" + worker_port},
             redis),
        agent_port);
  for (auto& r : roles) EXPECT_NE(r->wait_for_output("listening", std::chrono::seconds(20)), "") << r->out() << r->err();
  core::http::Client client;
  for (const std::string& p : ports) {
    auto r = client.get("http://127.0.0.1:" + p + "/metrics");
    EXPECT_TRUE(r.is_ok() && r->status == 200);
    if (!r.is_ok()) continue;
    std::istringstream in(r->body);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("# TYPE ", 0) == 0) names.insert(line.substr(7, line.find(' ', 7) - 7));
  }
  for (auto& r : roles) r->signal(SIGTERM);
  for (auto& r : roles) EXPECT_EQ(r->wait(std::chrono::seconds(30)), 0) << r->out() << r->err();
  fs::remove_all(dir);
  EXPECT_GT(names.size(), 40u);
  return names;
}

const std::set<std::string>& known_metrics() {
  static const std::set<std::string> names = exposed_metrics();
  return names;
}

// Metric names in a PromQL expression (identifiers followed by '{', '[' or ')', minus the
// histogram suffixes), ignoring PromQL's own functions and keywords and the label lists of
// `by (...)` / `without (...)`.
std::set<std::string> metrics_in(const std::string& promql_expr) {
  static const std::set<std::string> promql = {"sum", "rate", "increase", "histogram_quantile", "clamp_min",
                                               "deriv", "max", "up"};
  std::string expr = std::regex_replace(promql_expr, std::regex(R"(\b(by|without)\s*\([^)]*\))"), " ");
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
  const auto& known = known_metrics();
  int files = 0;
  for (auto& e : fs::directory_iterator(kRepo / "deploy" / "prometheus")) {
    ++files;
    Child check({"promtool", "check", "rules", e.path().string()});
    EXPECT_EQ(check.wait(std::chrono::seconds(30)), 0) << check.out() << check.err();
    std::regex expr_line(R"(expr:\s*(.+))");
    std::string text = read_file(e.path());
    for (std::sregex_iterator it(text.begin(), text.end(), expr_line), end; it != end; ++it)
      for (const std::string& m : metrics_in((*it)[1])) EXPECT_TRUE(known.count(m)) << e.path() << ": no such metric " << m;
  }
  EXPECT_GT(files, 0);
}

TEST(Deploy, GrafanaDashboardsAreValidAndQueryRealMetrics) {
  const auto& known = known_metrics();
  int files = 0;
  for (auto& e : fs::directory_iterator(kRepo / "deploy" / "grafana")) {
    ++files;
    boost::system::error_code ec;
    auto v = boost::json::parse(read_file(e.path()), ec);
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
