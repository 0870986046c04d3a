// gantry trades as a process against the real NATS JetStream and Redis of scripts/servers
// (and a Redis of its own where the test stops it). Redis is read with redis-cli, a client
// nobody here wrote. Each test has its own stream, subject and durable, and its own tokens, so
// tests share neither messages nor keys.
#include <nats/nats.h>

#include <fstream>
#include <random>
#include <regex>

#include <boost/json.hpp>

#include "bus/nats/jetstream.h"
#include "core/clock.h"
#include "core/http/client.h"
#include "core/http/test_socket.h"
#include "env.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace http = core::http;

std::string tag() {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", rd());
  return buf;
}

std::string trade(const std::string& token, const std::string& side, const std::string& native, const std::string& price,
                  const std::string& tx, const std::string& when = "") {
  std::string t = when.empty() ? core::rfc3339_nano(std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now())) : when;
  return R"({"Token":")" + token + R"(","Wallet":"w1","SellBuy":")" + side + R"(","NativeAmount":")" + native +
         R"(","TokenAmount":"100","PriceUsd":")" + price + R"(","TransTime":")" + t + R"(","TxHash":")" + tx + R"("})";
}

struct Trades {
  Trades(std::string id, std::vector<std::string> extra = {}, std::string redis = "", std::string durable = "",
         std::map<std::string, std::string> env = {})
      : id(std::move(id)), env(std::move(env)) {
    nats_url = server_url("GANTRY_NATS_URL");
    redis_url = redis.empty() ? server_url("GANTRY_REDIS_URL") : redis;
    start(extra, durable);
  }
  void start(std::vector<std::string> extra = {}, std::string durable = "") {
    if (!durable.empty()) this->durable = durable;
    std::vector<std::string> argv{kBin, "trades", "--address", "127.0.0.1", "--port", "0", "--nats-url", nats_url,
                                  "--redis-addr", redis_url, "--stream", "trades-" + id, "--subject", "t" + id + ".>",
                                  "--durable", this->durable.empty() ? "agg-" + id : this->durable, "--nats-prefix", "agg" + id,
                                  "--access-log", "false"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<Child>(argv, env);
    std::string out = proc->wait_for_output("url=http://", 30s);
    EXPECT_NE(out, "") << proc->out() << proc->err();
    std::smatch m;
    if (std::regex_search(out, m, std::regex(R"(url=http://[0-9.]+:([0-9]+))"))) port = std::stoi(m[1]);
    EXPECT_TRUE(eventually([&] { return get("/health/ready").first == 200; }, 30s)) << proc->err();
  }
  ~Trades() {
    if (proc && !killed) {
      proc->signal(SIGTERM);
      EXPECT_EQ(proc->wait(30s), 0) << "trades did not stop cleanly\n" << proc->out() << proc->err();
    }
  }
  void kill9() {
    proc->signal(SIGKILL);
    proc->wait(5s);
    killed = true;
  }
  std::pair<int, std::string> get(const std::string& path) const {
    static http::Client c;
    auto r = c.get("http://127.0.0.1:" + std::to_string(port) + path);
    return r.is_ok() ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  }
  std::pair<int, std::string> send(http::Method m, const std::string& path, const std::string& body = "") const {
    static http::Client c;
    http::ClientRequest q;
    q.method = m;
    q.url = "http://127.0.0.1:" + std::to_string(port) + path;
    q.body = body;
    auto r = c.send(q);
    return r.is_ok() ? std::make_pair(r->status, r->body) : std::make_pair(0, std::string());
  }
  std::pair<int, std::string> post(const std::string& path, const std::string& body) const {
    return send(http::Method::kPost, path, body);
  }
  double processed(const std::string& status) const {
    return metric(get("/metrics").second, "realtime_aggregation_trades_processed_total{status=\"" + status + "\"}");
  }
  // The window statistics of a token from the query API, without the times they were written.
  std::string stats(const std::string& token) const {
    auto [st, body] = get("/tokens/" + token + "/aggregates");
    if (st != 200) return "";
    auto v = boost::json::parse(body).as_object().at("aggregates").as_object();
    for (auto& w : v) w.value().as_object().erase("last_update");
    return boost::json::serialize(v);
  }
  std::string subject(const std::string& token) const { return "t" + id + "." + token; }
  std::string id, nats_url, redis_url, durable;
  std::map<std::string, std::string> env;
  int port = 0;
  bool killed = false;
  std::unique_ptr<Child> proc;
};

std::string redis_cli(const std::string& url, std::vector<std::string> args) {
  std::vector<std::string> argv{"redis-cli", "-u", url};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv);
  EXPECT_EQ(r.status, 0) << r.err;
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

// GET without judging: "" while the server is not (yet) there.
std::string redis_get(const std::string& url, const std::string& key) {
  auto r = run({"redis-cli", "-u", url, "GET", key});
  return r.status == 0 ? r.out : "";
}

TEST(Trades, AggregatesInTheOriginalsRedisKeysAndShapes) {
  std::string id = tag(), token = "TokA" + id;
  Trades t(id);
  // NATS subscriber for aggregates.<token> (here with the test's prefix), with the C client.
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, t.nats_url.c_str()), NATS_OK);
  natsSubscription* sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&sub, nc, ("agg" + id + "." + token).c_str()), NATS_OK);

  std::string body = "[" + trade(token, "sell", "1.5", "2.0", "tx1-" + id) + "," + trade(token, "buy", "2.25", "2.5", "tx2-" + id) +
                     "," + trade(token, "buy", "0.25", "2.25", "tx3-" + id) + "]";
  auto [st, answer] = t.post("/trades", body);
  ASSERT_EQ(st, 202) << answer;
  EXPECT_EQ(answer, R"({"status":"accepted","count":3})");
  // The same request again: JetStream drops the copies (message ids), the consumer would too.
  EXPECT_EQ(t.post("/trades", body).first, 202);

  std::string key = "token:" + token + ":aggregates";
  ASSERT_TRUE(eventually([&] { return redis_cli(t.redis_url, {"GET", key}).find("\"total_trades\":3") != std::string::npos; }, 10s));
  auto v = boost::json::parse(redis_cli(t.redis_url, {"GET", key})).as_object();
  ASSERT_EQ(v.size(), 5u);  // the default windows
  for (const char* w : {"1min", "5min", "15min", "30min", "1hour"}) {
    ASSERT_TRUE(v.contains(w)) << w;
    auto& a = v.at(w).as_object();
    EXPECT_EQ(a.at("sell_count").as_int64(), 1);
    EXPECT_EQ(a.at("buy_count").as_int64(), 2);
    EXPECT_EQ(boost::json::value_to<double>(a.at("total_volume")), 4.0);
    EXPECT_EQ(boost::json::value_to<double>(a.at("sell_volume")), 1.5);
    EXPECT_EQ(boost::json::value_to<double>(a.at("open_price")), 2.0);
    EXPECT_EQ(boost::json::value_to<double>(a.at("start_price")), 2.0);  // the original's name
    EXPECT_EQ(boost::json::value_to<double>(a.at("close_price")), 2.25);
    EXPECT_EQ(boost::json::value_to<double>(a.at("high")), 2.5);
    EXPECT_EQ(boost::json::value_to<double>(a.at("low")), 2.0);
    EXPECT_EQ(boost::json::value_to<double>(a.at("price_change")), 12.5);
    EXPECT_EQ(boost::json::value_to<double>(a.at("volume_usd")), 100 * 2.0 + 100 * 2.5 + 100 * 2.25);
  }
  std::string last = redis_cli(t.redis_url, {"GET", "token:" + token + ":last_update"});
  EXPECT_TRUE(std::regex_match(last, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << last;
  int ttl = std::stoi(redis_cli(t.redis_url, {"TTL", key}));
  EXPECT_GT(ttl, 3500);
  EXPECT_LE(ttl, 3600);
  EXPECT_GT(std::stoi(redis_cli(t.redis_url, {"TTL", "token:" + token + ":last_update"})), 3500);
  EXPECT_EQ(t.processed("applied"), 3);

  // The TokenAggregateData publication.
  natsMsg* msg = nullptr;
  std::string pub;
  while (natsSubscription_NextMsg(&msg, sub, 5000) == NATS_OK) {
    pub.assign(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    if (pub.find("\"total_trades\":3") != std::string::npos) break;
  }
  auto p = boost::json::parse(pub).as_object();
  EXPECT_EQ(p.at("token").as_string(), token);
  EXPECT_EQ(p.at("version").as_string(), "1.0");
  EXPECT_TRUE(p.contains("symbol") && p.contains("name") && p.contains("generated_at"));
  auto& data = p.at("aggregate_data").as_array();
  ASSERT_EQ(data.size(), 5u);
  EXPECT_EQ(data[0].as_object().at("time_window").as_string(), "1min");
  EXPECT_EQ(data[0].as_object().at("total_trades").as_int64(), 3);
  EXPECT_TRUE(data[0].as_object().contains("timestamp"));
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(nc);

  // Query API.
  auto [qs, q] = t.get("/tokens/" + token + "/aggregates");
  EXPECT_EQ(qs, 200);
  EXPECT_NE(q.find("\"total_trades\":3"), std::string::npos);
  auto [ls, list] = t.get("/tokens?sort=volume_1min&limit=5");
  EXPECT_EQ(ls, 200);
  EXPECT_NE(list.find("\"volume_1min\":4"), std::string::npos) << list;
  auto [ns, nf] = t.get("/tokens/NoSuchToken" + id + "/aggregates");
  EXPECT_EQ(ns, 404);
  EXPECT_NE(nf.find("NoSuchToken"), std::string::npos);
  EXPECT_EQ(t.get("/tokens?sort=volume_2min").first, 400);
  EXPECT_EQ(t.get("/tokens?sort=volume_1min&limit=0").first, 400);
  // trades top, piped: plain lines (no screen control), the token with its 1-minute figures.
  auto top = run({kBin, "trades", "top", "--url", "http://127.0.0.1:" + std::to_string(t.port), "--window", "1min", "--count", "1",
                  "--log-level", "warn"});
  EXPECT_EQ(top.status, 0) << top.err;
  EXPECT_NE(top.out.find("top 10 tokens by 1min volume"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find(token), std::string::npos) << top.out;
  EXPECT_EQ(top.out.find("\033["), std::string::npos);
  // The metrics pass promtool (a linter nobody here wrote).
  std::string mfile = "/tmp/gantry-trades-metrics-" + id + ".txt";
  {
    std::ofstream(mfile) << t.get("/metrics").second;
  }
  auto lint = run({"sh", "-c", "promtool check metrics < " + mfile});
  EXPECT_EQ(lint.status, 0) << lint.out << lint.err;
  std::remove(mfile.c_str());
  auto [hs, health] = t.get("/health");
  EXPECT_EQ(hs, 200);
  EXPECT_NE(health.find("\"metrics_summary\":{\"active_tokens\":1,\"worker_count\":"), std::string::npos) << health;
}

// Trades straight on the stream, as a producer writes them: a malformed one among good ones is
// counted and skipped, a duplicate TxHash ignored, the good ones applied.
TEST(Trades, BadAndDuplicateTradesOnTheStreamNeverStopIt) {
  std::string id = tag(), token = "TokB" + id;
  Trades t(id);
  auto js = bus::nats::JetStream::connect(t.nats_url);
  ASSERT_TRUE(js.is_ok());
  auto pub = [&](const std::string& body) { ASSERT_TRUE((*js)->publish(t.subject(token), body).is_ok()); };
  pub(trade(token, "buy", "1", "1", "a" + id));
  pub("{not json");
  pub(trade(token, "hold", "1", "1", "b" + id));
  pub(trade(token, "sell", "2", "1", "c" + id));
  pub(trade(token, "sell", "2", "1", "c" + id));  // the same TxHash again: a redelivered trade
  pub(trade(token, "sell", "2", "1", "d" + id, "2036-12-05T00:00:00Z"));  // a wrong year: ten years ahead
  ASSERT_TRUE(eventually([&] { return t.processed("applied") == 2 && t.processed("invalid") == 2; }, 10s))
      << t.get("/metrics").second;
  EXPECT_TRUE(eventually([&] { return t.processed("duplicate") == 1; }));
  EXPECT_TRUE(eventually([&] { return t.processed("too_new") == 1; })) << t.get("/metrics").second;
  EXPECT_TRUE(eventually([&] { return t.stats(token).find("\"total_trades\":2") != std::string::npos; }));
  EXPECT_NE(t.proc->wait_for_output("invalid trade skipped", 5s), "");
}

TEST(Trades, BadInputOverHttpIsRefusedNamingTheProblemAndNothingIsApplied) {
  std::string id = tag(), token = "TokC" + id;
  Trades t(id, {"--http-max-body-bytes", "4096", "--trade-buffer-size", "3"});
  std::string good = trade(token, "buy", "1", "1", "g" + id);
  struct Case {
    std::string body;
    int status;
    std::string needle;
  } cases[] = {
      {trade("", "buy", "1", "1", "x"), 400, "Token is empty"},
      {trade(token, "hold", "1", "1", "x"), 400, "SellBuy must be buy or sell"},
      {trade(token, "buy", "-1", "1", "x"), 400, "NativeAmount must be a non-negative decimal"},
      {trade(token, "buy", "1", "abc", "x"), 400, "PriceUsd must be a non-negative decimal"},
      {trade(token, "buy", "1", "1", "x", "yesterday"), 400, "TransTime must be an RFC 3339 time"},
      {"[" + good + "," + trade(token, "buy", "", "1", "y") + "]", 400, "trade 1: NativeAmount is empty"},
      {trade(token, "buy", "1", "1", "x", "2036-12-05T00:00:00Z"), 400, "s ahead of this server's clock (max_future 60 s)"},
      {"[" + good + "," + trade(token, "buy", "1", "1", "y", "2036-12-05T00:00:00Z") + "]", 400, "trade 1: TransTime is"},
      {"[" + good + "," + good + "," + good + "," + good + "]", 413, "over 3 trades"},
      {"[" + std::string(5000, ' ') + "]", 413, ""},
  };
  for (auto& c : cases) {
    auto [st, body] = t.post("/trades", c.body);
    EXPECT_EQ(st, c.status) << c.body.substr(0, 200) << " -> " << body;
    EXPECT_NE(body.find(c.needle), std::string::npos) << body;
  }
  std::this_thread::sleep_for(500ms);  // two flushes: anything applied would show
  EXPECT_EQ(t.get("/tokens/" + token + "/aggregates").first, 404);
  EXPECT_EQ(t.processed("applied"), 0);

  // Operations endpoints: gc shows memory before and after; optimize changes batching visibly.
  auto [gs, gc] = t.post("/performance/gc", "");
  EXPECT_EQ(gs, 200);
  auto g = boost::json::parse(gc).as_object();
  EXPECT_EQ(g.at("status").as_string(), "completed");
  for (const char* k : {"duration_ms", "before_mb", "after_mb", "freed_mb"}) EXPECT_TRUE(g.at("stats").as_object().contains(k)) << k;
  EXPECT_EQ(t.get("/performance/gc").first, 405);
  EXPECT_EQ(t.send(http::Method::kPut, "/performance/optimize/latency").first, 405);
  auto before = boost::json::parse(t.get("/performance").second).as_object();
  EXPECT_EQ(before.at("tuning").as_object().at("mode").as_string(), "balanced");
  EXPECT_EQ(before.at("tuning").as_object().at("flush_interval_ms").as_int64(), 100);
  auto [os, o] = t.post("/performance/optimize/throughput", "");
  EXPECT_EQ(os, 200);
  EXPECT_NE(o.find("\"status\":\"success\""), std::string::npos);
  auto after = boost::json::parse(t.get("/performance").second).as_object();
  EXPECT_EQ(after.at("tuning").as_object().at("mode").as_string(), "throughput");
  EXPECT_EQ(after.at("tuning").as_object().at("flush_interval_ms").as_int64(), 250);
  EXPECT_EQ(after.at("tuning").as_object().at("fetch_batch").as_int64(), 1000);
  t.post("/performance/optimize/latency", "");
  auto lat = boost::json::parse(t.get("/performance").second).as_object();
  EXPECT_EQ(lat.at("tuning").as_object().at("flush_interval_ms").as_int64(), 50);
  // A figure is written to the digits measured: a whole number of MB reads back as an integer.
  EXPECT_GT(lat.at("memory").as_object().at("resident_mb").to_number<double>(), 0);
}

// kill -9 mid-stream and restart: after the replay the aggregates equal those of an instance
// that ran the whole time beside it (its own durable consumer on the same stream).
TEST(Trades, KilledAndRestartedEqualsUninterrupted) {
  std::string id = tag();
  Trades a(id);
  Trades b(id, {}, "", "steady-" + id);
  auto gen = std::make_unique<Child>(std::vector<std::string>{kBin, "trades", "generate", "--nats-url", a.nats_url, "--subject-prefix",
                                                              "t" + id, "--tokens", "8", "--rate", "2000", "--batch-ms", "20",
                                                              "--duration", "3s", "--seed", "7"});
  std::this_thread::sleep_for(1200ms);
  a.kill9();
  std::this_thread::sleep_for(300ms);
  a.killed = false;
  a.start({}, "agg-" + id);
  EXPECT_EQ(gen->wait(30s), 0) << gen->err();
  std::string summary = gen->out();
  ASSERT_NE(summary.find("\"stored\":6000"), std::string::npos) << summary;
  auto tokens = [&](const Trades& t) {
    auto v = boost::json::parse(t.get("/tokens?sort=trades_1hour&limit=100").second).as_object();
    std::vector<std::string> out;
    for (auto& x : v.at("tokens").as_array()) out.push_back(std::string(x.as_object().at("token").as_string()));
    std::sort(out.begin(), out.end());
    return out;
  };
  auto total = [&](const Trades& t) {
    double n = 0;
    for (auto& tok : tokens(t)) {
      auto s = t.stats(tok);
      if (s.empty()) continue;
      n += boost::json::parse(s).as_object().at("1hour").as_object().at("total_trades").as_int64();
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return total(a) == 6000 && total(b) == 6000; }, 20s)) << total(a) << " " << total(b);
  EXPECT_GT(metric(a.get("/metrics").second, "realtime_aggregation_replayed_messages_total"), 0);
  auto ta = tokens(a);
  ASSERT_EQ(ta, tokens(b));
  ASSERT_EQ(ta.size(), 8u);
  for (auto& tok : ta) EXPECT_EQ(a.stats(tok), b.stats(tok)) << tok;
}

// A restart replays what the stream stored within the longest window. When the stream's last
// trade is older than that, there is nothing to replay and no fetch waits to learn it (the
// replay used to wait out its 2 s fetch timeout on every such start).
TEST(Trades, AStreamWithNothingWithinTheLongestWindowIsNotReplayed) {
  std::string id = tag();
  Trades a(id, {"--time-windows", "2s"});
  Child gen({kBin, "trades", "generate", "--nats-url", a.nats_url, "--subject-prefix", "t" + id, "--tokens", "2", "--rate",
             "200", "--batch-ms", "50", "--duration", "500ms"});
  EXPECT_EQ(gen.wait(30s), 0) << gen.err();
  a.proc->signal(SIGTERM);
  EXPECT_EQ(a.proc->wait(30s), 0) << a.proc->err();
  std::string first = a.proc->out() + a.proc->err();
  EXPECT_NE(first.find("no state to rebuild"), std::string::npos) << first;  // a new stream
  std::this_thread::sleep_for(2500ms);                                        // every trade now older than 2 s
  a.start({"--time-windows", "2s"});
  ASSERT_TRUE(a.proc->wait_for_output("role started", 30s) != "") << a.proc->err();
  std::string second = a.proc->out() + a.proc->err();
  EXPECT_NE(second.find("no state to rebuild: nothing stored within the longest window window=2s"), std::string::npos) << second;
  EXPECT_EQ(second.find("state rebuilt from the stream"), std::string::npos) << second;
  EXPECT_EQ(metric(a.get("/metrics").second, "realtime_aggregation_replayed_messages_total"), 0);
}

// Redis stopped: processing goes on, the breaker shows in /metrics, and when Redis is back
// every token is written with its latest statistics (nothing stale left behind).
TEST(Trades, RedisOutageProcessingContinuesAndWritesResume) {
  uint16_t port = core::http::testing::free_loopback_port();
  std::vector<std::string> argv{"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"};
  auto redis = std::make_unique<Child>(argv);
  std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  ASSERT_TRUE(eventually([&] { return run({"redis-cli", "-u", url, "PING"}).out == "PONG\n"; }));
  std::string id = tag(), token = "TokD" + id, other = "TokE" + id;
  Trades t(id, {"--redis-retry-delay", "10ms", "--redis-read-timeout", "300ms"}, url);
  ASSERT_EQ(t.post("/trades", trade(token, "buy", "1", "1", "d1" + id)).first, 202);
  std::string key = "token:" + token + ":aggregates";
  ASSERT_TRUE(eventually([&] { return redis_cli(url, {"GET", key}).find("\"total_trades\":1,") != std::string::npos; }));

  redis->signal(SIGKILL);
  redis->wait(5s);
  ASSERT_EQ(t.post("/trades", "[" + trade(token, "buy", "1", "1", "d2" + id) + "," + trade(other, "sell", "3", "1", "e1" + id) + "]").first, 202);
  EXPECT_TRUE(eventually([&] { return t.stats(token).find("\"total_trades\":2,") != std::string::npos; })) << t.stats(token);
  std::string breaker = "resilience_circuit_state{service=\"redis:trades\"}";
  EXPECT_TRUE(eventually([&] { return metric(t.get("/metrics").second, breaker) == 2; }, 15s)) << t.get("/metrics").second;
  EXPECT_GT(metric(t.get("/metrics").second, "realtime_aggregation_redis_pending_tokens"), 0);
  ASSERT_EQ(t.post("/trades", trade(token, "sell", "1", "1", "d3" + id)).first, 202);

  redis = std::make_unique<Child>(argv);  // empty: no persistence
  EXPECT_TRUE(eventually([&] { return redis_get(url, key).find("\"total_trades\":3,") != std::string::npos; }, 20s))
      << redis_get(url, key);
  EXPECT_NE(redis_cli(url, {"GET", "token:" + other + ":aggregates"}).find("\"total_trades\":1,"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return metric(t.get("/metrics").second, breaker) == 0; }, 10s));
  EXPECT_EQ(metric(t.get("/metrics").second, "realtime_aggregation_redis_pending_tokens"), 0);
}

TEST(Trades, MaxTokenProcessorsEvictsTheLeastRecentlyActive) {
  std::string id = tag();
  Trades t(id, {"--max-token-processors", "3"});
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(t.post("/trades", trade("TokF" + std::to_string(i) + id, "buy", "1", "1", "f" + std::to_string(i) + id)).first, 202);
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(eventually([&] { return t.processed("applied") == 6; }));
  EXPECT_TRUE(eventually([&] {
    auto m = t.get("/metrics").second;
    return metric(m, "realtime_aggregation_tokens_evicted_total{reason=\"limit\"}") == 3 &&
           metric(m, "realtime_aggregation_active_tokens") == 3;
  })) << t.get("/metrics").second;
  // The query API lists what is live (eviction picks the least recently active of a shard).
  EXPECT_TRUE(eventually([&] { return t.get("/tokens?sort=trades_1min").second.find("\"count\":3,") != std::string::npos; }))
      << t.get("/tokens?sort=trades_1min").second;
}

// Over MEMORY_LIMIT_MB (here below what the process needs at rest): new tokens are refused,
// counted, and not applied.
TEST(Trades, OverTheMemoryLimitNewTokensAreRefused) {
  std::string id = tag();
  Trades t(id, {}, "", "", {{"MEMORY_LIMIT_MB", "1"}});
  ASSERT_TRUE(eventually([&] { return metric(t.get("/metrics").second, "realtime_aggregation_memory_limit_exceeded") == 1; }, 5s))
      << t.get("/metrics").second;
  ASSERT_EQ(t.post("/trades", trade("TokG" + id, "buy", "1", "1", "g1" + id)).first, 202);
  EXPECT_TRUE(eventually([&] { return t.processed("refused") == 1; }));
  EXPECT_EQ(t.processed("applied"), 0);
  EXPECT_EQ(t.get("/tokens/TokG" + id + "/aggregates").first, 404);
  EXPECT_NE(t.proc->wait_for_output("over MEMORY_LIMIT_MB", 5s), "");
}

}  // namespace
}  // namespace gantry::testing
