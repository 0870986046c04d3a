// The reconciler against the simulated provider and a directory store in a scratch directory.
#include "cluster/reconciler/reconciler.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "cluster/provider/sim.h"

namespace gantry::cluster {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

struct Fixture {
  fs::path dir;
  std::unique_ptr<Store> store;
  SimProvider sim;
  std::unique_ptr<Reconciler> rec;
  std::mutex mu;
  std::vector<ProgressEvent> events;

  explicit Fixture(SimOptions so = fast(), ReconcilerOptions ro = options())
      : dir(fs::temp_directory_path() / ("gantry-rec-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++))),
        sim(so) {
    fs::remove_all(dir);
    store = open_dir_store(dir.string()).value();
    DistributionOptions d;
    d.gantry_binary = "/bin/sh";  // any file: the simulator copies nothing
    rec = std::make_unique<Reconciler>(*store, [this](const Cluster&) -> core::Result<Provider*> { return &sim; }, d, ro);
    rec->on_progress([this](const ProgressEvent& e) {
      std::lock_guard lk(mu);
      events.push_back(e);
    });
  }
  ~Fixture() { fs::remove_all(dir); }

  static int& counter() {
    static int n = 0;
    return n;
  }
  static SimOptions fast() {
    SimOptions o;
    for (auto& [type, l] : o.latency) l = {std::chrono::microseconds(200), std::chrono::microseconds(800)};
    return o;
  }
  static ReconcilerOptions options() {
    ReconcilerOptions o;
    o.concurrency = 4;
    o.retry.base_delay = milliseconds(1);
    o.retry.max_delay = milliseconds(5);
    o.retry.max_retries = 6;
    o.breaker.recovery_timeout = milliseconds(100);
    o.lease_wait = milliseconds(200);
    return o;
  }
  Cluster cluster(int workers, const std::string& name = "edge") {
    Cluster c;
    c.metadata.name = name;
    c.spec.provider = "sim";
    NodePool p;
    p.name = "workers";
    p.count = workers;
    c.spec.node_pools.push_back(p);
    return c;
  }
  ClusterStatus status(const std::string& name = "edge") { return *store->status(name); }
};

TEST(ClusterReconciler, TransientFailuresAreRetriedAndTheClusterConverges) {
  SimOptions so = Fixture::fast();
  so.failure_rate = 0.1;
  so.seed = 7;
  Fixture f(so);
  ASSERT_TRUE(f.store->put(f.cluster(5), false).is_ok());
  PassResult r = f.rec->reconcile("edge");
  ASSERT_TRUE(r.status.is_ok()) << r.status.to_string();
  EXPECT_EQ(r.phase, "Running");
  EXPECT_GT(r.retries, 0);
  ClusterStatus st = f.status();
  ASSERT_EQ(st.instances.size(), 6u);
  for (auto& i : st.instances) {
    EXPECT_TRUE(i.provisioned && i.installed && i.joined) << i.name;
    EXPECT_EQ(i.error, "") << i.name;
  }
  EXPECT_EQ(st.instances[0].name, "edge-server-0");
  EXPECT_EQ(st.observed_generation, 1);
  EXPECT_EQ(st.configuring.done, 6);
  EXPECT_EQ(f.sim.stats().instances_created, 6);

  // Level-triggered: a second pass finds nothing to do and calls the provider for nothing.
  auto calls = f.sim.stats().calls;
  PassResult again = f.rec->reconcile("edge");
  EXPECT_EQ(again.phase, "Running");
  EXPECT_EQ(again.steps_run, 0);
  EXPECT_EQ(f.sim.stats().calls, calls);
}

TEST(ClusterReconciler, AHardOutageOpensTheBreakerFailsTheClusterWithTheReasonAndAPassResumesOnceItClears) {
  Fixture f;
  ASSERT_TRUE(f.store->put(f.cluster(4), false).is_ok());
  f.sim.set_outage("install", true);
  PassResult r = f.rec->reconcile("edge");
  EXPECT_EQ(r.phase, "Failed");
  ClusterStatus st = f.status();
  EXPECT_EQ(st.phase, "Failed");
  EXPECT_NE(st.message.find("Installing"), std::string::npos) << st.message;
  EXPECT_NE(st.message.find("simulated outage of install calls"), std::string::npos) << st.message;
  EXPECT_EQ(f.rec->breakers().get("sim").state(), core::resilience::BreakerState::kOpen);
  // Calls after it opened were refused without reaching the provider.
  EXPECT_GT(f.rec->breakers().get("sim").stats().rejections, 0u);
  EXPECT_EQ(r.requeue, milliseconds(120'000));
  int created = f.sim.stats().calls["create"];
  for (auto& i : st.instances) EXPECT_TRUE(i.provisioned) << i.name;

  f.sim.set_outage("install", false);
  std::this_thread::sleep_for(milliseconds(150));  // the breaker's recovery time
  PassResult again = f.rec->reconcile("edge");
  ASSERT_TRUE(again.status.is_ok()) << again.status.to_string();
  EXPECT_EQ(again.phase, "Running");
  // Resumed from the last good step: nothing provisioned again.
  EXPECT_EQ(f.sim.stats().calls["create"], created);
  EXPECT_EQ(f.sim.stats().instances_created, 5);
}

TEST(ClusterReconciler, ScaleDownRemovesTheHighestIndicesFirstAndDeleteLeavesNothing) {
  ReconcilerOptions ro = Fixture::options();
  ro.concurrency = 1;  // one at a time, so the order is observable
  Fixture f(Fixture::fast(), ro);
  ASSERT_TRUE(f.store->put(f.cluster(4), false).is_ok());
  ASSERT_EQ(f.rec->reconcile("edge").phase, "Running");
  auto c = *f.store->get("edge");
  c.spec.node_pools[0].count = 1;
  auto updated = f.store->put(c, true);
  ASSERT_TRUE(updated.is_ok());
  EXPECT_EQ(updated->metadata.generation, 2);
  f.events.clear();
  PassResult r = f.rec->reconcile("edge");
  ASSERT_EQ(r.phase, "Running") << r.status.to_string();
  std::vector<std::string> removed;
  for (auto& e : f.events)
    if (e.phase == "Updating" && !e.node.empty()) removed.push_back(e.node);
  EXPECT_EQ(removed, (std::vector<std::string>{"edge-workers-3", "edge-workers-2", "edge-workers-1"}));
  EXPECT_EQ(f.status().instances.size(), 2u);
  EXPECT_EQ(f.status().observed_generation, 2);

  c = *f.store->get("edge");
  c.metadata.deletion_timestamp = "2026-12-03T00:00:00Z";
  ASSERT_TRUE(f.store->put(c, true).is_ok());
  f.events.clear();
  PassResult d = f.rec->reconcile("edge");
  EXPECT_TRUE(d.deleted) << d.status.to_string();
  std::vector<std::string> order;
  for (auto& e : f.events)
    if (!e.node.empty()) order.push_back(e.node);
  EXPECT_EQ(order, (std::vector<std::string>{"edge-workers-0", "edge-server-0"}));
  EXPECT_EQ(f.store->get("edge").status().code(), core::Code::kNotFound);
  EXPECT_FALSE(fs::exists(f.dir / "edge"));
}

TEST(ClusterReconciler, TwoReconcilersNeverActOnOneClusterAtOnce) {
  Fixture f;
  ASSERT_TRUE(f.store->put(f.cluster(1), false).is_ok());
  auto held = f.store->acquire("edge", "operator-a:1", milliseconds(60'000), milliseconds(100));
  ASSERT_TRUE(held.is_ok());
  PassResult r = f.rec->reconcile("edge");
  EXPECT_EQ(r.phase, "Locked");
  EXPECT_EQ(r.status.code(), core::Code::kDeadlineExceeded);
  EXPECT_NE(std::string(r.status.message()).find("operator-a:1"), std::string::npos) << r.status.to_string();
  EXPECT_EQ(f.sim.stats().calls.size(), 0u);
  held->reset();
  EXPECT_EQ(f.rec->reconcile("edge").phase, "Running");
}

TEST(ClusterReconciler, StopAndStartFollowDesiredState) {
  Fixture f;
  ASSERT_TRUE(f.store->put(f.cluster(2), false).is_ok());
  ASSERT_EQ(f.rec->reconcile("edge").phase, "Running");
  auto c = *f.store->get("edge");
  c.spec.desired_state = "stopped";
  ASSERT_TRUE(f.store->put(c, true).is_ok());
  EXPECT_EQ(f.rec->reconcile("edge").phase, "Stopped");
  for (auto& i : f.status().instances) EXPECT_EQ(i.state, "stopped");
  EXPECT_EQ(f.sim.stats().calls["stop"], 3);
  c.spec.desired_state = "running";
  ASSERT_TRUE(f.store->put(c, true).is_ok());
  EXPECT_EQ(f.rec->reconcile("edge").phase, "Running");
  EXPECT_EQ(f.sim.stats().calls["start"], 3);
  EXPECT_EQ(f.sim.stats().instances_created, 3);
}

// K3s: the others join the first server, so it installs alone first; a gantry node needs no
// such order and every node installs at once.
TEST(ClusterReconciler, OnlyK3sInstallsTheFirstServerAlone) {
  for (std::string dist : {"k3s", "gantry-node"}) {
    Fixture f;
    Cluster c = f.cluster(3);
    c.spec.distribution = dist;
    ASSERT_TRUE(f.store->put(c, false).is_ok());
    ASSERT_EQ(f.rec->reconcile("edge").phase, "Running");
    std::vector<int> totals;
    for (auto& e : f.events)
      if (e.phase == "Installing" && e.node.empty() && e.done == 0) totals.push_back(e.total);
    std::vector<int> want = dist == "k3s" ? std::vector<int>{1, 3} : std::vector<int>{4};
    EXPECT_EQ(totals, want) << dist;
  }
}

TEST(ClusterReconciler, TokensAreMadeOnceAndReadableOnlyByTheOwner) {
  Fixture f;
  ASSERT_TRUE(f.store->put(f.cluster(0), false).is_ok());
  auto a = f.store->tokens("edge");
  auto b = f.store->tokens("edge");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->server, b->server);
  EXPECT_EQ(a->server.size(), 64u);
  EXPECT_NE(a->server, a->agent);
  auto perms = fs::status(f.dir / "edge" / "tokens").permissions();
  EXPECT_EQ(perms & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

// A store whose leases are lost after `keep` renewals, as when a stalled reconciler's row
// expired and another took it.
class LosingStore final : public Store {
 public:
  LosingStore(Store& s, int keep) : s_(s), keep_(keep) {}
  std::string describe() const override { return s_.describe(); }
  core::Result<std::vector<std::string>> list() override { return s_.list(); }
  core::Result<Cluster> get(const std::string& n) override { return s_.get(n); }
  core::Result<Cluster> put(Cluster c, bool u) override { return s_.put(std::move(c), u); }
  core::Result<ClusterStatus> status(const std::string& n) override { return s_.status(n); }
  core::Status put_status(const std::string& n, const ClusterStatus& st) override { return s_.put_status(n, st); }
  core::Result<Tokens> tokens(const std::string& n) override { return s_.tokens(n); }
  core::Status remove(const std::string& n) override { return s_.remove(n); }
  core::Result<std::unique_ptr<Lease>> acquire(const std::string&, const std::string&, milliseconds, milliseconds) override {
    struct L final : Lease {
      int left;
      explicit L(int k) : left(k) {}
      core::Status renew() override {
        return left-- > 0 ? core::Status() : core::Status(core::Code::kAborted, "the lease on cluster 'edge' was lost");
      }
    };
    return std::unique_ptr<Lease>(std::make_unique<L>(keep_));
  }

 private:
  Store& s_;
  int keep_;
};

TEST(ClusterReconciler, APassThatLosesItsLeaseStopsAndWritesNothingMore) {
  Fixture f;
  ASSERT_TRUE(f.store->put(f.cluster(2), false).is_ok());
  LosingStore losing(*f.store, 1);  // kept for Provisioning, lost before Installing
  DistributionOptions d;
  d.gantry_binary = "/bin/sh";
  Reconciler rec(losing, [&](const Cluster&) -> core::Result<Provider*> { return &f.sim; }, d, Fixture::options());
  PassResult r = rec.reconcile("edge");
  EXPECT_EQ(r.phase, "Locked");
  EXPECT_EQ(r.status.code(), core::Code::kAborted) << r.status.to_string();
  ClusterStatus st = f.status();
  EXPECT_EQ(st.provisioning.done, 3);
  EXPECT_EQ(st.installing.done, 0);
  EXPECT_NE(st.phase, "Failed");  // the new holder's business, not ours to record
  EXPECT_EQ(f.sim.stats().calls["install"], 0);
}

}  // namespace
}  // namespace gantry::cluster
