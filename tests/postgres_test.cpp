// The PostgreSQL store against the real server: queries with parameters, error mapping,
// transactions, advisory locks, and migrations applied once even by concurrent migrators.
#include "store/postgres/pg.h"
#include "store/postgres/listener.h"
#include "store/postgres/co_pool.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <gtest/gtest.h>

#include <array>
#include <mutex>
#include <set>
#include <random>
#include <thread>

#include "env.h"
#include "private_servers.h"

namespace gantry::testing {
namespace {

using core::Code;
using store::Migration;
using store::postgres::Connection;

// Each test works in a schema of its own, dropped at the end.
struct PgTest : ::testing::Test {
  std::string url = server_url("GANTRY_PG_URL");
  std::string schema = "t_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}() % 100000);
  void SetUp() override {
    // Once, here: CREATE SCHEMA IF NOT EXISTS is not safe against itself running concurrently.
    auto c = Connection::connect(url);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    ASSERT_TRUE((*c)->exec("CREATE SCHEMA " + schema).is_ok());
  }
  std::unique_ptr<Connection> open() {
    auto c = Connection::connect(url);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    if (!c.is_ok()) return nullptr;
    EXPECT_TRUE((*c)->exec("SET search_path TO " + schema).is_ok());
    return std::move(*c);
  }
  void TearDown() override {
    if (auto c = Connection::connect(url); c.is_ok()) (void)(*c)->exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
  }
};

constexpr std::array<Migration, 2> kMigrations{{
    {1, "domains", "CREATE TABLE cptm8domain (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                   "name varchar(200) NOT NULL UNIQUE, companyname varchar(50), enabled boolean NOT NULL DEFAULT true)"},
    {2, "domains index", "CREATE INDEX cptm8domain_enabled ON cptm8domain (enabled)"},
}};

TEST_F(PgTest, QueriesWithParametersAndErrorCodes) {
  auto c = open();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->migrate(kMigrations).is_ok());
  auto ins = c->query("INSERT INTO cptm8domain(name, companyname) VALUES ($1, $2) RETURNING id",
                      {"example.com", std::nullopt});
  ASSERT_TRUE(ins.is_ok()) << ins.status().to_string();
  EXPECT_EQ(ins->get(0, 0).size(), 36u);  // a uuid
  auto dup = c->query("INSERT INTO cptm8domain(name) VALUES ($1)", {"example.com"});
  EXPECT_EQ(dup.status().code(), Code::kAlreadyExists);
  EXPECT_NE(dup.status().to_string().find("SQLSTATE 23505"), std::string::npos) << dup.status().to_string();
  auto null_name = c->query("INSERT INTO cptm8domain(name) VALUES ($1)", {std::nullopt});
  EXPECT_EQ(null_name.status().code(), Code::kInvalidArgument);
  auto sel = c->query("SELECT name, companyname IS NULL, enabled FROM cptm8domain WHERE name = $1", {"example.com"});
  ASSERT_TRUE(sel.is_ok());
  ASSERT_EQ(sel->size(), 1);
  EXPECT_EQ(sel->get(0, 1), "t");
  EXPECT_EQ(sel->get(0, 2), "t");
  auto upd = c->query("UPDATE cptm8domain SET enabled = false WHERE name = $1", {"example.com"});
  EXPECT_EQ(upd->affected(), 1);
  EXPECT_EQ(c->query("SELEC 1").status().code(), Code::kIoError);
}

TEST_F(PgTest, TransactionRollsBack) {
  auto c = open();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->migrate(kMigrations).is_ok());
  Status s = c->transaction([&]() -> Status {
    auto r = c->query("INSERT INTO cptm8domain(name) VALUES ($1)", {"a.example"});
    if (!r.is_ok()) return r.status();
    return core::invalid_argument("abandon");
  });
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(c->query("SELECT count(*) FROM cptm8domain")->int64(0, 0), 0);
}

