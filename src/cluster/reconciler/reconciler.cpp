#include "cluster/reconciler/reconciler.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/parallel.h"

namespace gantry::cluster {

namespace {

using core::Result;
using core::Status;
using core::resilience::Deadline;
using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

const core::log::Logger reconciler_log("cluster");

ms since(Clock::time_point t) { return std::chrono::duration_cast<ms>(Clock::now() - t); }

std::string default_holder() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(::getpid());
}

struct ReconcilerMetrics {
  core::metrics::Family<core::metrics::Counter>& steps = core::metrics::Registry::global().counter(
      "cluster_node_steps_total", "Node steps run, by step and outcome (ok, failed).", {"step", "outcome"});
  core::metrics::Family<core::metrics::Counter>& retries = core::metrics::Registry::global().counter(
      "cluster_provider_retries_total", "Provider calls attempted again after a transient failure.", {"step"});
  core::metrics::Family<core::metrics::Counter>& skipped = core::metrics::Registry::global().counter(
      "cluster_idempotent_skips_total", "Node steps found already done and not redone (a resumed pass).", {"step"});
  core::metrics::Family<core::metrics::Histogram>& step_seconds = core::metrics::Registry::global().histogram(
      "cluster_node_step_duration_seconds", "Time one node's step took, retries included.", {"step"});
  core::metrics::Family<core::metrics::Counter>& passes = core::metrics::Registry::global().counter(
      "cluster_reconcile_passes_total", "Reconciler passes, by outcome (converged, progressing, failed, deleted, locked).",
      {"outcome"});
  core::metrics::Family<core::metrics::Gauge>& efficiency = core::metrics::Registry::global().gauge(
      "cluster_parallel_efficiency", "Parallel efficiency of the cluster's last pass (0..1).", {"cluster"});
  core::metrics::Family<core::metrics::Gauge>& phase_seconds = core::metrics::Registry::global().gauge(
      "cluster_phase_duration_seconds", "How long each phase of the cluster's last pass took.", {"cluster", "phase"});
};
ReconcilerMetrics& metrics() {
  static ReconcilerMetrics m;
  return m;
}

}  // namespace

// One pass over one cluster; holds what the pass read and writes the status as nodes progress.
class Reconciler::Pass {
 public:
  Pass(Reconciler& r, Lease& lease, Cluster c, ClusterStatus st, Tokens t, Provider& p, Distribution& d)
      : r_(r), lease_(lease), c_(std::move(c)), st_(std::move(st)), tokens_(std::move(t)), provider_(p), dist_(d) {}

  PassResult run();

 private:
  // One node's step: a function of the node (a copy) that updates it; written back on success.
  using NodeFn = std::function<Status(Instance& node, const Deadline& d)>;
  // Runs fn over `names` through the parallel manager; false when any node failed.
  bool run_nodes(const std::string& phase, const std::string& step, const std::vector<std::string>& names, const NodeFn& fn);
  // A provider call through the breaker `breaker` names and the retry preset.
  template <class F>
  auto call(const std::string& step, const std::string& breaker, const Deadline& d, F&& fn);
  Status node_script(Instance& n, const Script& s, const Deadline& d);
  Status put_files(Instance& n, const Deadline& d);
  NodeContext context(const Instance& n);
  void set_phase(const std::string& phase, const std::string& message = "");
  void count_progress();
  Status save();
  PassResult fail(const std::string& phase);
  void record(const PassResult& r);
  // Nodes found done in a phase that had work (a resumed or widened one), not every node of a
  // pass with nothing to do.
  void count_skips(const char* step, const std::vector<std::string>& pending) {
    if (pending.empty()) return;
    auto done = st_.instances.size() - pending.size();
    metrics().skipped.with({step}).inc(static_cast<uint64_t>(done));
    res_.steps_skipped += static_cast<int>(done);
  }

  Reconciler& r_;
  Lease& lease_;
  Status lease_lost_;  // set when renewing the lease found it taken: the pass stops, writing nothing
  Cluster c_;
  ClusterStatus st_;
  Tokens tokens_;
  Provider& provider_;
  Distribution& dist_;
  std::mutex mu_;  // st_ while nodes run
  PassResult res_;
  std::string first_error_;
  int failed_nodes_ = 0, tried_nodes_ = 0;  // of the last step run
  std::string last_failure_;                 // the provider's last failure (not an open circuit)
  double busy_ms_ = 0, slot_ms_ = 0, critical_ms_ = 0;
};

