// `gantry cluster …` as a user runs it, with the simulated provider and a scratch state
// directory: bad input changes nothing, a cluster converges, scales and goes, and a reconciler
// killed mid-install resumes from the last good step.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "private_servers.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Where the CLI keeps clusters: a scratch directory, or PostgreSQL when given a URL.
struct StateDir {
  fs::path dir = fs::temp_directory_path() / ("gantry-cluster-test-" + std::to_string(getpid()) + "-" + std::to_string(n()++));
  std::string url;
  explicit StateDir(std::string state_url = "") : url(std::move(state_url)) { fs::remove_all(dir); }
  ~StateDir() { fs::remove_all(dir); }
  static int& n() {
    static int i = 0;
    return i;
  }
  std::map<std::string, std::string> env() const {
    return {{"GANTRY_STATE_DIR", dir.string()}, {"GANTRY_STATE_URL", url}};
  }
  Ran cluster(std::vector<std::string> args, std::chrono::milliseconds timeout = 60s) const {
    args.insert(args.begin(), {GANTRY_BINARY, "cluster"});
    return run(args, env(), timeout);
  }
  fs::path write(const std::string& name, const std::string& text) const {
    fs::create_directories(dir.parent_path());
    fs::path p = fs::temp_directory_path() / (dir.filename().string() + "-" + name);
    std::ofstream(p) << text;
    return p;
  }
};

