// The Trades benchmark's programs (bench/trades.sh runs them):
//
//   trades_bench inproc TOKENS N               wire-format bytes -> updated windows in process
//                                               (the engine on both cores), and the same bytes
//                                               only parsed and validated, on as many threads
//   trades_bench memory TOKENS RATE SECONDS D   simulated time: TOKENS tokens at RATE trades/s
//                                               each for SECONDS, dedup D (1/0); prints the MB
//                                               jemalloc holds for them, per 1,000 tokens
//   trades_bench publish NATS PREFIX N TOKENS   N trades into the stream as fast as JetStream acks
//   trades_bench raw_consume NATS STREAM SUBJECT N   the reference: a plain cnats pull consumer
//                                               acking every message
//   trades_bench latency NATS REDIS PREFIX RATE SECONDS TOKENS
//                                               open loop; trade sent -> its token's aggregate
//                                               in Redis counting it (10 probe tokens polled)
//   trades_bench redis_writes REDIS TOKENS SECONDS   gantry's Redis writer (pipelined SET … EX of
//                                               rendered aggregates, one connection): SET/s
//   trades_bench delete_stream NATS STREAM
//   trades_bench original REDIS TOKENS SECONDS  the original's design: every trade rewrites its
//                                               token's whole trade list and aggregates to Redis
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bus/redis/pipeline.h"
#include "core/clock.h"
#include "core/json.h"
#include "trades/engine.h"
#include "trades/memory.h"
#include "trades/render.h"
#include "trades/trade.h"

using namespace gantry;
using namespace gantry::trades;
using Clock = std::chrono::steady_clock;

namespace {

std::string token_name(size_t i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "Tok%040zu", i);  // 43 characters, like a Solana address
  return buf;
}

std::string wire(const std::string& token, uint64_t i, double price, std::string_view when) {
  char p[32], a[32];
  std::snprintf(p, sizeof p, "%.10g", price);
  std::snprintf(a, sizeof a, "%.3f", 0.001 * static_cast<double>(i % 10'000));
  std::string b;
  core::json::Writer(b).object().field("Token", token).field("Wallet", "WaLLeT1111111111111111111111111111111111111")
      .field("SellBuy", i % 2 ? "sell" : "buy").field("NativeAmount", a).field("TokenAmount", "12345")
      .field("PriceUsd", p).field("TransTime", when).field("TxHash", "tx" + std::to_string(i) + "x" + token.substr(30))
      .end();
  return b;
}

std::string now_text() { return core::rfc3339_nano(std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now())); }

int inproc(size_t tokens, size_t n) {
  std::string when = now_text();
  std::vector<std::string> bodies;
  bodies.reserve(n);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < n; ++i) bodies.push_back(wire(token_name(rng() % tokens), i, 1 + static_cast<double>(i % 97) / 100, when));
  unsigned threads = std::max(2u, std::thread::hardware_concurrency());
  const size_t kBatch = 1000;

  // Parse only, on `threads` threads (TRADES_BENCH_SKIP_PARSE=1 leaves it out, for profiling).
  auto t0 = Clock::now();
  if (!std::getenv("TRADES_BENCH_SKIP_PARSE")) {
    std::vector<std::thread> ts;
    for (unsigned k = 0; k < threads; ++k)
      ts.emplace_back([&, k] {
        Parser p;
        std::vector<Trade> out;
        for (size_t i = k; i < n; i += threads) {
          out.clear();
          if (!p.parse(bodies[i], i, out).is_ok()) std::abort();
        }
      });
    for (auto& t : ts) t.join();
  }
  double parse_s = std::chrono::duration<double>(Clock::now() - t0).count();

  // The engine: the same bytes in batches, one shard per core.
  EngineOptions o;
  o.shards = static_cast<int>(threads);
  o.max_tokens = tokens * 2;
  o.max_queued_batches = 100'000;
  o.flush_interval = std::chrono::milliseconds(100);
  std::atomic<uint64_t> reported{0};
  Engine e(o, [&](std::vector<TokenUpdate>&& u) { reported += u.size(); });
  e.start();
  t0 = Clock::now();
  for (size_t i = 0; i < n; i += kBatch) {
    RawBatch b;
    for (size_t j = i; j < std::min(n, i + kBatch); ++j) {
      b.data.push_back(bodies[j]);
      b.seq.push_back(j + 1);
    }
    e.submit_raw(std::move(b));
  }
  e.wait_idle();
  double agg_s = std::chrono::duration<double>(Clock::now() - t0).count();
  EngineStats st = e.stats();
  e.stop();
  if (st.applied != n) {
    std::cerr << "inproc: applied " << st.applied << " of " << n << " (invalid " << st.invalid << ")\n";
    return 1;
  }
  std::printf("%.0f %.0f %u\n", static_cast<double>(n) / agg_s, static_cast<double>(n) / parse_s, threads);
  return 0;
}

