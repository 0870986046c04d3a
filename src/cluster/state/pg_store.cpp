// The PostgreSQL store (--state-url). The documents are those of the directory store (the
// cluster and its status as YAML, the tokens), one row per cluster; every write is one
// statement or one transaction, so a crash leaves the old or the new document.
//
// Leases are rows of cluster_leases taken by one conditional statement, as the original's
// DynamoDB locks: insert, or take over a row whose expiry has passed; the database's clock
// decides, so reconcilers on machines with skewed clocks agree. A held lease is renewed in the
// background every TTL/3 and deleted on release. A holder killed outright leaves its row until
// the TTL runs out, except that a reconciler of the same kernel boot and pid namespace sees the
// holder's pid is gone and takes the lease over at once.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "cluster/state/store.h"
#include "store/postgres/pool.h"

namespace gantry::cluster {

namespace {

using core::Result;
using core::Status;
using store::postgres::Connection;
using store::postgres::Pool;
using Rows = store::postgres::Rows;

constexpr store::Migration kMigrations[] = {
    {1, "clusters and their leases",
     "CREATE TABLE clusters ("
     "  name text PRIMARY KEY,"
     "  spec text NOT NULL,"  // the declared cluster, as cluster.yaml
     "  status text,"         // the observed status, as status.yaml; NULL before the first pass
     "  server_token text, agent_token text,"
     "  updated_at timestamptz NOT NULL DEFAULT now());"
     "CREATE TABLE cluster_leases ("
     "  name text PRIMARY KEY,"
     "  holder text NOT NULL,"
     "  token text NOT NULL,"
     "  expires_at timestamptz NOT NULL,"
     "  origin text NOT NULL DEFAULT '',"  // the holder's kernel boot and pid namespace (see origin())
     "  pid bigint NOT NULL DEFAULT 0);"},
};

// Where a pid means one process: this kernel's boot and this pid namespace. Hostnames do not
// do (containers on different machines are often all "localhost"). Empty when unreadable: such a
// holder is never taken over early.
std::string origin() {
  static const std::string o = [] {
    std::string boot;
    if (FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
      char b[64] = {};
      if (std::fgets(b, sizeof b, f)) boot = b;
      std::fclose(f);
    }
    while (!boot.empty() && (boot.back() == '\n' || boot.back() == ' ')) boot.pop_back();
    char ns[64] = {};
    ssize_t n = ::readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    if (boot.empty() || n <= 0) return std::string();
    return boot + "/" + std::string(ns, static_cast<size_t>(n));
  }();
  return o;
}

// A holder in this origin whose process is gone.
bool holder_died_here(std::string_view holder_origin, int64_t pid) {
  return !holder_origin.empty() && holder_origin == origin() && pid > 0 && pid != ::getpid() &&
         ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

class PgLease final : public Lease {
 public:
  PgLease(std::shared_ptr<Pool> pool, std::string name, std::string token, std::chrono::milliseconds ttl)
      : pool_(std::move(pool)), name_(std::move(name)), token_(std::move(token)), ttl_(ttl) {
    heartbeat_ = std::thread([this] {
      auto every = std::max<std::chrono::milliseconds>(ttl_ / 3, std::chrono::milliseconds(100));
      std::unique_lock lk(mu_);
      while (!cv_.wait_for(lk, every, [&] { return stopping_; })) {
        lk.unlock();
        (void)renew();
        lk.lock();
      }
    });
  }
  ~PgLease() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    heartbeat_.join();
    (void)pool_->run([&](Connection& c) -> Status {
      return c.query("DELETE FROM cluster_leases WHERE name = $1 AND token = $2", {name_, token_}).status();
    });
  }

  // A database that does not answer is an error but not a loss: the row stays ours until it
  // expires. Only a row that names another holder is.
  Status renew() override {
    {
      std::lock_guard lk(mu_);
      if (lost_) return lost_status_;
    }
    auto r = pool_->run([&](Connection& c) -> Result<int64_t> {
      GANTRY_ASSIGN(rows, c.query("UPDATE cluster_leases SET expires_at = now() + $3::bigint * interval '1 millisecond' "
                                  "WHERE name = $1 AND token = $2",
                                  {name_, token_, std::to_string(ttl_.count())}));
      return rows.affected();
    });
    if (!r.is_ok()) return r.status();
    if (*r == 1) return {};
    std::lock_guard lk(mu_);
    lost_ = true;
    lost_status_ = Status(core::Code::kAborted, "the lease on cluster '" + name_ + "' was lost (it expired and another reconciler took it)");
    return lost_status_;
  }

 private:
  std::shared_ptr<Pool> pool_;
  std::string name_, token_;
  std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, lost_ = false;
  Status lost_status_;
  std::thread heartbeat_;
};

class PgStore final : public Store {
 public:
  PgStore(std::shared_ptr<Pool> pool, std::string where) : pool_(std::move(pool)), where_(std::move(where)) {}
  std::string describe() const override { return where_; }

