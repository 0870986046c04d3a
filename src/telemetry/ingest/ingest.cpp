// `gantry ingest`: authenticates, validates and rate-limits probe events and appends them to
// JetStream. An event is answered 202 only from JetStream's acknowledgement callback, so a
// 202 means stored; any failure to store is 503 and the client resends (the event_id is the
// Nats-Msg-Id, so a resend of a stored event is dropped by JetStream, not duplicated).
//
// Each HTTP worker thread has its own NATS connection (bus/nats/publisher.h): an event is
// validated, published, acknowledged and answered on the thread that read it.
//
// Checks run in the spec's order: auth (401), method (405), decode and validate (400),
// per-client token bucket (429 with Retry-After), publish (202 or 503).
#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <unordered_map>

#include <boost/json.hpp>

#include "bus/nats/jetstream.h"
#include "bus/nats/publisher.h"
#include "core/clock.h"
#include "core/http/auth.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/rate_limiter.h"
#include "core/runtime.h"
#include "telemetry/event.h"
#include "telemetry/roles.h"
#include "telemetry/streams.h"

namespace gantry::telemetry::ingest {

namespace {

namespace http = core::http;
namespace nats = bus::nats;
using core::Status;

const core::log::Logger ingest_log("ingest");

struct Settings {
  std::string address = "0.0.0.0";
  uint16_t port = 8081;
  std::string nats_url = "nats://localhost:4222";
  std::vector<std::string> api_tokens;
  double rate_limit = 100;
  double rate_limit_burst = 20;
  int64_t max_body_bytes = 64 * 1024;
  int64_t max_batch_bytes = 16 * 1024 * 1024;
  int max_batch_events = 10'000;
  http::ServerOptions http;
};

// First 4 bytes of SHA-256, hex: a bounded-length label that does not expose the client id.
std::string client_hash(std::string_view client_id) {
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(client_id.data(), client_id.size(), md, &len, sha256, nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(8, '0');
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = kHex[md[i] >> 4];
    out[2 * i + 1] = kHex[md[i] & 15];
  }
  return out;
}


class Ingest final : public core::runtime::HttpRole {
 public:
  ~Ingest() override { reg_.remove_callback("ingest_active_connections"); }
  explicit Ingest(Settings s)
      : HttpRole("ingest", s.http),
        st_(std::move(s)),
        limiter_("ingest", st_.rate_limit, st_.rate_limit_burst),
        reg_(core::metrics::Registry::global()),
        requests_(reg_.counter("ingest_requests_total", "requests by answered status", {"status"})),
        duration_(reg_.histogram("ingest_request_duration_seconds", "time to answer, by status", {"status"})),
        payload_(reg_.histogram("ingest_payload_size_bytes", "request body sizes", {},
                                {256, 512, 1024, 2048, 4096, 16384, 65536, 1 << 20, 16 << 20})
                     .with({})),
        auth_failures_(reg_.counter("ingest_auth_failures_total", "rejected credentials by reason", {"reason"})),
        rate_hits_(reg_.counter("ingest_rate_limit_hits_total", "429 answers by client", {"client_id_hash"})),
        per_client_(reg_.counter("ingest_events_per_client_total", "accepted events by client", {"client_id_hash"})) {
    // The server's own count of open connections (single and batch requests alike, idle
    // keep-alive ones too), read at scrape time.
    reg_.gauge_callback("ingest_active_connections", "open HTTP connections",
                        [this] { return static_cast<double>(active_connections()); });
    auto& r = router();
    r.get("/health", [](const http::Request&, http::Response& out) {
      out.json(200, R"({"status":"healthy","service":"ingest-api"})");
    });
    for (const char* path : {"/events", "/api/v1/events"}) {
      r.add_async(http::Method::kPost, path, [this](const http::Request& q, http::Responder resp) { single(q, std::move(resp)); });
      wrong_methods(path);
    }
    r.add_async(http::Method::kPost, "/events/batch",
                [this](const http::Request& q, http::Responder resp) { batch(q, std::move(resp)); });
    wrong_methods("/events/batch");
  }

  bool ready() const override {
    if (pubs_.empty()) return false;
    for (auto& [ioc, p] : pubs_)
      if (!p->connected()) return false;
    return true;
  }

