// gantry probe --once against a target served here, through a real ingest and a private
// nats-server: what it measured, what it reports when a phase fails, its persisted identity,
// and its exit status when ingest is unreachable.
#include <sys/stat.h>

#include <fstream>

#include <boost/json.hpp>

#include "core/http/router.h"
#include "core/http/server.h"
#include "private_servers.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace http = core::http;
constexpr const char* kBin = GANTRY_BINARY;

struct Target {
  Target() {
    auto router = std::make_shared<http::Router>();
    router->get("/", [](const http::Request&, http::Response& out) { out.text(200, "ok"); });
    router->get("/fixed/1mb.bin", [](const http::Request&, http::Response& out) {
      out.status = 200;
      out.content_type = "application/octet-stream";
      out.body.assign(1 << 20, 'x');
    });
    server = serve(router);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()) + "/"; }
  std::unique_ptr<http::Server> server;
};

std::string temp_home() {
  char tmpl[] = "/tmp/gantry-home-XXXXXX";
  return mkdtemp(tmpl);
}

int run_probe(std::vector<std::string> args, const std::string& home, std::string* output = nullptr) {
  std::vector<std::string> argv{kBin, "probe", "--once", "--port", "0", "--address", "127.0.0.1"};
  argv.insert(argv.end(), args.begin(), args.end());
  Child p(argv, {{"HOME", home}, {"TELEMETRY_CLIENT_ID", ""}});
  int status = p.wait(60s);
  if (output) *output = p.out() + p.err();
  return status;
}

TEST(TelemetryProbe, MeasuresPhasesAndThroughputAndReportsFailedStages) {
  PrivateNats nats;
  Target target;
  uint16_t iport = http::testing::free_loopback_port();
  Child ingest({kBin, "ingest", "--port", std::to_string(iport), "--address", "127.0.0.1", "--nats-url", nats.url()});
  ASSERT_NE(ingest.wait_for_output("listening", 15s), "");
  std::string home = temp_home();
  std::string dead = "http://127.0.0.1:" + std::to_string(http::testing::free_loopback_port()) + "/";
  std::string out;
  int status = run_probe({"--target", target.url() + "," + dead, "--ingest-url",
                          "http://127.0.0.1:" + std::to_string(iport) + "/events", "--label", "lab"},
                         home, &out);
  EXPECT_EQ(status, 0) << out;

  auto msgs = take_all(nats.url(), "telemetry-events", "telemetry.events", "probe-test");
  ASSERT_EQ(msgs.size(), 2u) << out;
  std::string client;
  for (auto& [data, _] : msgs) {
    auto v = boost::json::parse(data);
    client = std::string(v.at("client_id").as_string());
    EXPECT_EQ(v.at("network_context").at("user_label").as_string(), "lab");
    const auto& t = v.at("timings");
    if (v.at("target").as_string() == target.url()) {
      EXPECT_FALSE(v.as_object().contains("error_stage")) << data;
      EXPECT_GE(t.at("dns_ms").to_number<double>(), 0);
      EXPECT_GT(t.at("tcp_ms").to_number<double>(), 0);
      EXPECT_GT(t.at("http_ttfb_ms").to_number<double>(), 0);
      EXPECT_TRUE(t.at("tls_ms").is_null()) << "http:// has no TLS phase, and it is not reported as 0";
      EXPECT_GT(v.at("throughput_kbps").to_number<double>(), 0);
    } else {
      EXPECT_EQ(v.at("error_stage").as_string(), "TCP") << data;
      EXPECT_TRUE(t.at("http_ttfb_ms").is_null());
    }
  }
  // The identity was saved, 0600, and is used again.
  std::ifstream in(home + "/.telemetry_client_id");
  std::string saved;
  in >> saved;
  EXPECT_EQ(saved, client);
  EXPECT_EQ(saved.rfind("probe-", 0), 0u);
  EXPECT_EQ(saved.size(), 6u + 32u);
  struct stat st {};
  ASSERT_EQ(::stat((home + "/.telemetry_client_id").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(run_probe({"--target", target.url(), "--throughput=false", "--ingest-url",
                       "http://127.0.0.1:" + std::to_string(iport) + "/events"},
                      home),
            0);
  auto again = take_all(nats.url(), "telemetry-events", "telemetry.events", "probe-test");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(boost::json::parse(again[0].first).at("client_id").as_string(), saved);
}

TEST(TelemetryProbe, OnceExitsNonZeroWhenIngestNeverAccepts) {
  Target target;
  std::string out;
  std::string nowhere = "http://127.0.0.1:" + std::to_string(http::testing::free_loopback_port()) + "/events";
  int status = run_probe({"--target", target.url(), "--throughput=false", "--ingest-url", nowhere, "--timeout", "2s",
                          "--client-id", "probe-test"},
                         temp_home(), &out);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("not every event was delivered"), std::string::npos);
}

TEST(TelemetryProbe, BadSettingsAreClearErrors) {
  std::string out;
  EXPECT_EQ(run_probe({}, temp_home(), &out), 2);
  EXPECT_NE(out.find("no targets"), std::string::npos) << out;
  EXPECT_EQ(run_probe({"--target", "ftp://x/"}, temp_home(), &out), 2);
  EXPECT_NE(out.find("not an http(s) URL"), std::string::npos) << out;
}

}  // namespace
}  // namespace gantry::testing
