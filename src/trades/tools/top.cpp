// `gantry trades top`: the top tokens by a window's volume, from a trades role's query API,
// refreshed in place on a terminal and as plain lines when piped.
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "core/http/client.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/text.h"
#include "trades/roles.h"
#include "trades/tools/top.h"

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
        screen = stamp + "  " + (r.is_ok() ? "HTTP " + std::to_string(r->status) + " " + core::printable(r->body.substr(0, 200)) : r.status().to_string()) + "\n";
      } else {
        screen = top_screen(r->body, {.stamp = stamp, .url = st_.url, .window = st_.window, .limit = st_.limit});
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
