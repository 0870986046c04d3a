// Servers a test owns, for tests that kill and restart them or need a clean slate: a private
// nats-server with JetStream, and a fresh PostgreSQL database on the shared server.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <memory>
#include <string>
#include <thread>

#include "core/http/router.h"
#include "core/http/server.h"
#include "core/http/test_socket.h"
#include "env.h"
#include "process.h"
#include "bus/nats/jetstream.h"
#include "store/postgres/pg.h"

namespace gantry::testing {

// nats-server -js on a free port with its own store directory; kill() and start() again keep
// the port and the stored streams.
struct PrivateNats {
  explicit PrivateNats(uint16_t p = 0) : port(p ? p : core::http::testing::free_loopback_port()) {
    char tmpl[] = "/tmp/gantry-nats-XXXXXX";
    dir = mkdtemp(tmpl);
    start();
  }
  void start() {
    proc = std::make_unique<Child>(std::vector<std::string>{"nats-server", "-js", "-a", "127.0.0.1", "-p",
                                                            std::to_string(port), "--store_dir", dir});
    EXPECT_TRUE(eventually(
        [&] {
          proc->wait(std::chrono::milliseconds(0));  // pumps its output
          return proc->err().find("Server is ready") != std::string::npos;
        },
        std::chrono::seconds(15)))
        << proc->err();
  }
  void kill() {
    proc->signal(SIGKILL);
    proc->wait(std::chrono::seconds(5));
    proc.reset();
  }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port); }
  uint16_t port;
  std::string dir;
  std::unique_ptr<Child> proc;
};

// A RabbitMQ of its own, run by scripts/servers in a private run directory (GANTRY_SERVERS_DIR),
// so restarting it disturbs no other test. Started by the constructor (allow ~15 s), stopped
// and its directory removed by the destructor.
struct PrivateAmqp {
  PrivateAmqp() {
    char tmpl[] = "/tmp/gantry-amqp-XXXXXX";
    dir = mkdtemp(tmpl);
    env = {{"GANTRY_SERVERS_DIR", dir}};
    auto started = servers({"start", "amqp"});
    EXPECT_EQ(started.status, 0) << started.err;
    auto at = started.out.find("GANTRY_AMQP_URL=");
    EXPECT_NE(at, std::string::npos) << started.out;
    if (at == std::string::npos) return;
    url = started.out.substr(at + 16);
    url = url.substr(0, url.find_first_of(" \n'\""));
  }
  ~PrivateAmqp() {
    servers({"stop", "amqp"});
    std::filesystem::remove_all(dir);
  }
  // scripts/servers ARGS against this broker: {"restart", "amqp"}, {"rabbitmqctl", …}.
  Ran servers(std::vector<std::string> args) const {
    std::vector<std::string> argv{"bash", std::string(GANTRY_SOURCE_DIR) + "/scripts/servers"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env, std::chrono::seconds(120));
  }
  std::string dir, url;
  std::map<std::string, std::string> env;
};

// An HTTP server in the test process (a target page, a fake upstream) on a free loopback
// port, one thread, no access log.
inline std::unique_ptr<core::http::Server> serve(std::shared_ptr<core::http::Router> router) {
  core::http::ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.threads = 1;
  o.access_log = false;
  auto server = std::make_unique<core::http::Server>(o, std::move(router));
  EXPECT_TRUE(server->start().is_ok());
  return server;
}

// CREATE DATABASE <prefix>_<unique> on GANTRY_PG_URL's server; dropped when this goes.
struct FreshDatabase {
  explicit FreshDatabase(const std::string& prefix) {
    std::string base = server_url("GANTRY_PG_URL");
    auto admin = store::postgres::Connection::connect(base);
    EXPECT_TRUE(admin.is_ok()) << admin.status().to_string();
    if (!admin.is_ok()) return;
    admin_ = std::move(*admin);
    name = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(core::http::testing::free_loopback_port());
    EXPECT_TRUE(admin_->exec("CREATE DATABASE " + name).is_ok());
    // postgres://user@host:port/db?params -> same with this database
    size_t q = base.find('?');
    std::string params = q == std::string::npos ? "" : base.substr(q);
    std::string head = base.substr(0, q);
    url = head.substr(0, head.rfind('/') + 1) + name + params;
  }
  ~FreshDatabase() {
    if (admin_) (void)admin_->exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  }
  std::string name, url;

 private:
  std::unique_ptr<store::postgres::Connection> admin_;
};

