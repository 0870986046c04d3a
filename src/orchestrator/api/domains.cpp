#include "orchestrator/api/domains.h"

#include "core/http/auth.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/uuid.h"
#include "orchestrator/domain.h"

namespace gantry::orchestrator {

namespace http = core::http;
namespace pg = store::postgres;
using core::Code;

namespace {

const core::log::Logger domains_log("orchestrator.api");

constexpr const char* kColumns = "id::text, name, coalesce(companyname, ''), enabled";

Domain row(const pg::Rows& r, int i) {
  return {std::string(r.get(i, 0)), std::string(r.get(i, 1)), std::string(r.get(i, 2)), r.get(i, 3) == "t"};
}

std::optional<std::string> bool_text(const std::optional<bool>& v) {
  if (!v) return std::nullopt;
  return *v ? "true" : "false";
}

// The answer to a failed statement.
http::Response failure(const core::Status& s, const DomainChange* c) {
  http::Response out;
  if (s.code() == Code::kAlreadyExists)
    out.error(409, "a domain named '" + (c && c->name ? *c->name : std::string()) + "' already exists");
  else if (s.code() == Code::kInvalidArgument)
    out.error(400, std::string(s.message()));
  else {
    domains_log.warn("domain statement failed", {{"error", s.to_string()}});
    out.error(503, "database unavailable: " + std::string(core::code_name(s.code())));
  }
  return out;
}

class Api {
 public:
  Api(pg::Pool* const* db, const AdminCredentials* admin)
      : db_(db), admin_(admin), duration_(&core::metrics::Registry::global().histogram(
                                   "orchestrator_db_query_duration_seconds",
                                   "Statements of the orchestrator: queued to answered, by query", {"query"})) {}

  bool authorized(const http::Request& q, http::Responder& resp) const {
    if (http::check_basic(q, admin_->user, admin_->password)) return true;
    http::Response out;
    http::basic_challenge(out, "orchestrator", R"({"error":"admin credentials required"})");
    resp.send(std::move(out));
    return false;
  }

  // Runs one statement; `answer` turns its rows into the response (on the pool thread).
  void run(const char* what, http::Responder resp, std::string sql, std::vector<std::optional<std::string>> params,
           std::function<http::Response(pg::Rows&)> answer, std::shared_ptr<DomainChange> change = nullptr) const {
    pg::Pool* db = *db_;
    if (!db) {
      http::Response out;
      out.error(503, "database not connected");
      return resp.send(std::move(out));
    }
    auto* timer = &duration_->with({what});
    auto t0 = std::chrono::steady_clock::now();
    bool queued = db->submit_query({std::move(sql), std::move(params)}, [resp, answer, change, timer, t0](core::Result<pg::Rows> r) {
      timer->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (!r.is_ok()) return resp.send(failure(r.status(), change.get()));
      resp.send(answer(*r));
    });
    if (!queued) {
      http::Response out;
      out.error(503, "database busy: too many queued statements");
      out.set_header("Retry-After", "1");
      resp.send(std::move(out));
    }
  }

  static bool id_ok(const http::Request& q, http::Responder& resp) {
    if (core::is_uuid(q.param("id"))) return true;
    http::Response out;
    out.error(400, "'" + std::string(q.param("id")).substr(0, 64) + "' is not a UUID");
    resp.send(std::move(out));
    return false;
  }

  static bool body_ok(const http::Request& q, http::Responder& resp, BodyRule rule, DomainChange* c) {
    auto parsed = parse_domain_body(q.body(), rule);
    if (parsed.is_ok()) {
      *c = std::move(*parsed);
      return true;
    }
    http::Response out;
    out.error(400, std::string(parsed.status().message()));
    resp.send(std::move(out));
    return false;
  }

  static http::Response not_found(std::string_view id) {
    http::Response out;
    out.error(404, "no domain " + std::string(id));
    return out;
  }