  Result<std::vector<std::string>> list() override {
    return pool_->run([&](Connection& c) -> Result<std::vector<std::string>> {
      GANTRY_ASSIGN(r, c.query("SELECT name FROM clusters ORDER BY name"));
      std::vector<std::string> out;
      for (int i = 0; i < r.size(); ++i) out.emplace_back(r.get(i, 0));
      return out;
    });
  }

  Result<Cluster> get(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    GANTRY_ASSIGN(spec, pool_->run([&](Connection& c) -> Result<std::optional<std::string>> {
      GANTRY_ASSIGN(r, c.query("SELECT spec FROM clusters WHERE name = $1", {name}));
      if (r.size() == 0) return std::optional<std::string>();
      return std::optional<std::string>(std::string(r.get(0, 0)));
    }));
    if (!spec) return core::not_found("no cluster named '" + name + "' in " + where_);
    return parse_cluster(*spec, where_ + " clusters/" + name);
  }

  Result<Cluster> put(Cluster c, bool update) override {
    const std::string name = c.metadata.name;
    GANTRY_RETURN_IF_ERROR(check_name(name));
    return pool_->run([&](Connection& conn) -> Result<Cluster> {
      Cluster out;
      Status s = conn.transaction([&]() -> Status {
        GANTRY_ASSIGN(r, conn.query("SELECT spec FROM clusters WHERE name = $1 FOR UPDATE", {name}));
        std::optional<Cluster> old;
        if (r.size() == 1) {
          GANTRY_ASSIGN(parsed, parse_cluster(r.get(0, 0), where_ + " clusters/" + name));
          old = std::move(parsed);
        }
        if (old && !update) return Status(core::Code::kAlreadyExists, "cluster '" + name + "' already exists");
        if (!old && update) return core::not_found("no cluster named '" + name + "' in " + where_);
        out = next_version(c, old ? &*old : nullptr);
        // A create racing another create of the same name: the insert finds the row and fails.
        GANTRY_ASSIGN(w, old ? conn.query("UPDATE clusters SET spec = $2, updated_at = now() WHERE name = $1", {name, to_yaml(out)})
                             : conn.query("INSERT INTO clusters (name, spec) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                                          {name, to_yaml(out)}));
        if (w.affected() != 1) return Status(core::Code::kAlreadyExists, "cluster '" + name + "' already exists");
        return {};
      });
      if (!s.is_ok()) return s;
      return out;
    });
  }

  Result<ClusterStatus> status(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    GANTRY_ASSIGN(text, pool_->run([&](Connection& c) -> Result<std::optional<std::string>> {
      GANTRY_ASSIGN(r, c.query("SELECT status FROM clusters WHERE name = $1", {name}));
      if (r.size() == 0 || r.is_null(0, 0)) return std::optional<std::string>();
      return std::optional<std::string>(std::string(r.get(0, 0)));
    }));
    if (!text) return ClusterStatus{};
    return parse_status(*text);
  }

  Status put_status(const std::string& name, const ClusterStatus& st) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    std::string text = to_yaml(st);
    return pool_->run([&](Connection& c) -> Status {
      GANTRY_ASSIGN(r, c.query("UPDATE clusters SET status = $2, updated_at = now() WHERE name = $1", {name, text}));
      if (r.affected() != 1) return core::not_found("no cluster named '" + name + "' in " + where_);
      return {};
    });
  }

  // Made by the first caller and kept: coalesce leaves tokens already there as they are.
  Result<Tokens> tokens(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    Tokens fresh = new_tokens();
    return pool_->run([&](Connection& c) -> Result<Tokens> {
      GANTRY_ASSIGN(r, c.query("UPDATE clusters SET server_token = coalesce(server_token, $2), "
                               "agent_token = coalesce(agent_token, $3) WHERE name = $1 RETURNING server_token, agent_token",
                               {name, fresh.server, fresh.agent}));
      if (r.size() != 1) return core::not_found("no cluster named '" + name + "' in " + where_);
      return Tokens{std::string(r.get(0, 0)), std::string(r.get(0, 1))};
    });
  }

  Status remove(const std::string& name) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    return pool_->run([&](Connection& c) -> Status {
      return c.query("DELETE FROM clusters WHERE name = $1", {name}).status();
    });
  }

