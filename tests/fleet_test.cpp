// Fleet end to end: the controller, agents and workers as real processes talking HTTP, real
// Redis (a private redis-server this test kills and restarts), real PostgreSQL, a real proxy
// (tinyproxy from scripts/servers), and a target page served by the core HTTP server.
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>

#include <boost/json.hpp>

#include "core/http/client.h"
#include "core/http/router.h"
#include "core/http/server.h"
#include "core/http/test_socket.h"
#include "env.h"
#include "private_servers.h"
#include "process.h"
#include "store/postgres/pg.h"
#include "store/sqlite/db.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace http = core::http;
namespace json = boost::json;

using EnvVars = std::map<std::string, std::string>;
const http::Headers kAdmin = {{"Authorization", "Basic " + std::string("YWRtaW46cGFzc3dvcmQ=")}};  // admin:password
const http::Headers kAgentBasic = {{"Authorization", "Basic " + std::string("YWdlbnQ6YWdlbnRwYXNz")}};  // agent:agentpass

http::Client& client() {
  static http::Client c(http::ClientOptions{.timeout = 15s});
  return c;
}

http::ClientResponse call(http::Method m, const std::string& url, std::string body = {}, http::Headers h = {}) {
  if (!body.empty()) h.emplace_back("Content-Type", "application/json");
  http::ClientRequest req;
  req.method = m;
  req.url = url;
  req.headers = std::move(h);
  req.body = std::move(body);
  auto r = client().send(req);
  EXPECT_TRUE(r.is_ok()) << url << ": " << r.status().to_string();
  return r.is_ok() ? *r : http::ClientResponse{};
}

json::value parse(const std::string& s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  EXPECT_FALSE(ec) << "not JSON: " << s;
  return v;
}

std::string str(const json::value& v, std::string_view key) {
  const json::value* f = v.is_object() ? v.get_object().if_contains(key) : nullptr;
  return f && f->is_string() ? std::string(f->get_string()) : std::string();
}

// A gantry role as a child process on a port of its own.
struct Role {
  Role(std::string role, std::map<std::string, std::string> env, std::vector<std::string> args = {}, uint16_t p = 0)
      : port(p ? p : http::testing::free_loopback_port()) {
    std::vector<std::string> argv{kBin, role, "--port", std::to_string(port), "--address", "127.0.0.1"};
    argv.insert(argv.end(), args.begin(), args.end());
    env.emplace("LOG_LEVEL", "info");
    proc = std::make_unique<Child>(argv, env);
    std::string out = proc->wait_for_output("listening", 15s);
    EXPECT_NE(out, "") << role << " did not start: " << proc->out() << proc->err();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
  int stop() {
    proc->signal(SIGTERM);
    return proc->wait(20s);
  }
  uint16_t port;
  std::unique_ptr<Child> proc;
};

std::string temp_dir() {
  char tmpl[] = "/tmp/gantry-fleet-XXXXXX";
  return mkdtemp(tmpl);
}

struct Registered {
  std::string id, token;
};

Registered register_agent(const std::string& base, const std::string& host = "test-host") {
  auto r = call(http::Method::kPost, base + "/register",
                R"({"hostname":")" + host + R"(","start_time":"2026-11-22T07:00:00Z","version":"t"})", kAgentBasic);
  EXPECT_EQ(r.status, 200) << r.body;
  json::value v = parse(r.body);
  return {str(v, "agent_id"), str(v, "api_token")};
}

http::Headers bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

std::string post_config(const std::string& base, const std::string& url, const std::string& proxy = "") {
  auto r = call(http::Method::kPost, base + "/config", R"({"url":")" + url + R"(","proxy":")" + proxy + R"("})", kAdmin);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "\"Config updated successfully\"");
  return std::string(r.header("ETag"));
}

std::string worker_etag(const Role& w) {
  auto r = client().get(w.url() + "/health");
  return r.is_ok() ? str(parse(r->body), "etag") : "";
}

int64_t count_rows(const std::string& db_path, const std::string& table) {
  auto db = store::sqlite::Db::open(db_path, {.create_dirs = false, .read_only = true});
  EXPECT_TRUE(db.is_ok()) << db.status().to_string();
  if (!db.is_ok()) return -1;
  auto st = (*db)->prepare("SELECT count(*) FROM " + table);
  EXPECT_TRUE(st.is_ok());
  if (!st.is_ok() || !st->step().is_ok()) return -1;
  return st->int64(0);
}

// A controller on a fresh SQLite file.
struct Controller {
  explicit Controller(std::map<std::string, std::string> env = {}, uint16_t port = 0, std::string dir = temp_dir(),
                      std::vector<std::string> args = {})
      : dir(dir), db(dir + "/data.db") {
    env.emplace("DATABASE_PATH", db);
    role = std::make_unique<Role>("controller", env, args, port);
  }
  std::string url() const { return role->url(); }
  std::string dir, db;
  std::unique_ptr<Role> role;
};

// An agent and the worker beside it.
struct Pair {
  Pair(const std::string& controller, std::map<std::string, std::string> env = {})
      : worker("worker", {}) {
    env.emplace("CONTROLLER_URL", controller);
    env.emplace("WORKER_URL", worker.url());
    env.emplace("AGENT_HEARTBEAT_INTERVAL", "500ms");
    agent = std::make_unique<Role>("agent", env);
  }
  std::string health() {
    auto r = client().get(agent->url() + "/health");
    return r.is_ok() ? r->body : "";
  }
  Role worker;
  std::unique_ptr<Role> agent;
};

