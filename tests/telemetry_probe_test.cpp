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

// A target page; with_file: it also serves the original's /fixed/1mb.bin (most sites do not).
struct ProbeTarget {
  explicit ProbeTarget(bool with_file = true) {
    auto router = std::make_shared<http::Router>();
    router->get("/", [](const http::Request&, http::Response& out) { out.text(200, std::string(64 * 1024, 'p')); });
    if (with_file)
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

// The digits after the decimal point of `"key":<number>` in raw JSON text (-1: key absent or
// not a number).
int decimals_of(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  size_t i = at + key.size() + 3, end = json.find_first_of(",}", i);
  std::string num = json.substr(i, end - i);
  if (num.empty() || num == "null") return -1;
  auto dot = num.find('.');
  return dot == std::string::npos ? 0 : static_cast<int>(num.size() - dot - 1);
}

struct ProbedIngest {
  explicit ProbedIngest(const std::string& nats_url, std::vector<std::string> extra = {}, uint16_t on_port = 0) {
    if (on_port) port = on_port;
    std::vector<std::string> argv{kBin, "ingest", "--port", std::to_string(port), "--address", "127.0.0.1",
                                  "--nats-url", nats_url};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<Child>(argv);
    EXPECT_NE(proc->wait_for_output("listening", 15s), "");
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/events"; }
  uint16_t port = http::testing::free_loopback_port();
  std::unique_ptr<Child> proc;
};

TEST(TelemetryProbe, MeasuresPhasesAndThroughputAndReportsFailedStages) {
  PrivateNats nats;
  ProbeTarget target;
  uint16_t iport = http::testing::free_loopback_port();
  Child ingest({kBin, "ingest", "--port", std::to_string(iport), "--address", "127.0.0.1", "--nats-url", nats.url()});
  ASSERT_NE(ingest.wait_for_output("listening", 15s), "");
  std::string home = temp_home();
  std::string dead = "http://127.0.0.1:" + std::to_string(http::testing::free_loopback_port()) + "/";
  std::string out;
  // --target repeated, as the spec has it (a comma list works too, below).
  int status = run_probe({"--target", target.url(), "--target", dead, "--ingest-url",
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
      EXPECT_LT(t.at("dns_ms").to_number<double>(), 50) << "127.0.0.1 needs no lookup";
      // Whole microseconds: at most three decimals, no float noise.
      for (const char* k : {"dns_ms", "tcp_ms", "http_ttfb_ms"}) {
        int d = decimals_of(data, k);
        EXPECT_GE(d, 0) << k << " in " << data;
        EXPECT_LE(d, 3) << k << " in " << data;
      }
      EXPECT_LE(decimals_of(data, "throughput_kbps"), 1) << data;
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
  ProbeTarget target;
  std::string out;
  std::string nowhere = "http://127.0.0.1:" + std::to_string(http::testing::free_loopback_port()) + "/events";
  int status = run_probe({"--target", target.url(), "--throughput=false", "--ingest-url", nowhere, "--timeout", "2s",
                          "--client-id", "probe-test"},
                         temp_home(), &out);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("not every event was delivered"), std::string::npos);
  // Why, in the final error and once (not per retry) as a warning when delivery starts failing.
  EXPECT_NE(out.find("last_error=\"unavailable: http.client: Couldn't connect to server"), std::string::npos) << out;
  auto warned = out.find("ingest does not accept events");
  ASSERT_NE(warned, std::string::npos) << out;
  EXPECT_EQ(out.find("ingest does not accept events", warned + 1), std::string::npos) << out;
}

// Running (not --once) while ingest is down: one warning naming the error, the events kept;
// when ingest comes up they are delivered and the probe says so.
TEST(TelemetryProbe, WarnsOnceWhileIngestIsDownAndSaysWhenItAcceptsAgain) {
  PrivateNats nats;
  ProbeTarget target;
  uint16_t ingest_port = http::testing::free_loopback_port();
  std::string ingest_url = "http://127.0.0.1:" + std::to_string(ingest_port) + "/events";
  Child probe({kBin, "probe", "--port", "0", "--address", "127.0.0.1", "--target", target.url(), "--throughput=false",
               "--ingest-url", ingest_url, "--interval", "1s", "--max-backoff", "1s", "--client-id", "probe-test"},
              {{"HOME", temp_home()}, {"TELEMETRY_CLIENT_ID", ""}});
  std::string out = probe.wait_for_output("ingest does not accept events", 15s);
  ASSERT_NE(out, "") << probe.out() << probe.err();
  EXPECT_NE(out.find("Couldn't connect to server"), std::string::npos) << out;
  // Rounds go on and every event is retried while it is down, with no warning per attempt.
  std::this_thread::sleep_for(2500ms);
  auto warned = probe.out().find("ingest does not accept events");
  EXPECT_EQ(probe.out().find("ingest does not accept events", warned + 1), std::string::npos) << probe.out();

  ProbedIngest ingest(nats.url(), {}, ingest_port);
  EXPECT_NE(probe.wait_for_output("ingest accepts events again", 15s), "") << probe.out() << probe.err();
  probe.signal(SIGTERM);
  EXPECT_EQ(probe.wait(15s), 0) << probe.out() << probe.err();
}

// A wrong --api-token: ingest answers 401, and --once says so and exits 1 (it used to exit 0,
// the refused events having left the queue).
TEST(TelemetryProbe, OnceExitsNonZeroNamingTheRefusalWhenIngestRefuses) {
  PrivateNats nats;
  ProbeTarget target;
  ProbedIngest ingest(nats.url(), {"--api-tokens", "right-token"});
  std::string out;
  int status = run_probe({"--target", target.url(), "--throughput=false", "--ingest-url", ingest.url(), "--api-token",
                          "wrong-token", "--client-id", "probe-test"},
                         temp_home(), &out);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("ingest refused events"), std::string::npos) << out;
  EXPECT_NE(out.find("HTTP 401"), std::string::npos) << out;
  EXPECT_EQ(run_probe({"--target", target.url(), "--throughput=false", "--ingest-url", ingest.url(), "--api-token",
                       "right-token", "--client-id", "probe-test"},
                      temp_home(), &out),
            0)
      << out;
}

// A site without the original's /fixed/1mb.bin: timings and a throughput figure from the page
// itself (logged once), not a "throughput" error; a --throughput-url the user gave that fails
// is still one.
TEST(TelemetryProbe, ASiteWithoutTheDownloadIsMeasuredFromItsPage) {
  PrivateNats nats;
  ProbeTarget site(/*with_file=*/false);
  ProbedIngest ingest(nats.url());
  std::string out;
  ASSERT_EQ(run_probe({"--target", site.url(), "--ingest-url", ingest.url(), "--client-id", "probe-test"}, temp_home(), &out), 0)
      << out;
  EXPECT_NE(out.find("measured from its own page"), std::string::npos) << out;
  auto msgs = take_all(nats.url(), "telemetry-events", "telemetry.events", "probe-test");
  ASSERT_EQ(msgs.size(), 1u);
  auto v = boost::json::parse(msgs[0].first);
  EXPECT_FALSE(v.as_object().contains("error_stage")) << msgs[0].first;
  EXPECT_GT(v.at("throughput_kbps").to_number<double>(), 0) << msgs[0].first;

  std::string missing = site.url() + "nothing-here.bin";
  ASSERT_EQ(run_probe({"--target", site.url(), "--throughput-url", missing, "--ingest-url", ingest.url(), "--client-id",
                       "probe-test"},
                      temp_home(), &out),
            0)
      << out;
  auto failed = take_all(nats.url(), "telemetry-events", "telemetry.events", "probe-test");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(boost::json::parse(failed[0].first).at("error_stage").as_string(), "throughput") << failed[0].first;
}

TEST(TelemetryProbe, BadSettingsAreClearErrors) {
  std::string out;
  EXPECT_EQ(run_probe({}, temp_home(), &out), 2);
  EXPECT_NE(out.find("no targets"), std::string::npos) << out;
  EXPECT_EQ(run_probe({"--target", "ftp://x/"}, temp_home(), &out), 2);
  EXPECT_NE(out.find("probe.target: ftp://x/ has 'ftp://x/', not an http(s) URL (e.g. https://example.com/)"), std::string::npos)
      << out;
  // Listed with every other refused setting, each bad target named.
  EXPECT_EQ(run_probe({"--target", "example.com,https://ok.example/", "--target", "x", "--interval", "1ms"}, temp_home(), &out), 2);
  EXPECT_NE(out.find("has 'example.com' and 'x', not http(s) URLs"), std::string::npos) << out;
  EXPECT_NE(out.find("probe.interval: 1ms must be between 100ms and 24h"), std::string::npos) << out;
}

}  // namespace
}  // namespace gantry::testing
