// `gantry cluster serve`: the reconciler as a service. One thread walks the state store's
// clusters every --interval and runs a pass over each that is due: at once when its declared
// generation or deletion mark changed since it last looked (`gantry cluster scale` or `delete`
// without --wait), again
// straight away while a pass made progress short of converging, else after the pass's requeue
// (30 s converging, 2 min after a failure; a converged cluster is checked at --resync).
// Passes run one cluster at a time; each is parallel over its nodes.
//
// /health, /ready (the store answers), /metrics: the reconciler's families (cluster_*) and the
// figures of `gantry cluster metrics` (cluster_report_*), refreshed every walk.
//
// Stopping: the walk ends after the pass in flight, waited for until the shutdown deadline. A
// pass cut short there loses nothing: every node step's outcome is written as it finishes, and
// the next pass (this service restarted, or any `gantry cluster reconcile`) resumes.
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "cluster/cli/context.h"
#include "cluster/cli/report.h"
#include "cluster/roles.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/runtime.h"

namespace gantry::cluster {

namespace {

namespace http = core::http;
using core::Status;
using Clock = std::chrono::steady_clock;

const core::log::Logger serve_log("cluster-serve");

struct ServeSettings {
  Common common;
  std::string address = "0.0.0.0";
  int port = 8086;
  milliseconds interval{2'000}, resync{300'000};
  http::ServerOptions http;
};

class Serve final : public core::runtime::HttpRole {
 public:
  explicit Serve(ServeSettings s) : HttpRole("cluster-serve", s.http), st_(std::move(s)), ctx_(st_.common) {}

  bool ready() const override { return ready_.load(); }

 protected:
  Status on_start() override {
    GANTRY_RETURN_IF_ERROR(ctx_.open());
    ctx_.reconciler().on_progress([](const ProgressEvent& e) {
      if (!e.node.empty() && !e.status.is_ok())
        serve_log.warn("node step failed", {{"cluster", e.cluster}, {"phase", e.phase}, {"node", e.node}, {"error", e.status.to_string()}});
      else if (e.node.empty() && e.done == 0)
        serve_log.info("phase", {{"cluster", e.cluster}, {"phase", e.phase}, {"nodes", e.total}, {"simulated", e.simulated}});
    });
    serve_log.info("reconciling", {{"store", ctx_.store().describe()}, {"interval_ms", st_.interval.count()}});
    thread_ = std::thread([this] { walk(); });
    return {};
  }

  void before_drain() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

  void on_stop(std::chrono::milliseconds deadline) override {
    before_drain();
    if (!thread_.joinable()) return;
    // A pass cannot be interrupted between node steps from here; wait for it until the
    // deadline, then leave it to the process's exit (see the top of this file).
    std::unique_lock lk(mu_);
    if (cv_.wait_for(lk, deadline, [&] { return walked_out_; })) {
      lk.unlock();
      thread_.join();
    } else {
      serve_log.warn("a pass is still running at the shutdown deadline; the next pass resumes it", {{"cluster", current_}});
      thread_.detach();
    }
  }

 private:
  struct Due {
    Clock::time_point at{};
    std::string seen;  // generation and deletion mark last acted on
  };

  void walk() {
    std::map<std::string, Due> due;
    for (;;) {
      {
        std::unique_lock lk(mu_);
        if (stopping_) break;
      }
      auto names = ctx_.store().list();
      ready_ = names.is_ok();
      if (!names.is_ok()) serve_log.warn("state store", {{"error", names.status().to_string()}});
      std::map<std::string, Due> still;  // forgets clusters that are gone
      for (auto& name : names.is_ok() ? *names : std::vector<std::string>{}) {
        if (stopped()) break;
        auto c = ctx_.store().get(name);
        if (!c.is_ok()) continue;  // removed meanwhile, or unreadable (logged by the pass that meets it)
        Due& d = still[name] = due[name];
        std::string seen = std::to_string(c->metadata.generation) + "/" + c->metadata.deletion_timestamp;
        if (seen != d.seen || Clock::now() >= d.at) {
          d.seen = seen;
          pass(name, d);
        }
      }
      due = std::move(still);
      // After the passes: what they did, and without the clusters they deleted.
      if (auto reports = collect_reports(ctx_.store()); reports.is_ok())
        report_gauges(*reports, core::metrics::Registry::global());
      std::unique_lock lk(mu_);
      if (cv_.wait_for(lk, st_.interval, [&] { return stopping_; })) break;
    }
    std::lock_guard lk(mu_);
    walked_out_ = true;
    cv_.notify_all();
  }

  // Passes over one cluster while they make progress short of converging.
  void pass(const std::string& name, Due& d) {
    {
      std::lock_guard lk(mu_);
      current_ = name;
    }
    for (int i = 0; i < 100 && !stopped(); ++i) {
      PassResult r = ctx_.reconciler().reconcile(name);
      if (r.phase == "Locked") {  // another reconciler has it: look again soon
        d.at = Clock::now() + std::chrono::seconds(5);
        break;
      }
      if (!r.status.is_ok() || r.phase == "Failed") {
        serve_log.warn("pass failed", {{"cluster", name}, {"error", r.status.to_string()}, {"retry_in_ms", r.requeue.count()}});
        d.at = Clock::now() + r.requeue;
        break;
      }
      if (r.deleted || r.phase == "Running" || r.phase == "Stopped" || r.steps_run == 0) {
        if (r.steps_run > 0 || r.deleted)
          serve_log.info("converged", {{"cluster", name}, {"phase", r.deleted ? "Deleted" : r.phase}, {"steps", r.steps_run},
                                {"retries", r.retries}, {"took_ms", core::log::ms(r.wall)}});
        d.at = Clock::now() + st_.resync;
        break;
      }
    }
  }

  bool stopped() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  ServeSettings st_;
  Context ctx_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, walked_out_ = false;
  std::string current_;
  std::atomic<bool> ready_{false};
};

class ClusterServeFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    st_.common.bind(s, false);
    s.add("address", &st_.address, "listen address of /health, /ready, /metrics");
    s.add("port", &st_.port, "listen port of /health, /ready, /metrics (0 = any free port)").env("GANTRY_CLUSTER_PORT");
    s.add("interval", &st_.interval, "how often the clusters are looked at (a changed one is reconciled at once)")
        .range(100, 3'600'000);
    s.add("resync", &st_.resync, "how often a converged cluster is checked again").range(1'000, 86'400'000);
    http::bind(s, &st_.http);
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Serve>(st_));
  }

 private:
  ServeSettings st_;
};

}  // namespace

core::runtime::RoleInfo cluster_serve_role() {
  return {"cluster-serve", "Clusters: the reconciler as a service, with /health, /ready and /metrics (gantry cluster serve)",
          [] { return std::make_unique<ClusterServeFactory>(); }};
}

}  // namespace gantry::cluster