  Result<std::unique_ptr<Lease>> acquire(const std::string& name, const std::string& holder, std::chrono::milliseconds ttl,
                                         std::chrono::milliseconds wait) override {
    GANTRY_RETURN_IF_ERROR(check_name(name));
    std::string token = new_tokens().server.substr(0, 32);
    auto until = std::chrono::steady_clock::now() + wait;
    for (;;) {
      // Taken when free or expired; otherwise who holds it and for how long yet.
      struct Seen {
        bool taken = false;
        std::string holder, old_token, origin;
        int64_t left_s = 0, pid = 0;
      };
      GANTRY_ASSIGN(seen, pool_->run([&](Connection& c) -> Result<Seen> {
        GANTRY_ASSIGN(r, c.query("INSERT INTO cluster_leases (name, holder, token, expires_at, origin, pid) "
                                 "VALUES ($1, $2, $3, now() + $4::bigint * interval '1 millisecond', $5, $6) "
                                 "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, token = EXCLUDED.token, "
                                 "expires_at = EXCLUDED.expires_at, origin = EXCLUDED.origin, pid = EXCLUDED.pid "
                                 "WHERE cluster_leases.expires_at < now() RETURNING token",
                                 {name, holder, token, std::to_string(ttl.count()), origin(), std::to_string(::getpid())}));
        Seen s;
        if (r.size() == 1) {
          s.taken = true;
          return s;
        }
        GANTRY_ASSIGN(h, c.query("SELECT holder, token, ceil(extract(epoch FROM expires_at - now()))::bigint, origin, pid "
                                 "FROM cluster_leases WHERE name = $1",
                                 {name}));
        if (h.size() == 1) {
          s.holder = h.get(0, 0), s.old_token = h.get(0, 1), s.left_s = h.int64(0, 2);
          s.origin = h.get(0, 3), s.pid = h.int64(0, 4);
        }
        return s;
      }));
      if (seen.taken) return std::unique_ptr<Lease>(std::make_unique<PgLease>(pool_, name, token, ttl));
      if (holder_died_here(seen.origin, seen.pid)) {
        // Conditional on the dead holder's token: of two reconcilers seeing it gone, one wins.
        GANTRY_ASSIGN(stolen, pool_->run([&](Connection& c) -> Result<int64_t> {
          GANTRY_ASSIGN(r, c.query("UPDATE cluster_leases SET holder = $3, token = $4, "
                                   "expires_at = now() + $5::bigint * interval '1 millisecond', origin = $6, pid = $7 "
                                   "WHERE name = $1 AND token = $2",
                                   {name, seen.old_token, holder, token, std::to_string(ttl.count()), origin(),
                                    std::to_string(::getpid())}));
          return r.affected();
        }));
        if (stolen == 1) return std::unique_ptr<Lease>(std::make_unique<PgLease>(pool_, name, token, ttl));
      }
      if (std::chrono::steady_clock::now() >= until)
        return core::deadline_exceeded("cluster '" + name + "' is being reconciled by " +
                                       (seen.holder.empty() ? std::string("another reconciler") : seen.holder) +
                                       " (lease not acquired within " + std::to_string(wait.count()) + " ms; it expires in " +
                                       std::to_string(seen.left_s) + " s unless renewed)");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

 private:
  std::shared_ptr<Pool> pool_;
  std::string where_;
};

// postgres://user:secret@host/db -> postgres://user@host/db: what errors and output may show.
std::string without_password(const std::string& url) {
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos) return url;
  size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + url.substr(at);
}

}  // namespace

Result<std::unique_ptr<Store>> open_pg_store(const std::string& url) {
  store::postgres::PoolOptions o;
  o.url = url;
  o.name = "cluster_state";
  o.max_open = 3;  // the CLI's thread, a node step's status write, a lease's heartbeat
  o.max_idle = 3;
  auto pool = Pool::open(o);
  if (!pool.is_ok())
    return Status(pool.status().code(), "state store " + without_password(url) + ": " + std::string(pool.status().message()));
  std::shared_ptr<Pool> shared(std::move(*pool));
  GANTRY_RETURN_IF_ERROR(shared->run([](Connection& c) { return c.migrate(kMigrations, "cluster_schema_migrations"); }));
  return std::unique_ptr<Store>(std::make_unique<PgStore>(std::move(shared), without_password(url)));
}

}  // namespace gantry::cluster