  void list(const http::Request& q, http::Responder resp) const {
    if (!authorized(q, resp)) return;
    run("domains_list", resp, std::string("SELECT ") + kColumns + " FROM cptm8domain ORDER BY name", {}, [](pg::Rows& r) {
      std::string b = "[";
      for (int i = 0; i < r.size(); ++i) b += (i ? "," : "") + to_json(row(r, i));
      b += "]";
      http::Response out;
      out.json(200, std::move(b));
      return out;
    });
  }

  void create(const http::Request& q, http::Responder resp) const {
    if (!authorized(q, resp)) return;
    auto c = std::make_shared<DomainChange>();
    if (!body_ok(q, resp, BodyRule::kCreate, c.get())) return;
    run("domains_create", resp,
        std::string("INSERT INTO cptm8domain (name, companyname, enabled) VALUES ($1, $2, $3::boolean) RETURNING ") + kColumns,
        {c->name, c->companyname, c->enabled.value_or(true) ? "true" : "false"},
        [](pg::Rows& r) {
          Domain d = row(r, 0);
          http::Response out;
          out.json(201, to_json(d));
          out.set_header("Location", "/domains/" + d.id);
          return out;
        },
        c);
  }

  void get(const http::Request& q, http::Responder resp) const {
    if (!authorized(q, resp) || !id_ok(q, resp)) return;
    std::string id(q.param("id"));
    run("domains_get", resp, std::string("SELECT ") + kColumns + " FROM cptm8domain WHERE id = $1::uuid", {id}, [id](pg::Rows& r) {
      if (r.size() == 0) return not_found(id);
      http::Response out;
      out.json(200, to_json(row(r, 0)));
      return out;
    });
  }

  void update(const http::Request& q, http::Responder resp) const {
    if (!authorized(q, resp) || !id_ok(q, resp)) return;
    auto c = std::make_shared<DomainChange>();
    if (!body_ok(q, resp, BodyRule::kUpdate, c.get())) return;
    std::string id(q.param("id"));
    run("domains_update", resp,
        std::string("UPDATE cptm8domain SET name = coalesce($2, name), companyname = coalesce($3, companyname), "
                    "enabled = coalesce($4::boolean, enabled) WHERE id = $1::uuid RETURNING ") +
            kColumns,
        {id, c->name, c->companyname, bool_text(c->enabled)},
        [id](pg::Rows& r) {
          if (r.size() == 0) return not_found(id);
          http::Response out;
          out.json(200, to_json(row(r, 0)));
          return out;
        },
        c);
  }

  void remove(const http::Request& q, http::Responder resp) const {
    if (!authorized(q, resp) || !id_ok(q, resp)) return;
    std::string id(q.param("id"));
    run("domains_delete", resp, "DELETE FROM cptm8domain WHERE id = $1::uuid", {id}, [id](pg::Rows& r) {
      if (r.affected() == 0) return not_found(id);
      http::Response out;
      out.status = 204;
      return out;
    });
  }

 private:
  pg::Pool* const* db_;
  const AdminCredentials* admin_;
  core::metrics::Family<core::metrics::Histogram>* duration_;
};

}  // namespace

void add_domain_routes(http::Router& r, pg::Pool* const* db, const AdminCredentials* admin) {
  auto api = std::make_shared<Api>(db, admin);
  r.add_async(http::Method::kGet, "/domains", [api](const http::Request& q, http::Responder s) { api->list(q, std::move(s)); });
  r.add_async(http::Method::kPost, "/domains", [api](const http::Request& q, http::Responder s) { api->create(q, std::move(s)); });
  r.add_async(http::Method::kGet, "/domains/{id}", [api](const http::Request& q, http::Responder s) { api->get(q, std::move(s)); });
  r.add_async(http::Method::kPut, "/domains/{id}", [api](const http::Request& q, http::Responder s) { api->update(q, std::move(s)); });
  r.add_async(http::Method::kDelete, "/domains/{id}", [api](const http::Request& q, http::Responder s) { api->remove(q, std::move(s)); });
}

}  // namespace gantry::orchestrator
