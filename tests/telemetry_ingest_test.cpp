// gantry ingest as a process against a private nats-server (JetStream) this test starts,
// kills and restarts: the order of checks, 202 only once stored, duplicates stored once,
// the token bucket, the batch endpoint, and 503 (never 202) while NATS is down.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>

#include <boost/json.hpp>

#include "bus/nats/jetstream.h"
#include "core/http/client.h"
#include "core/http/test_socket.h"
#include "env.h"
#include "private_servers.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace http = core::http;

using Nats = PrivateNats;

struct Ingest {
  Ingest(const std::string& nats, std::vector<std::string> args = {}) : port(http::testing::free_loopback_port()) {
    std::vector<std::string> argv{kBin, "ingest", "--port", std::to_string(port), "--address", "127.0.0.1",
                                  "--nats-url", nats};
    argv.insert(argv.end(), args.begin(), args.end());
    proc = std::make_unique<Child>(argv, std::map<std::string, std::string>{{"API_TOKENS", "tok-a,tok-b"}});
    EXPECT_NE(proc->wait_for_output("listening", 15s), "") << proc->out() << proc->err();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
  uint16_t port;
  std::unique_ptr<Child> proc;
};

http::ClientResponse ingest_call(http::Method m, const std::string& url, std::string body = {}, std::string token = "tok-a") {
  static http::Client c;
  http::ClientRequest req;
  req.method = m;
  req.url = url;
  req.body = std::move(body);
  if (!token.empty()) req.headers.emplace_back("Authorization", "Bearer " + token);
  req.headers.emplace_back("Content-Type", "application/json");
  auto r = c.send(req);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : http::ClientResponse{};
}



std::string event(int i, const std::string& client = "probe-1") {
  return R"({"event_id":")" + uuid(i) + R"(","client_id":")" + client + R"(","ts_ms":)" + std::to_string(now_ms()) +
         R"(,"schema_version":"1.0","target":"https://example.com/","network_context":{"interface_type":"wifi"},)"
         R"("timings":{"dns_ms":1,"tcp_ms":2,"tls_ms":3,"http_ttfb_ms":4},"throughput_kbps":1000})";
}

// Every message now in the events stream, by event id (WorkQueue retention removes what is
// acked), checking the stream form on the way.
std::map<std::string, int> drain(const std::string& nats) {
  std::map<std::string, int> seen;
  for (auto& [data, msg_id] : take_all(nats, "telemetry-events", "telemetry.events", "ingest-test")) {
    auto v = boost::json::parse(data);
    seen[std::string(v.at("event_id").as_string())]++;
    EXPECT_EQ(msg_id, v.at("event_id").as_string());
    EXPECT_TRUE(v.at("recv_ts_ms").as_int64() > 0);
  }
  return seen;
}

TEST(TelemetryIngest, ChecksInTheSpecsOrderAndStoresOnceBeforeAnswering) {
  Nats nats;
  Ingest in(nats.url(), {"--rate-limit", "1000", "--rate-limit-burst", "1000"});
  EXPECT_EQ(ingest_call(http::Method::kGet, in.url("/health"), "", "").body, R"({"status":"healthy","service":"ingest-api"})");

  // auth before method before validation
  EXPECT_EQ(ingest_call(http::Method::kGet, in.url("/events"), "", "").status, 401);
  EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/events"), "garbage", "wrong").status, 401);
  auto m = ingest_call(http::Method::kGet, in.url("/events"));
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.header("Allow"), "POST");
  auto bad = ingest_call(http::Method::kPost, in.url("/events"), R"({"event_id":"x"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("event_id"), std::string::npos) << bad.body;
  EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/events"), event(1).substr(0, event(1).size() - 1) + R"(,"extra":1})").status, 400);
  EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/events"), std::string(70 * 1024, ' ') + event(1)).status, 413);

  auto ok = ingest_call(http::Method::kPost, in.url("/events"), event(1));
  EXPECT_EQ(ok.status, 202) << ok.body;
  EXPECT_EQ(ok.body, R"({"status":"accepted","event_id":")" + uuid(1) + R"("})");
  EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/api/v1/events"), event(2), "tok-b").status, 202);
  // Resent: accepted again, stored once.
  EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/events"), event(1)).status, 202);

