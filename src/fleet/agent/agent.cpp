// `gantry agent`: keeps its worker on the controller's latest configuration.
//
// Three threads, each blocking on HTTP with nothing else to do:
//   sync       registers (with backoff), then learns of new versions: waits for a Redis push
//              (with a fallback poll) while the subscriber is connected, else long-polls
//              GET /config?wait=; a 401 sends it back to registering.
//   forwarder  hands the newest version to the worker, retrying; a newer version replaces
//              one still being retried.
//   heartbeat  reports the version the worker runs, every interval and whenever it changes.
// Every wait is interruptible, and a held long poll is cancelled, so stop() is prompt.
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/json.hpp>

#include "bus/redis/redis.h"
#include "core/clock.h"
#include "core/http/auth.h"
#include "core/http/client.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/retry.h"
#include "core/runtime.h"
#include "fleet/protocol.h"
#include "fleet/roles.h"

namespace gantry::fleet::agent {

namespace {

using namespace std::chrono_literals;
namespace http = core::http;
namespace json = boost::json;
using core::Status;
using Ms = std::chrono::milliseconds;

const core::log::Logger agent_log("agent");

struct Settings {
  Listen listen = Listen::on_port(8081);
  std::string controller_url = "http://localhost:8080";
  std::string worker_url = "http://localhost:8082";
  std::string agent_user = "agent";
  std::string agent_password = "agentpass";
  std::string hostname;
  std::string version = "gantry-0.1";
  Ms request_timeout{10'000};
  int registration_max_retries = 5;
  Ms registration_initial_backoff{1'000};
  Ms registration_max_backoff{30'000};
  double registration_backoff_multiplier = 2.0;
  bool fallback_poll_enabled = true;
  Ms fallback_poll_interval{60'000};
  Ms heartbeat_interval{30'000};
  bool long_poll = true;
  int forward_max_retries = 5;
  Ms forward_initial_backoff{1'000};
  Ms forward_max_backoff{30'000};
  RedisPush redis;
  http::ServerOptions http;
};

// A version as the controller sent it, and what the worker is given.
struct Version {
  std::string etag;
  std::string worker_body;  // {"id":…,"etag":…,"config_data":{…}}
  std::string correlation_id;
};

// Sleeps that end early when the agent stops (so retry loops end promptly).
class StopSleeper final : public core::resilience::Sleeper {
 public:
  StopSleeper(std::mutex& mu, std::condition_variable& cv, const bool& stopping)
      : mu_(mu), cv_(cv), stopping_(stopping) {}
  void sleep_for(core::Duration d) override {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, d, [&] { return stopping_; });
  }

 private:
  std::mutex& mu_;
  std::condition_variable& cv_;
  const bool& stopping_;
};

class Agent final : public core::runtime::HttpRole {
 public:
  explicit Agent(Settings s)
      : HttpRole("agent", s.http),
        st_(std::move(s)),
        client_(http::ClientOptions{.timeout = st_.request_timeout, .user_agent = "gantry-agent/0.1"}),
        sleeper_(mu_, cv_, stopping_),
        fetches_(core::metrics::Registry::global().counter("fleet_agent_fetches_total", "GET /config by answer",
                                                          {"result"})),
        forwards_(core::metrics::Registry::global().counter("fleet_agent_forwards_total",
                                                           "versions handed to the worker by result", {"result"})),
        registrations_(core::metrics::Registry::global()
                           .counter("fleet_agent_registrations_total", "successful registrations")
                           .with({})),
        pushes_(core::metrics::Registry::global().counter("fleet_agent_pushes_total", "Redis push messages received").with({})) {
    router().get("/health", [this](const http::Request&, http::Response& out) { health(out); });
  }

 protected:
  Status on_start() override {
    if (st_.redis.enabled) {
      subscriber_ = std::make_unique<bus::redis::Subscriber>(
          st_.redis.endpoint(), std::vector<std::string>{std::string(kPushChannel)},
          bus::redis::Subscriber::Handlers{
              .on_message = [this](std::string_view, std::string_view m) { on_push(m); },
              .on_connected = [this] { wake(/*fetch=*/true); },  // catch up on what was missed
              .on_disconnected = [this](const Status& s) {
                agent_log.warn("redis push lost; long-polling until it returns", {{"error", s.to_string()}});
                wake(/*fetch=*/false);
              }});
      subscriber_->start();
    }
    // What deploy/prometheus/fleet-alerts.yml watches: an agent that lost its registration or,
    // with Redis enabled, its push subscription.
    auto& reg = core::metrics::Registry::global();
    reg.gauge_callback("fleet_agent_registered", "1 while the agent holds a token the controller accepted", [this] {
      std::lock_guard lk(mu_);
      return registered_ ? 1.0 : 0.0;
    });
    if (subscriber_)
      reg.gauge_callback("fleet_agent_push_connected", "1 while the Redis push subscription is up (only with Redis enabled)",
                         [this] { return subscriber_->connected() ? 1.0 : 0.0; });
    sync_ = std::thread([this] { sync_loop(); });
    forwarder_ = std::thread([this] { forward_loop(); });
    heartbeat_ = std::thread([this] { heartbeat_loop(); });
    return {};
  }

  void before_drain() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cancel_ = true;
    cv_.notify_all();
  }

  void on_stop(std::chrono::milliseconds) override {
    for (auto* t : {&sync_, &forwarder_, &heartbeat_})
      if (t->joinable()) t->join();
    auto& reg = core::metrics::Registry::global();
    reg.remove_callback("fleet_agent_registered");
    reg.remove_callback("fleet_agent_push_connected");
    if (subscriber_) subscriber_->stop();
  }

 private:
  // ---- state --------------------------------------------------------------------------

  void wake(bool fetch) {
    {
      std::lock_guard lk(mu_);
      if (fetch) fetch_now_ = true;
    }
    cv_.notify_all();
  }

  void on_push(std::string_view text) {
    pushes_.inc();
    auto m = parse_push(text);
    if (!m.is_ok()) {
      agent_log.warn("ignoring malformed push message", {{"error", m.status().to_string()}});
      return;
    }
    std::lock_guard lk(mu_);
    if (!m->agent_id.empty() && m->agent_id != agent_id_) return;
    // Addressed to us (an interval change) or a version we do not have: ask.
    if (!m->agent_id.empty() || m->etag != etag_) {
      fetch_now_ = true;
      push_correlation_ = m->correlation_id;
      cv_.notify_all();
    }
  }

  void health(http::Response& out) {
    std::lock_guard lk(mu_);
    std::string b;
    core::json::Writer w(b);
    w.object()
        .field("status", "healthy")
        .field("registered", registered_)
        .field("agent_id", agent_id_)
        .field("current_etag", etag_)
        .field("worker_etag", applied_etag_)
        .field("poll_interval_seconds", interval_s_)
        .field("push", subscriber_ && subscriber_->connected() ? "redis" : st_.long_poll ? "long-poll" : "poll");
    if (last_contact_ == core::WallTime{}) {
      w.field_null("last_contact");
    } else {
      w.field("last_contact", core::rfc3339(last_contact_));
    }
    w.end();
    out.json(200, std::move(b));
  }

  // ---- registration -------------------------------------------------------------------

  core::resilience::RetryPolicy registration_policy() const {
    core::resilience::RetryPolicy p;
    p.name = "registration";
    p.max_retries = st_.registration_max_retries;
    p.base_delay = st_.registration_initial_backoff;
    p.max_delay = st_.registration_max_backoff;
    p.multiplier = st_.registration_backoff_multiplier;
    p.timeout = std::chrono::hours(24 * 365);  // bounded by the retry count, or by stop()
    return p;
  }

  bool stopping() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  std::function<bool(const Status&)> retry_unless_stopping() {
    return [this](const Status& s) { return !stopping() && core::resilience::is_retryable(s); };
  }

  Status register_once() {
    std::string body;
    core::json::Writer(body)
        .object()
        .field("hostname", st_.hostname)
        .field("start_time", core::rfc3339(start_time_))
        .field("version", st_.version)
        .end();
    http::ClientRequest req;
    req.method = http::Method::kPost;
    req.url = st_.controller_url + "/register";
    req.headers = {{"Content-Type", "application/json"},
                                        {"Authorization", "Basic " + http::base64_encode(st_.agent_user + ":" + st_.agent_password)}};
    req.body = std::move(body);
    req.cancel = &cancel_;
    auto r = client_.send(req);
    if (!r.is_ok()) return r.status();
    if (r->status != 200) return core::resilience::status_from_http(r->status, "register: HTTP " + std::to_string(r->status) + " " + r->body);
    auto answer = parse_register_answer(r->body);
    if (!answer.is_ok())
      return core::internal_error("register: controller answered without agent_id/api_token: " + r->body.substr(0, 200));
    std::lock_guard lk(mu_);
    agent_id_ = std::move(answer->agent_id);
    token_ = std::move(answer->api_token);
    if (answer->poll_interval) interval_s_ = *answer->poll_interval;
    registered_ = true;
    fetch_now_ = true;  // fetch at once and hand it to the worker
    last_contact_ = std::chrono::system_clock::now();
    return {};
  }

  // Returns false when it gave up (or the agent is stopping).
  bool register_with_backoff() {
    auto policy = registration_policy();
    Status s = core::resilience::retry(policy, [&] { return register_once(); },
                                       {.sleeper = &sleeper_, .operation = "agent.register",
                                        .retryable = retry_unless_stopping()});
    if (s.is_ok()) {
      registrations_.inc();
      std::lock_guard lk(mu_);
      agent_log.info("registered", {{"agent_id", agent_id_}, {"controller", st_.controller_url}});
      cv_.notify_all();
      return true;
    }
    if (!stopping()) {
      agent_log.error("registration failed; giving up",
               {{"controller", st_.controller_url}, {"error", s.to_string()},
                {"retries", static_cast<int64_t>(st_.registration_max_retries)}});
      core::runtime::request_exit(1);
    }
    return false;
  }

  // ---- learning of new versions -------------------------------------------------------

  enum class Fetched { kNew, kSame, kUnauthorized, kFailed };

  // GET /config; wait_s > 0 asks the controller to hold the request.
  Fetched fetch(int wait_s, std::chrono::steady_clock::duration* took) {
    std::string token, etag;
    {
      std::lock_guard lk(mu_);
      token = token_;
      etag = etag_;
    }
    http::ClientRequest req;
    req.method = http::Method::kGet;
    req.url = st_.controller_url + "/config" + (wait_s > 0 ? "?wait=" + std::to_string(wait_s) : "");
    req.headers = {{"Authorization", "Bearer " + token}};
    if (!etag.empty()) req.headers.emplace_back("If-None-Match", etag);
    req.timeout = st_.request_timeout + std::chrono::seconds(wait_s);
    req.cancel = &cancel_;
    auto t0 = std::chrono::steady_clock::now();
    auto r = client_.send(req);
    *took = std::chrono::steady_clock::now() - t0;
    if (!r.is_ok()) {
      if (r.status().code() != core::Code::kCancelled) {
        fetches_.with({"error"}).inc();
        agent_log.warn("fetching configuration failed", {{"error", r.status().to_string()}});
      }
      return Fetched::kFailed;
    }
    {
      std::lock_guard lk(mu_);
      last_contact_ = std::chrono::system_clock::now();
      if (auto iv = r->header("X-Poll-Interval-Seconds"); !iv.empty()) {
        int n = std::atoi(std::string(iv).c_str());
        if (n > 0 && n != interval_s_) {
          agent_log.info("poll interval changed", {{"seconds", static_cast<int64_t>(n)}});
          interval_s_ = n;
        }
      }
    }
    if (r->status == 304) {
      fetches_.with({"304"}).inc();
      return Fetched::kSame;
    }
    if (r->status == 401) {
      fetches_.with({"401"}).inc();
      agent_log.warn("token rejected; registering again", {{"body", r->body}});
      std::lock_guard lk(mu_);
      registered_ = false;
      return Fetched::kUnauthorized;
    }
    if (r->status != 200) {
      fetches_.with({"error"}).inc();
      agent_log.warn("controller answered an error", {{"status", static_cast<int64_t>(r->status)}, {"body", r->body}});
      return Fetched::kFailed;
    }
    fetches_.with({"200"}).inc();
    auto answer = parse_config_answer(r->body);
    if (!answer.is_ok()) {
      agent_log.warn("controller sent a configuration without etag/config", {{"body", r->body.substr(0, 200)}});
      return Fetched::kFailed;
    }
    Version ver;
    ver.etag = std::move(answer->etag);
    ver.worker_body = std::move(answer->worker_body);
    {
      std::lock_guard lk(mu_);
      if (ver.etag == etag_) return Fetched::kSame;
      etag_ = ver.etag;
      ver.correlation_id = push_correlation_.empty() ? uuid4() : push_correlation_;
      push_correlation_.clear();
      agent_log.info("new configuration", {{"etag", ver.etag}, {"correlation_id", ver.correlation_id}});
      pending_ = std::move(ver);
    }
    cv_.notify_all();
    return Fetched::kNew;
  }

  void sync_loop() {
    start_time_ = std::chrono::system_clock::now();
    Ms error_backoff = 500ms;
    while (!stopping()) {
      bool registered;
      {
        std::lock_guard lk(mu_);
        registered = registered_;
      }
      if (!registered && !register_with_backoff()) return;

      bool push = subscriber_ && subscriber_->connected();
      int wait_s = 0;
      {
        std::unique_lock lk(mu_);
        if (push && !fetch_now_) {
          // Push mode: a message (or a lost subscription) wakes us; the fallback poll is the
          // safety net for a message lost in flight.
          auto until = st_.fallback_poll_enabled ? std::chrono::steady_clock::now() + st_.fallback_poll_interval
                                                 : std::chrono::steady_clock::now() + std::chrono::hours(24 * 365);
          cv_.wait_until(lk, until, [&] {
            return stopping_ || fetch_now_ || !registered_ || !subscriber_->connected();
          });
          if (stopping_ || !registered_) continue;
          if (!fetch_now_ && !subscriber_->connected()) continue;  // re-decide the mode
        } else if (!push && !fetch_now_) {
          wait_s = st_.long_poll ? interval_s_ : 0;
          if (!st_.long_poll) {
            cv_.wait_for(lk, std::chrono::seconds(interval_s_), [&] { return stopping_ || fetch_now_; });
            if (stopping_) break;
          }
        }
        fetch_now_ = false;
      }
      std::chrono::steady_clock::duration took{};
      Fetched f = fetch(wait_s, &took);
      if (f == Fetched::kFailed) {
        if (stopping()) break;
        sleeper_.sleep_for(error_backoff);
        error_backoff = std::min<Ms>(error_backoff * 2, 30s);
        std::lock_guard lk(mu_);
        fetch_now_ = true;  // try again after the pause whatever the mode
        continue;
      }
      error_backoff = 500ms;
      // A controller that does not hold requests (the original) answers a long poll at once;
      // then wait out the interval ourselves instead of spinning.
      if (wait_s > 0 && f == Fetched::kSame && took < std::chrono::seconds(wait_s) / 2) {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::seconds(interval_s_) - took, [&] { return stopping_ || fetch_now_; });
      }
    }
  }

  // ---- forwarding to the worker -------------------------------------------------------

  void forward_loop() {
    core::resilience::RetryPolicy p;
    p.name = "forward";
    p.max_retries = st_.forward_max_retries;
    p.base_delay = st_.forward_initial_backoff;
    p.max_delay = st_.forward_max_backoff;
    p.timeout = std::chrono::hours(24 * 365);
    for (;;) {
      Version v;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || pending_.has_value(); });
        if (stopping_) return;
        v = std::move(*pending_);
        pending_.reset();
      }
      // A newer version makes this one moot: stop retrying it.
      auto retryable = [this](const Status& s) {
        std::lock_guard lk(mu_);
        return !stopping_ && !pending_ && core::resilience::is_retryable(s);
      };
      Status s = core::resilience::retry(
          p,
          [&]() -> Status {
            http::ClientRequest req;
            req.method = http::Method::kPost;
            req.url = st_.worker_url + "/config";
            req.headers = {{"Content-Type", "application/json"}, {"X-Correlation-ID", v.correlation_id}};
            req.body = v.worker_body;
            req.cancel = &cancel_;
            auto r = client_.send(req);
            if (!r.is_ok()) return r.status();
            if (r->status != 200)
              return core::resilience::status_from_http(r->status, "worker: HTTP " + std::to_string(r->status) + " " + r->body);
            return {};
          },
          {.sleeper = &sleeper_, .operation = "agent.forward", .retryable = retryable});
      if (s.is_ok()) {
        forwards_.with({"ok"}).inc();
        agent_log.info("worker updated", {{"etag", v.etag}, {"correlation_id", v.correlation_id}});
        {
          std::lock_guard lk(mu_);
          applied_etag_ = v.etag;
          heartbeat_now_ = true;  // let the controller see the new version promptly
        }
        cv_.notify_all();
      } else if (!stopping()) {
        forwards_.with({"failed"}).inc();
        agent_log.error("could not hand the configuration to the worker",
                 {{"etag", v.etag}, {"worker", st_.worker_url}, {"error", s.to_string()}});
        // Try this version again at the next fetch rather than never.
        std::lock_guard lk(mu_);
        if (!pending_ && etag_ == v.etag) etag_.clear();
      }
    }
  }

  // ---- heartbeats ---------------------------------------------------------------------

  void heartbeat_loop() {
    for (;;) {
      std::string token, body;
      {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, st_.heartbeat_interval, [&] { return stopping_ || (heartbeat_now_ && registered_); });
        if (stopping_) return;
        heartbeat_now_ = false;
        if (!registered_) continue;
        token = token_;
        body.clear();
        core::json::Writer(body).object().field("config_version", applied_etag_).field("status", "healthy").end();
      }
      http::ClientRequest req;
      req.method = http::Method::kPost;
      req.url = st_.controller_url + "/heartbeat";
      req.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + token}};
      req.body = std::move(body);
      req.cancel = &cancel_;
      auto r = client_.send(req);
      if (!r.is_ok()) {
        if (r.status().code() != core::Code::kCancelled)
          agent_log.warn("heartbeat failed", {{"error", r.status().to_string()}});
        continue;
      }
      if (r->status == 401) {
        agent_log.warn("heartbeat token rejected; registering again");
        std::lock_guard lk(mu_);
        if (token_ == token) registered_ = false;
        cv_.notify_all();
      } else if (r->status != 200) {
        agent_log.warn("heartbeat refused", {{"status", static_cast<int64_t>(r->status)}, {"body", r->body}});
      } else {
        std::lock_guard lk(mu_);
        last_contact_ = std::chrono::system_clock::now();
      }
    }
  }