// Simulated time: a ManualClock the engine reads, advanced one second per round.
int memory(size_t tokens, int rate, int seconds, bool dedup) {
  core::ManualClock clock(core::WallTime(std::chrono::seconds(1'700'000'000)));
  EngineOptions o;
  o.shards = 2;
  o.max_tokens = tokens * 2;
  o.dedup = dedup;
  o.clock = &clock;
  o.flush_interval = std::chrono::hours(1);  // flushing is not what is measured
  Engine e(o, [](std::vector<TokenUpdate>&&) {});
  e.start();
  std::vector<std::string> names;
  for (size_t i = 0; i < tokens; ++i) names.push_back(token_name(i));
  uint64_t base = read_memory().allocated;
  uint64_t seq = 0;
  std::mt19937_64 rng(2);
  for (int s = 0; s < seconds; ++s) {
    int64_t t = 1'700'000'000'000LL + s * 1000LL;
    std::vector<Trade> batch;
    batch.reserve(tokens * static_cast<size_t>(rate));
    for (int r = 0; r < rate; ++r)
      for (size_t k = 0; k < tokens; ++k) {
        Trade tr;
        tr.set_token(names[k]);
        tr.t_ms = t + r * (1000 / rate);
        tr.seq = ++seq;
        tr.tx_fp = rng();
        tr.sell = rng() & 1;
        tr.native_amount = 1.5;
        tr.token_amount = 100;
        tr.price_usd = 1 + static_cast<double>(rng() % 1000) / 1000;
        batch.push_back(tr);
      }
    e.submit(std::move(batch));
    e.wait_idle();
    clock.advance(std::chrono::seconds(1));
  }
  uint64_t used = read_memory().allocated - base;
  std::printf("%.1f\n", static_cast<double>(used) / (1 << 20) * 1000.0 / static_cast<double>(tokens));
  e.stop();
  return 0;
}

struct Js {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit Js(const std::string& url, int max_pending = 8192) {
    if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) throw std::runtime_error("cannot connect to " + url);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = max_pending;
    if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) throw std::runtime_error("no JetStream");
  }
  ~Js() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  bool complete() {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 120'000;
    return js_PublishAsyncComplete(js, &po) == NATS_OK;
  }
};

int publish(const std::string& url, const std::string& prefix, size_t n, size_t tokens) {
  Js j(url);
  std::string when = now_text();
  std::vector<std::string> names;
  for (size_t i = 0; i < tokens; ++i) names.push_back(token_name(i));
  std::mt19937_64 rng(3);
  auto t0 = Clock::now();
  for (size_t i = 0; i < n; ++i) {
    const std::string& tok = names[rng() % tokens];
    std::string b = wire(tok, i, 1 + static_cast<double>(i % 89) / 100, when);
    std::string subj = prefix + "." + tok;
    if (js_PublishAsync(j.js, subj.c_str(), b.data(), static_cast<int>(b.size()), nullptr) != NATS_OK) return 1;
  }
  if (!j.complete()) return 1;
  std::printf("%.0f\n", static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - t0).count());
  return 0;
}