 protected:
  Status on_start() override {
    GANTRY_RETURN_IF_ERROR(nats::Publisher::check_urls(st_.nats_url));
    {  // streams are made once, over a short-lived administrative connection
      GANTRY_ASSIGN(js, nats::JetStream::connect(st_.nats_url, {.name = "gantry-ingest-admin"}));
      GANTRY_RETURN_IF_ERROR(js->ensure_stream(events_stream()).within("creating stream " + std::string(kEventsStream)));
      GANTRY_RETURN_IF_ERROR(js->ensure_stream(dlq_stream()).within("creating stream " + std::string(kDlqStream)));
    }
    ingest_log.info("ingest ready", {{"nats", st_.nats_url},
                             {"auth", st_.api_tokens.empty() ? "off (no tokens configured)" : "on"},
                             {"rate_limit", st_.rate_limit},
                             {"burst", st_.rate_limit_burst}});
    return {};
  }

  Status on_worker(boost::asio::io_context& ioc) override {
    auto p = std::make_unique<nats::Publisher>(ioc, nats::Publisher::Options{.urls = st_.nats_url, .name = "gantry-ingest"});
    Status s = p->connect();
    pubs_.emplace_back(&ioc, std::move(p));  // released in on_stop even when it failed
    return s.within("connecting to NATS");
  }

  // The server has drained: every accepted request was answered, so nothing is pending.
  void on_stop(std::chrono::milliseconds) override { pubs_.clear(); }

 private:
  // The spec checks auth before the method, so the wrong methods are routed here, not left
  // to the router's 405.
  void wrong_methods(const char* path) {
    for (auto m : {http::Method::kGet, http::Method::kPut, http::Method::kDelete, http::Method::kPatch}) {
      router().add(m, path, [this](const http::Request& q, http::Response& out) {
        if (!authorized(q, out)) return finish(out, clock_start());
        out.error(405, "method " + std::string(q.method_text()) + " not allowed; use POST");
        out.set_header("Allow", "POST");
        finish(out, clock_start());
      });
    }
  }

  static std::chrono::steady_clock::time_point clock_start() { return std::chrono::steady_clock::now(); }

  bool authorized(const http::Request& q, http::Response& out) {
    if (st_.api_tokens.empty()) return true;
    http::Bearer b = http::parse_bearer(q);
    if (b.error != http::BearerError::kNone) {
      auth_failures_.with({b.error == http::BearerError::kMissing ? "missing" : "malformed"}).inc();
      out.error(401, std::string(http::describe(b.error)));
      return false;
    }
    for (const std::string& t : st_.api_tokens)
      if (http::constant_time_equal(b.token, t)) return true;
    auth_failures_.with({"invalid"}).inc();
    out.error(401, "invalid api token");
    return false;
  }

  // The series of one answered status, looked up once: Family::with takes a lock.
  struct StatusSeries {
    core::metrics::Counter* requests;
    core::metrics::Histogram* duration;
  };
  const StatusSeries& series(int status) {
    static constexpr int kKnown[] = {202, 207, 400, 401, 405, 413, 429, 503};
    for (size_t i = 0; i < std::size(kKnown); ++i)
      if (kKnown[i] == status) return known_series(i, status);
    thread_local StatusSeries other;
    std::string s = std::to_string(status);
    other = {&requests_.with({s}), &duration_.with({s})};
    return other;
  }
  const StatusSeries& known_series(size_t i, int status) {
    std::call_once(series_once_[i], [&] {
      std::string s = std::to_string(status);
      series_[i] = {&requests_.with({s}), &duration_.with({s})};
    });
    return series_[i];
  }

  // The accepted-events counter of a client, cached per thread (hashing and the labelled
  // lookup are per client, not per event).
  core::metrics::Counter& client_counter(const std::string& client_id) {
    thread_local std::unordered_map<std::string, core::metrics::Counter*> cache;
    thread_local const Ingest* owner = nullptr;
    if (owner != this || cache.size() > 10'000) {
      cache.clear();
      owner = this;
    }
    auto [it, fresh] = cache.try_emplace(client_id, nullptr);
    if (fresh) it->second = &per_client_.with({client_hash(client_id)});
    return *it->second;
  }