// The target a worker hits: HTML, and the headers of the last request (to see the proxy's Via).
struct WorkerTarget {
  WorkerTarget() {
    auto router = std::make_shared<http::Router>();
    router->get("/page", [this](const http::Request& q, http::Response& out) {
      {
        std::lock_guard lk(mu);
        via = std::string(q.header("Via"));
        hits++;
      }
      out.status = 200;
      out.content_type = "text/html; charset=utf-8";
      out.body = "<html><head><title>t</title><script>x()</script></head><body><h1>Fleet</h1> <p>target  page</p></body></html>";
    });
    router->get("/plain", [](const http::Request&, http::Response& out) { out.text(200, "  just text \n"); });
    server = serve(router);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(server->port()) + path; }
  std::mutex mu;
  std::string via;
  int hits = 0;
  std::unique_ptr<http::Server> server;
};

// ---- controller API -------------------------------------------------------------------

// A URL the original accepted (Go's url.Parse takes UTF-8) is accepted and handed to agents
// percent-encoded; a control character is still refused and changes nothing.
TEST(FleetController, AcceptsTheUrlsTheOriginalAcceptedAndStoresThemEncoded) {
  Controller c;
  Registered a = register_agent(c.url());
  std::string etag = post_config(c.url(), "http://a.example/x?q=\u00fc");
  auto got = call(http::Method::kGet, c.url() + "/config", "", bearer(a.token));
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(str(parse(got.body).at("config"), "url"), "http://a.example/x?q=%C3%BC") << got.body;
  EXPECT_EQ(got.header("X-Poll-Interval-Seconds"), "5");  // the original's default POLL_INTERVAL
  auto bad = call(http::Method::kPost, c.url() + "/config", R"({"url":"http://a.example/\u0001"})", kAdmin);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", bearer(a.token)).header("ETag"), etag);
}

TEST(FleetController, RegistersAnswers200Then304AndServesBothIntervalSpellings) {
  Controller c(EnvVars{{"POLL_INTERVAL", "17"}});
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/health").body, R"({"status":"healthy"})");
  Registered a = register_agent(c.url());
  ASSERT_FALSE(a.token.empty());

  auto first = call(http::Method::kGet, c.url() + "/config", "", bearer(a.token));
  ASSERT_EQ(first.status, 200);
  json::value v = parse(first.body);
  std::string etag = str(v, "etag");
  EXPECT_EQ(first.header("ETag"), etag);
  EXPECT_EQ(first.header("X-Poll-Interval-Seconds"), "17");
  EXPECT_TRUE(v.at("config").is_object());  // the seed configuration {}
  EXPECT_EQ(v.at("poll_interval_seconds").as_int64(), 17);

  auto h = bearer(a.token);
  h.emplace_back("If-None-Match", etag);
  auto same = call(http::Method::kGet, c.url() + "/config", "", h);
  EXPECT_EQ(same.status, 304);
  EXPECT_EQ(same.body, "");
  EXPECT_EQ(same.header("X-Poll-Interval-Seconds"), "17");
  // The alias path answers alike.
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/controller/config", "", h).status, 304);

  std::string agent_url = c.url() + "/agents/" + a.id;
  auto put1 = call(http::Method::kPut, agent_url + "/interval", R"({"poll_interval_seconds":5})", kAdmin);
  EXPECT_EQ(put1.status, 200) << put1.body;
  EXPECT_EQ(put1.body, "\"poll interval updated\"");
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", h).header("X-Poll-Interval-Seconds"), "5");
  EXPECT_EQ(call(http::Method::kPut, agent_url + "/poll-interval", R"({"pollIntervalSeconds":9})", kAdmin).status, 200);
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", h).header("X-Poll-Interval-Seconds"), "9");
  EXPECT_EQ(parse(call(http::Method::kGet, agent_url, "", kAdmin).body).at("poll_interval_seconds").as_int64(), 9);

  // Bad values: 400 and the stored interval unchanged.
  for (const char* bad : {R"({"poll_interval_seconds":0})", R"({"poll_interval_seconds":1000000000})",
                          R"({"pollIntervalSeconds":"5"})", R"({"poll_interval_seconds":1.5})", R"({"interval":5})",
                          R"(not json)"}) {
    auto r = call(http::Method::kPut, agent_url + "/interval", bad, kAdmin);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
    EXPECT_NE(parse(r.body).at("error").as_string(), "");
  }
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", h).header("X-Poll-Interval-Seconds"), "9");
  {
    auto db = store::sqlite::Db::open(c.db, {.create_dirs = false, .read_only = true});
    ASSERT_TRUE(db.is_ok());
    auto st = (*db)->prepare("SELECT poll_interval_seconds FROM agent_configs");
    ASSERT_TRUE(st.is_ok() && *st->step());
    EXPECT_EQ(st->int64(0), 9);  // the database too
  }
  EXPECT_EQ(call(http::Method::kPut, c.url() + "/agents/no-such-agent/interval", R"({"poll_interval_seconds":5})", kAdmin).status, 404);
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/agents/no-such-agent", "", kAdmin).status, 404);

  // null = back to the global default.
  EXPECT_EQ(call(http::Method::kPut, agent_url + "/interval", R"({"poll_interval_seconds":null})", kAdmin).status, 200);
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", h).header("X-Poll-Interval-Seconds"), "17");
  EXPECT_EQ(c.role->stop(), 0);
}

TEST(FleetController, BadInputGetsTheSpecsAnswerAndChangesNothing) {
  Controller c;
  Registered a = register_agent(c.url());
  int64_t configs = count_rows(c.db, "configurations"), agents = count_rows(c.db, "agent_configs");
  ASSERT_EQ(configs, 1);
  ASSERT_EQ(agents, 1);

  struct Case {
    http::Method m;
    std::string path, body;
    http::Headers h;
    int status;
  };
  std::vector<Case> cases = {
      {http::Method::kPost, "/config", "{bad json", kAdmin, 400},
      {http::Method::kPost, "/config", R"({"proxy":"h:1"})", kAdmin, 400},
      {http::Method::kPost, "/config", R"({"url":"not a url"})", kAdmin, 400},
      {http::Method::kPost, "/config", R"({"url":"ftp://example.com/x"})", kAdmin, 400},
      {http::Method::kPost, "/config", R"({"url":42})", kAdmin, 400},
      {http::Method::kPost, "/config", R"({"url":"http://example.com","proxy":"nohostport"})", kAdmin, 400},
      {http::Method::kPost, "/controller/config", R"(["url"])", kAdmin, 400},
      {http::Method::kPost, "/config", R"({"url":"http://example.com/)" + std::string(2 << 20, 'a') + "\"}", kAdmin, 413},
      {http::Method::kPost, "/register", R"({"hostname":"h"})", kAgentBasic, 400},
      {http::Method::kPost, "/register", R"({"hostname":"h","start_time":"yesterday"})", kAgentBasic, 400},
      {http::Method::kPost, "/register", R"({"start_time":"2026-11-22T07:00:00Z"})", kAgentBasic, 400},
      {http::Method::kPost, "/heartbeat", R"({"status":"ok"})", bearer(a.token), 400},
      {http::Method::kPost, "/heartbeat", R"({"config_version":7})", bearer(a.token), 400},
      {http::Method::kDelete, "/agents/unknown", "", kAdmin, 404},
      {http::Method::kPost, "/agents/unknown/token/rotate", "", kAdmin, 404},
      {http::Method::kPost, "/config/rollback/no-such-etag", "", kAdmin, 404},
  };
  for (const Case& k : cases) {
    auto r = call(k.m, c.url() + k.path, k.body, k.h);
    EXPECT_EQ(r.status, k.status) << k.path << " " << k.body.substr(0, 80) << " -> " << r.body;
  }

  // Wrong Basic credentials: 401, the challenge and the original's body.
  for (auto* path : {"/config", "/register"}) {
    auto r = call(http::Method::kPost, c.url() + path, R"({"url":"http://example.com"})",
                  {{"Authorization", "Basic YWRtaW46d3Jvbmc="}});  // admin:wrong
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.header("WWW-Authenticate"), "Basic realm=\"Restricted\"");
    EXPECT_EQ(r.body, R"({"message":"Invalid auth"})");
  }
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/agents").status, 401);
  // Agent credentials are not admin credentials.
  EXPECT_EQ(call(http::Method::kPost, c.url() + "/config", R"({"url":"http://example.com"})", kAgentBasic).status, 401);

  // Bearer failures, each with its own message.
  std::vector<std::pair<http::Headers, std::string>> bearers = {
      {{}, "missing authorization header"},
      {{{"Authorization", "Token abc"}}, "malformed authorization header"},
      {{{"Authorization", "Bearer "}}, "empty bearer token"},
      {{{"Authorization", "Bearer not-a-token"}}, "invalid api token"},
  };
  for (auto& [h, msg] : bearers) {
    auto r = call(http::Method::kGet, c.url() + "/config", "", h);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.body, R"({"success":false,"message":")" + msg + R"(","data":null})");
    EXPECT_EQ(call(http::Method::kPost, c.url() + "/heartbeat", R"({"config_version":"x"})", h).status, 401);
  }

  EXPECT_EQ(count_rows(c.db, "configurations"), configs);
  EXPECT_EQ(count_rows(c.db, "agent_configs"), agents);
  EXPECT_EQ(count_rows(c.db, "agents"), agents);
  EXPECT_EQ(c.role->stop(), 0);
}

TEST(FleetController, TokensAreStoredHashedRotationAndDeletionRevokeAtOnce) {
  Controller c;
  Registered a = register_agent(c.url());
  {
    auto db = store::sqlite::Db::open(c.db, {.create_dirs = false, .read_only = true});
    ASSERT_TRUE(db.is_ok());
    auto st = (*db)->prepare("SELECT api_token_hash FROM agent_configs");
    ASSERT_TRUE(st.is_ok() && st->step().is_ok());
    EXPECT_NE(st->text(0), a.token);
    EXPECT_EQ(st->text(0).size(), 64u);  // SHA-256, hex
  }
  auto rot = call(http::Method::kPost, c.url() + "/agents/" + a.id + "/token/rotate", "", kAdmin);
  ASSERT_EQ(rot.status, 200) << rot.body;
  json::value v = parse(rot.body);
  EXPECT_EQ(str(v, "message"), "token rotated");
  EXPECT_EQ(str(v, "agent_id"), a.id);
  std::string fresh = str(v, "api_token");
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", bearer(a.token)).status, 401);
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", bearer(fresh)).status, 200);

  auto del = call(http::Method::kDelete, c.url() + "/agents/" + a.id, "", kAdmin);
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(del.body, "\"agent deleted\"");
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config", "", bearer(fresh)).status, 401);
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/agents/" + a.id, "", kAdmin).status, 404);
  EXPECT_EQ(count_rows(c.db, "agent_configs"), 0);
  EXPECT_EQ(count_rows(c.db, "agents"), 0);
  EXPECT_EQ(c.role->stop(), 0);
}

TEST(FleetController, HistoryRollbackAndHeartbeatsShowInAgents) {
  Controller c;
  Registered a = register_agent(c.url());
  std::string e1 = post_config(c.url(), "http://example.com/one");
  std::string e2 = post_config(c.url(), "http://example.com/two", "proxy.local:3128:u:p");
  ASSERT_NE(e1, e2);

  json::value h = parse(call(http::Method::kGet, c.url() + "/config/history", "", kAdmin).body);
  ASSERT_EQ(h.at("total").as_int64(), 3);
  EXPECT_EQ(str(h.at("configurations").at(0), "etag"), e2);
  EXPECT_EQ(h.at("configurations").at(0).at("latest").as_bool(), true);
  EXPECT_EQ(str(h.at("configurations").at(1).at("config"), "url"), "http://example.com/one");

  auto rb = call(http::Method::kPost, c.url() + "/config/rollback/" + e1, "", kAdmin);
  ASSERT_EQ(rb.status, 200) << rb.body;
  std::string e3 = str(parse(rb.body), "etag");
  EXPECT_NE(e3, e1);
  auto now = call(http::Method::kGet, c.url() + "/config", "", bearer(a.token));
  json::value cfg = parse(now.body);
  EXPECT_EQ(str(cfg, "etag"), e3);
  EXPECT_EQ(str(cfg.at("config"), "url"), "http://example.com/one");
  EXPECT_EQ(count_rows(c.db, "configurations"), 4);  // append-only

  // A heartbeat is durable when answered and shows in GET /agents.
  auto hb = call(http::Method::kPost, c.url() + "/heartbeat", R"({"config_version":")" + e2 + R"(","status":"busy"})",
                 bearer(a.token));
  ASSERT_EQ(hb.status, 200) << hb.body;
  EXPECT_EQ(str(parse(hb.body), "latest_config_version"), e3);
  json::value list = parse(call(http::Method::kGet, c.url() + "/agents", "", kAdmin).body);
  ASSERT_EQ(list.at("total").as_int64(), 1);
  const json::value& ag = list.at("agents").at(0);
  EXPECT_EQ(str(ag, "last_config_version"), e2);
  EXPECT_EQ(str(ag, "status"), "online");
  EXPECT_EQ(str(ag, "reported_status"), "busy");
  EXPECT_FALSE(ag.at("config_up_to_date").as_bool());
  EXPECT_EQ(list.at("lagging").as_int64(), 1);
  {
    auto db = store::sqlite::Db::open(c.db, {.create_dirs = false, .read_only = true});
    auto st = (*db)->prepare("SELECT last_config_version, last_heartbeat FROM agents");
    ASSERT_TRUE(st.is_ok() && *st->step());
    EXPECT_EQ(st->text(0), e2);
    EXPECT_FALSE(st->is_null(1));
  }
  EXPECT_EQ(c.role->stop(), 0);
}

// The status GET /agents shows, and the census the alerts read (fleet_agents{status},
// fleet_agents_lagging), follow the age of the last heartbeat without any request.
TEST(FleetController, AgentStatusIsDerivedFromHeartbeatAge) {
  Controller c({}, 0, temp_dir(), {"--stale-after", "1s", "--offline-after", "2s"});
  Registered a = register_agent(c.url());
  auto status = [&] { return str(parse(call(http::Method::kGet, c.url() + "/agents/" + a.id, "", kAdmin).body), "status"); };
  auto gauge = [&](const std::string& series) { return metric(call(http::Method::kGet, c.url() + "/metrics").body, series); };
  auto census = [&](double online, double stale, double offline) {
    return gauge(R"(fleet_agents{status="online"})") == online && gauge(R"(fleet_agents{status="stale"})") == stale &&
           gauge(R"(fleet_agents{status="offline"})") == offline;
  };
  EXPECT_EQ(status(), "online");
  EXPECT_TRUE(census(1, 0, 0));
  EXPECT_TRUE(eventually([&] { return status() == "stale"; }, 5s));
  EXPECT_TRUE(eventually([&] { return census(0, 1, 0); }, 5s));
  EXPECT_TRUE(eventually([&] { return status() == "offline"; }, 5s));
  EXPECT_TRUE(eventually([&] { return census(0, 0, 1); }, 5s));
  // A heartbeat brings it back, reporting a version other than the latest: lagging.
  std::string latest = str(parse(call(http::Method::kGet, c.url() + "/config", "", bearer(a.token)).body), "etag");
  EXPECT_EQ(call(http::Method::kPost, c.url() + "/heartbeat", R"({"config_version":"x"})", bearer(a.token)).status, 200);
  EXPECT_EQ(status(), "online");
  EXPECT_TRUE(census(1, 0, 0));
  EXPECT_EQ(gauge("fleet_agents_lagging"), 1);
  EXPECT_EQ(call(http::Method::kPost, c.url() + "/heartbeat", R"({"config_version":")" + latest + R"("})", bearer(a.token)).status, 200);
  EXPECT_EQ(gauge("fleet_agents_lagging"), 0);
  EXPECT_EQ(c.role->stop(), 0);
}

TEST(FleetController, LongPollHoldsUntilANewVersion) {
  Controller c;
  Registered a = register_agent(c.url());
  std::string etag = str(parse(call(http::Method::kGet, c.url() + "/config", "", bearer(a.token)).body), "etag");
  auto h = bearer(a.token);
  h.emplace_back("If-None-Match", etag);
  // Nothing changes: 304 after the wait.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config?wait=1", "", h).status, 304);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  // A version published while held is answered at once.
  std::thread later([&] {
    std::this_thread::sleep_for(300ms);
    post_config(c.url(), "http://example.com/new");
  });
  auto r = call(http::Method::kGet, c.url() + "/config?wait=20", "", h);
  later.join();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(str(parse(r.body).at("config"), "url"), "http://example.com/new");
  EXPECT_EQ(call(http::Method::kGet, c.url() + "/config?wait=abc", "", h).status, 400);
  // A held request does not delay shutdown.
  std::thread held([&] {
    auto h2 = bearer(a.token);
    h2.emplace_back("If-None-Match", std::string(r.header("ETag")));
    EXPECT_EQ(call(http::Method::kGet, c.url() + "/config?wait=60", "", h2).status, 304);
  });
  std::this_thread::sleep_for(300ms);
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c.role->stop(), 0);
  held.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST(FleetController, PostgresStoreKeepsStateAcrossRestart) {
  FreshDatabase db("fleet");
  ASSERT_FALSE(db.url.empty());
  std::string url = db.url;

  uint16_t port = http::testing::free_loopback_port();
  std::string etag;
  Registered a;
  {
    Role c("controller", {{"DATABASE_URL", url}}, {}, port);
    a = register_agent(c.url());
    etag = post_config(c.url(), "http://example.com/pg");
    EXPECT_EQ(call(http::Method::kPost, c.url() + "/heartbeat", R"({"config_version":")" + etag + "\"}", bearer(a.token)).status, 200);
    EXPECT_EQ(c.stop(), 0);
  }
  {
    Role c("controller", {{"DATABASE_URL", url}}, {}, port);
    auto r = call(http::Method::kGet, c.url() + "/config", "", bearer(a.token));
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(str(parse(r.body), "etag"), etag);
    json::value list = parse(call(http::Method::kGet, c.url() + "/agents", "", kAdmin).body);
    EXPECT_EQ(str(list.at("agents").at(0), "last_config_version"), etag);
    EXPECT_EQ(c.stop(), 0);
  }
}

// Two controllers on one PostgreSQL: a token rotated or an agent deleted on one stops working
// on the other within refresh_interval (it used to stay valid there until a restart).
TEST(FleetController, TokenRotationAndDeletionReachEveryControllerSharingTheDatabase) {
  FreshDatabase db("fleet");
  ASSERT_FALSE(db.url.empty());
  Role a_ctl("controller", {{"DATABASE_URL", db.url}, {"REFRESH_INTERVAL", "200ms"}});
  Role b_ctl("controller", {{"DATABASE_URL", db.url}, {"REFRESH_INTERVAL", "200ms"}});
  Registered a = register_agent(a_ctl.url());
  auto poll_b = [&](const std::string& token) {
    return call(http::Method::kGet, b_ctl.url() + "/config", "", bearer(token)).status;
  };
  EXPECT_EQ(poll_b(a.token), 200);  // B learns the token from the database
  auto rot = call(http::Method::kPost, a_ctl.url() + "/agents/" + a.id + "/token/rotate", "", kAdmin);
  ASSERT_EQ(rot.status, 200) << rot.body;
  std::string fresh = str(parse(rot.body), "api_token");
  EXPECT_TRUE(eventually([&] { return poll_b(a.token) == 401; }, 2s)) << "the rotated-out token still works on B";
  EXPECT_EQ(poll_b(fresh), 200);
  // An interval set on A is told by B too.
  ASSERT_EQ(call(http::Method::kPut, a_ctl.url() + "/agents/" + a.id + "/interval", R"({"poll_interval_seconds":42})", kAdmin).status, 200);
  EXPECT_TRUE(eventually([&] {
    return call(http::Method::kGet, b_ctl.url() + "/config", "", bearer(fresh)).header("X-Poll-Interval-Seconds") == "42";
  }, 2s));
  ASSERT_EQ(call(http::Method::kDelete, a_ctl.url() + "/agents/" + a.id, "", kAdmin).status, 200);
  EXPECT_TRUE(eventually([&] { return poll_b(fresh) == 401; }, 2s)) << "a deleted agent's token still works on B";
  EXPECT_EQ(call(http::Method::kGet, b_ctl.url() + "/agents/" + a.id, "", kAdmin).status, 404);
}

// Store calls used to run on the HTTP threads without a time limit: a frozen PostgreSQL held a
// write forever and stalled every request on that thread. Now a write fails 503 after
// DB_TIMEOUT while polls answered from memory keep answering in milliseconds.
TEST(FleetController, FrozenPostgresFailsWritesWith503WhilePollsGoOn) {
  PrivatePostgres pg;
  Role c("controller", {{"DATABASE_URL", pg.url()}, {"DB_TIMEOUT", "2s"}, {"HTTP_THREADS", "2"}});
  Registered a = register_agent(c.url());
  std::string etag = post_config(c.url(), "http://example.com/before");
  http::Client polls(http::ClientOptions{.timeout = 2s});
  auto poll = [&]() -> std::pair<int, std::chrono::steady_clock::duration> {
    auto h = bearer(a.token);
    h.emplace_back("If-None-Match", etag);
    auto t0 = std::chrono::steady_clock::now();
    auto r = polls.get(c.url() + "/config", h);
    return {r.is_ok() ? r->status : -1, std::chrono::steady_clock::now() - t0};
  };
  EXPECT_EQ(poll().first, 304);

  pg.freeze();
  std::atomic<int> write_status{0};
  std::chrono::steady_clock::duration write_took{};
  std::thread writer([&] {
    auto t0 = std::chrono::steady_clock::now();
    http::ClientRequest req;
    req.method = http::Method::kPost;
    req.url = c.url() + "/config";
    req.headers = kAdmin;
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = R"({"url":"http://example.com/during"})";
    req.timeout = 30s;
    auto r = client().send(req);
    write_took = std::chrono::steady_clock::now() - t0;
    write_status = r.is_ok() ? r->status : -1;
  });
  int polled = 0;
  while (write_status == 0 && polled < 200) {  // while the write is stuck in the database
    auto [status, took] = poll();
    EXPECT_EQ(status, 304);
    EXPECT_LT(took, 500ms) << "poll " << polled;
    ++polled;
    std::this_thread::sleep_for(20ms);
  }
  writer.join();
  EXPECT_GT(polled, 10);
  EXPECT_EQ(write_status.load(), 503);
  EXPECT_LT(write_took, 10s);
  pg.freeze(false);
  // The write answered 503 was already sent: the woken server may still run it. Let it land
  // before the next write, so "after" is the newest version.
  std::this_thread::sleep_for(2s);

  // Writes work again once the database answers.
  std::string after = post_config(c.url(), "http://example.com/after");
  EXPECT_FALSE(after.empty());
  auto r = call(http::Method::kGet, c.url() + "/config", "", bearer(a.token));
  EXPECT_EQ(str(parse(r.body), "etag"), after);
  EXPECT_EQ(c.stop(), 0);
}

// ---- agents and workers ---------------------------------------------------------------

TEST(FleetWorker, HitsDirectlyAndThroughAProxy) {
  std::string proxy = server_url("GANTRY_PROXY_URL");
  ASSERT_FALSE(proxy.empty());
  auto [phost, pport] = host_port(proxy);
  WorkerTarget target;
  Role w("worker", {});

  auto none = call(http::Method::kPost, w.url() + "/hit");
  EXPECT_EQ(none.status, 400);
  EXPECT_EQ(none.body, R"({"success":false,"message":"no configuration available","data":null})");
  EXPECT_EQ(call(http::Method::kPost, w.url() + "/config", R"({"etag":""})").status, 400);
  EXPECT_EQ(call(http::Method::kPost, w.url() + "/config", "nope").status, 400);

  std::string cfg = R"({"id":1,"etag":"e1","config_data":{"url":")" + target.url("/page") + R"(","proxy":""}})";
  auto set = call(http::Method::kPost, w.url() + "/config", cfg);
  EXPECT_EQ(set.status, 200);
  auto again = call(http::Method::kPost, w.url() + "/config", cfg);
  EXPECT_EQ(again.body, R"({"message":"Configuration already up-to-date","etag":"e1"})");
  json::value health = parse(call(http::Method::kGet, w.url() + "/health").body);
  EXPECT_TRUE(health.at("configured").as_bool());
  EXPECT_EQ(str(health, "target_url"), target.url("/page"));

  auto hit = call(http::Method::kPost, w.url() + "/hit");
  ASSERT_EQ(hit.status, 200) << hit.body;
  json::value d = parse(hit.body).at("data");
  EXPECT_EQ(str(d, "data"), "Fleet target page");
  EXPECT_EQ(d.at("status_code").as_int64(), 200);
  EXPECT_EQ(str(d, "etag"), "e1");
  {
    std::lock_guard lk(target.mu);
    EXPECT_EQ(target.via, "");  // direct
  }

  std::string via_proxy = R"({"id":2,"etag":"e2","config_data":{"url":")" + target.url("/page") + R"(","proxy":")" +
                          phost + ":" + std::to_string(pport) + R"("}})";
  EXPECT_EQ(call(http::Method::kPost, w.url() + "/config", via_proxy).status, 200);
  auto hit2 = call(http::Method::kGet, w.url() + "/hit");
  ASSERT_EQ(hit2.status, 200) << hit2.body;
  EXPECT_EQ(str(parse(hit2.body).at("data"), "data"), "Fleet target page");
  {
    std::lock_guard lk(target.mu);
    EXPECT_NE(target.via.find("tinyproxy"), std::string::npos) << "Via: " << target.via;
  }

  std::string plain = R"({"etag":"e3","config_data":{"url":")" + target.url("/plain") + R"("}})";
  EXPECT_EQ(call(http::Method::kPost, w.url() + "/config", plain).status, 200);
  EXPECT_EQ(str(parse(call(http::Method::kPost, w.url() + "/hit").body).at("data"), "data"), "just text");

  std::string dead = R"({"etag":"e4","config_data":{"url":"http://127.0.0.1:1/"}})";
  EXPECT_EQ(call(http::Method::kPost, w.url() + "/config", dead).status, 200);
  auto fail = call(http::Method::kPost, w.url() + "/hit");
  EXPECT_EQ(fail.status, 500);
  EXPECT_NE(fail.body.find(R"("success":false,"message":"failed to perform request: )"), std::string::npos) << fail.body;
  EXPECT_EQ(w.stop(), 0);
}

TEST(FleetAgent, FirstFetchReachesTheWorkerAndTokenLossReregisters) {
  Controller c(EnvVars{{"POLL_INTERVAL", "1"}});
  std::string etag = post_config(c.url(), "http://example.com/first");
  Pair p(c.url());
  // The original left the worker idle until the next change; ours gets the current version.
  ASSERT_TRUE(eventually([&] { return worker_etag(p.worker) == etag; })) << p.health();
  json::value list = parse(call(http::Method::kGet, c.url() + "/agents", "", kAdmin).body);
  ASSERT_EQ(list.at("total").as_int64(), 1);
  std::string first_id = str(list.at("agents").at(0), "agent_id");
  EXPECT_TRUE(eventually([&] {
    json::value l = parse(call(http::Method::kGet, c.url() + "/agents", "", kAdmin).body);
    return str(l.at("agents").at(0), "last_config_version") == etag;
  })) << "heartbeats carry the version the worker runs";

  // Rotating the token behind the agent's back: it registers again.
  EXPECT_EQ(call(http::Method::kPost, c.url() + "/agents/" + first_id + "/token/rotate", "", kAdmin).status, 200);
  ASSERT_TRUE(eventually([&] {
    return parse(call(http::Method::kGet, c.url() + "/agents", "", kAdmin).body).at("total").as_int64() == 2;
  })) << p.health();
  // Deleting it: again.
  std::string second_id = str(parse(p.health()), "agent_id");
  EXPECT_NE(second_id, first_id);
  EXPECT_EQ(call(http::Method::kDelete, c.url() + "/agents/" + second_id, "", kAdmin).status, 200);
  ASSERT_TRUE(eventually([&] {
    std::string id = str(parse(p.health()), "agent_id");
    return id != second_id && !id.empty() && parse(p.health()).at("registered").as_bool();
  })) << p.health();
  // And it still follows new versions.
  std::string e2 = post_config(c.url(), "http://example.com/after");
  EXPECT_TRUE(eventually([&] { return worker_etag(p.worker) == e2; }));
  // An interval set by the operator reaches the agent with its next answer.
  std::string third_id = str(parse(p.health()), "agent_id");
  EXPECT_EQ(call(http::Method::kPut, c.url() + "/agents/" + third_id + "/poll-interval", R"({"pollIntervalSeconds":2})", kAdmin).status, 200);
  EXPECT_TRUE(eventually([&] { return parse(p.health()).at("poll_interval_seconds").as_int64() == 2; })) << p.health();
}

TEST(FleetAgent, ForwardingRetriesUntilTheWorkerIsUp) {
  Controller c(EnvVars{{"POLL_INTERVAL", "1"}});
  std::string etag = post_config(c.url(), "http://example.com/late-worker");
  uint16_t wport = http::testing::free_loopback_port();
  Role agent("agent",
             {{"CONTROLLER_URL", c.url()}, {"WORKER_URL", "http://127.0.0.1:" + std::to_string(wport)}},
             {"--forward-initial-backoff", "100ms", "--forward-max-backoff", "300ms", "--forward-max-retries", "50"});
  std::this_thread::sleep_for(500ms);  // a few refused attempts
  Role worker("worker", {}, {}, wport);
  EXPECT_TRUE(eventually([&] { return worker_etag(worker) == etag; })) << agent.proc->out();
  auto m = client().get(agent.url() + "/metrics");
  ASSERT_TRUE(m.is_ok());
  EXPECT_NE(m->body.find("resilience_retries_total{policy=\"forward\"}"), std::string::npos);
}

TEST(FleetAgent, GivesUpRegisteringWithAClearMessage) {
  uint16_t dead = http::testing::free_loopback_port();
  Child agent({kBin, "agent", "--port", "0", "--address", "127.0.0.1"},
              {{"CONTROLLER_URL", "http://127.0.0.1:" + std::to_string(dead)},
               {"REGISTRATION_MAX_RETRIES", "2"},
               {"REGISTRATION_INITIAL_BACKOFF", "50ms"}});
  int status = agent.wait(20s);
  EXPECT_EQ(status, 1) << agent.out() << agent.err();
  EXPECT_NE((agent.out() + agent.err()).find("registration failed; giving up"), std::string::npos);
}

TEST(FleetAgent, ControllerRestartKeepsAgentsWorkingWithTheirTokens) {
  std::string dir = temp_dir();
  uint16_t port = http::testing::free_loopback_port();
  auto c = std::make_unique<Controller>(std::map<std::string, std::string>{{"POLL_INTERVAL", "1"}}, port, dir);
  Pair p("http://127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(eventually([&] { return !worker_etag(p.worker).empty(); }));
  std::string id = str(parse(p.health()), "agent_id");
  EXPECT_EQ(c->role->stop(), 0);
  c.reset();
  c = std::make_unique<Controller>(std::map<std::string, std::string>{{"POLL_INTERVAL", "1"}}, port, dir);
  std::string etag = post_config(c->url(), "http://example.com/after-restart");
  EXPECT_TRUE(eventually([&] { return worker_etag(p.worker) == etag; }, 15s)) << p.health();
  // Same agent, same token: nobody registered again.
  EXPECT_EQ(str(parse(p.health()), "agent_id"), id);
  EXPECT_EQ(parse(call(http::Method::kGet, c->url() + "/agents", "", kAdmin).body).at("total").as_int64(), 1);
}

// Push by Redis, long-poll while Redis is down, push again once it is back; and fallback
// polling when no push ever comes.
TEST(FleetAgent, NewVersionsArriveByRedisPushByLongPollAndByFallbackPoll) {
  uint16_t rport = http::testing::free_loopback_port();
  std::vector<std::string> redis_argv{"redis-server", "--port", std::to_string(rport), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"};
  auto redis = std::make_unique<Child>(redis_argv);
  ASSERT_NE(redis->wait_for_output("Ready to accept connections", 10s), "");
  std::map<std::string, std::string> redis_env{
      {"REDIS_ENABLED", "true"}, {"REDIS_HOST", "127.0.0.1"}, {"REDIS_PORT", std::to_string(rport)}};

  auto cenv = redis_env;
  cenv["POLL_INTERVAL"] = "20";  // long polls held long: a quick arrival is not a poll
  Controller c(cenv);
  auto aenv = redis_env;
  aenv["AGENT_FALLBACK_POLL_INTERVAL"] = "60s";
  Pair p1(c.url(), aenv), p2(c.url(), aenv);
  auto pushing = [&](Pair& p) { return p.health().find(R"("push":"redis")") != std::string::npos; };
  ASSERT_TRUE(eventually([&] { return pushing(p1) && pushing(p2); })) << p1.health();
  ASSERT_TRUE(eventually([&] { return !worker_etag(p1.worker).empty() && !worker_etag(p2.worker).empty(); }));

  std::string e1 = post_config(c.url(), "http://example.com/push");
  EXPECT_TRUE(eventually([&] { return worker_etag(p1.worker) == e1 && worker_etag(p2.worker) == e1; }, 5s));
  auto pushes = [&](Pair& p) {
    auto m = client().get(p.agent->url() + "/metrics");
    auto at = m->body.find("\nfleet_agent_pushes_total ");
    return at == std::string::npos ? -1 : std::stoi(m->body.substr(at + 26));
  };
  EXPECT_GE(pushes(p1), 1);

  // Redis stopped: agents long-poll.
  redis->signal(SIGKILL);
  redis->wait(5s);
  redis.reset();
  ASSERT_TRUE(eventually([&] { return !pushing(p1) && !pushing(p2); }, 30s)) << p1.health();
  std::this_thread::sleep_for(300ms);  // let both settle into a held long poll
  std::string e2 = post_config(c.url(), "http://example.com/long-poll");
  EXPECT_TRUE(eventually([&] { return worker_etag(p1.worker) == e2 && worker_etag(p2.worker) == e2; }, 5s));

  // Redis back on the same port: push resumes.
  redis = std::make_unique<Child>(redis_argv);
  ASSERT_NE(redis->wait_for_output("Ready to accept connections", 10s), "");
  ASSERT_TRUE(eventually([&] { return pushing(p1) && pushing(p2); }, 30s)) << p1.health();
  int before = pushes(p1);
  std::string e3 = post_config(c.url(), "http://example.com/push-again");
  EXPECT_TRUE(eventually([&] { return worker_etag(p1.worker) == e3 && worker_etag(p2.worker) == e3; }, 5s));
  EXPECT_TRUE(eventually([&] { return pushes(p1) > before; }, 5s));

  // An agent that listens on Redis where nobody publishes still converges by its fallback poll.
  Controller quiet(EnvVars{{"POLL_INTERVAL", "20"}});
  auto fenv = redis_env;
  fenv["AGENT_FALLBACK_POLL_INTERVAL"] = "1s";
  Pair f(quiet.url(), fenv);
  ASSERT_TRUE(eventually([&] { return pushing(f) && !worker_etag(f.worker).empty(); }));
  std::string e4 = post_config(quiet.url(), "http://example.com/fallback");
  EXPECT_TRUE(eventually([&] { return worker_etag(f.worker) == e4; }, 5s));
}

}  // namespace
}  // namespace gantry::testing
