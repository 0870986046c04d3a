// Load generator for bench/fleet.sh: simulates many agents in one process (Asio coroutines,
// one thread) against a running controller.
//
//   fleet_load register URL N TOKENS_FILE
//       registers N agents (4 keep-alive connections), writes "agent_id token" lines
//   fleet_load propagate URL TOKENS_FILE longpoll|redis ROUNDS [REDIS_HOST REDIS_PORT]
//       every agent waits for a new version - a held GET /config?wait=, or a Redis
//       subscription followed by GET /config - while another thread publishes ROUNDS new
//       versions; prints the delay from publishing to each agent holding the new version as
//       JSON lines (p50, p99, max in ms)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "core/http/client.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Url {
  std::string host, port;
};

Url parse(const std::string& u) {
  auto s = u.find("://");
  std::string hp = u.substr(s == std::string::npos ? 0 : s + 3);
  hp = hp.substr(0, hp.find('/'));
  auto c = hp.rfind(':');
  return {hp.substr(0, c), hp.substr(c + 1)};
}

struct Agent {
  std::string id, token;
};

std::vector<Agent> read_tokens(const std::string& path) {
  std::ifstream in(path);
  std::vector<Agent> out;
  Agent a;
  while (in >> a.id >> a.token) out.push_back(a);
  return out;
}

int do_register(const std::string& url, int n, const std::string& file) {
  Url u = parse(url);
  asio::io_context io;
  std::vector<Agent> agents(n);
  std::atomic<int> next{0}, failed{0};
  auto worker = [&]() -> asio::awaitable<void> {
    tcp::resolver r(io);
    beast::tcp_stream s(io);
    co_await s.async_connect(co_await r.async_resolve(u.host, u.port, asio::use_awaitable), asio::use_awaitable);
    beast::flat_buffer buf;
    for (int i; (i = next++) < n;) {
      bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/register", 11};
      req.set(bhttp::field::host, u.host);
      req.set(bhttp::field::authorization, "Basic YWdlbnQ6YWdlbnRwYXNz");
      req.set(bhttp::field::content_type, "application/json");
      req.body() = R"({"hostname":"sim-)" + std::to_string(i) + R"(","start_time":"2026-11-22T07:00:00Z","version":"bench"})";
      req.prepare_payload();
      co_await bhttp::async_write(s, req, asio::use_awaitable);
      bhttp::response<bhttp::string_body> res;
      co_await bhttp::async_read(s, buf, res, asio::use_awaitable);
      if (res.result_int() != 200) {
        ++failed;
        continue;
      }
      auto v = boost::json::parse(res.body()).as_object();
      agents[i] = {std::string(v["agent_id"].as_string()), std::string(v["api_token"].as_string())};
    }
  };
  for (int i = 0; i < 4; ++i) asio::co_spawn(io, worker(), asio::detached);
  io.run();
  std::ofstream out(file);
  for (auto& a : agents)
    if (!a.token.empty()) out << a.id << ' ' << a.token << '\n';
  if (failed) std::cerr << "fleet_load: " << failed << " registrations failed\n";
  return failed ? 1 : 0;
}

struct Shared {
  std::atomic<int> armed{0};
  std::atomic<int> received{0};
  std::atomic<int64_t> t0_ns{0};
  std::mutex mu;
  std::vector<double> delays_ms;
  std::atomic<bool> done{false};
  void record() {
    double ms = (Clock::now().time_since_epoch().count() - t0_ns.load()) / 1e6;
    std::lock_guard lk(mu);
    delays_ms.push_back(ms);
    ++received;
  }
};

asio::awaitable<void> get_config(beast::tcp_stream& s, beast::flat_buffer& buf, const Url& u, const Agent& a,
                                 std::string& etag, int wait_s, bhttp::response<bhttp::string_body>& res) {
  std::string target = wait_s ? "/config?wait=" + std::to_string(wait_s) : "/config";
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
  req.set(bhttp::field::host, u.host);
  req.set(bhttp::field::authorization, "Bearer " + a.token);
  if (!etag.empty()) req.set(bhttp::field::if_none_match, etag);
  co_await bhttp::async_write(s, req, asio::use_awaitable);
  res = {};
  co_await bhttp::async_read(s, buf, res, asio::use_awaitable);
  if (res.result_int() == 200) etag = std::string(res[bhttp::field::etag]);
}

asio::awaitable<void> longpoll_agent(asio::io_context& io, Url u, Agent a, Shared& sh) {
  beast::tcp_stream s(io);
  tcp::resolver r(io);
  co_await s.async_connect(co_await r.async_resolve(u.host, u.port, asio::use_awaitable), asio::use_awaitable);
  beast::flat_buffer buf;
  std::string etag;
  bhttp::response<bhttp::string_body> res;
  co_await get_config(s, buf, u, a, etag, 0, res);  // learn the current version
  while (!sh.done) {
    // Armed once the request is on the wire; answered when a version is published.
    std::string target = "/config?wait=60";
    bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
    req.set(bhttp::field::host, u.host);
    req.set(bhttp::field::authorization, "Bearer " + a.token);
    req.set(bhttp::field::if_none_match, etag);
    co_await bhttp::async_write(s, req, asio::use_awaitable);
    ++sh.armed;
    res = {};
    co_await bhttp::async_read(s, buf, res, asio::use_awaitable);
    --sh.armed;
    if (res.result_int() == 200) {
      etag = std::string(res[bhttp::field::etag]);
      sh.record();
    }
  }
}

