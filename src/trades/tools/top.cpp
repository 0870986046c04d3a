// `gantry trades top`: the top tokens by a window's volume, from a trades role's query API,
// refreshed in place on a terminal and as plain lines when piped.
#include <unistd.h>

#include <boost/json.hpp>

#include <cstdio>
#include <thread>

#include "core/http/client.h"
#include "core/log.h"
#include "core/runtime.h"
#include "trades/roles.h"

namespace gantry::trades {

namespace {
using core::Status;
using Ms = std::chrono::milliseconds;

struct TopSettings {
  std::string url = "http://localhost:8081";
  std::string window = "5min";
  int limit = 10;
  Ms interval{1000};
  int count = 0;  // refreshes before exiting; 0 = until SIGTERM
};

double num(const boost::json::object& o, const char* k) {
  auto* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_double()) return v->as_double();
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  return 0;
}

class Top final : public core::runtime::Role {
 public:
  explicit Top(TopSettings s) : st_(std::move(s)), tty_(isatty(STDOUT_FILENO)) {}
  std::string_view name() const override { return "trades-top"; }
  Status start() override {
    thread_ = std::thread([this] { loop(); });
    return {};
  }
  void stop(Ms) override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    core::http::Client client;
    for (int n = 1; !stop_; ++n) {
      std::string url = st_.url + "/tokens?sort=volume_" + st_.window + "&limit=" + std::to_string(st_.limit);
      core::http::ClientRequest req;
      req.url = url;
      req.timeout = Ms(5000);
      req.cancel = &stop_;
      auto r = client.send(req);
      std::string screen;
      std::string stamp = core::rfc3339(std::chrono::system_clock::now());
      if (!r.is_ok() || r->status != 200) {
        screen = stamp + "  " + (r.is_ok() ? "HTTP " + std::to_string(r->status) + " " + r->body.substr(0, 200) : r.status().to_string()) + "\n";
      } else {
        screen = render(r->body, stamp);
      }
      if (tty_) std::fputs("\033[H\033[2J", stdout);  // redraw in place
      std::fputs(screen.c_str(), stdout);
      std::fflush(stdout);
      if (st_.count > 0 && n >= st_.count) {
        core::runtime::request_exit(r.is_ok() && r->status == 200 ? 0 : 1);
        return;
      }
      for (int64_t waited = 0; waited < st_.interval.count() && !stop_; waited += 50) std::this_thread::sleep_for(Ms(50));
    }
  }

  std::string render(const std::string& body, const std::string& stamp) {
    boost::system::error_code ec;
    auto doc = boost::json::parse(body, ec);
    if (ec || !doc.is_object()) return stamp + "  unreadable answer\n";
    auto* tokens = doc.as_object().if_contains("tokens");
    char line[256];
    std::string out;
    std::snprintf(line, sizeof line, "%s  top %d tokens by %s volume (%s)\n", stamp.c_str(), st_.limit, st_.window.c_str(), st_.url.c_str());
    out += line;
    std::snprintf(line, sizeof line, "%-3s %-46s %14s %8s %14s %9s\n", "#", "token", "volume (SOL)", "trades", "close (USD)", "change");
    out += line;
    int i = 0;
    if (tokens && tokens->is_array()) {
      for (auto& t : tokens->as_array()) {
        if (!t.is_object()) continue;
        auto& o = t.as_object();
        std::string token = o.contains("token") && o.at("token").is_string() ? std::string(o.at("token").as_string()) : "?";
        const boost::json::object* w = nullptr;
        if (auto* a = o.if_contains("aggregates"); a && a->is_object())
          if (auto* x = a->as_object().if_contains(st_.window); x && x->is_object()) w = &x->as_object();
        if (!w) continue;
        std::snprintf(line, sizeof line, "%-3d %-46s %14.3f %8.0f %14.8g %+8.2f%%\n", ++i, token.c_str(), num(*w, "total_volume"),
                      num(*w, "total_trades"), num(*w, "close_price"), num(*w, "price_change"));
        out += line;
      }
    }
    if (i == 0) out += "    (no token has traded in the last " + st_.window + ")\n";
    return out;
  }

  TopSettings st_;
  bool tty_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class TopFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    s.add("url", &st_.url, "the trades role's HTTP address").env("TRADES_URL");
    s.add("window", &st_.window, "window to rank by (one of the role's TIME_WINDOWS)");
    s.add("limit", &st_.limit, "tokens shown").range(1, 1000);
    s.add("interval", &st_.interval, "refresh every").range(100, 3'600'000);
    s.add("count", &st_.count, "refreshes before exiting (0: until interrupted)").range(0, 1'000'000);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Top>(st_));
  }

 private:
  TopSettings st_;
};

}  // namespace

core::runtime::RoleInfo top_role() {
  return {"trades-top", "Trades: live view of the top tokens by volume (`gantry trades top`)",
          [] { return std::make_unique<TopFactory>(); }};
}

}  // namespace gantry::trades
