// gantry orchestrator and gantry scan-bridge as processes against the real PostgreSQL and
// RabbitMQ of scripts/servers. The broker is checked with clients nobody here wrote
// (rabbitmqctl, amqp-get, amqp-publish from amqp-tools). Each test has its own PostgreSQL
// schema (POSTGRESQL_SCHEMA) and its own service names, so tests running side by side share
// neither a table nor a queue; the topology test has a virtual host of its own.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>

#include <boost/json.hpp>

#include "core/http/auth.h"
#include "core/http/client.h"
#include "core/http/router.h"
#include "core/http/server.h"
#include "core/http/test_socket.h"
#include "env.h"
#include "private_servers.h"
#include "process.h"
#include "store/postgres/pg.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace http = core::http;
namespace pg = store::postgres;
const std::string kServers = std::string(GANTRY_SOURCE_DIR) + "/scripts/servers";

std::string random_tag() {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", rd());
  return buf;
}

Ran rabbitmqctl_run(std::vector<std::string> args) {
  std::vector<std::string> argv{"bash", kServers, "rabbitmqctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {}, 60s);
}

// One message from a queue with amqp-get; nullopt when the queue is empty.
std::optional<std::string> amqp_get(const std::string& url, const std::string& queue) {
  auto r = run({"amqp-get", "-u", url, "-q", queue}, {}, 20s);
  if (r.status == 2) return std::nullopt;
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}

void amqp_publish(const std::string& url, const std::string& key, const std::string& body) {
  auto r = run({"amqp-publish", "-u", url, "-e", "cptm8", "-r", key, "-b", body}, {}, 20s);
  EXPECT_EQ(r.status, 0) << r.err;
}

// Waits for one message (polling amqp-get).
std::optional<std::string> await_message(const std::string& url, const std::string& queue, std::chrono::milliseconds limit = 10s) {
  std::optional<std::string> got;
  eventually([&] { return (got = amqp_get(url, queue)).has_value(); }, limit);
  return got;
}

// Stops a role with SIGTERM and expects a clean exit: a race found by a TSan build, a crash or
// a shutdown that hangs fails the test here.
void expect_clean_stop(Child& c, const std::string& what) {
  c.signal(SIGTERM);
  int st = c.wait(30s);
  EXPECT_EQ(st, 0) << what << " did not stop cleanly\n" << c.out() << c.err();
}

struct Deployment {
  std::string tag = random_tag();
  std::string schema = "orch_" + tag;
  std::string pg_url = server_url("GANTRY_PG_URL");
  std::string amqp_url = server_url("GANTRY_AMQP_URL");
  std::vector<std::string> services{"asmm8-" + tag, "naabum8-" + tag, "katanam8-" + tag, "num8-" + tag};

  std::string services_flag() const {
    std::string s;
    for (auto& v : services) s += (s.empty() ? "" : ",") + v;
    return s;
  }
  std::string kick_queue() const { return "q" + services[0]; }
  // A session in the deployment's schema.
  std::unique_ptr<pg::Connection> db() const {
    auto c = pg::Connection::connect(pg_url + "&options=-csearch_path%3D" + schema);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() ? std::move(*c) : nullptr;
  }
  ~Deployment() {
    if (auto c = pg::Connection::connect(pg_url); c.is_ok()) (void)(*c)->exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
    for (auto& s : services) {
      run({"amqp-delete-queue", "-u", amqp_url, "-q", "q" + s}, {}, 20s);
      run({"amqp-delete-queue", "-u", amqp_url, "-q", "q" + s + ".dlq"}, {}, 20s);
    }
  }
};

struct Orchestrator {
  Orchestrator(const Deployment& d, std::vector<std::string> extra = {}, std::string amqp_url = "") {
    std::vector<std::string> argv{kBin, "orchestrator", "launch", "--ip", "127.0.0.1", "--port", "0",
                                  "--db-url", d.pg_url, "--amqp-url", amqp_url.empty() ? d.amqp_url : amqp_url,
                                  "--postgresql-schema", d.schema, "--services", d.services_flag(), "--leader-retry", "250ms"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc = std::make_unique<Child>(argv);
    std::string out = proc->wait_for_output("url=http://", 60s);
    EXPECT_NE(out, "") << proc->out() << proc->err();
    std::smatch m;
    if (std::regex_search(out, m, std::regex(R"(url=http://[0-9.]+:([0-9]+))"))) port = std::stoi(m[1]);
  }
  ~Orchestrator() {
    if (!killed) expect_clean_stop(*proc, "orchestrator");
  }
  void kill9() {
    killed = true;
    proc->signal(SIGKILL);
    proc->wait(5s);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
  std::string metrics() const {
    static http::Client c;
    auto r = c.get(url("/metrics"));
    return r.is_ok() ? r->body : "";
  }
  double publishes() const { return metric(metrics(), "orchestrator_publishes_total"); }
  bool leader() const {
    static http::Client c;
    auto r = c.get(url("/ready"));
    return r.is_ok() && r->body.find(R"("leader":"leader")") != std::string::npos;
  }
  int port = 0;
  bool killed = false;
  std::unique_ptr<Child> proc;
};

http::ClientResponse api_call(http::Method m, const std::string& url, std::string body = {}, std::string user = "admin",
                          std::string password = "password") {
  static http::Client c;
  http::ClientRequest req;
  req.method = m;
  req.url = url;
  req.body = std::move(body);
  if (!user.empty()) req.headers.emplace_back("Authorization", "Basic " + http::base64_encode(user + ":" + password));
  req.headers.emplace_back("Content-Type", "application/json");
  auto r = c.send(req);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : http::ClientResponse{};
}

std::string create(const Orchestrator& o, const std::string& name, bool enabled = true) {
  auto r = api_call(http::Method::kPost, o.url("/domains"),
                R"({"name":")" + name + R"(","companyname":"Acme","enabled":)" + (enabled ? "true" : "false") + "}");
  EXPECT_EQ(r.status, 201) << r.body;
  auto v = boost::json::parse(r.body);
  return std::string(v.at("id").as_string());
}

int64_t rows(const Deployment& d) {
  auto c = d.db();
  auto r = c->query("SELECT count(*) FROM cptm8domain");
  return r.is_ok() ? r->int64(0, 0) : -1;
}

// The topology, checked with rabbitmqctl in a virtual host of its own; the kick read with
// amqp-get and compared with the spec's body; a second kick while one is queued is pending.
TEST(Orchestrator, DeclaresTheScannersTopologyAndKicksOnceWithTheSpecsBody) {
  Deployment d;
  d.services = {"asmm8", "naabum8", "katanam8", "num8"};
  std::string vhost = "orch-" + d.tag;
  ASSERT_EQ(rabbitmqctl_run({"add_vhost", vhost}).status, 0);
  ASSERT_EQ(rabbitmqctl_run({"set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"}).status, 0);
  struct Drop {
    std::string vhost;
    ~Drop() { rabbitmqctl_run({"delete_vhost", vhost}); }
  } drop{vhost};
  std::string amqp = d.amqp_url + "/" + vhost;
  Orchestrator o(d, {}, amqp);

  auto queues = rabbitmqctl_run({"list_queues", "-p", vhost, "name", "arguments", "durable", "--no-table-headers", "-q"});
  ASSERT_EQ(queues.status, 0) << queues.err;
  for (auto& svc : d.services)
    EXPECT_NE(queues.out.find("q" + svc + "\t[{\"x-max-length\",1},{\"x-overflow\",\"reject-publish\"}]\ttrue"), std::string::npos)
        << queues.out;
  auto exchanges = rabbitmqctl_run({"list_exchanges", "-p", vhost, "name", "type", "durable", "auto_delete", "internal",
                                "--no-table-headers", "-q"});
  for (const char* ex : {"cptm8", "scheduler", "notification"})
    EXPECT_NE(exchanges.out.find(std::string(ex) + "\ttopic\ttrue\tfalse\tfalse"), std::string::npos) << exchanges.out;
  auto bindings = rabbitmqctl_run({"list_bindings", "-p", vhost, "source_name", "destination_name", "routing_key",
                               "--no-table-headers", "-q"});
  for (auto& svc : d.services)
    EXPECT_NE(bindings.out.find("cptm8\tq" + svc + "\tcptm8." + svc + ".#"), std::string::npos) << bindings.out;

  create(o, "one.example.com");
  auto kick = await_message(amqp, "qasmm8");
  ASSERT_TRUE(kick.has_value()) << o.proc->out();
  std::smatch m;
  ASSERT_TRUE(std::regex_match(*kick, m, std::regex(
      R"re(\{"channel":"cptm8\.asmm8\.get\.scan","timestamp":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z)","source":"orchestratorm8"\})re")))
      << *kick;
  EXPECT_FALSE(amqp_get(amqp, "qasmm8").has_value()) << "exactly one kick";

  // Two inserts while one kick is queued: the second is refused by the full queue and
  // reported as already pending (not an error), and the queued kick stays.
  create(o, "two.example.com");
  ASSERT_TRUE(eventually([&] { return metric(o.metrics(), "orchestrator_kick_outcomes_total{outcome=\"confirmed\"}") == 2; }));
  create(o, "three.example.com");
  ASSERT_TRUE(eventually([&] { return metric(o.metrics(), "orchestrator_kick_outcomes_total{outcome=\"already_pending\"}") == 1; }))
      << o.metrics();
  EXPECT_EQ(metric(o.metrics(), "orchestrator_kick_outcomes_total{outcome=\"failed\"}"), 0);
  EXPECT_TRUE(amqp_get(amqp, "qasmm8").has_value());
  EXPECT_FALSE(amqp_get(amqp, "qasmm8").has_value());
}

TEST(Orchestrator, KicksOnInsertOrEnableOnlyAndAgainAfterAllWereDisabled) {
  Deployment d;
  Orchestrator o(d);
  ASSERT_TRUE(eventually([&] { return o.leader(); })) << o.proc->out();
  std::string off = create(o, "off.example.com", false);
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(amqp_get(d.amqp_url, d.kick_queue()).has_value()) << "a disabled domain kicked";

  EXPECT_EQ(api_call(http::Method::kPut, o.url("/domains/" + off), R"({"enabled":true})").status, 200);
  EXPECT_TRUE(await_message(d.amqp_url, d.kick_queue()).has_value()) << "enabling did not kick";
  EXPECT_EQ(api_call(http::Method::kPut, o.url("/domains/" + off), R"({"companyname":"Other"})").status, 200);
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(amqp_get(d.amqp_url, d.kick_queue()).has_value()) << "a rename of an enabled domain kicked";

  // Everything disabled, then one enabled (directly in the table, as another writer would).
  auto db = d.db();
  ASSERT_TRUE(db->exec("UPDATE cptm8domain SET enabled = false").is_ok());
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(amqp_get(d.amqp_url, d.kick_queue()).has_value());
  ASSERT_TRUE(db->exec("UPDATE cptm8domain SET enabled = true WHERE name = 'off.example.com'").is_ok());
  EXPECT_TRUE(await_message(d.amqp_url, d.kick_queue()).has_value()) << "empty -> non-empty did not kick";
  EXPECT_EQ(metric(o.metrics(), "orchestrator_enabled_domains"), 1);
}

// The LISTEN session killed: a new one, a full re-read, and the change made while nobody
// listened still kicks.
TEST(Orchestrator, ListenSessionTerminatedIsReplacedAndMissesNoChange) {
  Deployment d;
  Orchestrator o(d);
  ASSERT_TRUE(eventually([&] { return o.leader(); }));
  auto db = d.db();
  auto killed = db->query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                          {"gantry-orchestrator-listen/" + d.schema});
  ASSERT_TRUE(killed.is_ok()) << killed.status().to_string();
  ASSERT_EQ(killed->size(), 1);
  // Inserted at once: the notification goes to no listener.
  ASSERT_TRUE(db->exec("INSERT INTO cptm8domain (name, companyname) VALUES ('missed.example.com', 'Acme')").is_ok());
  EXPECT_TRUE(await_message(d.amqp_url, d.kick_queue()).has_value()) << o.proc->out();
  EXPECT_TRUE(eventually([&] { return metric(o.metrics(), "orchestrator_reconciles_total{reason=\"missed_notifications\"}") >= 1; }))
      << o.metrics();
  EXPECT_NE(o.proc->wait_for_output("listening again", 10s), "");
  // And notifications flow again.
  EXPECT_EQ(api_call(http::Method::kPut, o.url("/domains/" + create(o, "later.example.com", false)), R"({"enabled":true})").status, 200);
  EXPECT_TRUE(await_message(d.amqp_url, d.kick_queue()).has_value());
}

// Two instances: one leads and publishes; kill -9 it and the standby takes over within 5 s,
// kicking for the enabled set it finds.
TEST(Orchestrator, OnlyTheLeaderPublishesAndTheStandbyTakesOverWithinFiveSeconds) {
  Deployment d;
  auto a = std::make_unique<Orchestrator>(d);
  ASSERT_TRUE(eventually([&] { return a->leader(); }));
  Orchestrator b(d);
  std::this_thread::sleep_for(1s);
  EXPECT_FALSE(b.leader());
  create(*a, "led.example.com");
  EXPECT_TRUE(await_message(d.amqp_url, d.kick_queue()).has_value());
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(a->publishes(), 1);
  EXPECT_EQ(b.publishes(), 0);

  auto t0 = std::chrono::steady_clock::now();
  a->kill9();
  auto kick = await_message(d.amqp_url, d.kick_queue(), 10s);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(kick.has_value()) << b.proc->out();
  EXPECT_LT(took, 5s);
  EXPECT_TRUE(b.leader());
  EXPECT_EQ(b.publishes(), 1);
}

// The leader's lock session terminated: it stops publishing before the other starts, so the
// handover publishes exactly one kick (the new leader's), never one from each.
TEST(Orchestrator, LockSessionTerminatedHandsOverWithoutTwoLeaders) {
  Deployment d;
  Orchestrator a(d);
  ASSERT_TRUE(eventually([&] { return a.leader(); }));
  Orchestrator b(d);
  create(a, "lock.example.com");
  ASSERT_TRUE(await_message(d.amqp_url, d.kick_queue()).has_value());
  std::this_thread::sleep_for(300ms);
  double a0 = a.publishes();
  ASSERT_EQ(a0, 1);
  auto db = d.db();
  auto killed = db->query(
      "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity s USING (pid) "
      "WHERE l.locktype = 'advisory' AND l.granted AND s.application_name = $1",
      {"gantry-orchestrator-lock/" + d.schema});
  ASSERT_TRUE(killed.is_ok()) << killed.status().to_string();
  ASSERT_EQ(killed->size(), 1);
  ASSERT_TRUE(eventually([&] { return b.leader(); }, 10s)) << b.proc->out();
  EXPECT_TRUE(await_message(d.amqp_url, d.kick_queue()).has_value());
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(a.leader());
  EXPECT_EQ(a.publishes(), a0) << "the old leader published after losing its lock session";
  EXPECT_EQ(b.publishes(), 1);
  EXPECT_NE(a.proc->wait_for_output("leadership lost", 5s), "");
}

// A broker of its own (scripts/servers in a private run directory), restarted: the kick
// confirmed before the restart is still queued after it (durable queue, persistent message),
// the kick owed during the restart is published once the broker is back, and publishing
// goes on without operator action.
TEST(Orchestrator, RabbitMqRestartedLosesNoConfirmedKickAndPublishingResumes) {
  PrivateAmqp broker;
  ASSERT_FALSE(broker.url.empty());
  std::string amqp = broker.url;

  Deployment d;
  d.amqp_url = amqp;
  Orchestrator o(d);
  ASSERT_TRUE(eventually([&] { return o.leader(); }));
  create(o, "before.example.com");
  ASSERT_TRUE(eventually([&] { return metric(o.metrics(), "orchestrator_kick_outcomes_total{outcome=\"confirmed\"}") == 1; }));

  std::thread restart([&] { EXPECT_EQ(broker.servers({"restart", "amqp"}).status, 0); });
  std::this_thread::sleep_for(1s);
  create(o, "during.example.com");  // the database is up: the change is noticed, its kick is owed
  restart.join();
  auto kept = await_message(amqp, d.kick_queue(), 30s);
  ASSERT_TRUE(kept.has_value()) << "the confirmed kick was lost in the restart\n" << o.proc->out();
  // The owed kick: published once the broker is back (or found the queue full: pending).
  EXPECT_TRUE(eventually([&] {
    auto m = o.metrics();
    return metric(m, "orchestrator_kick_outcomes_total{outcome=\"confirmed\"}") +
               metric(m, "orchestrator_kick_outcomes_total{outcome=\"already_pending\"}") >= 2;
  }, 30s)) << o.metrics();
  (void)amqp_get(amqp, d.kick_queue());
  create(o, "after.example.com");
  EXPECT_TRUE(await_message(amqp, d.kick_queue(), 30s).has_value()) << "publishing did not resume\n" << o.proc->out();
}

// Telemetry and the Orchestrator in one database: each keeps its applied versions in a table
// of its own, so neither refuses the other's (both have a migration 1), and a second run of
// each changes nothing.
TEST(OrchestratorSchema, MigratesBesideTelemetryInOneDatabase) {
  FreshDatabase db("orch_and_tel");
  for (int round = 0; round < 2; ++round)
    for (const char* system : {"telemetry", "orchestrator"}) {
      auto r = run({kBin, "migrate", system, "--db-url", db.url, "--log-level", "debug"}, {}, 60s);
      EXPECT_EQ(r.status, 0) << system << "\n" << r.out << r.err;
      EXPECT_NE(r.out.find("schema migrated system=" + std::string(system)), std::string::npos) << r.out;
      // The server's notices ("… does not exist, skipping") are log lines, not libpq's raw stderr.
      EXPECT_EQ(r.err.find("NOTICE:"), std::string::npos) << r.err;
      if (round == 0 && std::string(system) == "orchestrator") {
        EXPECT_NE(r.out.find("server notice severity=NOTICE"), std::string::npos) << r.out;
      }
    }
  auto c = pg::Connection::connect(db.url);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ((*c)->query("SELECT count(*) FROM orchestrator_schema_migrations")->int64(0, 0), 2);
  EXPECT_EQ((*c)->query("SELECT count(*) FROM cptm8domain")->int64(0, 0), 0);
}

TEST(DomainApi, BadInputIsRefusedAndChangesNothing) {
  Deployment d;
  Orchestrator o(d);
  std::string id = create(o, "kept.example.com");
  auto post = [&](const std::string& body) { return api_call(http::Method::kPost, o.url("/domains"), body); };
  auto r = post(R"({"companyname":"Acme"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("name is required"), std::string::npos) << r.body;
  r = post(R"({"name":"x.example.com"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("companyname is required"), std::string::npos) << r.body;
  r = post(R"({"name":")" + std::string(201, 'n') + R"(","companyname":"Acme"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("at most 200"), std::string::npos) << r.body;
  r = api_call(http::Method::kGet, o.url("/domains/not-a-uuid"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("is not a UUID"), std::string::npos) << r.body;
  EXPECT_EQ(api_call(http::Method::kPut, o.url("/domains/not-a-uuid"), R"({"enabled":false})").status, 400);
  r = post(R"({"name":"kept.example.com","companyname":"Other"})");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("already exists"), std::string::npos) << r.body;
  r = api_call(http::Method::kGet, o.url("/domains"), {}, "admin", "wrong");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("WWW-Authenticate").substr(0, 5), "Basic");
  EXPECT_EQ(api_call(http::Method::kPost, o.url("/domains"), R"({"name":"y.example.com","companyname":"A"})", "").status, 401);
  EXPECT_EQ(rows(d), 1);
  EXPECT_EQ(api_call(http::Method::kGet, o.url("/domains/00000000-0000-4000-8000-000000000000")).status, 404);
  EXPECT_EQ(api_call(http::Method::kDelete, o.url("/domains/00000000-0000-4000-8000-000000000000")).status, 404);

  r = api_call(http::Method::kPut, o.url("/domains/" + id), R"({"name":"renamed.example.com","enabled":false})");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("name":"renamed.example.com","companyname":"Acme","enabled":false)"), std::string::npos) << r.body;
  r = api_call(http::Method::kGet, o.url("/domains"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("renamed.example.com"), std::string::npos);
  EXPECT_EQ(api_call(http::Method::kDelete, o.url("/domains/" + id)).status, 204);
  EXPECT_EQ(rows(d), 0);
  EXPECT_GE(metric(o.metrics(), "orchestrator_db_query_duration_seconds_count{query=\"domains_create\"}"), 1);
  auto health = api_call(http::Method::kGet, o.url("/health"), {}, "");
  EXPECT_NE(health.body.find(R"("status":"healthy")"), std::string::npos);
  EXPECT_NE(health.body.find(R"("service":"orchestratorm8")"), std::string::npos);
}

// A stand-in scanner: answers each path with a configured status, records what it saw.
struct StandIn {
  struct Seen {
    std::string method, path, delivery_tag, consumer_tag, body;
  };
  // Under the lock the handler reads them with: the server's threads already run (a request
  // from another process is no synchronisation TSan can see).
  void set_status(const std::string& path, int status) {
    std::lock_guard lk(mu);
    statuses[path] = status;
  }
  void set_hold(const std::string& path, std::chrono::milliseconds d) {
    std::lock_guard lk(mu);
    holds[path] = d;
  }
  StandIn() {
    auto r = std::make_shared<http::Router>();
    for (auto m : {http::Method::kGet, http::Method::kPost})
      r->add(m, "/{rest...}", [this](const http::Request& q, http::Response& out) {
        std::string path(q.path());
        int status = 200;
        std::chrono::milliseconds hold{0};
        {
          std::lock_guard lk(mu);
          seen.push_back({std::string(q.method_text()), path, std::string(q.header("X-RabbitMQ-Delivery-Tag")),
                          std::string(q.header("X-RabbitMQ-Consumer-Tag")), q.body()});
          if (statuses.count(path)) status = statuses[path];
          if (holds.count(path) && holds[path].count() > 0) std::swap(hold, holds[path]);  // the first call only
        }
        std::this_thread::sleep_for(hold);
        out.json(status, R"({"status":"complete","message":"stand-in scanner"})");
      });
    http::ServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.threads = 2;
    server = std::make_unique<http::Server>(o, r);
    EXPECT_TRUE(server->start().is_ok());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }
  size_t count(const std::string& path) {
    std::lock_guard lk(mu);
    size_t n = 0;
    for (auto& s : seen) n += s.path == path;
    return n;
  }
  std::vector<Seen> all() {
    std::lock_guard lk(mu);
    return seen;
  }
  std::mutex mu;
  std::vector<Seen> seen;
  std::map<std::string, int> statuses;
  std::map<std::string, std::chrono::milliseconds> holds;
  std::unique_ptr<http::Server> server;
};

struct Bridge {
  std::unique_ptr<Child> proc;
  bool killed = false;
  ~Bridge() {
    if (!killed) expect_clean_stop(*proc, "scan-bridge");
  }
  Child* operator->() { return proc.get(); }
  const std::string& out() const { return proc->out(); }
  void kill9() {
    killed = true;
    proc->signal(SIGKILL);
    proc->wait(5s);
  }
};

std::unique_ptr<Bridge> bridge(const Deployment& d, const std::string& svc, const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{kBin, "scan-bridge", "--service", svc, "--url", url, "--services", d.services_flag(),
                                "--amqp-url", d.amqp_url, "--port", "0", "--address", "127.0.0.1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto b = std::make_unique<Bridge>();
  b->proc = std::make_unique<Child>(argv);
  EXPECT_NE(b->proc->wait_for_output("consuming", 60s), "") << b->proc->out() << b->proc->err();
  return b;
}

TEST(ScanBridge, AcksOn2xxRequeuesOn5xxWithinTheBudgetThenDeadLetters) {
  Deployment d;
  StandIn scanner;
  scanner.set_status("/fail", 503);
  std::string svc = d.services[0];
  auto b = bridge(d, svc, scanner.url(), {"--next", "none", "--retry-budget", "2", "--retry-delay", "50ms"});

  amqp_publish(d.amqp_url, "cptm8." + svc + ".get.ok", R"({"n":1})");
  ASSERT_TRUE(eventually([&] { return scanner.count("/ok") == 1; })) << b->out();
  auto seen = scanner.all();
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_FALSE(seen[0].delivery_tag.empty());
  EXPECT_EQ(seen[0].consumer_tag.rfind("gantry-bridge-" + svc, 0), 0u) << seen[0].consumer_tag;
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(scanner.count("/ok"), 1u) << "acked once, not redelivered";

  amqp_publish(d.amqp_url, "cptm8." + svc + ".post.fail", R"({"n":2})");
  auto dead = await_message(d.amqp_url, "q" + svc + ".dlq", 15s);
  ASSERT_TRUE(dead.has_value()) << b->out();
  EXPECT_EQ(scanner.count("/fail"), 3u) << "the first try and two requeues";
  auto v = boost::json::parse(*dead);
  EXPECT_EQ(v.at("routing_key").as_string(), "cptm8." + svc + ".post.fail");
  EXPECT_EQ(v.at("body").as_string(), R"({"n":2})");
  EXPECT_EQ(v.at("attempts").as_int64(), 3);
  EXPECT_NE(std::string(v.at("reason").as_string()).find("answered 503"), std::string::npos);
  for (auto& s : scanner.all()) {
    if (s.path == "/fail") {
      EXPECT_EQ(s.body, R"({"n":2})") << "POST forwards the body";
    }
  }
  EXPECT_FALSE(amqp_get(d.amqp_url, "q" + svc).has_value()) << "nothing left in the main queue";
}

// The broker closes the bridge's consuming connection (as an operator or a broker restart
// would): the bridge reconnects with backoff and consumes again, no restart needed.
TEST(ScanBridge, ReconnectsAfterTheBrokerClosesItsConnection) {
  Deployment d;
  StandIn scanner;
  std::string svc = d.services[0];
  auto b = bridge(d, svc, scanner.url(), {"--next", "none"});
  amqp_publish(d.amqp_url, "cptm8." + svc + ".get.one", "{}");
  ASSERT_TRUE(eventually([&] { return scanner.count("/one") == 1; }));
  auto conns = rabbitmqctl_run({"list_connections", "pid", "client_properties", "--no-table-headers", "-q"});
  ASSERT_EQ(conns.status, 0) << conns.err;
  int closed = 0;
  std::istringstream lines(conns.out);
  for (std::string line; std::getline(lines, line);)
    if (line.find("gantry-scan-bridge-" + svc) != std::string::npos)
      closed += rabbitmqctl_run({"close_connection", line.substr(0, line.find('\t')), "test: forced close"}).status == 0;
  ASSERT_GE(closed, 1) << conns.out;
  EXPECT_NE((*b)->wait_for_output("consumer connection lost", 10s), "");
  amqp_publish(d.amqp_url, "cptm8." + svc + ".get.two", "{}");
  EXPECT_TRUE(eventually([&] { return scanner.count("/two") == 1; }, 20s)) << b->out();
}

TEST(ScanBridge, ARingOfFourCompletesFullRounds) {
  Deployment d;
  StandIn scanner;
  std::vector<std::unique_ptr<Bridge>> ring;
  for (auto& svc : d.services) ring.push_back(bridge(d, svc, scanner.url() + "/" + svc));
  amqp_publish(d.amqp_url, "cptm8." + d.services[0] + ".get.scan", "{}");
  ASSERT_TRUE(eventually([&] { return scanner.all().size() >= 8; }, 20s));
  auto seen = scanner.all();
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(seen[i].path, "/" + d.services[i % 4] + "/scan") << i;
  EXPECT_NE((*ring[1])->wait_for_output("hop", 5s), "") << "one log line per hop";
}

TEST(ScanBridge, KilledMidRequestTheMessageIsRedeliveredNotLost) {
  Deployment d;
  StandIn scanner;
  std::string svc = d.services[0];
  scanner.set_hold("/slow", 3000ms);
  auto b = bridge(d, svc, scanner.url(), {"--next", "none"});
  amqp_publish(d.amqp_url, "cptm8." + svc + ".get.slow", "{}");
  ASSERT_TRUE(eventually([&] { return scanner.count("/slow") == 1; }));
  b->kill9();
  auto again = bridge(d, svc, scanner.url(), {"--next", "none"});
  EXPECT_TRUE(eventually([&] { return scanner.count("/slow") == 2; }, 15s)) << again->out();
  EXPECT_NE((*again)->wait_for_output("status=200", 5s), "") << "the redelivery was acked";
}

}  // namespace
}  // namespace gantry::testing