TEST(Cluster, AFileWithSeveralProblemsListsEachWithItsLineAndChangesNothing) {
  StateDir s;
  fs::path f = s.write("bad.yaml", R"(apiVersion: gantry.io/v1
kind: Cluster
metadata:
  name: edge
spec:
  mode: ha
  provider: gcp
  distribution: gantry-node
  nodePools:
    - {name: servers, role: server, count: 2}
    - {name: workers, count: -3}
)");
  Ran r = s.cluster({"create", "-f", f.string()});
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("3 problems"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(f.string() + ":7:13: spec.provider: unknown provider 'gcp'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(":10:44: spec.nodePools[0].count: mode ha has 3 servers, not 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(":11:30: spec.nodePools[1].count: must be 0 or more, not -3"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(s.dir / "edge"));
  fs::remove(f);

  // From flags: the same rules.
  Ran dist = s.cluster({"create", "edge", "--provider", "sim", "--distribution", "k8s"});
  EXPECT_EQ(dist.status, 2);
  EXPECT_NE(dist.err.find("unknown distribution 'k8s'"), std::string::npos) << dist.err;
  Ran mode = s.cluster({"create", "edge", "--provider", "sim", "--mode", "huge"});
  EXPECT_EQ(mode.status, 2);
  EXPECT_NE(mode.err.find("mode"), std::string::npos) << mode.err;
  EXPECT_FALSE(fs::exists(s.dir / "edge"));
  // A provider that cannot be made is bad input too, found before anything is recorded.
  Ran no_inventory = run({GANTRY_BINARY, "cluster", "create", "edge", "--provider", "ssh"},
                         {{"GANTRY_STATE_DIR", s.dir.string()}, {"GANTRY_HOSTS_INVENTORY", ""}});
  EXPECT_EQ(no_inventory.status, 2);
  EXPECT_NE(no_inventory.err.find("provider ssh needs an inventory"), std::string::npos) << no_inventory.err;
  EXPECT_FALSE(fs::exists(s.dir / "edge"));
  Ran none = s.cluster({"status", "nope"});
  EXPECT_EQ(none.status, 2);
  EXPECT_NE(none.err.find("no cluster named 'nope'"), std::string::npos) << none.err;
  // The role's own name, as `gantry --help` lists it, takes the same first argument.
  Ran hyphen = run({GANTRY_BINARY, "cluster-status", "nope"}, s.env());
  EXPECT_EQ(hyphen.status, 2);
  EXPECT_NE(hyphen.err.find("no cluster named 'nope'"), std::string::npos) << hyphen.err;
}

TEST(Cluster, ASimClusterConvergesScalesAndIsDeletedAndSaysItIsSimulated) {
  StateDir s;
  Ran c = s.cluster({"create", "edge", "--provider", "sim", "--workers", "3", "--wait", "--sim-failure-rate", "0.1",
                     "--retry-base-delay", "1ms", "--sim-latency", "create=5ms,install=10ms,configure=5ms"});
  ASSERT_EQ(c.status, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("a simulator"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("edge: Running"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("Installing edge-server-0 done"), std::string::npos) << c.out;  // piped: plain lines

  Ran st = s.cluster({"status", "edge", "--json"});
  ASSERT_EQ(st.status, 0) << st.err;
  EXPECT_NE(st.out.find("\"phase\":\"Running\""), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"simulated\":true"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"configuring\":{\"done\":4,\"total\":4}"), std::string::npos) << st.out;
  // Join tokens exist, owner-only, and are never printed.
  struct stat sb{};
  ASSERT_EQ(::stat((s.dir / "edge" / "tokens").c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  std::ifstream tf(s.dir / "edge" / "tokens");
  std::string line;
  std::getline(tf, line);
  std::string token = line.substr(line.find('=') + 1);
  ASSERT_EQ(token.size(), 64u);
  EXPECT_EQ(st.out.find(token), std::string::npos);
  EXPECT_EQ(s.cluster({"status", "edge"}).out.find(token), std::string::npos);

  Ran scale = s.cluster({"scale", "edge", "--pool", "workers", "--count", "1", "--wait", "--sim-latency", "uninstall=1ms"});
  ASSERT_EQ(scale.status, 0) << scale.out << scale.err;
  // A scale-down removes nodes: its lines say so (the status phase is still the spec's Updating).
  EXPECT_NE(scale.out.find("Removing 2 node(s)"), std::string::npos) << scale.out;
  EXPECT_NE(scale.out.find("Removing edge-workers-2 done"), std::string::npos) << scale.out;
  Ran grow = s.cluster({"scale", "edge", "--pool", "workers", "--count", "2", "--wait", "--json"});
  ASSERT_EQ(grow.status, 0) << grow.out << grow.err;
  EXPECT_NE(grow.out.find("\"phase\":\"Provisioning\",\"step\":\"provision\",\"node\":\"edge-workers-1\""), std::string::npos)
      << grow.out;
  ASSERT_EQ(s.cluster({"scale", "edge", "--pool", "workers", "--count", "1", "--wait"}).status, 0);
  Ran list = s.cluster({"list", "--json"});
  EXPECT_NE(list.out.find("\"name\":\"edge\",\"phase\":\"Running\",\"ready\":2,\"nodes\":2"), std::string::npos) << list.out;
  // What the passes did, after the processes that ran them are gone.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(c.out, m, std::regex("\\(\\d+ node steps, (\\d+) retries"))) << c.out;
  Ran metrics = s.cluster({"metrics", "edge", "--export"});
  ASSERT_EQ(metrics.status, 0) << metrics.err;
  EXPECT_NE(metrics.out.find("\"cluster\":\"edge\",\"phase\":\"Running\",\"provider\":\"sim\",\"simulated\":true,\"ready\":2,\"nodes\":2"),
            std::string::npos) << metrics.out;
  EXPECT_NE(metrics.out.find("\"retries\":" + m[1].str() + ","), std::string::npos) << metrics.out << c.out;
  EXPECT_NE(metrics.out.find("\"Installing\":"), std::string::npos) << metrics.out;
  EXPECT_NE(metrics.out.find("\"breakers\":{\"sim\":\"closed\"}"), std::string::npos) << metrics.out;
  fs::path prom = s.write("metrics.prom", s.cluster({"metrics", "--export", "--format", "prometheus"}).out);
  EXPECT_NE(run({"sh", "-c", "cat " + prom.string()}).out.find("cluster_report_nodes_ready{cluster=\"edge\"} 2\n"), std::string::npos);
  Ran promtool = run({"sh", "-c", "promtool check metrics < " + prom.string()});
  EXPECT_EQ(promtool.status, 0) << promtool.out << promtool.err;
  fs::remove(prom);
  Ran table = s.cluster({"metrics"});
  EXPECT_NE(table.out.find("IDEMPOTENT"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("edge "), std::string::npos) << table.out;

  Ran bad_pool = s.cluster({"scale", "edge", "--pool", "gpu", "--count", "2"});
  EXPECT_EQ(bad_pool.status, 2);
  EXPECT_NE(bad_pool.err.find("no pool 'gpu' (pools: workers)"), std::string::npos) << bad_pool.err;

  Ran del = s.cluster({"delete", "edge", "--wait"});
  ASSERT_EQ(del.status, 0) << del.out << del.err;
  EXPECT_NE(del.out.find("edge: deleted"), std::string::npos) << del.out;
  EXPECT_FALSE(fs::exists(s.dir / "edge"));
}

void killed_mid_install_resumes(const StateDir& s) {
  Child first({GANTRY_BINARY, "cluster", "create", "edge", "--provider", "sim", "--workers", "2", "--wait", "--sim-latency",
               "create=5ms,install=3s,configure=5ms"},
              s.env());
  ASSERT_NE(first.wait_for_output("Installing 3 node(s)", 20s), "") << first.out() << first.err();
  first.signal(SIGKILL);
  first.wait(5s);
  Ran mid = s.cluster({"status", "edge", "--json"});
  EXPECT_NE(mid.out.find("\"provisioning\":{\"done\":3,\"total\":3}"), std::string::npos) << mid.out;
  EXPECT_NE(mid.out.find("\"installing\":{\"done\":0,\"total\":3}"), std::string::npos) << mid.out;

  Ran again = s.cluster({"reconcile", "edge", "--sim-latency", "create=5ms,install=5ms,configure=5ms"});
  ASSERT_EQ(again.status, 0) << again.out << again.err;
  EXPECT_EQ(again.out.find("Provisioning"), std::string::npos) << again.out;  // not redone
  EXPECT_NE(again.out.find("Installing edge-server-0 done"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("edge: Running"), std::string::npos) << again.out;
}

TEST(Cluster, AReconcilerKilledMidInstallResumesFromTheLastGoodStep) { killed_mid_install_resumes(StateDir()); }

// In PostgreSQL the killed reconciler's lease row stays (15 min TTL); the next reconciler on the
// same machine sees its pid is gone and takes the lease at once.
TEST(Cluster, AReconcilerKilledMidInstallResumesFromTheLastGoodStepInPostgres) {
  FreshDatabase db("cluster_kill");
  killed_mid_install_resumes(StateDir(db.url));
}

void two_reconcilers_never_act_at_once(const StateDir& s) {
  ASSERT_EQ(s.cluster({"create", "edge", "--provider", "sim", "--workers", "1"}).status, 0);
  Child slow({GANTRY_BINARY, "cluster", "reconcile", "edge", "--sim-latency", "install=2s"}, s.env());
  ASSERT_NE(slow.wait_for_output("Installing", 20s), "") << slow.out() << slow.err();
  // Not waiting long enough: refused, naming the holder, nothing done.
  Ran impatient = s.cluster({"reconcile", "edge", "--lease-wait", "300ms"});
  EXPECT_EQ(impatient.status, 1) << impatient.out << impatient.err;
  EXPECT_NE(impatient.err.find("is being reconciled by"), std::string::npos) << impatient.err;
  EXPECT_NE(impatient.err.find(":" + std::to_string(slow.pid())), std::string::npos) << impatient.err;
  EXPECT_EQ(impatient.out.find("Installing"), std::string::npos) << impatient.out;
  // Waiting (30 s by default): it acts after the first is done, and finds nothing left to do.
  Ran patient = s.cluster({"reconcile", "edge"}, 60s);
  EXPECT_EQ(patient.status, 0) << patient.out << patient.err;
  EXPECT_EQ(slow.wait(1s), 0) << slow.out() << slow.err();  // the first had finished before
  EXPECT_NE(patient.out.find("(0 node steps"), std::string::npos) << patient.out;
}

TEST(Cluster, TwoReconcilersOnOneClusterNeverActAtOnce) { two_reconcilers_never_act_at_once(StateDir()); }

TEST(Cluster, TwoReconcilersOnOneClusterNeverActAtOnceInPostgres) {
  FreshDatabase db("cluster_lease");
  StateDir s(db.url);
  two_reconcilers_never_act_at_once(s);
  // The clusters are in the database, not in the directory.
  EXPECT_FALSE(fs::exists(s.dir / "edge"));
  Ran list = s.cluster({"list"});
  EXPECT_NE(list.out.find("edge"), std::string::npos) << list.out << list.err;
  auto c = store::postgres::Connection::connect(db.url);
  ASSERT_TRUE(c.is_ok());
  auto r = (*c)->query("SELECT count(*) FROM clusters WHERE name = 'edge' AND status LIKE '%phase: Running%'");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->int64(0, 0), 1);
  // Released: no lease row is left behind.
  auto leases = (*c)->query("SELECT count(*) FROM cluster_leases");
  ASSERT_TRUE(leases.is_ok());
  EXPECT_EQ(leases->int64(0, 0), 0);
}

// Polls `gantry cluster list --json` until it holds `want` (or 30 s pass); returns the last.
std::string list_until(const StateDir& s, const std::string& want) {
  std::string last;
  for (int i = 0; i < 150; ++i) {
    last = s.cluster({"list", "--json"}).out;
    if (last.find(want) != std::string::npos) break;
    std::this_thread::sleep_for(200ms);
  }
  return last;
}

TEST(Cluster, TheServiceConvergesWhatIsDeclaredFollowsChangesAndExposesItsFigures) {
  StateDir s;
  ASSERT_EQ(s.cluster({"create", "edge", "--provider", "sim", "--workers", "2", "--sim-latency",
                       "create=5ms,install=10ms,configure=5ms"}).status, 0);
  Child serve({GANTRY_BINARY, "cluster", "serve", "--port", "0", "--interval", "200ms", "--sim-latency",
               "create=5ms,install=10ms,configure=5ms,uninstall=1ms"},
              s.env());
  std::string started = serve.wait_for_output("listening", 20s);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(started, m, std::regex("url=(http://[0-9.:]+)"))) << serve.out() << serve.err();
  std::string base = m[1];

  std::string list = list_until(s, "\"phase\":\"Running\",\"ready\":3,\"nodes\":3");
  EXPECT_NE(list.find("\"ready\":3,\"nodes\":3"), std::string::npos) << list << serve.err();
  EXPECT_EQ(run({"curl", "-sf", base + "/ready"}).out, "{\"status\":\"ready\"}");
  std::string metrics = run({"curl", "-sf", base + "/metrics"}).out;
  EXPECT_NE(metrics.find("cluster_report_nodes_ready{cluster=\"edge\"} 3\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("cluster_node_steps_total{step=\"install\",outcome=\"ok\"} 3\n"), std::string::npos) << metrics;

  // Changes recorded without --wait are the service's to apply.
  ASSERT_EQ(s.cluster({"scale", "edge", "--pool", "workers", "--count", "3"}).status, 0);
  list = list_until(s, "\"ready\":4,\"nodes\":4");
  EXPECT_NE(list.find("\"ready\":4,\"nodes\":4"), std::string::npos) << list << serve.err();
  Ran del = s.cluster({"delete", "edge"});
  EXPECT_NE(del.out.find("marked for deletion"), std::string::npos) << del.out;
  list = list_until(s, "[]");
  EXPECT_EQ(list, "[]\n") << serve.err();

  serve.signal(SIGTERM);
  EXPECT_EQ(serve.wait(10s), 0) << serve.err();
  EXPECT_NE((serve.out() + serve.err()).find("stopped cleanly"), std::string::npos) << serve.out() << serve.err();
  // Each convergence is logged with its duration in the platform's took_ms form.
  EXPECT_TRUE(std::regex_search(serve.out(), std::regex("converged cluster=edge phase=Deleted steps=[0-9]+ retries=0 took_ms=[0-9.]+")))
      << serve.out();
}

}  // namespace
}  // namespace gantry::testing
