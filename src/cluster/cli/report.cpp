#include "cluster/cli/report.h"

#include <cmath>
#include <cstdio>

#include "core/json.h"

namespace gantry::cluster {

namespace {

double round3(double v) { return std::round(v * 1000) / 1000; }
double seconds(int64_t ms) { return static_cast<double>(ms) / 1000; }

const char* const kPhases[] = {"Provisioning", "Installing", "Configuring"};

// Open breakers first: they are what an operator acts on.
std::string breaker_summary(const Operations& o) {
  int open = 0, half = 0;
  for (auto& [name, state] : o.breakers) open += state == "open", half += state == "half-open";
  if (o.breakers.empty()) return "-";
  if (open + half == 0) return std::to_string(o.breakers.size()) + " closed";
  std::string s;
  for (auto& [name, state] : o.breakers)
    if (state != "closed") s += (s.empty() ? "" : ",") + name + "=" + state;
  return s;
}

}  // namespace

Figures figures(const ClusterStatus& s) {
  const Operations& o = s.operations;
  Figures f;
  f.nodes = s.configuring.total;
  for (auto& i : s.instances) f.ready += i.joined && i.state == "running";
  if (o.steps > 0) {
    f.success_rate = round3(static_cast<double>(o.steps - o.steps_failed) / static_cast<double>(o.steps));
    f.retry_rate = round3(static_cast<double>(o.retries) / static_cast<double>(o.steps));
  }
  if (o.steps + o.steps_skipped > 0)
    f.idempotency_hit_rate = round3(static_cast<double>(o.steps_skipped) / static_cast<double>(o.steps + o.steps_skipped));
  if (o.last_slot_ms > 0)
    f.parallel_efficiency = round3(std::min(1.0, static_cast<double>(o.last_busy_ms) / static_cast<double>(o.last_slot_ms)));
  if (o.pass_ms > 0) f.steps_per_minute = std::round(static_cast<double>(o.steps) * 60'000.0 / static_cast<double>(o.pass_ms) * 10) / 10;
  return f;
}

core::Result<std::vector<ClusterReport>> collect_reports(Store& store, const std::string& only) {
  std::vector<std::string> names;
  if (!only.empty()) {
    names.push_back(only);
  } else {
    GANTRY_ASSIGN(all, store.list());
    names = std::move(all);
  }
  std::vector<ClusterReport> out;
  for (auto& n : names) {
    auto c = store.get(n);
    if (!c.is_ok()) {
      if (!only.empty()) return c.status();
      continue;  // removed meanwhile
    }
    GANTRY_ASSIGN(st, store.status(n));
    out.push_back({std::move(*c), std::move(st)});
  }
  return out;
}

std::string report_table(const std::vector<ClusterReport>& reports) {
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line, "%-20s %-12s %-6s %6s %6s %8s %6s %10s %10s %9s %9s %9s %8s  %s\n", "CLUSTER", "PHASE", "READY",
                "PASSES", "STEPS", "SUCCESS", "RETRY", "IDEMPOTENT", "EFFICIENCY", "PROVISION", "INSTALL", "CONFIGURE", "STEPS/MIN",
                "BREAKERS");
  out += line;
  for (auto& r : reports) {
    Figures f = figures(r.status);
    const Operations& o = r.status.operations;
    auto phase = [&](const char* p) {
      auto it = o.phase_ms.find(p);
      if (it == o.phase_ms.end()) return std::string("-");
      char b[32];
      std::snprintf(b, sizeof b, "%.1fs", seconds(it->second));
      return std::string(b);
    };
    std::snprintf(line, sizeof line, "%-20s %-12s %-6s %6lld %6lld %7.1f%% %5.1f%% %9.1f%% %10.2f %9s %9s %9s %8.1f  %s\n",
                  r.cluster.metadata.name.c_str(), r.status.phase.c_str(),
                  (std::to_string(f.ready) + "/" + std::to_string(f.nodes)).c_str(), static_cast<long long>(o.passes),
                  static_cast<long long>(o.steps), f.success_rate * 100, f.retry_rate * 100, f.idempotency_hit_rate * 100,
                  f.parallel_efficiency, phase("Provisioning").c_str(), phase("Installing").c_str(), phase("Configuring").c_str(),
                  f.steps_per_minute, breaker_summary(o).c_str());
    out += line;
  }
  if (reports.empty()) out += "(no clusters)\n";
  return out;
}

std::string report_json(const std::vector<ClusterReport>& reports) {
  std::string b;
  core::json::Writer w(b);
  w.object().key("clusters").array();
  for (auto& r : reports) {
    Figures f = figures(r.status);
    const Operations& o = r.status.operations;
    w.object()
        .field("cluster", r.cluster.metadata.name)
        .field("phase", r.status.phase)
        .field("provider", r.cluster.spec.provider)
        .field("simulated", r.cluster.spec.provider == "sim")
        .field("ready", f.ready)
        .field("nodes", f.nodes)
        .field("passes", o.passes)
        .field("steps", o.steps)
        .field("steps_failed", o.steps_failed)
        .field("steps_skipped", o.steps_skipped)
        .field("retries", o.retries)
        .key("success_rate").value_fixed(f.success_rate, 3)
        .key("retry_rate").value_fixed(f.retry_rate, 3)
        .key("idempotency_hit_rate").value_fixed(f.idempotency_hit_rate, 3)
        .key("parallel_efficiency").value_fixed(f.parallel_efficiency, 3)
        .key("steps_per_minute").value_fixed(f.steps_per_minute, 1)
        .key("last_pass_s").value_fixed(seconds(o.last_pass_ms), 3)
        .key("last_critical_path_s").value_fixed(seconds(o.last_critical_path_ms), 3);
    w.key("phase_s").object();
    for (auto& [p, ms] : o.phase_ms) w.key(p).value_fixed(seconds(ms), 3);
    w.end();
    w.key("breakers").object();
    for (auto& [name, state] : o.breakers) w.field(name, state);
    w.end();
    w.end();
  }
  w.end().end();
  return b + "\n";
}

void report_gauges(const std::vector<ClusterReport>& reports, core::metrics::Registry& m) {
  auto& ready = m.gauge("cluster_report_nodes_ready", "Nodes installed, joined and running.", {"cluster"});
  auto& nodes = m.gauge("cluster_report_nodes", "Nodes the cluster declares.", {"cluster"});
  auto& passes = m.gauge("cluster_report_passes", "Reconciler passes over the cluster, recorded in its status.", {"cluster"});
  auto& steps = m.gauge("cluster_report_node_steps", "Node steps run over the cluster's life.", {"cluster"});
  auto& success = m.gauge("cluster_report_success_ratio", "Node steps that succeeded / node steps run.", {"cluster"});
  auto& retry = m.gauge("cluster_report_retry_ratio", "Provider calls retried / node steps run.", {"cluster"});
  auto& idem = m.gauge("cluster_report_idempotency_hit_ratio",
                       "Node steps found done and not redone / node steps considered.", {"cluster"});
  auto& eff = m.gauge("cluster_report_parallel_efficiency", "Parallel efficiency of the last pass that ran node steps (0..1).",
                      {"cluster"});
  auto& rate = m.gauge("cluster_report_node_steps_per_minute", "Node steps per minute of reconciling.", {"cluster"});
  auto& phase = m.gauge("cluster_report_phase_seconds", "The last run of each phase (Provisioning, Installing, Configuring).",
                        {"cluster", "phase"});
  auto& breaker = m.gauge("cluster_report_breaker_open", "1 when a provider breaker was open (0.5 half-open) after the last pass.",
                          {"cluster", "breaker"});
  for (auto& r : reports) {
    const std::string& n = r.cluster.metadata.name;
    Figures f = figures(r.status);
    const Operations& o = r.status.operations;
    ready.with({n}).set(f.ready);
    nodes.with({n}).set(f.nodes);
    passes.with({n}).set(static_cast<double>(o.passes));
    steps.with({n}).set(static_cast<double>(o.steps));
    success.with({n}).set(f.success_rate);
    retry.with({n}).set(f.retry_rate);
    idem.with({n}).set(f.idempotency_hit_rate);
    eff.with({n}).set(f.parallel_efficiency);
    rate.with({n}).set(f.steps_per_minute);
    for (const char* p : kPhases)
      if (auto it = o.phase_ms.find(p); it != o.phase_ms.end()) phase.with({n, p}).set(seconds(it->second));
    for (auto& [b, state] : o.breakers) breaker.with({n, b}).set(state == "open" ? 1 : state == "half-open" ? 0.5 : 0);
  }
}

std::string report_prometheus(const std::vector<ClusterReport>& reports) {
  core::metrics::Registry m;
  report_gauges(reports, m);
  return m.expose();
}

}  // namespace gantry::cluster