  void finish(const http::Response& out, std::chrono::steady_clock::time_point t0) {
    const StatusSeries& s = series(out.status);
    s.requests->inc();
    s.duration->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // Why an event was refused before publishing, or nothing.
  struct Refusal {
    int status;
    std::string message;
    core::Duration retry_after{};
  };

  std::optional<Refusal> admit(std::string_view body, Event* e) {
    auto parsed = parse_event(body, core::unix_ms(std::chrono::system_clock::now()));
    if (!parsed.is_ok()) return Refusal{400, std::string(parsed.status().message())};
    *e = std::move(*parsed);
    if (e->schema_version != kKnownSchema)
      ingest_log.warn("unknown schema_version accepted", {{"schema_version", e->schema_version}, {"event_id", e->event_id}});
    auto d = limiter_.take(e->client_id);
    if (!d.allowed) {
      rate_hits_.with({client_hash(e->client_id)}).inc();
      return Refusal{429, "rate limit exceeded for client " + e->client_id, d.retry_after};
    }
    return std::nullopt;
  }

  static void refuse(http::Response& out, const Refusal& r) {
    out.error(r.status, r.message);
    if (r.status == 429) {
      auto secs = std::chrono::duration<double>(r.retry_after).count();
      out.set_header("Retry-After", std::to_string(std::max<int64_t>(1, static_cast<int64_t>(std::ceil(secs)))));
    }
  }

  void single(const http::Request& q, http::Responder resp) {
    auto t0 = clock_start();
    auto send = [this, t0, resp](http::Response&& out) {
      finish(out, t0);
      resp.send(std::move(out));
    };
    http::Response out;
    payload_.observe(static_cast<double>(q.body().size()));
    if (!authorized(q, out)) return send(std::move(out));
    if (static_cast<int64_t>(q.body().size()) > st_.max_body_bytes) {
      out.error(413, "event body over " + std::to_string(st_.max_body_bytes) + " bytes; use /events/batch for many");
      return send(std::move(out));
    }
    Event e;
    if (auto r = admit(q.body(), &e)) {
      refuse(out, *r);
      return send(std::move(out));
    }
    publish(q, e, [this, send, id = e.event_id, client = &client_counter(e.client_id)](int status, const std::string& error) {
      http::Response o;
      if (status == 202) {
        client->inc();
        std::string b;
        core::json::Writer(b).object().field("status", "accepted").field("event_id", id).end();
        o.json(202, std::move(b));
      } else {
        o.error(status, error);
      }
      send(std::move(o));
    });
  }

  // done(202, "") once stored; done(503, why) when it was not.
  void publish(const http::Request& q, const Event& e, std::function<void(int, const std::string&)> done) {
    nats::Publisher* pub = nullptr;
    for (auto& [ioc, p] : pubs_)
      if (ioc == q.io_context()) pub = p.get();
    if (!pub) return done(503, "event store unavailable: no NATS connection on this thread");
    Status s = pub->publish(kEventsSubject, to_json(e), e.event_id, [done](core::Result<nats::PubAck> ack) {
      if (ack.is_ok()) return done(202, "");
      ingest_log.warn("event not stored", {{"error", ack.status().to_string()}});
      done(503, "event not stored: " + ack.status().to_string());
    });
    if (!s.is_ok()) done(503, "event store unavailable: " + s.to_string());
  }

  // A JSON array or NDJSON; every event is validated, limited and published on its own, and
  // the answer lists each one's outcome once all are known.
  void batch(const http::Request& q, http::Responder resp) {
    auto t0 = clock_start();
    http::Response out;
    payload_.observe(static_cast<double>(q.body().size()));
    if (!authorized(q, out)) {
      finish(out, t0);
      return resp.send(std::move(out));
    }
    if (static_cast<int64_t>(q.body().size()) > st_.max_batch_bytes) {
      out.error(413, "batch over " + std::to_string(st_.max_batch_bytes) + " bytes");
      finish(out, t0);
      return resp.send(std::move(out));
    }
    auto split = split_batch(q.body());
    if (!split.is_ok()) {
      out.error(400, std::string(split.status().message()));
      finish(out, t0);
      return resp.send(std::move(out));
    }
    std::vector<std::string>& items = *split;
    if (static_cast<int>(items.size()) > st_.max_batch_events) {
      out.error(413, "batch over " + std::to_string(st_.max_batch_events) + " events");
      finish(out, t0);
      return resp.send(std::move(out));
    }

    struct Outcome {
      std::string event_id;
      int status = 0;
      std::string error;
    };
    struct State {
      std::mutex mu;
      std::vector<Outcome> outcomes;
      std::atomic<size_t> pending{0};
    };
    auto state = std::make_shared<State>();
    state->outcomes.resize(items.size());
    state->pending = items.size() + 1;  // +1 until every publish is issued
    auto complete = [this, state, resp, t0] {
      if (--state->pending != 0) return;
      size_t accepted = 0;
      std::string b;
      core::json::Writer w(b);
      w.object().key("results").array();
      for (size_t i = 0; i < state->outcomes.size(); ++i) {
        const Outcome& o = state->outcomes[i];
        if (o.status == 202) ++accepted;
        w.object().field("index", i).field("event_id", o.event_id).field("status", o.status);
        if (!o.error.empty()) w.field("error", o.error);
        w.end();
      }
      w.end().field("accepted", accepted).field("rejected", state->outcomes.size() - accepted).end();
      http::Response r;
      r.json(accepted == state->outcomes.size() ? 202 : 207, std::move(b));
      finish(r, t0);
      resp.send(std::move(r));
    };
    for (size_t i = 0; i < items.size(); ++i) {
      Event e;
      if (auto r = admit(items[i], &e)) {
        {
          std::lock_guard lk(state->mu);
          state->outcomes[i] = {e.event_id, r->status, r->message};
        }
        complete();
        continue;
      }
      publish(q, e, [state, i, complete, id = e.event_id, client = &client_counter(e.client_id)](int status, const std::string& error) {
        if (status == 202) client->inc();
        {
          std::lock_guard lk(state->mu);
          state->outcomes[i] = {id, status, error};
        }
        complete();
      });
    }
    complete();
  }

  Settings st_;
  core::resilience::RateLimiter limiter_;
  core::metrics::Registry& reg_;
  core::metrics::Family<core::metrics::Counter>& requests_;
  core::metrics::Family<core::metrics::Histogram>& duration_;
  core::metrics::Histogram& payload_;
  core::metrics::Family<core::metrics::Counter>& auth_failures_;
  core::metrics::Family<core::metrics::Counter>& rate_hits_;
  core::metrics::Family<core::metrics::Counter>& per_client_;
  std::once_flag series_once_[8];
  StatusSeries series_[8]{};
  // One per server worker, made before the workers run and read-only after.
  std::vector<std::pair<boost::asio::io_context*, std::unique_ptr<nats::Publisher>>> pubs_;
};

class IngestFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    s.add("address", &st_.address, "listen address").env("INGEST_HOST");
    s.add("port", &st_.port, "listen port (0 = any free port)").env("HTTP_PORT");
    s.add("nats_url", &st_.nats_url, "NATS server with JetStream").env("NATS_URL");
    s.add("api_tokens", &st_.api_tokens, "Bearer tokens accepted, comma-separated (none = auth off)")
        .env("API_TOKENS")
        .secret();
    s.add("rate_limit", &st_.rate_limit, "events per second per client").env("RATE_LIMIT").range(0.001, 1e9);
    s.add("rate_limit_burst", &st_.rate_limit_burst, "bucket size per client").env("RATE_LIMIT_BURST").range(1, 1e9);
    s.add("max_body_bytes", &st_.max_body_bytes, "largest single event body (else 413)").env("MAX_BODY_BYTES").range(256, 1 << 30);
    s.add("max_batch_bytes", &st_.max_batch_bytes, "largest batch body (else 413)").range(256, 1 << 30);
    s.add("max_batch_events", &st_.max_batch_events, "most events in one batch (else 413)").range(1, 1'000'000);
    http::bind(s, &st_.http);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    // The server reads bodies up to the larger (batch) limit; /events enforces its own.
    st_.http.max_body_bytes = std::max(st_.http.max_body_bytes, std::max(st_.max_body_bytes, st_.max_batch_bytes));
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Ingest>(st_));
  }

 private:
  Settings st_;
};

}  // namespace

}  // namespace gantry::telemetry::ingest

namespace gantry::telemetry {

core::runtime::RoleInfo ingest_role() {
  return {"ingest", "Telemetry: validates and rate-limits probe events, appends them durably to NATS JetStream",
          [] { return std::make_unique<ingest::IngestFactory>(); }};
}

}  // namespace gantry::telemetry