template <class F>
auto Reconciler::Pass::call(const std::string& step, const std::string& breaker, const Deadline& d, F&& fn) {
  core::resilience::CircuitBreaker& cb = r_.breakers_.get(breaker);
  core::resilience::RetryOptions ro;
  ro.sleeper = r_.o_.sleeper;
  ro.random = r_.o_.random;
  ro.parent = d;
  ro.operation = step;
  return core::resilience::retry(
      r_.o_.retry,
      [&](const core::resilience::Attempt& a) {
        if (a.number > 1) {
          metrics().retries.with({step}).inc();
          std::lock_guard lk(mu_);
          ++res_.retries;
        }
        auto r = cb.call([&] { return fn(a.deadline); });
        // A half-open breaker lets one trial call through; the other nodes wait for its verdict
        // instead of failing a pass over a fault that has just cleared. The verdict may already
        // be in when a refused call looks (closed): then it tries again too; only open again
        // (the trial failed) ends the wait.
        while (!r.is_ok() && core::resilience::detail::status_of(r).code() == core::Code::kCircuitOpen &&
               cb.state() != core::resilience::BreakerState::kOpen && !a.deadline.expired(core::Clock::real())) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          r = cb.call([&] { return fn(a.deadline); });
        }
        if (!r.is_ok()) {
          Status why = core::resilience::detail::status_of(r);
          std::lock_guard lk(mu_);
          if (why.code() != core::Code::kCircuitOpen) last_failure_ = std::string(why.message());
          else if (!last_failure_.empty())  // say what opened it, not only that it is open
            return decltype(r)(Status(core::Code::kCircuitOpen, std::string(why.message()) + " after: " + last_failure_));
        }
        return r;
      },
      ro);
}

NodeContext Reconciler::Pass::context(const Instance& n) {
  std::optional<Instance> first;
  std::lock_guard lk(mu_);
  for (auto& i : st_.instances)
    if (i.role == "server" && i.index == 0) first = i;
  return {c_, n, std::move(first), tokens_};
}

Status Reconciler::Pass::node_script(Instance& n, const Script& s, const Deadline& d) {
  ProviderInstance pi{n.id, n.private_ip, n.public_ip};
  auto out = call(s.step, provider_.breaker_for(pi), d, [&](const Deadline& dl) { return provider_.run(pi, s, dl); });
  return out.status();
}

Status Reconciler::Pass::put_files(Instance& n, const Deadline& d) {
  ProviderInstance pi{n.id, n.private_ip, n.public_ip};
  for (auto& f : dist_.files(context(n)))
    GANTRY_RETURN_IF_ERROR(call("put", provider_.breaker_for(pi), d, [&](const Deadline& dl) { return provider_.put(pi, f.local, f.remote, f.executable, dl); }));
  return {};
}

Status Reconciler::Pass::save() { return r_.store_.put_status(c_.metadata.name, st_); }

void Reconciler::Pass::count_progress() {
  int total = static_cast<int>(desired_nodes(c_).size());
  st_.provisioning = st_.installing = st_.configuring = {0, total};
  for (auto& i : st_.instances) {
    st_.provisioning.done += i.provisioned;
    st_.installing.done += i.installed;
    st_.configuring.done += i.joined;
  }
}

void Reconciler::Pass::set_phase(const std::string& phase, const std::string& message) {
  std::lock_guard lk(mu_);
  st_.phase = phase;
  st_.message = message;
  res_.phase = phase;
}

