#include "core/runtime.h"

#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "core/http/openapi.h"
#include "core/log.h"
#include "core/metrics.h"

namespace gantry::core::runtime {

namespace {
const log::Logger runtime_log("runtime");
}

void add_admin_routes(http::Router& r, std::function<bool()> ready, std::string_view role) {
  if (!r.has(http::Method::kGet, "/health"))
    r.get("/health", [](const http::Request&, http::Response& resp) { resp.json(200, R"({"status":"healthy"})"); });
  if (!r.has(http::Method::kGet, "/ready"))
    r.get("/ready", [ready](const http::Request&, http::Response& resp) {
      if (!ready || ready()) resp.json(200, R"({"status":"ready"})");
      else resp.json(503, R"({"status":"not ready"})");
    });
  if (!r.has(http::Method::kGet, "/metrics"))
    r.get("/metrics", [](const http::Request&, http::Response& resp) {
      resp.status = 200;
      resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
      resp.body = metrics::Registry::global().expose();
    });
  if (auto doc = http::openapi_document(role); doc && !r.has(http::Method::kGet, "/openapi.json"))
    r.get("/openapi.json", [body = *doc](const http::Request&, http::Response& resp) {
      resp.status = 200;
      resp.content_type = "application/json";
      resp.body.assign(body);
    });
}

HttpRole::HttpRole(std::string name, http::ServerOptions opts)
    : name_(std::move(name)), opts_(std::move(opts)), router_(std::make_shared<http::Router>()) {
  opts_.name = name_;
}

Status HttpRole::start() {
  add_admin_routes(*router_, [this] { return ready(); }, name_);
  if (log::enabled(log::Level::kDebug)) {
    std::string routes;
    for (auto& [method, pattern] : router_->routes())
      routes.append(routes.empty() ? "" : " ").append(http::method_name(method)).append(" ").append(pattern);
    log::Logger(name_).debug("routes", {{"routes", routes}});
  }
  GANTRY_RETURN_IF_ERROR(on_start());
  opts_.on_worker_start = [this](boost::asio::io_context& ioc) { return on_worker(ioc); };
  server_ = std::make_unique<http::Server>(opts_, router_);
  Status s = server_->start();
  if (!s.is_ok()) {
    on_stop(std::chrono::milliseconds(1000));
    server_.reset();
    return s.within(name_);
  }
  return {};
}

void HttpRole::stop(std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  before_drain();
  if (server_) server_->stop(deadline);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
  on_stop(std::max(left, std::chrono::milliseconds(0)));
}

Endpoints HttpRole::endpoints() const {
  if (!server_) return {};
  std::string host = opts_.address == "0.0.0.0" ? "127.0.0.1" : opts_.address;
  return {{"http", "http://" + host + ":" + std::to_string(server_->port())}};
}

void Runtime::block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a peer closing mid-write is an error code, not a death
}

Status Runtime::start() {
  for (auto& r : roles_) {
    // A job runs to its end inside start(): "started" afterwards would follow its outcome.
    const bool job = dynamic_cast<Job*>(r.get()) != nullptr;
    if (job) runtime_log.info("job started", {{"name", r->name()}});
    Status s = r->start();
    if (!s.is_ok()) {
      runtime_log.error("role failed to start", {{"failed", r->name()}, {"error", s.to_string()}});
      stop(std::chrono::milliseconds(5000));
      return s;
    }
    ++started_;
    if (!job) runtime_log.info("role started", {{"name", r->name()}});
  }
  return {};
}

void Runtime::stop(std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (started_ > 0) {
    auto& r = roles_[--started_];
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    auto t0 = std::chrono::steady_clock::now();
    r->stop(std::max(left, std::chrono::milliseconds(0)));
    runtime_log.info("role stopped", {{"name", r->name()},
                             {"took_ms", log::ms(std::chrono::steady_clock::now() - t0)}});
  }
}

namespace {
std::atomic<int> g_exit_status{-1};
}

Status Job::start() {
  auto t0 = std::chrono::steady_clock::now();
  Status s = run_();
  failure_ = s;
  if (!s.is_ok()) runtime_log.error("job failed", {{"job", name_}, {"error", s.to_string()}});
  else runtime_log.info("job finished", {{"job", name_}, {"took_ms", log::ms(std::chrono::steady_clock::now() - t0)}});
  request_exit(s.is_ok() ? 0 : 1);
  return {};
}

void request_exit(int status) {
  int none = -1;
  g_exit_status.compare_exchange_strong(none, status);
}

int Runtime::wait_and_stop(std::chrono::milliseconds deadline) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (!stop_requested_ && g_exit_status.load() < 0) {
    timespec ts{0, 100'000'000};
    int s = sigtimedwait(&set, nullptr, &ts);
    if (s > 0) {
      sig = s;
      break;
    }
  }
  runtime_log.info("shutting down", {{"signal", sig ? strsignal(sig) : "requested"},
                            {"deadline_ms", static_cast<long long>(deadline.count())}});

  // During the shutdown, a second signal means "now", and an overrun is cut short. The
  // watchdog ends as soon as the shutdown does.
  std::atomic<bool> finished{false};
  std::thread watchdog([set, deadline, &finished] {
    auto limit = std::chrono::steady_clock::now() + deadline + std::chrono::seconds(5);
    while (!finished.load()) {
      timespec ts{0, 100'000'000};
      if (sigtimedwait(&set, nullptr, &ts) > 0) {
        runtime_log.warn("second signal: exiting without finishing shutdown");
        log::shutdown();
        _exit(130);
      }
      if (std::chrono::steady_clock::now() >= limit) {
        runtime_log.error("shutdown overran its deadline; exiting");
        log::shutdown();
        _exit(1);
      }
    }
  });

  stop(deadline);
  finished = true;
  watchdog.join();
  int status = std::max(g_exit_status.load(), 0);
  if (status != 0) {
    runtime_log.info("stopped", {{"exit_status", static_cast<long long>(status)}});
    return status;
  }
  runtime_log.info("stopped cleanly");
  return 0;
}

}  // namespace gantry::core::runtime
