// The binary as an operator meets it: help, usage errors, configuration errors, --print-config,
// `gantry up`, /metrics accepted by promtool, graceful stop on SIGTERM.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "core/http/client.h"
#include "core/http/test_socket.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
const std::string kBin = GANTRY_BINARY;

TEST(Cli, HelpListsRoles) {
  auto r = run({kBin, "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("hello"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("up"), std::string::npos);
  auto up = run({kBin, "up", "--help"});
  EXPECT_EQ(up.status, 0);
  EXPECT_NE(up.out.find("--roles"), std::string::npos) << up.out;
  auto role = run({kBin, "hello", "--help"});
  EXPECT_EQ(role.status, 0);
  EXPECT_NE(role.out.find("[env: HELLO_PORT]"), std::string::npos) << role.out;
}

// `gantry --version` and `gantry version` name the commit the binary was built from: the
// checkout's HEAD (this test runs after the build that wrote it), and its /metrics says the same.
TEST(Cli, VersionNamesTheCommitItWasBuiltFrom) {
  auto flag = run({kBin, "--version"});
  auto cmd = run({kBin, "version"});
  EXPECT_EQ(flag.status, 0);
  EXPECT_EQ(cmd.status, 0);
  EXPECT_EQ(flag.out, cmd.out);
  auto head = run({"git", "-C", GANTRY_SOURCE_DIR, "rev-parse", "--short=12", "HEAD"});
  ASSERT_EQ(head.status, 0) << head.err;
  std::string commit = head.out.substr(0, 12);
  EXPECT_TRUE(std::regex_search(flag.out, std::regex("^gantry [0-9]+\\.[0-9]+\\.[0-9]+ \\(commit " + commit + "(-dirty)?\\)\n$")))
      << flag.out << " (HEAD is " << commit << ")";
}

// The orchestrator's original spellings: `orchestrator launch --ip --port`, its port range,
// its environment names; every problem listed at once.
TEST(Cli, OrchestratorTakesTheOriginalsFormAndListsEveryBadSetting) {
  auto r = run({kBin, "orchestrator", "launch", "--ip", "127.0.0.1", "--port", "80", "--services", "a.b"},
               {{"POSTGRESQL_PORT", "0"}});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("orchestrator.port: 80 must be within 8000-9000"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'a.b' is not a service name"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("postgresql_port"), std::string::npos) << r.err;
  auto p = run({kBin, "orchestrator", "launch", "--port", "8100", "--print-config"}, {{"RABBITMQ_HOSTNAME", "mq.internal"}});
  EXPECT_EQ(p.status, 0) << p.err;
  EXPECT_NE(p.out.find("port = 8100  # flag"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("rabbitmq_hostname = \"mq.internal\"  # env; env RABBITMQ_HOSTNAME"), std::string::npos) << p.out;
  auto b = run({kBin, "scan-bridge"});
  EXPECT_EQ(b.status, 2);
  EXPECT_NE(b.err.find("scan-bridge.service: (empty) is required"), std::string::npos) << b.err;
  EXPECT_NE(b.err.find("scan-bridge.url: (empty) is required"), std::string::npos) << b.err;
  auto m = run({kBin, "migrate", "nosuch"});
  EXPECT_EQ(m.status, 2);
  EXPECT_NE(m.err.find("telemetry"), std::string::npos) << m.err;
}

// The original's REDIS_ADDR is host:port; a URL with a path, or no host, is named once, after
// the value, as every other refused setting is.
TEST(Cli, ABadRedisAddressSaysWhatIsWrongWithIt) {
  auto r = run({kBin, "trades", "--redis-addr", "127.0.0.1:6379/0"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("trades.redis_addr: 127.0.0.1:6379/0 bad Redis port '6379/0' (host:port, or redis://host:port/db) "
                       "(from flag --redis-addr)"),
            std::string::npos)
      << r.err;
  auto h = run({kBin, "trades"}, {{"REDIS_ADDR", ":6379"}});
  EXPECT_EQ(h.status, 2);
  EXPECT_NE(h.err.find("trades.redis_addr: :6379 no Redis host (host:port, or redis://host:port/db) (from env REDIS_ADDR)"),
            std::string::npos)
      << h.err;
}

// A job's log goes to stdout; its reason for failing also goes to stderr, as a role's failure
// to start does.
TEST(Cli, AFailedJobSaysWhyOnStderr) {
  auto r = run({kBin, "migrate", "telemetry", "--db-url", "postgres://nobody@127.0.0.1:1/x"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("gantry migrate: unavailable: postgres.connect: connection to server at \"127.0.0.1\", port 1 failed"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("job failed"), std::string::npos) << r.out;
}

TEST(Cli, UnknownFlagOrSubcommandExits2) {
  auto r = run({kBin, "hello", "--no-such-flag"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--no-such-flag"), std::string::npos) << r.err;
  EXPECT_EQ(run({kBin, "frobnicate"}).status, 2);
  EXPECT_EQ(run({kBin}).status, 2);
  EXPECT_EQ(run({kBin, "up", "--roles", "nosuchrole"}).status, 2);
}

TEST(Cli, BadEnvironmentValuesAreAllReportedWithExit2) {
  auto r = run({kBin, "hello"}, {{"HELLO_PORT", "http"}, {"LOG_LEVEL", "loud"}, {"HTTP_READ_TIMEOUT", "-5s"}});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("hello.port: 'http' is not an integer (from env HELLO_PORT)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("log_level: loud is not a log level"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hello.http_read_timeout: '-5s' is negative"), std::string::npos) << r.err;
}

TEST(Cli, PrintConfigShowsSourcesAndPrecedence) {
  std::string file = ::testing::TempDir() + "/gantry_cli_test_" + std::to_string(::getpid()) + ".toml";
  std::ofstream(file) << "log_level = \"debug\"\n[hello]\nport = 7001\nbody = \"from file\"\nhttp_threads = 3\n";
  auto r = run({kBin, "hello", "--config", file, "--port", "7003", "--print-config"}, {{"HELLO_BODY", "from env"}});
  std::remove(file.c_str());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("port = 7003  # flag"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("body = \"from env\"  # env"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("http_threads = 3  # file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("log_level = \"debug\"  # file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("http_max_body_bytes = 1048576  # default"), std::string::npos) << r.out;
}

TEST(Cli, UnknownKeyOrTableInConfigFileExits2) {
  std::string file = ::testing::TempDir() + "/gantry_cli_bad_" + std::to_string(::getpid()) + ".toml";
  std::ofstream(file) << "[hello]\nprot = 7001\n[helo]\nport = 1\n";
  auto r = run({kBin, "hello", "--config", file});
  auto up = run({kBin, "up", "--roles", "hello", "--config", file});
  std::remove(file.c_str());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown key 'hello.prot' (did you mean port?)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unknown table [helo] (did you mean hello?)"), std::string::npos) << r.err;
  EXPECT_EQ(up.status, 2);
  EXPECT_NE(up.err.find("unknown table [helo] (did you mean hello?)"), std::string::npos) << up.err;
}

// A misspelt option, command or --set key is named with what was probably meant; CLI11's own
// "The following arguments were not expected: 1 --prot" named neither the command nor the fix.
TEST(Cli, AnUnknownOptionOrCommandNamesWhatWasProbablyMeant) {
  auto typo = run({kBin, "hello", "--prot", "1"});
  EXPECT_EQ(typo.status, 2);
  EXPECT_EQ(typo.err, "gantry hello: unknown option --prot (did you mean --port?)\n`gantry hello --help` lists its options\n");
  // No option is a typo away: the ones of the same family are listed, the first ones in full.
  auto family = run({kBin, "trades", "--redis-url=redis://127.0.0.1:1"});
  EXPECT_EQ(family.status, 2);
  EXPECT_NE(family.err.find("gantry trades: unknown option --redis-url (similar: --redis-addr, --redis-password,"),
            std::string::npos) << family.err;
  // A negative number after an unknown option is its value, not an option of its own.
  auto negative = run({kBin, "hello", "--prot", "-5"});
  EXPECT_EQ(negative.err, "gantry hello: unknown option --prot (did you mean --port?)\n`gantry hello --help` lists its options\n");
  auto stray = run({kBin, "migrate", "telemetry", "now"});
  EXPECT_EQ(stray.status, 2);
  EXPECT_NE(stray.err.find("gantry migrate: unexpected argument 'now'"), std::string::npos) << stray.err;
  auto command = run({kBin, "controler"});
  EXPECT_EQ(command.status, 2);
  EXPECT_NE(command.err.find("gantry: unknown command 'controler' (did you mean controller?)"), std::string::npos) << command.err;
  // Before the command: gantry's own options, and a role's option put too early.
  auto early = run({kBin, "--port=1", "hello"});
  EXPECT_EQ(early.status, 2);
  EXPECT_NE(early.err.find("gantry: --port is an option of hello: put it after the command"), std::string::npos) << early.err;
  auto top = run({kBin, "--versoin"});
  EXPECT_EQ(top.status, 2);
  EXPECT_NE(top.err.find("gantry: unknown option --versoin (did you mean --version?)"), std::string::npos) << top.err;
  auto set = run({kBin, "up", "--roles", "hello", "--set", "hello.prot=1"});
  EXPECT_EQ(set.status, 2);
  EXPECT_NE(set.err.find("role hello has no setting 'prot' (did you mean port?)"), std::string::npos) << set.err;
  auto role = run({kBin, "up", "--roles", "hello,controler"});
  EXPECT_EQ(role.status, 2);
  EXPECT_NE(role.err.find("--roles: unknown role 'controler' (did you mean controller?)"), std::string::npos) << role.err;
}

// Every schema reads the file (the shared settings and each role's), but its syntax error is
// one problem and is listed once, with its line and column.
TEST(Cli, ASyntaxErrorInTheConfigFileIsListedOnce) {
  std::string file = ::testing::TempDir() + "/gantry_cli_syntax_" + std::to_string(::getpid()) + ".toml";
  std::ofstream(file) << "port = [1\n";
  auto r = run({kBin, "hello", "--config", file});
  auto up = run({kBin, "up", "--roles", "hello,controller", "--config", file});
  std::remove(file.c_str());
  for (auto* x : {&r, &up}) {
    EXPECT_EQ(x->status, 2);
    std::string where = file + ":1:";
    auto at = x->err.find(where);
    ASSERT_NE(at, std::string::npos) << x->err;
    EXPECT_EQ(x->err.find(where, at + 1), std::string::npos) << x->err;
  }
}

TEST(Cli, UpRunsRolesServesMetricsThatPromtoolAcceptsAndStopsOnSigterm) {
  Child up({kBin, "up", "--roles", "hello", "--set", "hello.body=demo"}, {{"LOG_FORMAT", "json"}});
  std::string out = up.wait_for_output("http://", 10s);
  ASSERT_FALSE(out.empty()) << "stdout: " << up.out() << "\nstderr: " << up.err();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(hello\s+http\s+(http://127\.0\.0\.1:(\d+)))"))) << out;
  std::string base = m[1];
  EXPECT_NE(m[2], "8090");  // up chose a free port instead of the default

  core::http::Client c;
  auto hello = c.get(base + "/");
  ASSERT_TRUE(hello.is_ok()) << hello.status().to_string();
  EXPECT_EQ(hello->body, "demo");
  auto metrics = c.get(base + "/metrics");
  ASSERT_TRUE(metrics.is_ok());
  EXPECT_NE(metrics->body.find("http_requests_total{server=\"hello\",code=\"200\"} 1"), std::string::npos);
  EXPECT_NE(metrics->body.find("process_resident_memory_bytes"), std::string::npos);
  auto version = run({kBin, "version"});
  std::smatch v;  // "gantry 0.1.0 (commit abc)" -> the same pair on gantry_build_info
  ASSERT_TRUE(std::regex_search(version.out, v, std::regex(R"(^gantry (\S+) \(commit (\S+)\))"))) << version.out;
  EXPECT_NE(metrics->body.find("gantry_build_info{version=\"" + v[1].str() + "\",commit=\"" + v[2].str() + "\"} 1"),
            std::string::npos)
      << metrics->body;

  std::string mfile = ::testing::TempDir() + "/gantry_metrics_" + std::to_string(::getpid()) + ".txt";
  std::ofstream(mfile) << metrics->body;
  auto lint = run({"sh", "-c", "promtool check metrics < " + mfile});
  std::remove(mfile.c_str());
  EXPECT_EQ(lint.status, 0) << lint.out << lint.err;

  up.signal(SIGTERM);
  EXPECT_EQ(up.wait(10s), 0) << up.err();
  EXPECT_NE(up.out().find("\"msg\":\"stopped cleanly\""), std::string::npos) << up.out();
  EXPECT_NE(up.out().find("\"msg\":\"request\""), std::string::npos);  // JSON access log line
}

// The access log used to block an io thread once its queue was full: with stdout a pipe nobody
// reads, the server stopped answering after a few hundred requests. Now lines are dropped
// (and counted) and every request is answered.
TEST(Cli, AFullLogPipeDoesNotStopTheServer) {
  Child up({kBin, "up", "--roles", "hello"}, {{"LOG_FORMAT", "json"}, {"LOG_QUEUE_LINES", "64"}, {"HTTP_THREADS", "1"}});
  std::string out = up.wait_for_output("http://", 10s);
  ASSERT_FALSE(out.empty()) << up.err();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(hello\s+http\s+(http://127\.0\.0\.1:\d+))"))) << out;
  std::string base = m[1];
  // From here on nobody reads the child's stdout: the pipe (64 KiB) fills after ~300 lines.
  core::http::ClientOptions o;
  o.timeout = 3s;
  core::http::Client c(o);
  int answered = 0;
  for (int i = 0; i < 3000; ++i) {
    auto r = c.get(base + "/");
    if (!r.is_ok() || r->status != 200) {
      ADD_FAILURE() << "request " << i << ": " << (r.is_ok() ? std::to_string(r->status) : r.status().to_string());
      break;
    }
    ++answered;
  }
  EXPECT_EQ(answered, 3000);
  auto metrics = c.get(base + "/metrics");
  ASSERT_TRUE(metrics.is_ok());
  std::smatch d;
  ASSERT_TRUE(std::regex_search(metrics->body, d, std::regex(R"(\nlog_lines_dropped_total (\d+))"))) << metrics->body.substr(0, 2000);
  EXPECT_GT(std::stod(d[1]), 0);
  up.signal(SIGTERM);
  EXPECT_EQ(up.wait(15s), 0) << up.err();  // waiting reads stdout again, so the writer drains
}

TEST(Cli, PortInUseOrBadAddressFailsAtStartWithClearMessage) {
  core::http::testing::HeldPort held;
  std::string port = std::to_string(held.port());
  auto r = run({kBin, "hello", "--address", "127.0.0.1", "--port", port});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("cannot listen on 127.0.0.1:" + port + ": Address already in use"), std::string::npos) << r.err;

  auto bad = run({kBin, "hello", "--address", "256.0.0.1"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("bad listen address '256.0.0.1'"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace gantry::testing