int raw_consume(const std::string& url, const std::string& stream, const std::string& subject, size_t n) {
  Js j(url);
  natsSubscription* sub = nullptr;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Config.AckPolicy = js_AckExplicit;
  so.Config.MaxAckPending = 20'000;
  jsErrCode jerr{};
  if (js_PullSubscribe(&sub, j.js, subject.c_str(), "bench-raw-consumer", nullptr, &so, &jerr) != NATS_OK) return 1;
  size_t got = 0;
  auto t0 = Clock::now();
  while (got < n) {
    natsMsgList list{};
    if (natsSubscription_Fetch(&list, sub, 1000, 1000, &jerr) != NATS_OK) {
      if (Clock::now() - t0 > std::chrono::seconds(120)) break;
      continue;
    }
    for (int i = 0; i < list.Count; ++i) natsMsg_Ack(list.Msgs[i], nullptr);
    got += static_cast<size_t>(list.Count);
    natsMsgList_Destroy(&list);
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  js_DeleteConsumer(j.js, stream.c_str(), "bench-raw-consumer", nullptr, &jerr);
  natsSubscription_Destroy(sub);
  std::printf("%.0f\n", static_cast<double>(got) / s);
  return got == n ? 0 : 1;
}

int64_t total_trades_1hour(const std::string& json) {
  auto at = json.find("\"1hour\":{");
  if (at == std::string::npos) return -1;
  at = json.find("\"total_trades\":", at);
  return at == std::string::npos ? -1 : std::stoll(json.substr(at + 15));
}

int latency(const std::string& nats_url, const std::string& redis_url, const std::string& prefix, double rate, int seconds,
            size_t tokens) {
  Js j(nats_url, 65536);
  auto ep = bus::redis::Endpoint::parse_url(redis_url);
  if (!ep.is_ok()) return 1;
  std::vector<std::string> names;
  for (size_t i = 0; i < tokens; ++i) names.push_back(token_name(1'000'000 + i));  // fresh tokens: counts start at 0
  const size_t probes = 10;
  // For each probe token: when its k-th trade was sent.
  std::vector<std::vector<Clock::time_point>> sent(probes);
  std::vector<std::mutex> mu(probes);
  std::vector<double> lat_ms;
  std::atomic<bool> done{false};
  std::thread poller([&] {
    bus::redis::Connection c(*ep, "bench-poller");
    std::vector<int64_t> seen(probes, 0);
    while (!done) {
      for (size_t p = 0; p < probes; ++p) {
        auto r = c.command({"GET", "token:" + names[p] + ":aggregates"});
        if (!r.is_ok() || r->type != bus::redis::Reply::kString) continue;
        int64_t n = total_trades_1hour(r->str);
        auto now = Clock::now();
        std::lock_guard lk(mu[p]);
        for (; seen[p] < n && seen[p] < static_cast<int64_t>(sent[p].size()); ++seen[p])
          lat_ms.push_back(std::chrono::duration<double, std::milli>(now - sent[p][static_cast<size_t>(seen[p])]).count());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto t0 = Clock::now();
  size_t total = static_cast<size_t>(rate * seconds);
  std::mt19937_64 rng(4);
  std::string when;
  for (size_t i = 0; i < total; ++i) {
    auto due = t0 + std::chrono::nanoseconds(static_cast<int64_t>(static_cast<double>(i) * 1e9 / rate));
    // Sleeping, not spinning: a spinning sender would take one of the two cores from the
    // servers and the role being measured. Lateness still counts (from the scheduled time).
    if (Clock::now() < due) std::this_thread::sleep_until(due);
    if (i % 1000 == 0) when = now_text();
    size_t k = rng() % tokens;
    std::string b = wire(names[k], i + 50'000'000, 1.5, when);
    std::string subj = prefix + "." + names[k];
    if (k < probes) {
      std::lock_guard lk(mu[k]);
      sent[k].push_back(due);  // from the scheduled send: a late sender does not hide its lateness
    }
    if (js_PublishAsync(j.js, subj.c_str(), b.data(), static_cast<int>(b.size()), nullptr) != NATS_OK) return 1;
  }
  j.complete();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  done = true;
  poller.join();
  if (lat_ms.empty()) return std::cerr << "latency: no trade seen in Redis\n", 1;
  std::sort(lat_ms.begin(), lat_ms.end());
  auto pct = [&](double q) { return lat_ms[std::min(lat_ms.size() - 1, static_cast<size_t>(q * static_cast<double>(lat_ms.size())))]; };
  std::printf("%.1f %.1f %zu\n", pct(0.5), pct(0.99), lat_ms.size());
  return 0;
}

TokenUpdate sample_update(const std::string& token) {
  TokenUpdate u;
  u.token = token;
  for (int w = 0; w < 5; ++w) {
    Aggregate a;
    a.sell_count = 120 + w;
    a.buy_count = 97 * (w + 1);
    a.total_trades = a.sell_count + a.buy_count;
    a.sell_volume = 1234.567 * (w + 1);
    a.buy_volume = 987.654 * (w + 1);
    a.total_volume = a.sell_volume + a.buy_volume;
    a.volume_usd = 333333.33 * (w + 1);
    a.open_price = 0.0012345;
    a.close_price = 0.0013456;
    a.high = 0.0014;
    a.low = 0.0011;
    a.vwap = 0.00125;
    a.price_change = 9.0;
    u.windows.push_back(a);
  }
  return u;
}

int redis_writes(const std::string& url, size_t tokens, int seconds) {
  auto ep = bus::redis::Endpoint::parse_url(url);
  if (!ep.is_ok()) return 1;
  bus::redis::PipelineOptions po;
  po.max_in_flight = 100;  // REDIS_PIPELINE_SIZE's default
  bus::redis::Pipeline p(*ep, po);
  auto windows = *parse_windows(default_windows());
  std::vector<TokenUpdate> updates;
  for (size_t i = 0; i < tokens; ++i) updates.push_back(sample_update(token_name(2'000'000 + i)));
  // Rendered beforehand, as the shards do it in the role: what is measured is the writer.
  std::string stamp = core::rfc3339_nano(std::chrono::system_clock::now());
  std::vector<std::string> values;
  for (auto& u : updates) {
    values.emplace_back();
    render_aggregates(values.back(), windows, u, stamp);
  }
  size_t bytes = values[0].size();
  uint64_t commands = 0;
  auto t0 = Clock::now();
  while (Clock::now() - t0 < std::chrono::seconds(seconds)) {
    for (size_t i = 0; i < updates.size(); ++i)
      p.add({"SET", "token:" + updates[i].token + ":aggregates", values[i], "EX", "3600"});
    auto r = p.exec_writes();
    if (!r.is_ok() || r->errors) return std::cerr << "redis_writes: failed\n", 1;
    commands += r->commands;
  }
  std::printf("%.0f %zu\n", static_cast<double>(commands) / std::chrono::duration<double>(Clock::now() - t0).count(), bytes);
  return 0;
}

// The original (Go) service's design, as its code did it: per trade, the token's trade list
// (every trade within the longest window) appended to and serialised whole, its aggregates
// serialised, and four SETs and four EXPIREs sent in one pipeline and waited for.
int original(const std::string& url, size_t tokens, int seconds) {
  auto ep = bus::redis::Endpoint::parse_url(url);
  if (!ep.is_ok()) return 1;
  bus::redis::Pipeline p(*ep);
  struct T {
    std::vector<std::string> trades;  // the original kept structs and marshalled them each time
  };
  std::vector<T> state(tokens);
  auto windows = *parse_windows(default_windows());
  std::string when = now_text();
  std::mt19937_64 rng(5);
  uint64_t n = 0;
  auto t0 = Clock::now();
  while (Clock::now() - t0 < std::chrono::seconds(seconds)) {
    size_t k = rng() % tokens;
    std::string name = token_name(3'000'000 + k);
    state[k].trades.push_back(wire(name, n, 1.25, when));
    std::string list = "[";
    for (size_t i = 0; i < state[k].trades.size(); ++i) list += (i ? "," : "") + state[k].trades[i];
    list += "]";
    std::string agg;
    render_aggregates(agg, windows, sample_update(name), when);
    std::string idx = R"({"1min":0,"5min":0,"15min":0,"30min":0,"1hour":0})";
    std::string key = "orig:token:" + name;
    p.add({"SET", key + ":trades", list});
    p.add({"SET", key + ":indices", idx});
    p.add({"SET", key + ":aggregates", agg});
    p.add({"SET", key + ":last_update", when});
    for (const char* s : {":trades", ":indices", ":aggregates", ":last_update"}) p.add({"EXPIRE", key + s, "3600"});
    if (!p.exec_writes().is_ok()) return 1;
    ++n;
  }
  std::printf("%.0f\n", static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - t0).count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv, argv + argc);
  try {
    if (a.size() == 4 && a[1] == "inproc") return inproc(std::stoul(a[2]), std::stoul(a[3]));
    if (a.size() == 6 && a[1] == "memory") return memory(std::stoul(a[2]), std::stoi(a[3]), std::stoi(a[4]), a[5] == "1");
    if (a.size() == 6 && a[1] == "publish") return publish(a[2], a[3], std::stoul(a[4]), std::stoul(a[5]));
    if (a.size() == 6 && a[1] == "raw_consume") return raw_consume(a[2], a[3], a[4], std::stoul(a[5]));
    if (a.size() == 8 && a[1] == "latency") return latency(a[2], a[3], a[4], std::stod(a[5]), std::stoi(a[6]), std::stoul(a[7]));
    if (a.size() == 5 && a[1] == "redis_writes") return redis_writes(a[2], std::stoul(a[3]), std::stoi(a[4]));
    if (a.size() == 4 && a[1] == "delete_stream") {
      Js j(a[2]);
      jsErrCode jerr{};
      return js_DeleteStream(j.js, a[3].c_str(), nullptr, &jerr) == NATS_OK ? 0 : 1;
    }
    if (a.size() == 5 && a[1] == "original") return original(a[2], std::stoul(a[3]), std::stoi(a[4]));
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: see the head of bench/trades/trades_bench.cpp\n";
  return 2;
}
