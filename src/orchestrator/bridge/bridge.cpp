// `gantry scan-bridge --service S --url U`: gives an HTTP scanner a queue (spec orchestrator.md).
//
// One consumer thread owns the consuming channel (prefetch 1, so one scan at a time, as the
// scanners ran): a delivery becomes <METHOD> U/<path> (route.h); while the request runs (up to
// --timeout, 300 s) the thread keeps the channel's heartbeats going. Then, on the channel the
// delivery came on:
//   2xx            ack, then publish the next hop cptm8.<next>.get.scan {status, message}
//   408/429/5xx,   nack with requeue after a backoff, up to --retry-budget retries; beyond
//   no answer      it the message goes to q<S>.dlq (then acked), wrapped with why
//   other 4xx, a   straight to q<S>.dlq: no retry can help
//   bad key
//   shutdown       the request is abandoned and the message requeued (not counted)
// A dead-letter publish that is not confirmed leaves the message requeued: nothing is dropped.
// Retries are counted in this process by routing key and body (RabbitMQ classic queues keep no
// delivery count), so a restarted bridge starts the count again.
#include <future>
#include <unistd.h>

#include <boost/json.hpp>

#include "bus/amqp/pool.h"
#include "core/http/client.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/circuit_breaker.h"
#include "core/resilience/retry.h"
#include "core/runtime.h"
#include "orchestrator/bridge/route.h"
#include "orchestrator/roles.h"
#include "orchestrator/settings.h"
#include "orchestrator/topology.h"

namespace gantry::orchestrator {

namespace {

namespace http = core::http;
namespace amqp = bus::amqp;
using core::Code;
using core::Status;
using Clock = std::chrono::steady_clock;

const core::log::Logger bridge_log("scan-bridge");

struct BridgeSettings {
  std::string address = "0.0.0.0";
  uint16_t port = 0;
  std::string service, url;
  std::string next;  // "" = the service after this one in `services`; "none" = no next hop
  std::vector<std::string> services = default_services();
  AmqpSettings amqp;
  int retry_budget = 3;
  std::chrono::milliseconds retry_delay{1000};
  std::chrono::milliseconds timeout{300'000};
  http::ServerOptions http;

  std::string next_service() const {
    if (next == "none") return {};
    if (!next.empty()) return next;
    for (size_t i = 0; i < services.size(); ++i)
      if (services[i] == service) return services[(i + 1) % services.size()];
    return {};
  }
};

struct BridgeMetrics {
  core::metrics::Family<core::metrics::Counter>& deliveries;
  core::metrics::Family<core::metrics::Counter>& hops;
  core::metrics::Family<core::metrics::Histogram>& request;
  static BridgeMetrics& get() {
    static BridgeMetrics m{
        core::metrics::Registry::global().counter(
            "scan_bridge_deliveries_total", "Deliveries by outcome: acked, requeued, dead_lettered, abandoned (shutdown)",
            {"service", "outcome"}),
        core::metrics::Registry::global().counter("scan_bridge_next_hops_total",
                                                  "Next-hop publishes by outcome: published, already_pending, failed",
                                                  {"service", "outcome"}),
        core::metrics::Registry::global().histogram("scan_bridge_request_duration_seconds",
                                                    "Scanner requests by answered status class", {"service", "class"},
                                                    {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300}),
    };
    return m;
  }
};

class Bridge final : public core::runtime::HttpRole {
 public:
  explicit Bridge(BridgeSettings s)
      : HttpRole("scan-bridge", s.http),
        st_(std::move(s)),
        next_(st_.next_service()),
        queue_(queue_of(st_.service)),
        client_(http::ClientOptions{.timeout = st_.timeout, .user_agent = "gantry-scan-bridge"}),
        breaker_("rabbitmq:consume:" + st_.service, core::resilience::BreakerRegistry::preset("rabbitmq")),
        connected_gauge_(core::metrics::Registry::global().gauge("scan_bridge_connected",
                                                                 "1 while the bridge consumes its queue", {"service"})
                             .with({st_.service})) {}

  bool ready() const override { return consuming_.load(); }