TEST_F(PgTest, ConcurrentMigratorsApplyEachVersionOnce) {
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      auto c = open();
      if (c && c->migrate(kMigrations).is_ok()) ++ok;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 4);
  auto c = open();
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->schema_version(), 2);
  EXPECT_EQ(c->query("SELECT count(*) FROM schema_migrations")->int64(0, 0), 2);
  constexpr std::array<Migration, 1> renamed{{{1, "renamed", "SELECT 1"}}};
  EXPECT_EQ(c->migrate(renamed).code(), Code::kFailedPrecondition);
}

TEST_F(PgTest, AdvisoryLockIsExclusiveAndDiesWithItsSession) {
  auto a = open();
  auto b = open();
  ASSERT_TRUE(a && b);
  int64_t key = 424242 + ::getpid();
  EXPECT_TRUE(*a->try_lock(key));
  EXPECT_FALSE(*b->try_lock(key));  // a leader holds it; a standby does not get it
  a.reset();                        // the leader's connection dies
  bool got = false;
  for (int i = 0; i < 100 && !got; ++i) {
    got = *b->try_lock(key);
    if (!got) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(got);
  EXPECT_TRUE(b->unlock(key).is_ok());
}

// Nothing set a statement timeout: a runaway statement held its caller indefinitely.
TEST_F(PgTest, StatementTimeoutEndsALongStatementAndTheSessionGoesOn) {
  store::postgres::Options o;
  o.statement_timeout = std::chrono::milliseconds(200);
  auto c = Connection::connect(url, o);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*c)->query("SELECT pg_sleep(5)");
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded) << r.status().to_string();
  EXPECT_NE(r.status().to_string().find("57014"), std::string::npos) << r.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ((*c)->generation(), 1u);  // the server cancelled the statement; the session is intact
  EXPECT_TRUE((*c)->query("SELECT 1").is_ok());
}

// A server that accepts TCP but never answers (SIGSTOP) used to hold the caller forever: the
// server cannot enforce its own statement timeout. The client's call timeout ends the call,
// and the session, which its owner is told about.
TEST(PgPrivate, FrozenServerFailsCallsWithinTheCallTimeoutAndTheOwnerIsTold) {
  PrivatePostgres pg;
  store::postgres::Options o;
  o.call_timeout = std::chrono::milliseconds(500);
  auto c = Connection::connect(pg.url(), o);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  int64_t key = 77;
  ASSERT_TRUE(*(*c)->try_lock(key));
  std::vector<std::string> told;
  std::set<int64_t> lost;
  (*c)->on_session_lost([&](const Status& why, const std::set<int64_t>& locks) {
    told.push_back(why.to_string());
    lost = locks;
  });
  pg.freeze();
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*c)->query("SELECT 1");
  auto took = std::chrono::steady_clock::now() - t0;
  pg.freeze(false);
  EXPECT_EQ(r.status().code(), Code::kDeadlineExceeded) << r.status().to_string();
  EXPECT_LT(took, std::chrono::seconds(3));
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(lost, std::set<int64_t>{key});
  EXPECT_FALSE((*c)->holds(key));
  auto again = (*c)->query("SELECT 1");  // a new session
  EXPECT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ((*c)->generation(), 2u);
  EXPECT_FALSE((*c)->holds(key));  // a new session holds nothing
}

