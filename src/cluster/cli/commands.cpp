// `gantry cluster VERB`: each verb a job over the state store. Commands that change a cluster
// record the change and, with --wait (reconcile: always), run reconciler passes here until the
// cluster converges or fails, showing progress. Without --wait the change waits for a
// reconciler (`gantry cluster reconcile NAME`).
//
// Exit status: 0 done; 1 the cluster failed (the reason is printed) or a store error; 2 bad
// input (nothing changed).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cluster/cli/context.h"
#include "cluster/cli/progress.h"
#include "cluster/cli/report.h"
#include "cluster/provider/sim.h"
#include "cluster/provider/ssh.h"
#include "cluster/roles.h"
#include "core/config.h"
#include "core/json.h"
#include "core/resilience/parallel.h"
#include "core/text.h"

namespace gantry::cluster {

namespace {

using core::Result;
using core::Status;
using std::chrono::milliseconds;

// A verb: its settings (Common plus its own) and what it does.
class Verb : public core::runtime::RoleFactory {
 public:
  // named: takes the cluster's name (first argument); required: must be given one (create may
  // take it from its file instead).
  Verb(std::string verb, bool named, bool required = true) : verb_(std::move(verb)), named_(named), required_(required) {}
  void bind(core::config::Schema& s) override {
    common_.bind(s, named_);
    bind_own(s);
  }
  Result<std::unique_ptr<core::runtime::Role>> build() override {
    if (named_ && required_ && common_.name.empty())
      return core::invalid_argument("gantry cluster " + verb_ + ": which cluster? (gantry cluster " + verb_ + " NAME)");
    return std::unique_ptr<core::runtime::Role>(std::make_unique<core::runtime::Job>("cluster-" + verb_, [this]() -> Status {
      Context ctx(common_);
      if (Status s = ctx.open(); !s.is_ok()) {
        print_error(verb_, s);
        core::runtime::request_exit(kFailed);
        return {};
      }
      int rc = run(ctx);
      std::fflush(stdout);
      core::runtime::request_exit(rc);
      return {};
    }));
  }

 protected:
  virtual void bind_own(core::config::Schema&) {}
  virtual int run(Context& ctx) = 0;
  // Records a changed cluster; with --wait, converges it here.
  int change(Context& ctx, Cluster c, bool create) {
    if (Status v = validate(c); !v.is_ok()) {
      print_error(verb_, v);
      return kBadInput;
    }
    // A provider that cannot be made (no inventory, say) is bad input too: nothing is recorded.
    if (auto p = ctx.provider(c); !p.is_ok()) {
      print_error(verb_, p.status());
      return kBadInput;
    }
    auto put = ctx.store().put(std::move(c), !create);
    if (!put.is_ok()) {
      print_error(verb_, put.status());
      return put.status().code() == core::Code::kIoError ? kFailed : kBadInput;
    }
    const std::string& name = put->metadata.name;
    if (wait_) return ctx.converge(name);
    if (!common_.json && !put->metadata.deletion_timestamp.empty())
      std::printf("%s: marked for deletion; `gantry cluster reconcile %s` (or a running `gantry cluster serve`) removes its "
                  "nodes\n",
                  name.c_str(), name.c_str());
    else if (!common_.json)
      std::printf("%s: recorded (generation %lld); `gantry cluster reconcile %s` (or a running `gantry cluster serve`) "
                  "applies it\n",
                  name.c_str(), static_cast<long long>(put->metadata.generation), name.c_str());
    return 0;
  }
  void bind_wait(core::config::Schema& s) {
    s.add("wait", &wait_, "reconcile here until the cluster converges or fails, showing progress");
  }
  Result<Cluster> load(Context& ctx) { return ctx.store().get(common_.name); }