bool Reconciler::Pass::run_nodes(const std::string& phase, const std::string& step, const std::vector<std::string>& names,
                                 const NodeFn& fn) {
  if (names.empty()) return true;
  // Each phase starts under a lease still ours (it is renewed in the background too); a store
  // that does not answer is not a loss, the row stays ours until it expires.
  if (Status l = lease_.renew(); l.code() == core::Code::kAborted) {
    lease_lost_ = l;
    return false;
  }
  set_phase(phase, c_.metadata.generation != st_.observed_generation && st_.observed_generation > 0
                       ? "updating to generation " + std::to_string(c_.metadata.generation)
                       : "");
  {
    std::lock_guard lk(mu_);
    count_progress();
  }
  (void)save();
  auto began = Clock::now();
  int total = static_cast<int>(names.size());
  int done = 0;
  auto emit = [&](const std::string& node, const Status& s) {
    if (!r_.progress_) return;
    ProgressEvent e{c_.metadata.name, phase, node, step, done, total, since(began), s, provider_.simulated()};
    r_.progress_(e);
  };
  emit("", {});
  std::vector<core::resilience::Operation> ops;
  for (auto& name : names)
    ops.push_back({name, [&, name](const core::resilience::OpContext& ctx) -> Status {
                     Instance node;
                     {
                       std::lock_guard lk(mu_);
                       node = *st_.find(name);
                     }
                     auto t0 = Clock::now();
                     Status s = fn(node, ctx.deadline);
                     metrics().step_seconds.with({step}).observe(std::chrono::duration<double>(Clock::now() - t0).count());
                     metrics().steps.with({step, s.is_ok() ? "ok" : "failed"}).inc();
                     std::lock_guard lk(mu_);
                     Instance* live = st_.find(name);
                     ++res_.steps_run;
                     if (s.is_ok()) {
                       node.error.clear();
                       if (live) *live = node;
                     } else {
                       ++res_.steps_failed;
                       if (live) live->error = step + ": " + std::string(s.message());
                       if (first_error_.empty()) first_error_ = name + ": " + step + ": " + std::string(s.message());
                     }
                     count_progress();
                     if (Status w = save(); !w.is_ok()) reconciler_log.error("status not written", {{"cluster", c_.metadata.name}, {"error", w.to_string()}});
                     ++done;
                     emit(name, s);
                     return s;
                   }});
  core::resilience::ParallelManager pm({.name = "cluster", .concurrency = r_.o_.concurrency, .timeout = r_.o_.node_timeout});
  auto rep = pm.run(std::move(ops));
  double wall = std::chrono::duration<double, std::milli>(rep.wall).count();
  double sum = 0, longest = 0, slots = std::min<double>(r_.o_.concurrency, static_cast<double>(names.size()));
  for (auto& o : rep.results) {
    double d = std::chrono::duration<double, std::milli>(o.duration).count();
    sum += d, longest = std::max(longest, d);
  }
  busy_ms_ += sum;
  slot_ms_ += wall * slots;
  critical_ms_ += std::max(longest, sum / slots);
  res_.phase_time[phase] += std::chrono::duration_cast<ms>(rep.wall);
  reconciler_log.debug("[PARALLEL] step done", {{"cluster", c_.metadata.name}, {"step", step}, {"nodes", total},
                                   {"failed", rep.failed}, {"wall_ms", static_cast<int64_t>(wall)},
                                   {"efficiency", std::round(rep.efficiency * 1000) / 1000}});
  tried_nodes_ = total;
  failed_nodes_ = rep.failed;
  emit("", rep.failed ? core::unavailable(first_error_) : Status());
  return rep.failed == 0;
}

