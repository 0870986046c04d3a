// `gantry worker`: holds the configuration its agent forwards and performs hits against the
// configured target. Hits block on libcurl, so they run on a pool of their own threads and
// the HTTP threads stay free; the client's pooled handles keep connections to the target
// (and the proxy) alive between hits.
#include <atomic>
#include <mutex>

#include <boost/json.hpp>

#include "core/http/client.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/runtime.h"
#include "core/thread_pool.h"
#include "fleet/protocol.h"
#include "fleet/roles.h"
#include "fleet/worker/html.h"

namespace gantry::fleet::worker {

namespace {

namespace http = core::http;
namespace json = boost::json;
using core::Status;

const core::log::Logger worker_log("worker");

struct Settings {
  Listen listen = Listen::on_port(8082);
  std::chrono::milliseconds request_timeout{10'000};
  int hit_threads = 16;
  http::ServerOptions http;
};

using Config = WorkerConfig;

class Worker final : public core::runtime::HttpRole {
 public:
  explicit Worker(const Settings& s)
      : HttpRole("worker", s.http),
        st_(s),
        client_(http::ClientOptions{.timeout = s.request_timeout,
                                    .connect_timeout = std::min<std::chrono::milliseconds>(s.request_timeout, std::chrono::seconds(5)),
                                    .user_agent = "gantry-worker/0.1",
                                    .max_pooled_handles = s.hit_threads}),
        hits_(core::metrics::Registry::global().counter("fleet_worker_hits_total", "hits by outcome", {"outcome"})),
        hit_seconds_(core::metrics::Registry::global().histogram("fleet_worker_hit_seconds", "hit duration").with({})),
        applied_(core::metrics::Registry::global()
                     .counter("fleet_worker_configs_applied_total", "configurations that changed the target")
                     .with({})) {
    auto& r = router();
    r.get("/health", [this](const http::Request&, http::Response& out) { health(out); });
    r.post("/config", [this](const http::Request& q, http::Response& out) { set_config(q, out); });
    for (auto m : {http::Method::kPost, http::Method::kGet})
      r.add_async(m, "/hit", [this](const http::Request&, http::Responder resp) { hit(std::move(resp)); });
  }

 protected:
  Status on_start() override {
    pool_ = std::make_unique<core::ThreadPool>(st_.hit_threads, "hits");
    return {};
  }
  void on_stop(std::chrono::milliseconds) override {
    if (pool_) pool_->stop();
  }

 private:
  std::shared_ptr<const Config> current() const {
    std::lock_guard lk(mu_);
    return cfg_;
  }

  void health(http::Response& out) {
    auto c = current();
    std::string b;
    core::json::Writer w(b);
    w.object().field("status", "healthy").field("configured", c && !c->url.empty());
    if (c) {
      w.field("etag", c->etag);
      if (!c->url.empty()) w.field("target_url", c->url);
    }
    w.end();
    out.json(200, std::move(b));
  }

  void set_config(const http::Request& q, http::Response& out) {
    auto parsed = parse_worker_config(q.body());
    if (!parsed.is_ok()) return out.error(400, parsed.status().message());
    auto c = std::make_shared<Config>(std::move(*parsed));

    std::string_view message;
    {
      std::lock_guard lk(mu_);
      if (cfg_ && cfg_->etag == c->etag) {
        message = "Configuration already up-to-date";
      } else {
        cfg_ = c;
        message = "Configuration updated";
        applied_.inc();
        worker_log.info("configuration applied", {{"etag", c->etag},
                                          {"url", c->url},
                                          {"proxy", c->proxy.empty() ? "none" : "set"},
                                          {"correlation_id", q.header("X-Correlation-ID")}});
      }
    }
    std::string body;
    core::json::Writer(body).object().field("message", message).field("etag", c->etag).end();
    out.json(200, std::move(body));
  }

  static void failure(http::Response& out, int status, std::string_view message) {
    std::string b;
    core::json::Writer(b).object().field("success", false).field("message", message).field_null("data").end();
    out.json(status, std::move(b));
  }

  void hit(http::Responder resp) {
    auto c = current();
    if (!c || c->url.empty()) {
      http::Response out;
      failure(out, 400, "no configuration available");
      hits_.with({"unconfigured"}).inc();
      return resp.send(std::move(out));
    }
    bool queued = pool_->post([this, c, resp] {
      http::Response out;
      auto t0 = std::chrono::steady_clock::now();
      http::ClientRequest req;
      req.url = c->url;
      req.proxy = proxy_url(c->proxy);
      auto r = client_.send(req);
      hit_seconds_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!r.is_ok()) {
        hits_.with({"failed"}).inc();
        failure(out, 500, "failed to perform request: " + std::string(r.status().message()));
        return resp.send(std::move(out));
      }
      std::string data;
      if (is_html(r->header("Content-Type"), r->body)) {
        if (c->url == "https://ip.me") {
          data = trim(input_value(r->body, "ip").value_or(""));
        } else {
          data = body_text(r->body);
        }
      } else {
        data = trim(r->body);
      }
      hits_.with({"ok"}).inc();
      std::string b;
      core::json::Writer(b)
          .object()
          .field("success", true)
          .field("message", "Success")
          .key("data")
          .object()
          .field("etag", c->etag)
          .field("url", c->url)
          .field("data", data)
          .field("status_code", r->status)
          .end()
          .end();
      out.json(200, std::move(b));
      resp.send(std::move(out));
    });
    if (!queued) {
      http::Response out;
      failure(out, 503, "shutting down");
      resp.send(std::move(out));
    }
  }

  Settings st_;
  http::Client client_;
  core::metrics::Family<core::metrics::Counter>& hits_;
  core::metrics::Histogram& hit_seconds_;
  core::metrics::Counter& applied_;
  mutable std::mutex mu_;
  std::shared_ptr<const Config> cfg_;
  std::unique_ptr<core::ThreadPool> pool_;
};

class WorkerFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    fleet::bind(s, &st_.listen, "WORKER");
    s.add("request_timeout", &st_.request_timeout, "timeout of one hit's fetch").env("REQUEST_TIMEOUT").range(1, 600'000);
    s.add("hit_threads", &st_.hit_threads, "hits performed at once").env("WORKER_HIT_THREADS").range(1, 1024);
    http::bind(s, &st_.http);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    apply(st_.listen, &st_.http);
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Worker>(st_));
  }

 private:
  Settings st_;
};

}  // namespace

}  // namespace gantry::fleet::worker

namespace gantry::fleet {

core::runtime::RoleInfo worker_role() {
  return {"worker", "Fleet: applies the configuration its agent forwards; performs hits against the target",
          [] { return std::make_unique<worker::WorkerFactory>(); }};
}

}  // namespace gantry::fleet