  Settings st_;
  http::Client client_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::atomic<bool> cancel_{false};
  StopSleeper sleeper_;

  bool registered_ = false;
  bool fetch_now_ = false;
  bool heartbeat_now_ = false;
  std::string agent_id_, token_;
  std::string etag_;          // newest version fetched
  std::string applied_etag_;  // version the worker accepted
  std::string push_correlation_;
  std::optional<Version> pending_;
  int interval_s_ = 30;
  core::WallTime start_time_{};
  core::WallTime last_contact_{};

  core::metrics::Family<core::metrics::Counter>& fetches_;
  core::metrics::Family<core::metrics::Counter>& forwards_;
  core::metrics::Counter& registrations_;
  core::metrics::Counter& pushes_;

  std::unique_ptr<bus::redis::Subscriber> subscriber_;
  std::thread sync_, forwarder_, heartbeat_;
};

std::string local_hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

class AgentFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    st_.hostname = local_hostname();
    fleet::bind(s, &st_.listen, "AGENT");
    s.add("controller_url", &st_.controller_url, "controller base URL").env("CONTROLLER_URL").check([this] {
      return check_target_url(st_.controller_url);
    });
    s.add("worker_url", &st_.worker_url, "worker base URL").env("WORKER_URL").check([this] {
      return check_target_url(st_.worker_url);
    });
    s.add("agent_user", &st_.agent_user, "Basic auth user to register with").env("AGENT_USER");
    s.add("agent_password", &st_.agent_password, "its password").env("AGENT_PASSWORD").secret();
    s.add("hostname", &st_.hostname, "hostname reported at registration").env("AGENT_HOSTNAME");
    s.add("version", &st_.version, "version reported at registration").env("AGENT_VERSION");
    s.add("request_timeout", &st_.request_timeout, "timeout of one request to the controller or worker")
        .env("REQUEST_TIMEOUT")
        .range(100, 600'000);
    s.add("registration_max_retries", &st_.registration_max_retries, "registration retries before exiting (-1 = unlimited)")
        .env("REGISTRATION_MAX_RETRIES")
        .range(-1, 1'000'000);
    s.add("registration_initial_backoff", &st_.registration_initial_backoff, "first wait between registration attempts")
        .env("REGISTRATION_INITIAL_BACKOFF")
        .range(1, 3'600'000);
    s.add("registration_max_backoff", &st_.registration_max_backoff, "longest wait between registration attempts")
        .env("REGISTRATION_MAX_BACKOFF")
        .range(1, 3'600'000);
    s.add("registration_backoff_multiplier", &st_.registration_backoff_multiplier, "growth of the wait per attempt")
        .env("REGISTRATION_BACKOFF_MULTIPLIER")
        .range(1.0, 10.0);
    s.add("fallback_poll_enabled", &st_.fallback_poll_enabled, "poll now and then even while Redis push works")
        .env("AGENT_FALLBACK_POLL_ENABLED")
        .env("FALLBACK_POLL_ENABLED");
    s.add("fallback_poll_interval", &st_.fallback_poll_interval, "period of that fallback poll")
        .env("AGENT_FALLBACK_POLL_INTERVAL")
        .env("FALLBACK_POLL_INTERVAL")
        .range(1000, 86'400'000);
    s.add("heartbeat_interval", &st_.heartbeat_interval, "period of heartbeats to the controller")
        .env("AGENT_HEARTBEAT_INTERVAL")
        .env("HEARTBEAT_INTERVAL")
        .range(100, 86'400'000);
    s.add("long_poll", &st_.long_poll, "without Redis push, hold GET /config?wait= (else poll each interval)")
        .env("AGENT_LONG_POLL");
    s.add("forward_max_retries", &st_.forward_max_retries, "retries handing a version to the worker").range(0, 1000);
    s.add("forward_initial_backoff", &st_.forward_initial_backoff, "first wait between those retries").range(1, 3'600'000);
    s.add("forward_max_backoff", &st_.forward_max_backoff, "longest wait between those retries").range(1, 3'600'000);
    fleet::bind(s, &st_.redis, "subscribe to config-updates for push");
    http::bind(s, &st_.http);
  }

  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    apply(st_.listen, &st_.http);
    while (!st_.controller_url.empty() && st_.controller_url.back() == '/') st_.controller_url.pop_back();
    while (!st_.worker_url.empty() && st_.worker_url.back() == '/') st_.worker_url.pop_back();
    if (st_.registration_max_backoff < st_.registration_initial_backoff)
      return core::invalid_argument("agent.registration_max_backoff must not be shorter than registration_initial_backoff");
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Agent>(st_));
  }

 private:
  Settings st_;
};

}  // namespace

}  // namespace gantry::fleet::agent

namespace gantry::fleet {

core::runtime::RoleInfo agent_role() {
  return {"agent", "Fleet: registers with the controller, follows its configuration, forwards it to the worker",
          [] { return std::make_unique<agent::AgentFactory>(); }};
}

}  // namespace gantry::fleet
