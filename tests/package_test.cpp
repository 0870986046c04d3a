// The .deb `make package` builds (cmake/package.cmake), checked as Debian and systemd would:
// lintian finds nothing, the extracted binary runs, the shipped configuration loads for every
// role the unit is for, and `systemd-analyze verify` accepts gantry@<role>.service for each.
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "env.h"
#include "process.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The long-running roles deploy/systemd/gantry@.service is documented for.
const std::vector<std::string> kServices = {"controller", "agent",        "worker",      "probe",  "ingest",
                                            "aggregator", "orchestrator", "scan-bridge", "trades", "cluster-serve"};


// Built once for the suite, by CPack from this build tree, into a directory of its own, and
// extracted there with dpkg-deb.
class Package : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("gantry-package-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Ran r = run({"cpack", "--config", std::string(GANTRY_BUILD_DIR) + "/CPackConfig.cmake", "-B", dir_.string()}, {}, 300s);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    for (auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".deb") deb_ = e.path();
    ASSERT_FALSE(deb_.empty()) << r.out;
    root_ = dir_ / "root";
    Ran x = run({"dpkg-deb", "-x", deb_.string(), root_.string()});
    ASSERT_EQ(x.status, 0) << x.err;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static inline fs::path dir_, deb_, root_;
};

TEST_F(Package, IsNamedByVersionHoldsWhatAnOperatorNeedsAndLintianFindsNothing) {
  ASSERT_FALSE(deb_.empty());
  EXPECT_TRUE(std::regex_match(deb_.filename().string(), std::regex(R"(gantry_[0-9]+\.[0-9]+\.[0-9]+_amd64\.deb)")))
      << deb_.filename();
  std::cout << "package " << deb_.filename() << ": " << fs::file_size(deb_) << " bytes\n";
  for (const char* p : {"usr/bin/gantry", "lib/systemd/system/gantry@.service", "etc/gantry/gantry.toml",
                        "usr/share/doc/gantry/copyright", "usr/share/doc/gantry/changelog.gz",
                        "usr/share/doc/gantry/operations.md", "usr/share/man/man1/gantry.1.gz",
                        "usr/share/gantry/openapi/controller.openapi.json", "usr/share/gantry/prometheus/fleet-alerts.yml",
                        "usr/share/gantry/grafana/fleet-dashboard.json"})
    EXPECT_TRUE(fs::exists(root_ / p)) << "the package lacks /" << p;

  // The configuration is a conffile (an upgrade keeps the operator's edits), and the
  // dependencies came from the shared libraries (dpkg-shlibdeps), not a hand-kept list.
  Ran control = run({"sh", "-c", "dpkg-deb --ctrl-tarfile '" + deb_.string() + "' | tar -xOf - ./conffiles"});
  EXPECT_EQ(control.out, "/etc/gantry/gantry.toml\n") << control.err;
  // Installing tells systemd about the unit and starts nothing: the operator picks the roles.
  Ran postinst = run({"sh", "-c", "dpkg-deb --ctrl-tarfile '" + deb_.string() + "' | tar -xOf - ./postinst"});
  EXPECT_NE(postinst.out.find("daemon-reload"), std::string::npos) << postinst.out << postinst.err;
  EXPECT_EQ(postinst.out.find("enable"), std::string::npos) << postinst.out;
  EXPECT_EQ(postinst.out.find(" start"), std::string::npos) << postinst.out;
  Ran depends = run({"dpkg-deb", "-f", deb_.string(), "Depends"});
  for (const char* lib : {"libc6", "libpq5", "libnats3.4", "libjemalloc2", "libcurl4"})
    EXPECT_NE(depends.out.find(lib), std::string::npos) << "Depends lacks " << lib << ": " << depends.out;

  Ran lint = run({"lintian", "--tag-display-limit", "0", deb_.string()}, {}, 300s);
  EXPECT_EQ(lint.status, 0) << lint.out << lint.err;
  std::cout << "lintian: " << (lint.out.empty() ? "no findings" : lint.out) << "\n";
  EXPECT_FALSE(std::regex_search(lint.out, std::regex("^[EW]: ", std::regex::multiline))) << lint.out;
}

TEST_F(Package, ExtractedBinaryRunsAndTheShippedConfigurationLoadsForEveryRole) {
  fs::path bin = root_ / "usr/bin/gantry";
  Ran help = run({bin.string(), "--help"});
  EXPECT_EQ(help.status, 0) << help.err;
  for (auto& role : kServices) EXPECT_NE(help.out.find(role), std::string::npos) << "--help does not list " << role;
  Ran version = run({bin.string(), "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_TRUE(std::regex_search(version.out, std::regex(R"(^gantry [0-9.]+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\))")))
      << version.out;
  fs::path toml = root_ / "etc/gantry/gantry.toml";
  for (auto& role : kServices) {
    Ran r = run({bin.string(), role, "--config", toml.string(), "--print-config"});
    EXPECT_EQ(r.status, 0) << role << " refuses the shipped /etc/gantry/gantry.toml:\n" << r.err;
  }
}

TEST_F(Package, SystemdAcceptsTheUnitForEveryRoleAndItsStopTimeoutCoversTheShutdownDeadline) {
  // systemd-analyze verify resolves the unit's dependencies (sysinit.target, …) and its
  // ExecStart under --root: give it this machine's units beside the package's files.
  fs::path root = dir_ / "systemd-root";
  fs::create_directories(root / "lib/systemd");
  fs::copy("/lib/systemd/system", root / "lib/systemd/system", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::copy(root_, root, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  for (auto& role : kServices) {
    Ran v = run({"systemd-analyze", "verify", "--man=no", "--root=" + root.string(), "gantry@" + role + ".service"}, {}, 60s);
    EXPECT_EQ(v.status, 0) << role << ":\n" << v.out << v.err;
    // It exits 0 on an unknown key or a bad value, only saying so: silence is the pass.
    EXPECT_EQ(v.out + v.err, "") << role;
  }

  // SIGTERM starts a graceful stop of shutdown_timeout; the process cuts itself short 5 s later
  // (core/runtime.h). systemd must not SIGKILL before that.
  std::string unit = read_file(root_ / "lib/systemd/system/gantry@.service");
  std::string toml = read_file(root_ / "etc/gantry/gantry.toml");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(unit, m, std::regex(R"(\nTimeoutStopSec=([0-9]+)s\n)")));
  int stop_s = std::stoi(m[1]);
  ASSERT_TRUE(std::regex_search(toml, m, std::regex(R"(\nshutdown_timeout = "([0-9]+)s")")));
  EXPECT_GE(stop_s, std::stoi(m[1]) + 5);
  for (const char* line : {"ExecStart=/usr/bin/gantry %i --config /etc/gantry/gantry.toml", "EnvironmentFile=-/etc/gantry/%i.env",
                           "Restart=on-failure", "RestartPreventExitStatus=2", "StateDirectory=gantry/%i", "DynamicUser=yes", "ProtectSystem=strict",
                           "NoNewPrivileges=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n"})
    EXPECT_NE(unit.find(line), std::string::npos) << "the unit lacks " << line;
}

}  // namespace
}  // namespace gantry::testing