  std::string verb_;
  bool named_, required_;
  Common common_;
  bool wait_ = false;
};

class Create final : public Verb {
 public:
  Create() : Verb("create", true, false) {}
  void bind_own(core::config::Schema& s) override {
    s.add("file", &file_, "the cluster's YAML (gantry.io/v1 Cluster or goman.io/v1 K3sCluster); -f");
    s.add("mode", &mode_, "without a file: dev (1 server) or ha (3 servers)").one_of({"dev", "ha"});
    s.add("provider", &provider_, "without a file (or to override it): ssh or sim");
    s.add("distribution", &distribution_, "without a file (or to override it): gantry-node or k3s");
    s.add("workers", &workers_, "without a file: the size of an agent pool named workers").range(0, 1000);
    bind_wait(s);
  }
  int run(Context& ctx) override {
    Cluster c;
    if (!file_.empty()) {
      std::ifstream in(file_);
      if (!in) {
        print_error(verb_, core::not_found(file_ + ": cannot be read"));
        return kBadInput;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      auto parsed = parse_cluster(ss.str(), file_);
      if (!parsed.is_ok()) {
        print_error(verb_, parsed.status());
        return kBadInput;
      }
      c = std::move(*parsed);
      if (!common_.name.empty()) c.metadata.name = common_.name;
    } else {
      if (common_.name.empty()) {
        print_error(verb_, core::invalid_argument("a name (gantry cluster create NAME …) or a file (-f cluster.yaml) is required"));
        return kBadInput;
      }
      c.metadata.name = common_.name;
      c.spec.mode = mode_;
      if (workers_ > 0) {
        NodePool p;
        p.name = "workers";
        p.count = workers_;
        c.spec.node_pools.push_back(p);
      }
    }
    if (!provider_.empty()) c.spec.provider = provider_;
    if (!distribution_.empty()) c.spec.distribution = distribution_;
    c.metadata.created_at = core::rfc3339(core::Clock::real().wall_now());
    if (c.spec.distribution == "gantry-node") c.metadata.annotations[kControllerAnnotation] = common_.dist.controller_url;
    if (c.spec.provider == "ssh" && !common_.inventory.empty())
      c.metadata.annotations[kInventoryAnnotation] = std::filesystem::absolute(common_.inventory).string();
    if (c.spec.provider == "sim" && !common_.json)
      std::printf("provider sim: a simulator; no machine is created or touched\n");
    return change(ctx, std::move(c), true);
  }

 private:
  std::string file_, mode_ = "dev", provider_, distribution_;
  int workers_ = 0;
};

class Scale final : public Verb {
 public:
  Scale() : Verb("scale", true) {}
  void bind_own(core::config::Schema& s) override {
    s.add("pool", &pool_, "the node pool to resize");
    s.add("count", &count_, "its new size (scaling down removes the highest indices first)");
    bind_wait(s);
  }
  int run(Context& ctx) override {
    auto c = load(ctx);
    if (!c.is_ok()) {
      print_error(verb_, c.status());
      return kBadInput;
    }
    if (pool_.empty() || count_ < 0) {
      print_error(verb_, core::invalid_argument("--pool P and --count N (0 or more) are required"));
      return kBadInput;
    }
    bool found = false;
    std::string known;
    for (auto& p : c->spec.node_pools) {
      known += (known.empty() ? "" : ", ") + p.name;
      if (p.name == pool_) p.count = count_, found = true;
    }
    if (!found) {
      print_error(verb_, core::not_found("cluster '" + common_.name + "' has no pool '" + pool_ + "' (pools: " +
                                         (known.empty() ? "none" : known) + ")"));
      return kBadInput;
    }
    c->metadata.updated_at = core::rfc3339(core::Clock::real().wall_now());
    return change(ctx, std::move(*c), false);
  }

