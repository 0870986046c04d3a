// The PostgreSQL state store (--state-url) on a real server: the directory store's contract, and
// leases as rows: renewed while held, taken over once expired, a loss reported to the holder.
#include <unistd.h>

#include <gtest/gtest.h>

#include "cluster/state/store.h"
#include "private_servers.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
using namespace gantry::cluster;

Cluster sample(int workers) {
  Cluster c;
  c.metadata.name = "edge";
  c.spec.provider = "sim";
  NodePool p;
  p.name = "workers";
  p.count = workers;
  c.spec.node_pools.push_back(p);
  return c;
}

TEST(ClusterPgStore, KeepsClustersStatusAndTokensAsTheDirectoryStoreDoes) {
  FreshDatabase db("cluster_store");
  auto s = open_pg_store(db.url);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  Store& st = **s;
  EXPECT_EQ(st.describe().find("postgres"), 0u);
  ASSERT_TRUE(st.put(sample(2), false).is_ok());
  auto again = st.put(sample(2), false);
  EXPECT_EQ(again.status().code(), core::Code::kAlreadyExists);
  EXPECT_EQ(st.put([] { auto c = sample(1); c.metadata.name = "nope"; return c; }(), true).status().code(), core::Code::kNotFound);

  auto same = st.put(sample(2), true);
  ASSERT_TRUE(same.is_ok());
  EXPECT_EQ(same->metadata.generation, 1);  // nothing changed
  auto bigger = st.put(sample(3), true);
  ASSERT_TRUE(bigger.is_ok());
  EXPECT_EQ(bigger->metadata.generation, 2);
  auto got = st.get("edge");
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(got->spec.node_pools[0].count, 3);
  EXPECT_EQ(got->metadata.id, bigger->metadata.id);

  auto empty = st.status("edge");
  ASSERT_TRUE(empty.is_ok());
  EXPECT_EQ(empty->phase, "Pending");
  ClusterStatus cs;
  cs.phase = "Installing";
  cs.observed_generation = 2;
  ASSERT_TRUE(st.put_status("edge", cs).is_ok());
  EXPECT_EQ(st.status("edge")->phase, "Installing");

  auto t1 = st.tokens("edge");
  auto t2 = st.tokens("edge");
  ASSERT_TRUE(t1.is_ok() && t2.is_ok());
  EXPECT_EQ(t1->server.size(), 64u);
  EXPECT_NE(t1->server, t1->agent);
  EXPECT_EQ(t1->server, t2->server);
  EXPECT_EQ(t1->agent, t2->agent);

  EXPECT_EQ(*st.list(), std::vector<std::string>{"edge"});
  ASSERT_TRUE(st.remove("edge").is_ok());
  EXPECT_EQ(st.get("edge").status().code(), core::Code::kNotFound);
  EXPECT_TRUE(st.list()->empty());
  EXPECT_EQ(st.get("../x").status().code(), core::Code::kInvalidArgument);
}

TEST(ClusterPgStore, AHeldLeaseIsRenewedAnExpiredOneTakenAndALossReported) {
  FreshDatabase db("cluster_leases");
  auto s = open_pg_store(db.url);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto sql = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(sql.is_ok());

  {
    // A TTL of 300 ms, renewed every 100 ms: still held after a second.
    auto a = (*s)->acquire("edge", "alpha:1", 300ms, 0ms);
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    auto b = (*s)->acquire("edge", "beta:2", 300ms, 1000ms);
    ASSERT_FALSE(b.is_ok());
    EXPECT_EQ(b.status().code(), core::Code::kDeadlineExceeded);
    EXPECT_NE(b.status().message().find("reconciled by alpha:1"), std::string::npos) << b.status().to_string();
    EXPECT_TRUE((*a)->renew().is_ok());
  }
  // Released on destruction: taken at once.
  EXPECT_TRUE((*s)->acquire("edge", "beta:2", 300ms, 0ms).is_ok());

  // A holder elsewhere (another kernel or pid namespace) whose pid means nothing here, even if
  // its host name matches: not taken early, whatever kill(pid, 0) says on this machine.
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  ASSERT_TRUE((*sql)->query("INSERT INTO cluster_leases VALUES ('far', $1, 't', now() + interval '1 hour', 'other-boot/pid:[1]', 999999)",
                            {std::string(host) + ":999999"}).is_ok());
  auto far = (*s)->acquire("far", "beta:2", 60'000ms, 300ms);
  EXPECT_EQ(far.status().code(), core::Code::kDeadlineExceeded) << far.status().to_string();

  // A holder on another machine that stopped renewing: its row is taken once it expires.
  ASSERT_TRUE((*sql)->exec("INSERT INTO cluster_leases VALUES ('gone', 'elsewhere:1', 't', now() + interval '400 milliseconds')").is_ok());
  auto t0 = std::chrono::steady_clock::now();
  auto c = (*s)->acquire("gone", "beta:2", 60'000ms, 5000ms);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 250ms);

  // Taken by someone else meanwhile (expired while this holder stalled): renew says so.
  auto r = (*sql)->query("UPDATE cluster_leases SET holder = 'thief:3', token = 'other' WHERE name = 'gone'");
  ASSERT_TRUE(r.is_ok());
  Status lost = (*c)->renew();
  EXPECT_EQ(lost.code(), core::Code::kAborted) << lost.to_string();
  EXPECT_NE(lost.message().find("was lost"), std::string::npos);
  c->reset();  // releasing a lost lease leaves the new holder's row alone
  auto left = (*sql)->query("SELECT holder FROM cluster_leases WHERE name = 'gone'");
  ASSERT_TRUE(left.is_ok());
  ASSERT_EQ(left->size(), 1);
  EXPECT_EQ(left->get(0, 0), "thief:3");
}

TEST(ClusterPgStore, AnUnreachableServerIsAClearErrorWithoutThePassword) {
  auto s = open_pg_store("postgres://gantry:hunter2@127.0.0.1:1/nowhere?connect_timeout=2");
  ASSERT_FALSE(s.is_ok());
  std::string m(s.status().message());
  EXPECT_NE(m.find("state store postgres://gantry@127.0.0.1:1/nowhere"), std::string::npos) << m;
  EXPECT_EQ(m.find("hunter2"), std::string::npos) << m;
}

}  // namespace
}  // namespace gantry::testing
