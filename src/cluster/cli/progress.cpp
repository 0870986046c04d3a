#include "cluster/cli/progress.h"

#include <unistd.h>

#include <cmath>

#include "core/json.h"
#include "core/text.h"

namespace gantry::cluster {

OutputMode output_mode(bool json) {
  if (json) return OutputMode::kJson;
  return ::isatty(::fileno(stdout)) ? OutputMode::kTerminal : OutputMode::kPlain;
}

namespace {
std::string seconds(std::chrono::milliseconds d) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1fs", static_cast<double>(d.count()) / 1000);
  return b;
}

// The phase is the spec's status value; Updating covers a scale-down, whose nodes are removed,
// and an operator reading "Updating edge-workers-2 done" could not tell it was gone.
std::string label(const ProgressEvent& e) {
  if (e.phase == "Updating" && e.step == "uninstall") return "Removing";
  return e.phase;
}
}  // namespace

void ProgressDisplay::operator()(const ProgressEvent& e) {
  std::lock_guard lk(mu_);
  std::string sim = e.simulated ? " [simulated]" : "";
  if (mode_ == OutputMode::kJson) {
    std::string b;
    core::json::Writer w(b);
    w.object().field("cluster", e.cluster).field("phase", e.phase).field("step", e.step);
    if (!e.node.empty()) w.field("node", e.node).field("ok", e.status.is_ok());
    if (!e.status.is_ok()) w.field("error", e.status.message());
    w.field("done", e.done).field("total", e.total).key("elapsed_s").value_fixed(static_cast<double>(e.elapsed.count()) / 1000, 3);
    w.field("simulated", e.simulated).end();
    std::fprintf(out_, "%s\n", b.c_str());
    std::fflush(out_);
    return;
  }
  bool phase_end = e.node.empty() && e.done == e.total && e.done > 0;
  const std::string what = label(e);
  if (mode_ == OutputMode::kPlain) {
    if (!e.node.empty())
      std::fprintf(out_, "%s %s %s (%d/%d, %s)%s%s\n", what.c_str(), e.node.c_str(), e.status.is_ok() ? "done" : "FAILED",
                   e.done, e.total, seconds(e.elapsed).c_str(), e.status.is_ok() ? "" : (": " + core::one_line(e.status.message())).c_str(),
                   sim.c_str());
    else if (e.done == 0)
      std::fprintf(out_, "%s %d node(s)%s\n", what.c_str(), e.total, sim.c_str());
    std::fflush(out_);
    return;
  }
  // Terminal: the phase's line redrawn as nodes finish; a failure gets its own line.
  if (!e.status.is_ok() && !e.node.empty()) {
    std::fprintf(out_, "\r\033[K  %s: %s\n", e.node.c_str(), core::one_line(e.status.message()).c_str());
  }
  std::string eta = "-";
  if (e.done > 0 && e.done < e.total)
    eta = seconds(std::chrono::milliseconds(e.elapsed.count() * (e.total - e.done) / e.done));
  std::fprintf(out_, "\r\033[K%-13s %3d/%-3d  elapsed %-7s ETA %s%s", what.c_str(), e.done, e.total,
               seconds(e.elapsed).c_str(), phase_end ? "0.0s" : eta.c_str(), sim.c_str());
  open_line_ = true;
  if (phase_end || (e.node.empty() && e.done > 0)) {
    std::fprintf(out_, "\n");
    open_line_ = false;
  }
  std::fflush(out_);
}

}  // namespace gantry::cluster