 private:
  std::string pool_;
  int count_ = -1;
};

// stop, start and delete: one field changes.
class SetState final : public Verb {
 public:
  explicit SetState(std::string verb) : Verb(std::move(verb), true) {}
  void bind_own(core::config::Schema& s) override { bind_wait(s); }
  int run(Context& ctx) override {
    auto c = load(ctx);
    if (!c.is_ok()) {
      print_error(verb_, c.status());
      return kBadInput;
    }
    std::string now = core::rfc3339(core::Clock::real().wall_now());
    if (verb_ == "delete") c->metadata.deletion_timestamp = now;
    else c->spec.desired_state = verb_ == "stop" ? "stopped" : "running";
    c->metadata.updated_at = now;
    return change(ctx, std::move(*c), false);
  }
};

class Reconcile final : public Verb {
 public:
  Reconcile() : Verb("reconcile", true) {}
  int run(Context& ctx) override {
    if (auto c = load(ctx); !c.is_ok()) {
      print_error(verb_, c.status());
      return kBadInput;
    }
    return ctx.converge(common_.name);
  }
};

std::string nodes_ready(const ClusterStatus& s) {
  return std::to_string(s.configuring.done) + "/" + std::to_string(s.configuring.total);
}

class List final : public Verb {
 public:
  List() : Verb("list", false) {}
  int run(Context& ctx) override {
    auto names = ctx.store().list();
    if (!names.is_ok()) {
      print_error(verb_, names.status());
      return kFailed;
    }
    std::string b;
    core::json::Writer w(b);
    w.array();
    if (!common_.json) std::printf("%-24s %-12s %-7s %-6s %-9s %s\n", "NAME", "PHASE", "READY", "MODE", "PROVIDER", "DISTRIBUTION");
    for (auto& n : *names) {
      auto c = ctx.store().get(n);
      auto s = ctx.store().status(n);
      if (!c.is_ok() || !s.is_ok()) continue;
      if (common_.json)
        w.object().field("name", n).field("phase", s->phase).field("ready", s->configuring.done).field("nodes", s->configuring.total)
            .field("mode", c->spec.mode).field("provider", c->spec.provider).field("distribution", c->spec.distribution).end();
      else
        std::printf("%-24s %-12s %-7s %-6s %-9s %s\n", n.c_str(), s->phase.c_str(), nodes_ready(*s).c_str(), c->spec.mode.c_str(),
                    c->spec.provider.c_str(), c->spec.distribution.c_str());
    }
    w.end();
    if (common_.json) std::printf("%s\n", b.c_str());
    return 0;
  }
};

// The figures of report.h, once, or redrawn every --interval with --live.
class MetricsVerb final : public Verb {
 public:
  MetricsVerb() : Verb("metrics", true, false) {}
  void bind_own(core::config::Schema& s) override {
    s.add("cluster", &cluster_, "only this cluster (also the first argument)");
    s.add("live", &live_, "redraw every --interval until interrupted");
    s.add("interval", &interval_, "--live: how often").range(100, 3'600'000);
    s.add("export", &export_, "print for another program: --format json (default) or prometheus");
    s.add("format", &format_, "table (default), json or prometheus").one_of({"", "table", "json", "prometheus"});
  }
  int run(Context& ctx) override {
    std::string only = cluster_.empty() ? common_.name : cluster_;
    std::string format = format_.empty() ? (export_ || common_.json ? "json" : "table") : format_;
    if (live_) exit_on_signal("", 0);
    for (;;) {
      auto reports = collect_reports(ctx.store(), only);
      if (!reports.is_ok()) {
        print_error(verb_, reports.status());
        return reports.status().code() == core::Code::kNotFound ? kBadInput : kFailed;
      }
      std::string out = format == "json"         ? report_json(*reports)
                        : format == "prometheus" ? report_prometheus(*reports)
                                                 : report_table(*reports);
      if (live_ && format == "table" && ::isatty(STDOUT_FILENO)) std::fputs("\033[H\033[2J", stdout);
      std::fputs(out.c_str(), stdout);
      std::fflush(stdout);
      if (!live_) return 0;
      std::this_thread::sleep_for(interval_);
    }
  }