  auto seen = drain(nats.url());
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[uuid(1)], 1);
  EXPECT_EQ(seen[uuid(2)], 1);

  auto metrics = ingest_call(http::Method::kGet, in.url("/metrics"), "", "").body;
  EXPECT_NE(metrics.find("ingest_requests_total{status=\"202\"} 3"), std::string::npos);
  EXPECT_NE(metrics.find("ingest_auth_failures_total{reason=\"missing\"}"), std::string::npos);
  in.proc->signal(SIGTERM);
  EXPECT_EQ(in.proc->wait(20s), 0);
}

TEST(TelemetryIngest, TokenBucketPerClientAnswers429WithRetryAfter) {
  Nats nats;
  Ingest in(nats.url(), {"--rate-limit", "1", "--rate-limit-burst", "3"});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/events"), event(10 + i, "greedy")).status, 202);
  auto limited = ingest_call(http::Method::kPost, in.url("/events"), event(20, "greedy"));
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.header("Retry-After"), "1");
  // Another client has its own bucket.
  EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/events"), event(21, "modest")).status, 202);
  auto seen = drain(nats.url());
  EXPECT_EQ(seen.count(uuid(20)), 0u);  // refused means not stored
  EXPECT_EQ(seen.size(), 4u);
}

// ingest_active_connections is the server's count of open connections: idle keep-alive ones
// and batch requests too (it used to count single-event requests in flight only, so it read 0
// here).
TEST(TelemetryIngest, ActiveConnectionsCountsOpenConnections) {
  Nats nats;
  Ingest in(nats.url());
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(in.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    fds.push_back(fd);
  }
  auto value = [&] {
    std::string body = ingest_call(http::Method::kGet, in.url("/metrics"), "", "").body;
    auto at = body.find("\ningest_active_connections ");
    return at == std::string::npos ? -1 : std::stoi(body.substr(at + 27));
  };
  // Three idle connections and the scraping one.
  EXPECT_TRUE(eventually([&] { return value() >= 4; }, 5s)) << value();
  for (int fd : fds) ::close(fd);
  EXPECT_TRUE(eventually([&] { return value() <= 2; }, 5s)) << value();
}

TEST(TelemetryIngest, BatchAnswersEachEvent) {
  Nats nats;
  Ingest in(nats.url(), {"--rate-limit", "1000", "--rate-limit-burst", "1000"});
  std::string ndjson = event(31) + "\n" + R"({"event_id":"nope"})" + "\n" + event(32) + "\n";
  auto r = ingest_call(http::Method::kPost, in.url("/events/batch"), ndjson);
  EXPECT_EQ(r.status, 207) << r.body;
  auto v = boost::json::parse(r.body);
  EXPECT_EQ(v.at("accepted").as_int64(), 2);
  EXPECT_EQ(v.at("results").at(1).at("status").as_int64(), 400);
  auto all = ingest_call(http::Method::kPost, in.url("/events/batch"), "[" + event(33) + "," + event(34) + "]");
  EXPECT_EQ(all.status, 202) << all.body;
  EXPECT_EQ(ingest_call(http::Method::kPost, in.url("/events/batch"), "[]").status, 400);
  auto seen = drain(nats.url());
  EXPECT_EQ(seen.size(), 4u);
}

TEST(TelemetryIngest, NatsDownMeans503NeverALost202) {
  Nats nats;
  // No access log: thousands of lines would fill the pipe this test does not read while posting.
  Ingest in(nats.url(), {"--rate-limit", "100000", "--rate-limit-burst", "100000", "--access-log=false"});
  // Post continuously while NATS is killed and restarted; remember every 202.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> accepted;
  std::atomic<int> unavailable{0}, other{0};
  std::thread poster([&] {
    for (int i = 1000; !stop; ++i) {
      auto r = ingest_call(http::Method::kPost, in.url("/events"), event(i));
      if (r.status == 202) {
        std::lock_guard lk(mu);
        accepted.push_back(uuid(i));
      } else if (r.status == 503) {
        ++unavailable;
      } else {
        ++other;
      }
    }
  });
  std::this_thread::sleep_for(500ms);
  nats.kill();
  std::this_thread::sleep_for(1500ms);
  nats.start();
  std::this_thread::sleep_for(2000ms);
  stop = true;
  poster.join();
  EXPECT_GT(unavailable.load(), 0);
  EXPECT_EQ(other.load(), 0);
  auto seen = drain(nats.url());
  size_t lost = 0;
  for (const auto& id : accepted) lost += seen.count(id) ? 0 : 1;
  EXPECT_EQ(lost, 0u) << "of " << accepted.size() << " accepted";
  EXPECT_GT(accepted.size(), 10u);
}

}  // namespace
}  // namespace gantry::testing