 protected:
  Status on_start() override {
    auto po = st_.amqp.pool("scan-bridge-" + st_.service);
    po.min_open = 1;
    po.max_open = 2;
    GANTRY_ASSIGN(pub, amqp::Pool::open(po));
    pub_ = std::move(pub);
    GANTRY_RETURN_IF_ERROR(pub_->run([this](amqp::Channel& ch) -> Status {
      GANTRY_RETURN_IF_ERROR(declare_topology(ch, st_.services));
      return declare_dlq(ch, st_.service);
    }));
    consumer_tag_ = "gantry-bridge-" + st_.service + "-" + std::to_string(::getpid());
    thread_ = std::thread([this] { consume_loop(); });
    bridge_log.info("scan bridge started", {{"service", st_.service},
                                    {"queue", queue_},
                                    {"scanner", st_.url},
                                    {"next", next_.empty() ? std::string("none") : scan_key(next_)},
                                    {"dead_letters", dlq_of(st_.service)}});
    return {};
  }

  void before_drain() override {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

  void on_stop(std::chrono::milliseconds) override {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    pub_.reset();
  }

 private:
  // Waits d while keeping the consuming channel's heartbeats; false when stopping.
  bool wait_serving(std::chrono::milliseconds d, amqp::Channel* ch) {
    auto end = Clock::now() + d;
    while (Clock::now() < end) {
      if (stopping_) return false;
      if (ch) ch->service();
      std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(100), end - Clock::now()));
    }
    return !stopping_;
  }

  Status open_consumer() {
    amqp::ChannelOptions co;
    co.connection_name = "gantry-scan-bridge-" + st_.service;
    GANTRY_ASSIGN(ch, amqp::Channel::connect(st_.amqp.amqp_url(), co));
    GANTRY_RETURN_IF_ERROR(declare_topology(*ch, st_.services));
    GANTRY_RETURN_IF_ERROR(ch->consume(queue_, 1, consumer_tag_));
    ch_ = std::move(ch);
    return {};
  }

  void consume_loop() {
    auto& m = BridgeMetrics::get();
    while (!stopping_) {
      if (!ch_) {
        consuming_ = false;
        connected_gauge_.set(0);
        core::resilience::Backoff backoff(policy_, core::Clock::real(), core::Random::real());
        for (;;) {
          Status s = breaker_.call([this] { return open_consumer(); });
          if (s.is_ok()) break;
          auto wait = backoff.next(s);
          if (!wait.is_ok()) wait = std::chrono::nanoseconds(policy_.max_delay);
          if (backoff.attempts() % 20 == 1) bridge_log.warn("cannot consume; retrying", {{"queue", queue_}, {"error", s.to_string()}});
          if (!wait_serving(std::chrono::duration_cast<std::chrono::milliseconds>(*wait), nullptr)) return;
        }
        consuming_ = true;
        connected_gauge_.set(1);
        bridge_log.info("consuming", {{"queue", queue_}, {"prefetch", 1}});
      }
      auto d = ch_->next(std::chrono::milliseconds(250));
      if (!d.is_ok()) {
        bridge_log.warn("consumer connection lost; reconnecting", {{"error", d.status().to_string()}});
        ch_.reset();
        continue;
      }
      if (!*d) continue;
      handle(**d, m);
    }
    if (ch_) ch_.reset();  // unacked deliveries go back to the queue
    consuming_ = false;
  }

  struct Outcome {
    int status = 0;  // 0: no answer
    Status error;
    std::string body;
    double seconds = 0;
  };

