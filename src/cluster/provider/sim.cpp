#include "cluster/provider/sim.h"

#include "core/config.h"
#include "core/resilience/idempotency.h"

namespace gantry::cluster {

using core::Result;
using core::Status;

Status parse_sim_latency(std::string_view text, SimOptions* o) {
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find(',', i);
    std::string_view item = text.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
    i = end == std::string_view::npos ? text.size() : end + 1;
    auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return core::invalid_argument("sim latency '" + std::string(item) + "': expected TYPE=DURATION or TYPE=LOW..HIGH");
    std::string type(item.substr(0, eq));
    std::string_view range = item.substr(eq + 1);
    auto dots = range.find("..");
    std::chrono::milliseconds low{}, high{};
    auto bad = core::config::parse(range.substr(0, dots), &low);
    if (!bad && dots != std::string_view::npos) bad = core::config::parse(range.substr(dots + 2), &high);
    else high = low;
    if (bad) return core::invalid_argument("sim latency '" + std::string(item) + "': " + *bad);
    if (high < low) return core::invalid_argument("sim latency '" + std::string(item) + "': the high end is below the low");
    o->latency[type] = {low, high};
  }
  return {};
}

SimProvider::SimProvider(SimOptions o) : o_(std::move(o)), random_(o_.seed) {}

Status SimProvider::call(const std::string& type) {
  auto it = o_.latency.find(type);
  const SimLatency& l = it == o_.latency.end() ? o_.other : it->second;
  double u = random_.uniform();
  auto wait = l.low + std::chrono::duration_cast<std::chrono::microseconds>((l.high - l.low) * u);
  o_.sleeper->sleep_for(wait);
  bool fail = o_.failure_rate > 0 && random_.uniform() < o_.failure_rate;
  std::lock_guard lk(mu_);
  ++stats_.calls[type];
  if (outages_.count(type) || outages_.count("*")) {
    ++stats_.failures[type];
    return core::unavailable("simulated outage of " + type + " calls");
  }
  if (fail) {
    ++stats_.failures[type];
    return core::unavailable("simulated transient failure of a " + type + " call");
  }
  return {};
}

Result<ProviderInstance> SimProvider::create(const InstanceRequest& r, const core::resilience::Deadline&) {
  GANTRY_RETURN_IF_ERROR(call("create"));
  std::string key = r.cluster + "/" + r.pool + "/" + std::to_string(r.index);
  auto h = core::resilience::idempotency_key("sim.create", key);
  ProviderInstance i;
  i.id = "sim-" + core::resilience::to_hex(h).substr(0, 12);
  i.private_ip = "10.99." + std::to_string(h[0]) + "." + std::to_string(h[1] % 254 + 1);
  {
    std::lock_guard lk(mu_);
    if (created_.insert(i.id).second) ++stats_.instances_created;
  }
  return i;
}

Status SimProvider::check(const ProviderInstance&, const core::resilience::Deadline&) { return call("check"); }

Result<std::string> SimProvider::run(const ProviderInstance&, const Script& s, const core::resilience::Deadline&) {
  GANTRY_RETURN_IF_ERROR(call(s.step));
  return std::string();
}

Status SimProvider::put(const ProviderInstance&, const std::string&, const std::string&, bool, const core::resilience::Deadline&) {
  return call("put");
}

Status SimProvider::destroy(const ProviderInstance& i, const core::resilience::Deadline&) {
  GANTRY_RETURN_IF_ERROR(call("destroy"));
  std::lock_guard lk(mu_);
  created_.erase(i.id);
  return {};
}

void SimProvider::set_outage(const std::string& type, bool on) {
  std::lock_guard lk(mu_);
  if (on) outages_.insert(type);
  else outages_.erase(type);
}

SimProvider::Stats SimProvider::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

}  // namespace gantry::cluster