PassResult Reconciler::Pass::fail(const std::string& phase) {
  std::lock_guard lk(mu_);
  if (!lease_lost_.is_ok()) {
    res_.phase = "Locked";
    res_.status = lease_lost_;
    metrics().passes.with({"locked"}).inc();
    reconciler_log.warn("pass stopped: lease lost", {{"cluster", c_.metadata.name}, {"error", lease_lost_.to_string()}});
    return res_;
  }
  st_.phase = "Failed";
  st_.message = phase + ": " + std::to_string(failed_nodes_) + " of " + std::to_string(tried_nodes_) +
                " nodes failed; first: " + first_error_;
  res_.phase = "Failed";
  res_.status = core::unavailable(st_.message);
  res_.requeue = ms(120'000);
  st_.conditions = {{"Ready", "False", phase + "Failed", st_.message, core::rfc3339(core::Clock::real().wall_now())}};
  (void)save();
  metrics().passes.with({"failed"}).inc();
  reconciler_log.warn("[METRICS] pass failed", {{"cluster", c_.metadata.name}, {"reason", st_.message}});
  return res_;
}

// The pass's figures join the cluster's operations in its status (for `gantry cluster metrics`).
void Reconciler::Pass::record(const PassResult& r) {
  std::lock_guard lk(mu_);
  Operations& o = st_.operations;
  ++o.passes;
  o.steps += r.steps_run;
  o.steps_failed += r.steps_failed;
  o.steps_skipped += r.steps_skipped;
  o.retries += r.retries;
  o.pass_ms += r.wall.count();
  if (r.steps_run > 0) {
    o.last_pass_ms = r.wall.count();
    o.last_busy_ms = static_cast<int64_t>(busy_ms_);
    o.last_slot_ms = static_cast<int64_t>(slot_ms_);
    o.last_critical_path_ms = r.critical_path.count();
    for (auto& [phase, t] : r.phase_time) o.phase_ms[phase] = t.count();
  }
  o.breakers.clear();
  for (auto& i : st_.instances) {
    if (i.id.empty()) continue;
    std::string b = provider_.breaker_for({i.id, i.private_ip, i.public_ip});
    o.breakers[b] = std::string(core::resilience::state_name(r_.breakers_.get(b).state()));
  }
  if (Status w = save(); !w.is_ok()) reconciler_log.error("status not written", {{"cluster", c_.metadata.name}, {"error", w.to_string()}});
}

PassResult Reconciler::Pass::run() {
  auto began = Clock::now();
  const std::string& name = c_.metadata.name;
  st_.last_reconcile_time = core::rfc3339(core::Clock::real().wall_now());
  auto finish = [&](PassResult r) {
    r.wall = since(began);
    r.efficiency = slot_ms_ > 0 ? std::min(1.0, busy_ms_ / slot_ms_) : 1.0;
    r.critical_path = ms(static_cast<int64_t>(critical_ms_));
    metrics().efficiency.with({name}).set(r.efficiency);
    for (auto& [phase, t] : r.phase_time) metrics().phase_seconds.with({name, phase}).set(static_cast<double>(t.count()) / 1000);
    if (r.phase != "Locked" && !r.deleted) record(r);
    return r;
  };

  auto destroy = [&](Instance& n, const Deadline& d) -> Status {
    if (n.installed || n.provisioned) {
      if (n.installed) {
        GANTRY_RETURN_IF_ERROR(node_script(n, dist_.uninstall(context(n)), d));
        // Not a reason to keep the node: a controller that is down must not block a delete. A
        // simulated node registered nothing.
        if (Status f = provider_.simulated() ? Status{} : dist_.forget(context(n), d); !f.is_ok())
          reconciler_log.warn("node removed; its agents may still be listed", {{"cluster", c_.metadata.name}, {"error", f.to_string()}});
      }
      n.installed = n.joined = false;
      ProviderInstance pi{n.id, n.private_ip, n.public_ip};
      GANTRY_RETURN_IF_ERROR(call("destroy", provider_.breaker_for(pi), d, [&](const Deadline& dl) { return provider_.destroy(pi, dl); }));
    }
    n.provisioned = false;
    n.state = "terminated";
    return {};
  };
  // Highest index first, agents before servers (the first server goes last).
  auto removal_order = [&](std::vector<std::string> names) {
    std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
      const Instance *x = st_.find(a), *y = st_.find(b);
      return std::tuple(x->role == "agent", x->index, x->name) > std::tuple(y->role == "agent", y->index, y->name);
    });
    return names;
  };
  auto forget_terminated = [&] {
    std::lock_guard lk(mu_);
    std::erase_if(st_.instances, [](const Instance& i) { return i.state == "terminated" && i.error.empty(); });
  };

  // Deleting.
  if (!c_.metadata.deletion_timestamp.empty()) {
    std::vector<std::string> all;
    for (auto& i : st_.instances) all.push_back(i.name);
    bool ok = run_nodes("Deleting", "uninstall", removal_order(all), destroy);
    forget_terminated();
    if (!ok) return finish(fail("Deleting"));
    set_phase("Deleting", "every node removed");
    if (Status s = r_.store_.remove(name); !s.is_ok()) {
      res_.status = s;
      return finish(res_);
    }
    res_.deleted = true;
    res_.requeue = ms(0);
    metrics().passes.with({"deleted"}).inc();
    return finish(res_);
  }

  auto desired = desired_nodes(c_);
  // Scale down: nodes no longer declared.
  std::vector<std::string> extra;
  for (auto& i : st_.instances)
    if (std::none_of(desired.begin(), desired.end(), [&](const NodeSlot& s) { return s.name == i.name; })) extra.push_back(i.name);
  if (!run_nodes("Updating", "uninstall", removal_order(extra), destroy)) {
    forget_terminated();
    return finish(fail("Updating"));
  }
  forget_terminated();
  for (auto& s : desired)
    if (!st_.find(s.name)) {
      Instance i;
      i.name = s.name, i.role = s.role, i.pool = s.pool, i.index = s.index;
      st_.instances.push_back(std::move(i));
    }
  // Declared order: servers first, pools as written.
  std::stable_sort(st_.instances.begin(), st_.instances.end(), [&](const Instance& a, const Instance& b) {
    auto pos = [&](const Instance& i) {
      for (size_t k = 0; k < desired.size(); ++k)
        if (desired[k].name == i.name) return k;
      return desired.size();
    };
    return pos(a) < pos(b);
  });

  auto select = [&](auto pred) {
    std::vector<std::string> out;
    for (auto& i : st_.instances)
      if (pred(i)) out.push_back(i.name);
    return out;
  };

  // Provisioning.
  auto to_create = select([](const Instance& i) { return !i.provisioned; });
  count_skips("provision", to_create);
  bool ok = run_nodes("Provisioning", "provision", to_create, [&](Instance& n, const Deadline& d) -> Status {
    const NodeSlot* slot = nullptr;
    for (auto& s : desired)
      if (s.name == n.name) slot = &s;
    InstanceRequest req{name, n.pool, n.name, n.role, slot ? slot->instance_type : c_.spec.instance_type, n.index};
    auto created = call("create", std::string(provider_.name()), d, [&](const Deadline& dl) { return provider_.create(req, dl); });
    if (!created.is_ok()) return created.status();
    n.id = created->id, n.private_ip = created->private_ip, n.public_ip = created->public_ip;
    GANTRY_RETURN_IF_ERROR(call("check", provider_.breaker_for(*created), d, [&](const Deadline& dl) { return provider_.check(*created, dl); }));
    n.provisioned = true;
    n.state = "running";
    return {};
  });
  if (!ok) return finish(fail("Provisioning"));

  // Stopped clusters stay provisioned; their software is stopped.
  if (c_.spec.desired_state == "stopped") {
    auto running = select([](const Instance& i) { return i.installed && i.state != "stopped"; });
    ok = run_nodes("Stopping", "stop", running, [&](Instance& n, const Deadline& d) -> Status {
      GANTRY_RETURN_IF_ERROR(node_script(n, dist_.stop(context(n)), d));
      n.state = "stopped";
      return {};
    });
    if (!ok) return finish(fail("Stopping"));
    set_phase("Stopped");
    st_.observed_generation = c_.metadata.generation;
    st_.conditions = {{"Ready", "False", "Stopped", "desiredState is stopped", core::rfc3339(core::Clock::real().wall_now())}};
    (void)save();
    res_.requeue = ms(120'000);
    metrics().passes.with({"converged"}).inc();
    return finish(res_);
  }
  auto stopped = select([](const Instance& i) { return i.installed && i.state == "stopped"; });
  ok = run_nodes("Starting", "start", stopped, [&](Instance& n, const Deadline& d) -> Status {
    GANTRY_RETURN_IF_ERROR(node_script(n, dist_.start(context(n)), d));
    n.state = "running";
    return {};
  });
  if (!ok) return finish(fail("Starting"));

  // Installing: for K3s the first server alone, then the rest.
  auto install = [&](Instance& n, const Deadline& d) -> Status {
    GANTRY_RETURN_IF_ERROR(put_files(n, d));
    GANTRY_RETURN_IF_ERROR(node_script(n, dist_.install(context(n)), d));
    n.installed = true;
    return {};
  };
  auto to_install = select([](const Instance& i) { return !i.installed; });
  count_skips("install", to_install);
  std::vector<std::string> first;
  for (auto& i : st_.instances)
    if (dist_.first_server_alone() && i.role == "server" && i.index == 0 && !i.installed) first.push_back(i.name);
  if (!first.empty()) std::erase(to_install, first[0]);
  if (!run_nodes("Installing", "install", first, install)) return finish(fail("Installing"));
  if (!run_nodes("Installing", "install", to_install, install)) return finish(fail("Installing"));

  // Configuring.
  auto to_join = select([](const Instance& i) { return !i.joined; });
  count_skips("configure", to_join);
  ok = run_nodes("Configuring", "configure", to_join, [&](Instance& n, const Deadline& d) -> Status {
    GANTRY_RETURN_IF_ERROR(node_script(n, dist_.configure(context(n)), d));
    n.joined = true;
    return {};
  });
  if (!ok) return finish(fail("Configuring"));

  bool changed = res_.steps_run > 0;
  set_phase("Running");
  {
    std::lock_guard lk(mu_);
    count_progress();
    st_.observed_generation = c_.metadata.generation;
    if (changed || st_.conditions.empty() || st_.conditions[0].status != "True")
      st_.conditions = {{"Ready", "True", "Converged", "every node installed and joined", core::rfc3339(core::Clock::real().wall_now())}};
  }
  (void)save();
  metrics().passes.with({changed ? "progressing" : "converged"}).inc();
  if (changed)
    reconciler_log.info("[METRICS] cluster converged", {{"cluster", name}, {"nodes", static_cast<int64_t>(st_.instances.size())},
                                            {"wall_ms", static_cast<int64_t>(since(began).count())},
                                            {"retries", res_.retries}, {"simulated", provider_.simulated()}});
  res_.requeue = ms(changed ? 30'000 : 120'000);
  return finish(res_);
}