  void handle(const amqp::Delivery& d, BridgeMetrics& m) {
    std::string key = d.routing_key + '\n' + std::to_string(std::hash<std::string>{}(d.body));
    auto route = parse_routing_key(d.routing_key, st_.service);
    if (!route.is_ok()) return dead_letter(d, route.status().to_string(), 0, m);

    std::atomic<bool> cancel{false};
    http::ClientRequest rq;
    rq.method = route->method;
    rq.url = st_.url + "/" + route->path;
    rq.headers = {{"X-RabbitMQ-Delivery-Tag", std::to_string(d.tag)}, {"X-RabbitMQ-Consumer-Tag", d.consumer_tag}};
    if (route->method == http::Method::kPost || route->method == http::Method::kPut || route->method == http::Method::kPatch) {
      rq.body = d.body;
      rq.headers.emplace_back("Content-Type", d.content_type.empty() ? "application/json" : d.content_type);
    }
    rq.cancel = &cancel;
    auto t0 = Clock::now();
    auto fut = std::async(std::launch::async, [this, &rq] { return client_.send(rq); });
    // The channel's heartbeats must go on while the scanner works (up to 300 s).
    while (fut.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
      if (ch_) ch_->service();
      if (stopping_) cancel = true;
    }
    Outcome o;
    o.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    auto r = fut.get();
    if (r.is_ok()) {
      o.status = r->status;
      o.body = std::move(r->body);
    } else {
      o.error = r.status();
    }
    std::string cls = o.status ? std::to_string(o.status / 100) + "xx" : "none";
    m.request.with({st_.service, cls}).observe(o.seconds);
    std::string what = std::string(http::method_name(route->method)) + " /" + route->path;

    if (o.status >= 200 && o.status < 300) {
      attempts_.erase(key);
      if (!ch_ || !ch_->ack(d.tag).is_ok()) {
        // The channel died under the request: the broker requeued the message already.
        bridge_log.warn("ack failed: the channel closed during the request; the message is redelivered", {{"route", what}});
        ch_.reset();
        return;
      }
      m.deliveries.with({st_.service, "acked"}).inc();
      bridge_log.info("hop", {{"service", st_.service}, {"route", what}, {"status", o.status}, {"latency_ms", core::log::ms(std::chrono::duration<double>(o.seconds))}});
      publish_next(o, m);
      return;
    }
    if (stopping_ && !o.status) {
      m.deliveries.with({st_.service, "abandoned"}).inc();
      if (ch_) (void)ch_->nack(d.tag, true);
      return;
    }
    std::string why = o.status ? what + " answered " + std::to_string(o.status) : what + ": " + o.error.to_string();
    bool retryable = o.status ? core::resilience::is_retryable_http_status(o.status) : true;
    int n = ++attempts_[key];
    if (!retryable || n > st_.retry_budget) {
      attempts_.erase(key);
      return dead_letter(d, why, n, m);
    }
    auto delay = std::min<std::chrono::milliseconds>(st_.retry_delay * (1 << std::min(n - 1, 10)), std::chrono::seconds(60));
    bridge_log.warn("scan failed; requeueing", {{"service", st_.service}, {"error", why}, {"attempt", n}, {"budget", st_.retry_budget},
                                       {"delay_ms", static_cast<int64_t>(delay.count())}});
    wait_serving(delay, ch_.get());
    if (attempts_.size() > 10'000) attempts_.clear();  // bounded: a forgotten count only allows more retries
    if (ch_ && ch_->nack(d.tag, true).is_ok()) m.deliveries.with({st_.service, "requeued"}).inc();
    else ch_.reset();
  }

  void dead_letter(const amqp::Delivery& d, const std::string& why, int attempts, BridgeMetrics& m) {
    std::string b;
    core::json::Writer(b).object().field("service", st_.service).field("routing_key", d.routing_key).field("body", d.body)
        .field("reason", why).field("attempts", attempts).field("timestamp", core::rfc3339_nano(std::chrono::system_clock::now())).end();
    Status s = pub_->publish("", dlq_of(st_.service), b);
    if (!s.is_ok()) {
      bridge_log.error("dead-letter publish failed; requeueing", {{"error", s.to_string()}});
      if (ch_) (void)ch_->nack(d.tag, true);
      wait_serving(std::chrono::seconds(1), ch_.get());
      return;
    }
    if (ch_) (void)ch_->ack(d.tag);
    m.deliveries.with({st_.service, "dead_lettered"}).inc();
    bridge_log.error("dead-lettered", {{"service", st_.service}, {"queue", dlq_of(st_.service)}, {"reason", why}, {"attempts", attempts}});
  }

  void publish_next(const Outcome& o, BridgeMetrics& m) {
    if (next_.empty()) return;
    // The scanner's own {status, message} when it gave one; else complete.
    std::string status = "complete", message = st_.service + " answered " + std::to_string(o.status);
    boost::system::error_code ec;
    auto v = boost::json::parse(o.body, ec);
    if (!ec && v.is_object()) {
      if (auto* s = v.get_object().if_contains("status"); s && s->is_string()) {
        std::string_view t = s->get_string();
        if (t == "complete" || t == "incomplete" || t == "warning") status = std::string(t);
      }
      if (auto* msg = v.get_object().if_contains("message"); msg && msg->is_string()) message = std::string(msg->get_string());
    }
    std::string b;
    core::json::Writer(b).object().field("status", status).field("message", message).end();
    core::resilience::Backoff backoff(policy_, core::Clock::real(), core::Random::real());
    for (int attempt = 1;; ++attempt) {
      Status s = pub_->publish(kExchange, scan_key(next_), b);
      if (s.is_ok()) {
        m.hops.with({st_.service, "published"}).inc();
        return;
      }
      if (s.code() == Code::kResourceExhausted) {
        m.hops.with({st_.service, "already_pending"}).inc();
        bridge_log.info("next hop already pending", {{"queue", queue_of(next_)}});
        return;
      }
      auto wait = backoff.next(s);
      if (attempt >= 10 || !wait.is_ok() || stopping_) {
        m.hops.with({st_.service, "failed"}).inc();
        bridge_log.error("next hop not published; the orchestrator's next reconcile restarts the ring",
                 {{"routing_key", scan_key(next_)}, {"error", s.to_string()}});
        return;
      }
      wait_serving(std::chrono::duration_cast<std::chrono::milliseconds>(*wait), ch_.get());
    }
  }

  BridgeSettings st_;
  std::string next_, queue_, consumer_tag_;
  http::Client client_;
  core::resilience::RetryPolicy policy_ = core::resilience::RetryPolicy::reconnect();
  core::resilience::CircuitBreaker breaker_;
  core::metrics::Gauge& connected_gauge_;
  std::unique_ptr<amqp::Pool> pub_;
  std::unique_ptr<amqp::Channel> ch_;  // the consumer thread's
  std::unordered_map<std::string, int> attempts_;
  std::thread thread_;
  std::atomic<bool> stopping_{false}, consuming_{false};
};

class ScanBridgeFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    s.add("service", &st_.service, "the scanner service this bridge serves (consumes q<service>)")
        .env("SCAN_BRIDGE_SERVICE")
        .check([this]() -> std::optional<std::string> {
          if (st_.service.empty()) return "is required (e.g. --service asmm8)";
          if (!valid_service_name(st_.service)) return "letters, digits, '-' and '_' only";
          return std::nullopt;
        });
    s.add("url", &st_.url, "the scanner's base URL; a delivery cptm8.<svc>.get.scan becomes GET <url>/scan")
        .env("SCAN_BRIDGE_URL")
        .check([this]() -> std::optional<std::string> {
          if (st_.url.empty()) return "is required (e.g. --url http://localhost:9001)";
          if (st_.url.rfind("http://", 0) != 0 && st_.url.rfind("https://", 0) != 0) return "must be an http:// or https:// URL";
          return std::nullopt;
        });
    s.add("next", &st_.next, "the service to publish the next hop to (default: the next in --services; none = no hop)");
    s.add("services", &st_.services, "the scanner ring, in order").env("ORCHESTRATOR_SERVICES").check([this] {
      return check_services(st_.services);
    });
    orchestrator::bind(s, &st_.amqp, false);
    s.add("retry_budget", &st_.retry_budget, "requeues of a failed scan before it is dead-lettered").range(0, 1000);
    s.add("retry_delay", &st_.retry_delay, "wait before the first requeue, doubled for each next one").range(0, 600'000);
    s.add("timeout", &st_.timeout, "scanner request timeout").range(1000, 3'600'000);
    s.add("address", &st_.address, "listen address of /health, /ready, /metrics");
    s.add("port", &st_.port, "listen port of /health, /ready, /metrics (0 = any free port)").env("SCAN_BRIDGE_PORT");
    http::bind(s, &st_.http);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    if (!st_.next.empty() && st_.next != "none" && !valid_service_name(st_.next))
      return core::invalid_argument("scan-bridge: --next '" + st_.next + "' is not a service name");
    while (!st_.url.empty() && st_.url.back() == '/') st_.url.pop_back();
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Bridge>(st_));
  }

 private:
  BridgeSettings st_;
};

}  // namespace

core::runtime::RoleInfo scan_bridge_role() {
  return {"scan-bridge", "Orchestrator: consumes q<service>, calls an HTTP scanner, acks and publishes the next hop",
          [] { return std::make_unique<ScanBridgeFactory>(); }};
}

}  // namespace gantry::orchestrator