// A PostgreSQL cluster of its own (initdb in a temporary directory, a free port), for tests that
// kill -9 the server and start it again on the same data. As root it runs as the package's
// postgres user, as scripts/servers does (PostgreSQL refuses root).
struct PrivatePostgres {
  PrivatePostgres() : port(core::http::testing::free_loopback_port()) {
    for (const char* v : {"17", "16", "15"}) {
      if (bin.empty() && std::filesystem::exists(std::string("/usr/lib/postgresql/") + v + "/bin/postgres"))
        bin = std::string("/usr/lib/postgresql/") + v + "/bin/";
    }
    EXPECT_FALSE(bin.empty()) << "PostgreSQL server binaries not found (scripts/install-deps)";
    char tmpl[] = "/tmp/gantry-pg-XXXXXX";
    dir = mkdtemp(tmpl);
    if (::getuid() == 0) {
      EXPECT_EQ(run({"chown", "postgres:", dir}).status, 0);
    }
    auto r = run(as({bin + "initdb", "-D", dir + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"}),
                 {}, std::chrono::seconds(120));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    start();
  }
  ~PrivatePostgres() {
    kill();
    std::filesystem::remove_all(dir);
  }
  // Starts the server; after a kill the old server's backends may take a moment to notice and
  // release the shared memory, so a start that exits is retried. (A FATAL line alone is no
  // failure: clients connecting during recovery are logged FATAL by a server coming up fine.)
  void start() {
    for (int attempt = 0; attempt < 50; ++attempt) {
      proc = std::make_unique<Child>(as({bin + "postgres", "-D", dir + "/data", "-p", std::to_string(port), "-k", dir, "-c",
                                         "listen_addresses=127.0.0.1", "-c", "fsync=off"}));
      bool exited = false;
      eventually(
          [&] {
            exited = proc->wait(std::chrono::milliseconds(0)) != -1;
            return exited || proc->err().find("ready to accept connections") != std::string::npos;
          },
          std::chrono::seconds(30));
      if (!exited && proc->err().find("ready to accept connections") != std::string::npos) return;
      last_error = proc->err();
      kill();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << "PostgreSQL did not start: " << last_error;
  }
  // SIGKILL to the postmaster (its pid from postmaster.pid: as root our child is runuser, which
  // reaps it and exits; killing runuser first would leave the postmaster a zombie that a
  // restart takes for a live server).
  void kill() {
    if (!proc) return;
    std::ifstream pidfile(dir + "/data/postmaster.pid");
    pid_t pm = 0;
    if (pidfile >> pm && pm > 0) ::kill(pm, SIGKILL);
    if (proc->wait(std::chrono::seconds(5)) < 0) {
      proc->signal(SIGKILL);
      proc->wait(std::chrono::seconds(5));
    }
    proc.reset();
  }
  std::string url() const { return "postgres://postgres@127.0.0.1:" + std::to_string(port) + "/postgres?sslmode=disable"; }

  // SIGSTOP (or SIGCONT) to the postmaster and every backend: a server that still accepts
  // TCP (the kernel answers) but never replies, like a hung host.
  void freeze(bool frozen = true) {
    std::ifstream pidfile(dir + "/data/postmaster.pid");
    pid_t pm = 0;
    if (!(pidfile >> pm) || pm <= 0) return ADD_FAILURE() << "no postmaster.pid";
    int sig = frozen ? SIGSTOP : SIGCONT;
    auto kids = run({"pgrep", "-P", std::to_string(pm)});
    std::istringstream in(kids.out);
    for (pid_t k; in >> k;) ::kill(k, sig);
    ::kill(pm, sig);
  }

  uint16_t port;
  std::string bin, dir, last_error;
  std::unique_ptr<Child> proc;

 private:
  static std::vector<std::string> as(std::vector<std::string> argv) {
    if (::getuid() == 0) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
    return argv;
  }
};

// Takes (and acks) every message now in a stream through a durable pull consumer: their
// bodies and Nats-Msg-Id headers, in stream order.
inline std::vector<std::pair<std::string, std::string>> take_all(const std::string& nats_url, const std::string& stream,
                                                                 const std::string& subject, const std::string& durable) {
  std::vector<std::pair<std::string, std::string>> out;
  auto js = bus::nats::JetStream::connect(nats_url);
  EXPECT_TRUE(js.is_ok()) << js.status().to_string();
  if (!js.is_ok()) return out;
  auto c = (*js)->pull_consumer(stream, subject, {.durable = durable});
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  if (!c.is_ok()) return out;
  for (;;) {
    auto batch = (*c)->fetch(100, std::chrono::milliseconds(500));
    if (!batch.is_ok() || batch->empty()) break;
    for (auto& m : *batch) {
      out.emplace_back(std::string(m.data()), std::string(m.header("Nats-Msg-Id")));
      (void)m.ack();
    }
  }
  return out;
}

}  // namespace gantry::testing