 private:
  std::string cluster_, format_;
  bool live_ = false, export_ = false;
  milliseconds interval_{2000};
};

class Show final : public Verb {
 public:
  Show() : Verb("status", true) {}
  int run(Context& ctx) override {
    auto c = load(ctx);
    if (!c.is_ok()) {
      print_error(verb_, c.status());
      return kBadInput;
    }
    auto s = ctx.store().status(common_.name);
    if (!s.is_ok()) {
      print_error(verb_, s.status());
      return kFailed;
    }
    if (common_.json) {
      std::string b;
      core::json::Writer w(b);
      w.object().field("name", common_.name).field("generation", c->metadata.generation).field("phase", s->phase)
          .field("message", s->message).field("observed_generation", s->observed_generation)
          .field("last_reconcile_time", s->last_reconcile_time).field("provider", c->spec.provider)
          .field("simulated", c->spec.provider == "sim");
      w.key("progress").object();
      for (auto [k, p] : {std::pair{"provisioning", s->provisioning}, {"installing", s->installing}, {"configuring", s->configuring}})
        w.key(k).object().field("done", p.done).field("total", p.total).end();
      w.end().key("instances").array();
      for (auto& i : s->instances)
        w.object().field("id", i.id).field("name", i.name).field("role", i.role).field("pool", i.pool).field("state", i.state)
            .field("private_ip", i.private_ip).field("provisioned", i.provisioned).field("installed", i.installed)
            .field("joined", i.joined).field("error", i.error).end();
      w.end().end();
      std::printf("%s\n", b.c_str());
      return 0;
    }
    std::printf("cluster:      %s (generation %lld, observed %lld)%s\n", common_.name.c_str(),
                static_cast<long long>(c->metadata.generation), static_cast<long long>(s->observed_generation),
                c->spec.provider == "sim" ? "  [simulated provider]" : "");
    // A node's error ends with what its host printed (the last lines of a failed step): on one
    // line here, so the table stays a table and nothing in it acts on the terminal.
    std::printf("phase:        %s%s%s\n", s->phase.c_str(), s->message.empty() ? "" : ": ", core::one_line(s->message).c_str());
    std::printf("spec:         mode %s, provider %s, distribution %s, desired %s\n", c->spec.mode.c_str(), c->spec.provider.c_str(),
                c->spec.distribution.c_str(), c->spec.desired_state.c_str());
    std::printf("progress:     provisioned %d/%d, installed %d/%d, joined %d/%d\n", s->provisioning.done, s->provisioning.total,
                s->installing.done, s->installing.total, s->configuring.done, s->configuring.total);
    std::printf("last pass:    %s\n", s->last_reconcile_time.empty() ? "never" : s->last_reconcile_time.c_str());
    std::printf("\n%-28s %-7s %-10s %-16s %-18s %s\n", "NODE", "ROLE", "STATE", "ADDRESS", "ID", "STEPS");
    for (auto& i : s->instances) {
      std::string steps = std::string(i.provisioned ? "provisioned" : "-") + (i.installed ? ",installed" : "") + (i.joined ? ",joined" : "");
      std::printf("%-28s %-7s %-10s %-16s %-18s %s%s%s\n", i.name.c_str(), i.role.c_str(), i.state.c_str(), i.private_ip.c_str(),
                  i.id.c_str(), steps.c_str(), i.error.empty() ? "" : "  error: ", core::one_line(i.error).c_str());
    }
    return 0;
  }
};

template <class V, class... A>
core::runtime::RoleInfo verb(std::string name, std::string summary, A... args) {
  return {"cluster-" + name, "Clusters: " + summary, [=] { return std::make_unique<V>(args...); }};
}

}  // namespace

std::vector<core::runtime::RoleInfo> cluster_roles() {
  return {
      verb<Create>("create", "declare a cluster (-f cluster.yaml, or --mode/--provider/--workers); --wait builds it"),
      verb<List>("list", "the clusters in the state store"),
      verb<Show>("status", "a cluster's phase, progress and nodes (gantry cluster status NAME)"),
      verb<Scale>("scale", "resize a pool (gantry cluster scale NAME --pool P --count N)"),
      verb<SetState>("stop", "stop a cluster's software, keep its nodes (gantry cluster stop NAME)", std::string("stop")),
      verb<SetState>("start", "start a stopped cluster (gantry cluster start NAME)", std::string("start")),
      verb<SetState>("delete", "remove every node and forget the cluster (gantry cluster delete NAME)", std::string("delete")),
      verb<Reconcile>("reconcile", "bring a cluster to its declared state now, showing progress"),
      verb<MetricsVerb>("metrics", "what the passes did: times, success, retries, idempotency, efficiency, breakers "
                                   "(--live, --export --format json|prometheus)"),
      cluster_serve_role(),
  };
}

}  // namespace gantry::cluster