Reconciler::Reconciler(Store& store, ProviderLookup providers, DistributionOptions dist, ReconcilerOptions o)
    : store_(store), providers_(std::move(providers)), dist_(std::move(dist)), o_(std::move(o)), breakers_(o_.breaker) {
  if (o_.holder.empty()) o_.holder = default_holder();
}

Reconciler::~Reconciler() = default;

PassResult Reconciler::reconcile(const std::string& name) {
  PassResult r;
  auto lease = store_.acquire(name, o_.holder, o_.lease_ttl, o_.lease_wait);
  if (!lease.is_ok()) {
    metrics().passes.with({"locked"}).inc();
    r.status = lease.status();
    r.phase = "Locked";
    return r;
  }
  auto c = store_.get(name);
  if (!c.is_ok()) {
    r.status = c.status();
    return r;
  }
  auto st = store_.status(name);
  if (!st.is_ok()) {
    r.status = st.status();
    return r;
  }
  auto tokens = store_.tokens(name);
  if (!tokens.is_ok()) {
    r.status = tokens.status();
    return r;
  }
  auto provider = providers_(*c);
  if (!provider.is_ok()) {
    r.status = provider.status();
    return r;
  }
  Distribution* dist = nullptr;
  {
    std::lock_guard lk(dist_mu_);
    // The controller the cluster was created with, unless this reconciler was given another.
    DistributionOptions o = dist_;
    if (auto a = c->metadata.annotations.find(kControllerAnnotation);
        a != c->metadata.annotations.end() && o.controller_url == DistributionOptions{}.controller_url)
      o.controller_url = a->second;
    auto& d = dists_[{c->spec.distribution, o.controller_url}];
    if (!d) {
      auto made = make_distribution(c->spec.distribution, o);
      if (!made.is_ok()) {
        r.status = made.status();
        return r;
      }
      d = std::move(*made);
    }
    dist = d.get();
  }
  Pass pass(*this, **lease, std::move(*c), std::move(*st), std::move(*tokens), **provider, *dist);
  return pass.run();
}

}  // namespace gantry::cluster
