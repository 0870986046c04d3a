// The controller's configuration API: publishing a version (POST /config, a rollback), serving
// it to polls (ETag, long poll, Redis push) and its history. See controller.h.
#include "fleet/controller/controller.h"

#include <charconv>

#include "core/clock.h"
#include "core/http/auth.h"

namespace gantry::fleet::controller {

namespace {
const core::log::Logger config_api_log("controller");
}  // namespace

void Controller::post_config(const http::Request& q, http::Response& out) {
  std::string who;
  if (!admin(q, out, &who)) return;
  auto body = parse_config_body(q.body());
  if (!body.is_ok()) return out.error(400, body.status().message());
  std::string data;
  core::json::Writer(data).object().field("url", body->url).field("proxy", body->proxy).end();
  auto snap = publish(std::move(data), who, out);
  if (!snap) return;
  out.json_string(200, "Config updated successfully");
  out.set_header("ETag", snap->rec.etag);
}

std::shared_ptr<const Snapshot> Controller::publish(std::string data, const std::string& who, http::Response& out) {
  ConfigRecord rec{0, new_etag(data), std::move(data), who, core::rfc3339(std::chrono::system_clock::now())};
  {
    std::lock_guard lk(store_mu_);
    if (Status s = store_->insert_config(rec); !s.is_ok()) {
      store_failure(out, "storing configuration", s);
      return nullptr;
    }
  }
  auto snap = make_snapshot(std::move(rec));
  adopt(snap, /*push=*/true);
  config_api_log.info("configuration published", {{"etag", snap->rec.etag}, {"by", who}});
  return snap;
}

void Controller::adopt(std::shared_ptr<const Snapshot> snap, bool push) {
  latest_.store(snap);
  hub_->publish();
  if (push && publisher_) {
    PushMessage m{"", snap->rec.etag, uuid4()};
    publisher_->post([this, msg = to_json(m)] {
      auto r = redis_->publish(kPushChannel, msg);
      if (r.is_ok()) {
        pushes_.with({"ok"}).inc();
      } else {
        pushes_.with({"failed"}).inc();
        config_api_log.warn("redis push failed; agents will learn by polling", {{"error", r.status().to_string()}});
      }
    });
  }
}

bool Controller::get_config(const http::Request& q, http::Response& out, const std::function<http::Responder()>& defer, bool from_pool) {
  http::Bearer b = http::parse_bearer(q);
  if (b.error != http::BearerError::kNone) {
    polls_401_.inc();
    bearer_error(out, http::describe(b.error));
    return true;
  }
  std::string hash = token_hash(b.token);
  int interval = 0;
  if (!agents_.interval_by_token(hash, &interval)) {
    bool lookup = false;
    auto agent = bearer(q, out, from_pool ? nullptr : &lookup);  // a token another controller issued, or a 401
    if (lookup) {
      // Looked up on the store pool, then answered from there as if it had been known.
      http::Responder resp = defer();
      bool queued = store_pool_->post([this, &q, resp] {
        lookup_token(q);
        http::Response again;
        if (get_config(q, again, [resp] { return resp; }, /*from_pool=*/true)) resp.send(std::move(again));
      });
      if (!queued) {
        http::Response busy;
        busy.error(503, "the store is busy; retry later");
        resp.send(std::move(busy));
      }
      return false;
    }
    if (!agent) {
      polls_401_.inc();
      return true;
    }
    interval = agent->interval.load(std::memory_order_relaxed);
  }
  int64_t wait_s = 0;
  if (!q.query().empty()) {
    if (auto w = q.query_param("wait")) {
      auto [p, ec] = std::from_chars(w->data(), w->data() + w->size(), wait_s);
      if (ec != std::errc() || p != w->data() + w->size() || wait_s < 0) {
        out.error(400, "wait must be a whole number of seconds");
        return true;
      }
    }
  }
  if (interval == 0) interval = st_.poll_interval;
  auto held = from_pool ? latest_.load() : nullptr;  // the per-thread cache is for HTTP threads
  const Snapshot& snap = from_pool ? *held : latest_.cached();
  std::string_view inm = q.header("If-None-Match");
  if (!etag_matches(inm, snap.rec.etag)) {
    answer_config(snap, interval, out);
    return true;
  }
  if (wait_s > 0) {
    if (auto agent = agents_.by_token(hash)) {
      auto wait = std::min<std::chrono::milliseconds>(std::chrono::seconds(wait_s), st_.long_poll_max);
      std::string etag(inm);
      auto answer = [this, agent, etag](bool) {
        http::Response r;
        int iv = agent->interval.load(std::memory_order_relaxed);
        if (iv == 0) iv = st_.poll_interval;
        auto now = latest_.load();
        if (etag_matches(etag, now->rec.etag)) {
          not_modified(iv, r);
        } else {
          answer_config(*now, iv, r);
        }
        return r;
      };
      // Registered first, then re-checked: a version published in between is not missed.
      if (hub_->hold(std::chrono::steady_clock::now() + wait, defer(), answer)) {
        if (!etag_matches(inm, latest_.load()->rec.etag)) hub_->publish();
        return false;
      }
    }
  }
  not_modified(interval, out);
  return true;
}

bool Controller::etag_matches(std::string_view given, std::string_view etag) {
  if (given == etag) return true;
  // Clients that follow RFC 9110 quote it.
  return given.size() == etag.size() + 2 && given.front() == '"' && given.back() == '"' &&
         given.substr(1, etag.size()) == etag;
}

void Controller::answer_config(const Snapshot& s, int interval, http::Response& out) {
  std::string iv = std::to_string(interval);
  out.json(200, s.body_head + iv + "}");
  out.set_header("ETag", s.rec.etag);
  out.set_header("X-Poll-Interval-Seconds", std::move(iv));
  polls_200_.inc();
}

void Controller::not_modified(int interval, http::Response& out) {
  out.status = 304;
  out.body.clear();
  out.set_header("X-Poll-Interval-Seconds", std::to_string(interval));
  polls_304_.inc();
}

void Controller::history(const http::Request& q, http::Response& out) {
  if (!admin(q, out)) return;
  int limit = 100;
  if (auto l = q.query_param("limit")) {
    auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), limit);
    if (ec != std::errc() || p != l->data() + l->size() || limit < 1 || limit > 10000)
      return out.error(400, "limit must be a number 1..10000");
  }
  core::Result<std::vector<ConfigRecord>> h = [&] {
    std::lock_guard lk(store_mu_);
    return store_->history(limit);
  }();
  if (!h.is_ok()) return store_failure(out, "reading history", h.status());
  std::string latest = latest_.load()->rec.etag;
  std::string body;
  core::json::Writer w(body);
  w.object().key("configurations").array();
  for (const ConfigRecord& c : *h) {
    w.object()
        .field("id", c.id)
        .field("etag", c.etag)
        .field_raw("config", c.config_data)
        .field("created_by", c.created_by)
        .field("created_at", c.created_at)
        .field("latest", c.etag == latest)
        .end();
  }
  w.end().field("total", h->size()).end();
  out.json(200, std::move(body));
}

void Controller::rollback(const http::Request& q, http::Response& out) {
  std::string who;
  if (!admin(q, out, &who)) return;
  std::string etag(q.param("etag"));
  core::Result<std::optional<ConfigRecord>> old = [&] {
    std::lock_guard lk(store_mu_);
    return store_->config_by_etag(etag);
  }();
  if (!old.is_ok()) return store_failure(out, "reading history", old.status());
  if (!*old) return out.error(404, "no configuration with etag " + etag);
  auto snap = publish((*old)->config_data, who + " (rollback to " + etag + ")", out);
  if (!snap) return;
  std::string body;
  core::json::Writer(body)
      .object()
      .field("message", "rolled back")
      .field("etag", snap->rec.etag)
      .field("rolled_back_to", etag)
      .end();
  out.json(200, std::move(body));
  out.set_header("ETag", snap->rec.etag);
}

}  // namespace gantry::fleet::controller
