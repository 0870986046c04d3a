// The reconciler's parallelism with the simulated provider (spec cluster.md, Performance): the
// guide's per-node step times scaled down 1000x (provision 120 ms, install 300 ms, configure
// 120 ms, each ±20 %), transient failures injected, every call through breaker and retry.
//
//   sim_parallel_efficiency    100 nodes at concurrency 10, 2 % failures (goal >= 0.95)
//   sim_wall_vs_critical_path  the pass's wall time over the shortest its steps allowed at that
//                              concurrency (goal <= 1.10): the reference, computed in the run
//                              from the node steps' measured times
//   sim_c<N>_wall_s, sim_c<N>_speedup  the guide's sweep, 10 nodes at concurrency 1/3/5/8/12
#include <unistd.h>

#include <filesystem>

#include "bench/emit.h"
#include "cluster/provider/sim.h"
#include "cluster/reconciler/reconciler.h"
#include "core/log.h"

using namespace gantry;
using namespace gantry::cluster;
namespace fs = std::filesystem;

namespace {

struct Run {
  PassResult pass;
  double wall_s = 0;
  int retries = 0, created = 0;
};

Run create(int nodes, int concurrency, double failure_rate, uint64_t seed) {
  fs::path dir = fs::temp_directory_path() / ("gantry-bench-cluster-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto store = open_dir_store(dir.string()).value();
  SimOptions so;
  so.failure_rate = failure_rate;
  so.seed = seed;
  SimProvider sim(so);
  ReconcilerOptions ro;
  ro.concurrency = concurrency;
  ro.retry.base_delay = std::chrono::milliseconds(1);  // the cloud preset's 500 ms, scaled like the steps
  ro.retry.max_retries = 8;
  DistributionOptions d;
  d.gantry_binary = "/bin/sh";  // checksummed, never copied: the simulator copies nothing
  Reconciler rec(*store, [&](const Cluster&) -> core::Result<Provider*> { return &sim; }, d, ro);
  Cluster c;
  c.metadata.name = "bench";
  c.spec.provider = "sim";
  c.spec.distribution = "k3s";  // the guide's steps: the first server installs alone, then the rest join it
  NodePool p;
  p.name = "workers";
  p.count = nodes - 1;
  c.spec.node_pools.push_back(p);
  (void)store->put(c, false);
  auto t0 = std::chrono::steady_clock::now();
  Run r;
  r.pass = rec.reconcile("bench");
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.retries = r.pass.retries;
  r.created = sim.stats().instances_created;
  if (r.pass.phase != "Running") std::fprintf(stderr, "cluster bench: the pass ended %s: %s\n", r.pass.phase.c_str(), r.pass.status.to_string().c_str());
  fs::remove_all(dir);
  return r;
}

}  // namespace

int main() {
  core::log::Settings ls;
  ls.level = "warn";  // the [RETRY] and [PARALLEL] lines of 100 nodes would bury the figures
  (void)core::log::init(ls);
  Run big = create(100, 10, 0.02, 42);
  bench::emit("cluster", "sim_100_nodes_wall_s", big.wall_s);
  bench::emit("cluster", "sim_100_nodes_critical_path_s", static_cast<double>(big.pass.critical_path.count()) / 1000);
  bench::emit("cluster", "sim_100_nodes_retries", big.retries, "retries");
  bench::emit("cluster", "sim_parallel_efficiency", big.pass.efficiency);
  bench::emit("cluster", "sim_wall_vs_critical_path", big.wall_s * 1000 / static_cast<double>(big.pass.critical_path.count()));

  double one = 0;
  for (int c : {1, 3, 5, 8, 12}) {
    Run r = create(10, c, 0.02, 7);
    if (c == 1) one = r.wall_s;
    std::string m = "sim_c" + std::to_string(c);
    bench::emit("cluster", (m + "_wall_s").c_str(), r.wall_s);
    bench::emit("cluster", (m + "_speedup").c_str(), one / r.wall_s);
  }
  return 0;
}
