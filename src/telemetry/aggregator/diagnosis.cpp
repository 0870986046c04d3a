#include <cmath>

#include "telemetry/aggregator/schema.h"

namespace gantry::telemetry::aggregator {

namespace {

struct Moments {
  double mean = 0, sd = 0;  // population standard deviation
};

template <class F>
Moments moments(const std::vector<WindowStats>& xs, F field) {
  Moments m;
  for (const auto& x : xs) m.mean += field(x);
  m.mean /= static_cast<double>(xs.size());
  for (const auto& x : xs) m.sd += (field(x) - m.mean) * (field(x) - m.mean);
  m.sd = std::sqrt(m.sd / static_cast<double>(xs.size()));
  return m;
}

}  // namespace

std::optional<std::string> diagnose(const WindowStats& cur, const std::vector<WindowStats>& baseline, const Thresholds& t) {
  if (cur.count_success < t.min_success || static_cast<int64_t>(baseline.size()) < t.min_baseline) return std::nullopt;
  Moments dns = moments(baseline, [](const WindowStats& w) { return w.dns_p95; });
  Moments tcp = moments(baseline, [](const WindowStats& w) { return w.tcp_p95; });
  Moments tls = moments(baseline, [](const WindowStats& w) { return w.tls_p95; });
  Moments ttfb = moments(baseline, [](const WindowStats& w) { return w.ttfb_p95; });
  Moments tput = moments(baseline, [](const WindowStats& w) { return w.throughput_p50; });

  double total = cur.dns_p95 + cur.tcp_p95 + cur.tls_p95 + cur.ttfb_p95;
  double hs = cur.tcp_p95 + cur.tls_p95;
  double base = tcp.mean + tls.mean;
  double sd_hs = std::sqrt(tcp.sd * tcp.sd + tls.sd * tls.sd);

  if (total > 0 && cur.dns_p95 / total >= t.dns_share && dns.mean > 0 && (cur.dns_p95 - dns.mean) / dns.mean >= t.dns_rise &&
      cur.dns_p95 - dns.mean >= t.min_change_ms)
    return "dns-bound";
  if (tcp.mean > 0 && (hs > base + t.hs_sigmas * sd_hs || (base > 0 && (hs - base) / base >= t.hs_rise)) &&
      hs - base >= t.min_change_ms)
    return "handshake-bound";
  if (cur.ttfb_p95 > ttfb.mean + t.ttfb_sigmas * ttfb.sd && hs <= base + sd_hs && cur.ttfb_p95 - ttfb.mean >= t.min_change_ms)
    return "server-bound";
  if (tput.mean > 0 && (tput.mean - cur.throughput_p50) / tput.mean >= t.throughput_drop) return "throughput-bound";
  return std::nullopt;
}

void bind(core::config::Schema& s, Thresholds* t) {
  s.add("diagnosis_min_success", &t->min_success, "successes a window (and each baseline window) needs to be judged")
      .range(1, 1e9);
  s.add("diagnosis_min_baseline", &t->min_baseline, "earlier windows needed for a baseline").range(1, 10);
  s.add("diagnosis_dns_share", &t->dns_share, "dns-bound: dns_p95 share of the total at least").range(0, 1);
  s.add("diagnosis_dns_rise", &t->dns_rise, "dns-bound: rise of dns_p95 over its mean at least").range(0, 1e6);
  s.add("diagnosis_hs_sigmas", &t->hs_sigmas, "handshake-bound: sigmas above the baseline").range(0, 1e6);
  s.add("diagnosis_hs_rise", &t->hs_rise, "handshake-bound: or this relative rise").range(0, 1e6);
  s.add("diagnosis_ttfb_sigmas", &t->ttfb_sigmas, "server-bound: sigmas above the baseline").range(0, 1e6);
  s.add("diagnosis_throughput_drop", &t->throughput_drop, "throughput-bound: relative drop at least").range(0, 1);
  s.add("diagnosis_min_change_ms", &t->min_change_ms,
        "a rise smaller than this never labels a window (0 = the original's rules exactly)")
      .range(0, 1e6);
}

core::Result<std::optional<std::string>> relabel(store::postgres::Connection& db, const std::string& client,
                                                 const std::string& target, int64_t window, const Thresholds& t) {
  namespace pg = store::postgres;
  GANTRY_ASSIGN(rows, db.query(kBaseline, {client, target, std::to_string(window), std::to_string(t.min_success)}));
  std::vector<WindowStats> base;
  std::optional<WindowStats> cur;
  for (int i = 0; i < rows.size(); ++i) {
    auto d = [&](int col) { return rows.is_null(i, col) ? 0.0 : std::stod(std::string(rows.get(i, col))); };
    WindowStats w{rows.int64(i, 0), rows.int64(i, 1), d(2), d(3), d(4), d(5), d(6)};
    if (w.window == window) cur = w;
    else base.push_back(w);
  }
  if (!cur) return std::optional<std::string>();
  std::optional<std::string> l = diagnose(*cur, base, t);
  GANTRY_RETURN_IF_ERROR(db.query(kSetLabel, {client, target, std::to_string(window), l ? pg::Param(*l) : pg::Param()}).status());
  return l;
}

}  // namespace gantry::telemetry::aggregator