asio::awaitable<void> redis_agent(asio::io_context& io, Url u, Url redis, Agent a, Shared& sh) {
  tcp::resolver r(io);
  beast::tcp_stream s(io);
  co_await s.async_connect(co_await r.async_resolve(u.host, u.port, asio::use_awaitable), asio::use_awaitable);
  tcp::socket rs(io);
  co_await asio::async_connect(rs, co_await r.async_resolve(redis.host, redis.port, asio::use_awaitable), asio::use_awaitable);
  beast::flat_buffer buf;
  std::string etag;
  bhttp::response<bhttp::string_body> res;
  co_await get_config(s, buf, u, a, etag, 0, res);
  std::string cmd = "SUBSCRIBE config-updates\r\n";
  co_await asio::async_write(rs, asio::buffer(cmd), asio::use_awaitable);
  std::string in;
  char chunk[4096];
  bool subscribed = false;
  while (!sh.done) {
    size_t n = co_await rs.async_read_some(asio::buffer(chunk), asio::use_awaitable);
    in.append(chunk, n);
    if (!subscribed && in.find("subscribe") != std::string::npos && in.find(":1\r\n") != std::string::npos) {
      subscribed = true;
      ++sh.armed;
      in.clear();
      continue;
    }
    // A push message: fetch the new version, as an agent does.
    while (subscribed) {
      auto at = in.find("\r\nmessage\r\n");
      if (at == std::string::npos) break;
      auto end = in.find("}\r\n", at);
      if (end == std::string::npos) break;
      in.erase(0, end + 3);
      co_await get_config(s, buf, u, a, etag, 0, res);
      if (res.result_int() == 200) sh.record();
    }
  }
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

int do_propagate(const std::string& url, const std::string& file, const std::string& mode, int rounds,
                 const Url& redis) {
  Url u = parse(url);
  std::vector<Agent> agents = read_tokens(file);
  int n = static_cast<int>(agents.size());
  asio::io_context io;
  Shared sh;
  for (auto& a : agents) {
    if (mode == "redis") {
      asio::co_spawn(io, redis_agent(io, u, redis, a, sh), asio::detached);
    } else {
      asio::co_spawn(io, longpoll_agent(io, u, a, sh), asio::detached);
    }
  }
  auto guard = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  gantry::core::http::Client admin;
  bool ok = true;
  for (int round = 0; round < rounds && ok; ++round) {
    auto until = Clock::now() + std::chrono::seconds(30);
    while (sh.armed.load() < n && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (sh.armed.load() < n) {
      std::cerr << "fleet_load: only " << sh.armed.load() << " of " << n << " agents armed\n";
      ok = false;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the held requests settle
    int expect = sh.received.load() + n;
    sh.t0_ns = Clock::now().time_since_epoch().count();
    auto r = admin.post(url + "/config", R"({"url":"http://example.com/round-)" + std::to_string(round) + "\"}",
                        {{"Authorization", "Basic YWRtaW46cGFzc3dvcmQ="}});
    if (!r.is_ok() || r->status != 200) {
      std::cerr << "fleet_load: publishing failed\n";
      ok = false;
      break;
    }
    until = Clock::now() + std::chrono::seconds(10);
    while (sh.received.load() < expect && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (sh.received.load() < expect) {
      std::cerr << "fleet_load: round " << round << ": " << expect - sh.received.load() << " agents never got it\n";
      ok = false;
    }
  }
  sh.done = true;
  io.stop();
  runner.join();
  std::lock_guard lk(sh.mu);
  std::printf("%.3f %.3f %.3f %zu\n", percentile(sh.delays_ms, 0.50), percentile(sh.delays_ms, 0.99),
              percentile(sh.delays_ms, 1.0), sh.delays_ms.size());
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv, argv + argc);
  if (a.size() == 5 && a[1] == "register") return do_register(a[2], std::stoi(a[3]), a[4]);
  if (a.size() >= 6 && a[1] == "propagate") {
    Url redis{"127.0.0.1", "6379"};
    if (a.size() >= 8) redis = {a[6], a[7]};
    return do_propagate(a[2], a[3], a[4], std::stoi(a[5]), redis);
  }
  std::cerr << "usage: fleet_load register URL N TOKENS_FILE | propagate URL TOKENS_FILE longpoll|redis ROUNDS [REDIS_HOST REDIS_PORT]\n";
  return 2;
}
