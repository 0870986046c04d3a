// Roles and the process that runs them.
//
// A Role is one long-running part of the platform (controller, agent, ingest, …) with
// start/stop. Several roles can share a process (`gantry up`) or each run alone; they never
// call each other's code, only each other's network endpoints.
//
// Runtime starts roles in order, waits for SIGTERM/SIGINT, then stops them in reverse order
// within a deadline. A second signal during shutdown exits at once (status 130); a shutdown
// that overruns its deadline by more than 5 s is cut short (status 1).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/http/router.h"
#include "core/http/server.h"
#include "core/status.h"

namespace gantry::core::runtime {

using Endpoints = std::vector<std::pair<std::string, std::string>>;  // (what, url)

class Role {
 public:
  virtual ~Role() = default;
  virtual std::string_view name() const = 0;
  // Returns once the role serves (ports bound, connections made) or has failed.
  virtual Status start() = 0;
  // Graceful: stop taking work, finish or hand back what is in flight, flush; return within
  // `deadline`. Called once, after a successful start().
  virtual void stop(std::chrono::milliseconds deadline) = 0;
  // /ready answers 200 only while this is true (e.g. its database is reachable).
  virtual bool ready() const { return true; }
  virtual Endpoints endpoints() const { return {}; }
};

// Adds GET /health ({"status":"healthy"}), GET /ready (200 {"status":"ready"} or 503
// {"status":"not ready"}), GET /metrics (Prometheus text of the global registry) and, when
// api/<role>.openapi.json exists, GET /openapi.json (that document) to a router, each only if
// the router has no route of that path yet, so a role whose spec gives a different shape
// declares its own first.
void add_admin_routes(http::Router& r, std::function<bool()> ready, std::string_view role);

// A role whose work is served over HTTP. Subclasses fill router() in their constructor and
// may hook on_start/on_stop (e.g. to open and close a database). start() adds the admin routes
// and logs every route at debug level ("routes"), which is what tests/openapi_test.cpp holds
// against the role's OpenAPI document.
class HttpRole : public Role {
 public:
  HttpRole(std::string name, http::ServerOptions opts);
  std::string_view name() const override { return name_; }
  Status start() override;
  void stop(std::chrono::milliseconds deadline) override;
  Endpoints endpoints() const override;
  uint16_t port() const { return server_ ? server_->port() : 0; }
  // Open client connections of the role's HTTP server.
  int active_connections() const { return server_ ? server_->active_connections() : 0; }

 protected:
  http::Router& router() { return *router_; }
  // Runs before the server accepts connections; a failure aborts start().
  virtual Status on_start() { return {}; }
  // Runs for each server worker before it serves (see ServerOptions::on_worker_start);
  // whatever it attaches must be released in on_stop(), which runs before the io_context goes.
  virtual Status on_worker(boost::asio::io_context&) { return {}; }
  // Runs when stop begins, before the server drains: answer requests the role holds open
  // (long polls), so the drain does not wait for them to time out.
  virtual void before_drain() {}
  // Runs after the server has drained.
  virtual void on_stop(std::chrono::milliseconds deadline) {}

 private:
  std::string name_;
  http::ServerOptions opts_;
  std::shared_ptr<http::Router> router_;
  std::unique_ptr<http::Server> server_;
};

// A job run like a role (settings, logs, exit status) that ends by itself: run() inside
// start(), then the process exits 0 on success or 1 with the failure logged and kept in
// failure() (the CLI prints it on stderr, as it does a role's failure to start).
class Job final : public Role {
 public:
  Job(std::string name, std::function<Status()> run) : name_(std::move(name)), run_(std::move(run)) {}
  std::string_view name() const override { return name_; }
  Status start() override;
  void stop(std::chrono::milliseconds) override {}
  const Status& failure() const { return failure_; }

 private:
  std::string name_;
  std::function<Status()> run_;
  Status failure_;
};

class Runtime {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread and every thread it creates later, so the
  // runtime can wait for them. Call first thing in main(), before any thread exists.
  static void block_signals();

  void add(std::unique_ptr<Role> r) { roles_.push_back(std::move(r)); }
  const std::vector<std::unique_ptr<Role>>& roles() const { return roles_; }

  // Starts every role in order. If one fails, stops those already started (reverse order) and
  // returns its failure.
  Status start();
  // Waits for SIGINT/SIGTERM or request_stop(), then stops the roles in reverse order, the
  // whole shutdown within `deadline`. Returns the process exit status (0 = clean).
  int wait_and_stop(std::chrono::milliseconds deadline);
  void stop(std::chrono::milliseconds deadline);
  void request_stop() { stop_requested_ = true; }

 private:
  std::vector<std::unique_ptr<Role>> roles_;
  size_t started_ = 0;
  std::atomic<bool> stop_requested_{false};
};

// Asks the process to shut down as if signalled, then exit with `status` (non-zero: a role
// could not go on, e.g. an agent that gave up registering). The first request wins.
void request_exit(int status);

// What the CLI needs to offer a role: its settings and how to build it.
class RoleFactory {
 public:
  virtual ~RoleFactory() = default;
  // Declares the role's settings on the schema of its TOML section.
  virtual void bind(config::Schema& s) = 0;
  // Builds the role from the loaded settings.
  virtual Result<std::unique_ptr<Role>> build() = 0;
};

struct RoleInfo {
  std::string name;
  std::string summary;
  std::function<std::unique_ptr<RoleFactory>()> factory;
};

}  // namespace gantry::core::runtime