// A terminated session used to be replaced silently on the next call: a lock holder went on
// acting as leader (split brain). Now holds() reads the server's goodbye without a round trip.
TEST_F(PgTest, TerminatedSessionIsReportedAndItsLockIsNoLongerHeld) {
  auto leader = open();
  auto admin = open();
  ASSERT_TRUE(leader && admin);
  int64_t key = 515151 + ::getpid();
  std::set<int64_t> lost;
  int told = 0;
  leader->on_session_lost([&](const Status&, const std::set<int64_t>& locks) {
    ++told;
    lost = locks;
  });
  ASSERT_TRUE(*leader->try_lock(key));
  EXPECT_TRUE(leader->holds(key));
  auto pid = leader->query("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.is_ok());
  ASSERT_TRUE(admin->query("SELECT pg_terminate_backend($1::int)", {pid->get(0, 0)}).is_ok());
  bool released = false;
  for (int i = 0; i < 100 && !released; ++i) {  // the goodbye arrives within milliseconds
    released = !leader->holds(key);
    if (!released) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(released);
  EXPECT_EQ(told, 1);
  EXPECT_EQ(lost, std::set<int64_t>{key});
  EXPECT_EQ(leader->generation(), 1u);
  EXPECT_TRUE(*admin->try_lock(key));  // a standby can take over
  EXPECT_TRUE(leader->query("SELECT 1").is_ok());
  EXPECT_EQ(leader->generation(), 2u);
  EXPECT_FALSE(*leader->try_lock(key));
}

// The listener: notifications arrive; a terminated session is replaced, LISTENed again, the
// owner is told it may have missed some, and later notifications arrive.
TEST_F(PgTest, ListenerRelistensAfterALostSessionAndSaysMissed) {
  std::string channel = "gantry_test_" + std::to_string(::getpid());
  std::mutex mu;
  std::vector<std::string> got;
  std::vector<std::string> missed;
  store::postgres::Listener::Settings ls;
  ls.reconnect.base_delay = std::chrono::milliseconds(20);
  store::postgres::Listener listener(
      url, {channel},
      {[&](std::string_view ch, std::string_view payload) {
         std::lock_guard l(mu);
         got.push_back(std::string(ch) + ":" + std::string(payload));
       },
       [&](const Status& why) {
         std::lock_guard l(mu);
         missed.push_back(why.to_string());
       }},
      ls);
  ASSERT_TRUE(listener.start().is_ok());
  EXPECT_TRUE(listener.listening());
  auto admin = open();
  ASSERT_TRUE(admin);
  auto count = [&] {
    std::lock_guard l(mu);
    return got.size();
  };
  ASSERT_TRUE(admin->query("SELECT pg_notify($1, $2)", {channel, "one"}).is_ok());
  ASSERT_TRUE(eventually([&] { return count() == 1; }, std::chrono::seconds(5)));
  auto pids = admin->query("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()");
  ASSERT_TRUE(pids.is_ok());
  ASSERT_GE(pids->size(), 1);
  for (int i = 0; i < pids->size(); ++i)
    (void)admin->query("SELECT pg_terminate_backend($1::int)", {pids->get(i, 0)});
  ASSERT_TRUE(eventually([&] { return listener.sessions() == 2 && listener.listening(); }, std::chrono::seconds(10)));
  {
    std::lock_guard l(mu);
    EXPECT_EQ(missed.size(), 1u);
  }
  ASSERT_TRUE(admin->query("SELECT pg_notify($1, $2)", {channel, "two"}).is_ok());
  ASSERT_TRUE(eventually([&] { return count() == 2; }, std::chrono::seconds(5)));
  std::lock_guard l(mu);
  EXPECT_EQ(got[0], channel + ":one");
  EXPECT_EQ(got[1], channel + ":two");
}

// The pool from coroutines: 100 queries awaited at once by one io_context thread, which keeps
// ticking meanwhile (it never blocks); at most max_open connections; a full queue is refused.
TEST_F(PgTest, PoolServesCoroutinesWithoutBlockingTheirThread) {
  namespace asio = boost::asio;
  store::postgres::PoolOptions po;
  po.url = url;
  po.name = "test";
  po.max_open = 4;
  po.max_idle = 1;
  auto pool = store::postgres::Pool::open(po);
  ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
  asio::io_context ioc;
  std::atomic<int> ticks{0}, done{0}, right{0};
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        while (done < 100) {
          asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(2));
          co_await t.async_wait(asio::use_awaitable);
          ++ticks;
        }
      },
      asio::detached);
  for (int i = 0; i < 100; ++i)
    asio::co_spawn(
        ioc,
        [&, i]() -> asio::awaitable<void> {
          auto r = co_await store::postgres::co_run(**pool, [i](Connection& c) {
            return c.query("SELECT $1::int * 2, pg_sleep(0.01)", {std::to_string(i)});
          });
          if (r.is_ok() && r->int64(0, 0) == 2 * i) ++right;
          ++done;
        },
        asio::detached);
  ioc.run();
  EXPECT_EQ(right.load(), 100);
  EXPECT_GT(ticks.load(), 50);  // 100 x 10 ms over 4 connections: the thread kept ticking
  auto st = (*pool)->stats();
  EXPECT_LE(st.open, 4);
  EXPECT_EQ(st.jobs, 100u);

  store::postgres::PoolOptions tiny = po;
  tiny.name = "tiny";
  tiny.max_open = 1;
  tiny.max_queued = 2;
  auto small = store::postgres::Pool::open(tiny);
  ASSERT_TRUE(small.is_ok());
  std::atomic<bool> release{false};
  ASSERT_TRUE((*small)->submit([&](Connection*, const Status&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the only connection is busy
  EXPECT_TRUE((*small)->submit([](Connection*, const Status&) {}));
  EXPECT_TRUE((*small)->submit([](Connection*, const Status&) {}));
  EXPECT_FALSE((*small)->submit([](Connection*, const Status&) {}));  // never blocks: refused
  release = true;
  while ((*small)->stats().queued > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto v = (*small)->run([](Connection& c) { return c.query("SELECT 41 + 1"); });
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v->int64(0, 0), 42);
}

// co_query: statements queued by many coroutines share round trips (batches), and each gets
// its own outcome: a failing one does not fail its batch neighbours.
TEST_F(PgTest, PoolBatchesQueuedQueriesAndKeepsTheirOutcomesApart) {
  namespace asio = boost::asio;
  store::postgres::PoolOptions po;
  po.url = url;
  po.name = "batching";
  po.max_open = 2;
  auto pool = store::postgres::Pool::open(po);
  ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
  asio::io_context ioc;
  std::atomic<int> right{0}, failed_right{0};
  for (int i = 0; i < 300; ++i)
    asio::co_spawn(
        ioc,
        [&, i]() -> asio::awaitable<void> {
          // Every 10th divides by zero.
          std::string sql = "SELECT 100 / $1::int";
          std::vector<std::optional<std::string>> params{std::to_string(i % 10 == 0 ? 0 : i)};
          auto r = co_await store::postgres::co_query(**pool, std::move(sql), std::move(params));
          if (i % 10 == 0) {
            if (!r.is_ok() && r.status().to_string().find("22012") != std::string::npos) ++failed_right;
          } else if (r.is_ok() && r->int64(0, 0) == 100 / i) {
            ++right;
          }
        },
        asio::detached);
  ioc.run();
  EXPECT_EQ(right.load(), 270);
  EXPECT_EQ(failed_right.load(), 30);
  EXPECT_EQ((*pool)->batched_queries(), 300u);
  EXPECT_LT((*pool)->batches(), 100u);  // queued together, sent together
  // Counted as done by the pool thread after the last callback ran, so it may lag ioc.run().
  EXPECT_TRUE(eventually([&] { return (*pool)->stats().jobs == 300u; }, std::chrono::seconds(5))) << (*pool)->stats().jobs;
}

// Bulk writes: COPY streams rows; a bad row copies nothing.
TEST_F(PgTest, CopyInStreamsRowsAndABadRowCopiesNothing) {
  auto c = open();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->exec("CREATE TABLE samples (id int PRIMARY KEY, name text NOT NULL, v float8)").is_ok());
  std::vector<std::string> lines;
  for (int i = 0; i < 20'000; ++i) lines.push_back(std::to_string(i) + "\tname\\t" + std::to_string(i) + "\t" + std::to_string(i * 0.5) + "\n");
  auto n = c->copy_in("COPY samples (id, name, v) FROM STDIN", lines);
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(*n, 20'000);
  auto row = c->query("SELECT name, v FROM samples WHERE id = 19999");
  ASSERT_TRUE(row.is_ok());
  EXPECT_EQ(row->get(0, 0), "name\t19999");  // COPY's escapes decoded by the server
  EXPECT_EQ(row->get(0, 1), "9999.5");
  std::vector<std::string> bad{"20000\tok\t1\n", "20001\t\\N\t2\n"};  // NULL name
  auto b = c->copy_in("COPY samples (id, name, v) FROM STDIN", bad);
  EXPECT_EQ(b.status().code(), Code::kInvalidArgument) << b.status().to_string();
  EXPECT_EQ(c->query("SELECT count(*) FROM samples")->int64(0, 0), 20'000);
  EXPECT_TRUE(c->query("SELECT 1").is_ok());  // the session goes on
  EXPECT_EQ(c->generation(), 1u);
}

// Pipeline mode: many statements in one round trip, one outcome each; a failure aborts the
// rest and rolls back the pipeline's implicit transaction.
TEST_F(PgTest, PipelineSendsEveryStatementAtOnceWithAnOutcomeEach) {
  auto c = open();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->exec("CREATE TABLE kv (k text PRIMARY KEY, v int)").is_ok());
  std::vector<Connection::Statement> ok;
  for (int i = 0; i < 500; ++i) ok.push_back({"INSERT INTO kv VALUES ($1, $2)", {"k" + std::to_string(i), std::to_string(i)}});
  ok.push_back({"SELECT count(*) FROM kv", {}});
  auto r = c->pipeline(ok);
  ASSERT_EQ(r.size(), 501u);
  for (size_t i = 0; i < 500; ++i) ASSERT_TRUE(r[i].is_ok()) << i << ": " << r[i].status().to_string();
  EXPECT_EQ(r[500]->int64(0, 0), 500);
  std::vector<Connection::Statement> mixed{{"INSERT INTO kv VALUES ('x', 1)", {}},
                                           {"INSERT INTO kv VALUES ('k1', 1)", {}},  // duplicate key
                                           {"INSERT INTO kv VALUES ('y', 1)", {}}};
  auto m = c->pipeline(mixed);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_TRUE(m[0].is_ok());
  EXPECT_EQ(m[1].status().code(), Code::kAlreadyExists);
  EXPECT_EQ(m[2].status().code(), Code::kAborted);
  EXPECT_EQ(c->query("SELECT count(*) FROM kv WHERE k IN ('x', 'y')")->int64(0, 0), 0);  // rolled back
  EXPECT_EQ(c->query("SELECT count(*) FROM kv")->int64(0, 0), 500);
}

// batch: one round trip too, but each statement commits or fails alone.
TEST_F(PgTest, BatchRunsEachStatementAsItsOwnTransaction) {
  auto c = open();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->exec("CREATE TABLE kv (k text PRIMARY KEY, v int)").is_ok());
  std::vector<Connection::Statement> mixed{{"INSERT INTO kv VALUES ('x', 1)", {}},
                                           {"INSERT INTO kv VALUES ('x', 2)", {}},  // duplicate key
                                           {"INSERT INTO kv VALUES ($1, $2)", {"y", std::nullopt}},
                                           {"SELECT v FROM kv WHERE k = $1", {"x"}}};
  auto m = c->batch(mixed);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_TRUE(m[0].is_ok()) << m[0].status().to_string();
  EXPECT_EQ(m[1].status().code(), Code::kAlreadyExists);
  EXPECT_TRUE(m[2].is_ok()) << m[2].status().to_string();  // not aborted by the failure before it
  ASSERT_TRUE(m[3].is_ok());
  EXPECT_EQ(m[3]->get(0, 0), "1");
  EXPECT_EQ(c->query("SELECT count(*) FROM kv")->int64(0, 0), 2);  // x and y committed
  EXPECT_EQ(c->generation(), 1u);
}

TEST(Pg, UnreachableServerIsUnavailableWithoutLeakingThePassword) {
  auto c = Connection::connect("postgres://u:hunter2@127.0.0.1:1/db", std::chrono::milliseconds(1000));
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_EQ(c.status().to_string().find("hunter2"), std::string::npos) << c.status().to_string();
}

}  // namespace
}  // namespace gantry::testing
