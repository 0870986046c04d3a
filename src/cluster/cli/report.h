// `gantry cluster metrics`: what the reconciler's passes did, per cluster, from the operations
// each pass records in the cluster's status (so the figures outlive the process that ran them):
// creation, installation and configuration time, success rate, parallel efficiency, retry
// rate, idempotency hit rate, breaker states and node steps per minute. As a table for people,
// JSON, or Prometheus text (the same names `gantry cluster serve` exposes on /metrics).
#pragma once

#include <string>
#include <vector>

#include "cluster/model.h"
#include "cluster/state/store.h"
#include "core/metrics.h"

namespace gantry::cluster {

struct ClusterReport {
  Cluster cluster;
  ClusterStatus status;
};

// The derived figures, rounded to what was measured (ratios to 3 decimals).
struct Figures {
  int ready = 0, nodes = 0;
  double success_rate = 1, retry_rate = 0, idempotency_hit_rate = 0, parallel_efficiency = 1, steps_per_minute = 0;
};
Figures figures(const ClusterStatus& s);

// The named cluster's report (kNotFound when there is none), or with `only` empty every
// cluster's (one removed meanwhile is left out).
core::Result<std::vector<ClusterReport>> collect_reports(Store& store, const std::string& only = "");

std::string report_table(const std::vector<ClusterReport>& r);
std::string report_json(const std::vector<ClusterReport>& r);
// Sets the cluster_report_* gauges of `into` (labelled by cluster) to the reports' figures.
void report_gauges(const std::vector<ClusterReport>& r, core::metrics::Registry& into);
// Prometheus text of report_gauges in a registry of its own.
std::string report_prometheus(const std::vector<ClusterReport>& r);

}  // namespace gantry::cluster
