#include "cli/hello.h"

#include <atomic>
#include <thread>

#include "core/json.h"
#include "core/thread_pool.h"

namespace gantry::cli {

namespace {

using namespace gantry::core;

struct HelloSettings {
  std::string address = "0.0.0.0";
  uint16_t port = 8090;
  std::string body = "Hello, World!";
  std::string content_type = "text/plain; charset=utf-8";
  bool fixtures = false;
  std::string stand_in;  // "" = off
  std::chrono::milliseconds stand_in_delay{250};
  http::ServerOptions http;
};

class Hello final : public runtime::HttpRole {
 public:
  explicit Hello(const HelloSettings& s) : HttpRole("hello", s.http) {
    router().get("/", [body = s.body, type = s.content_type](const http::Request&, http::Response& r) {
      r.text(200, body);
      r.content_type = type;
    });
    if (s.fixtures) add_fixtures();
    if (!s.stand_in.empty()) add_stand_in(s.stand_in, s.stand_in_delay);
  }

 protected:
  void on_stop(std::chrono::milliseconds) override {
    if (delayer_) delayer_->stop();
  }

 private:
  // A target for probes: a 1 MiB download, and a page whose delay an operator sets at run
  // time (POST /slow?ms=N), to show what a slow server looks like in Telemetry.
  void add_fixtures() {
    delayer_ = std::make_unique<ThreadPool>(4, "slow");
    router().get("/fixed/1mb.bin", [blob = std::make_shared<std::string>(1 << 20, 'x')](const http::Request&, http::Response& r) {
      r.status = 200;
      r.content_type = "application/octet-stream";
      r.body = *blob;
    });
    router().add_async(http::Method::kGet, "/slow", [this](const http::Request&, http::Responder resp) {
      int ms = slow_ms_.load();
      if (!delayer_->post([resp, ms] {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            http::Response r;
            r.text(200, "slow page, " + std::to_string(ms) + " ms");
            resp.send(std::move(r));
          })) {
        http::Response r;
        r.error(503, "shutting down");
        resp.send(std::move(r));
      }
    });
    router().post("/slow", [this](const http::Request& q, http::Response& r) {
      auto v = q.query_param("ms");
      int ms = v ? std::atoi(v->c_str()) : -1;
      if (ms < 0 || ms > 60'000) return r.error(400, "ms must be 0..60000");
      slow_ms_ = ms;
      std::string b;
      core::json::Writer(b).object().field("slow_ms", ms).end();
      r.json(200, std::move(b));
    });
  }

  // A stand-in for a scanner service (the Orchestrator demo's ring): every GET or POST path is
  // "scanned" for `delay` and answered {"status":"complete","message":…} naming it a stand-in.
  void add_stand_in(const std::string& service, std::chrono::milliseconds delay) {
    if (!delayer_) delayer_ = std::make_unique<ThreadPool>(4, "stand-in");
    for (auto m : {http::Method::kGet, http::Method::kPost})
      router().add_async(m, "/{path...}", [this, service, delay](const http::Request& q, http::Responder resp) {
        std::string message = "stand-in for " + service + ": " + std::string(q.method_text()) + " " + std::string(q.path());
        if (!delayer_->post([resp, delay, message] {
              std::this_thread::sleep_for(delay);
              std::string b;
              core::json::Writer(b).object().field("status", "complete").field("message", message).end();
              http::Response r;
              r.json(200, std::move(b));
              resp.send(std::move(r));
            })) {
          http::Response r;
          r.error(503, "shutting down");
          resp.send(std::move(r));
        }
      });
  }

  std::atomic<int> slow_ms_{20};
  std::unique_ptr<ThreadPool> delayer_;
};

class HelloFactory final : public runtime::RoleFactory {
 public:
  void bind(config::Schema& s) override {
    s.add("address", &st_.address, "listen address").env("HELLO_ADDRESS");
    s.add("port", &st_.port, "listen port (0 = any free port)").env("HELLO_PORT");
    s.add("body", &st_.body, "text answered on GET /").env("HELLO_BODY");
    s.add("fixtures", &st_.fixtures, "also serve /fixed/1mb.bin and /slow (POST /slow?ms=N sets its delay): a probe target");
    s.add("stand_in", &st_.stand_in,
          "answer every other GET/POST path as a stand-in for this scanner service, after stand_in_delay (the "
          "orchestrator demo's ring)");
    s.add("stand_in_delay", &st_.stand_in_delay, "how long a stand-in scan takes").range(0, 60'000);
    s.add("content_type", &st_.content_type, "its content type (text/html makes it a page for the fleet demo)")
        .env("HELLO_CONTENT_TYPE");
    http::bind(s, &st_.http);
  }
  Result<std::unique_ptr<runtime::Role>> build() override {
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    return std::unique_ptr<runtime::Role>(std::make_unique<Hello>(st_));
  }

 private:
  HelloSettings st_;
};

}  // namespace

core::runtime::RoleInfo hello_role() {
  return {"hello", "minimal HTTP role: answers GET / with fixed text (smoke tests, benchmarks)",
          [] { return std::make_unique<HelloFactory>(); }};
}

}  // namespace gantry::cli
