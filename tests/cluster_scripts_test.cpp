// The distributions' rendered scripts, checked with Debian's shellcheck and by content: K3s
// initialises an HA cluster on the first server only, the others join it with the right token,
// nothing is downloaded when a binary is given, and tokens never appear on a command line.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "cluster/distribution/distribution.h"
#include "process.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
using namespace gantry::cluster;

struct Rendered {
  Cluster c;
  Tokens tokens{std::string(64, 's'), std::string(64, 'a')};
  std::vector<Instance> nodes;

  explicit Rendered(const std::string& mode) {
    c.metadata.name = "edge";
    c.spec.mode = mode;
    c.spec.provider = "sim";
    NodePool p;
    p.name = "workers";
    p.count = 1;
    c.spec.node_pools.push_back(p);
    int k = 0;
    for (auto& slot : desired_nodes(c)) {
      Instance i;
      i.name = slot.name, i.role = slot.role, i.pool = slot.pool, i.index = slot.index;
      i.private_ip = "10.0.0." + std::to_string(10 + k++);
      nodes.push_back(i);
    }
  }
  NodeContext ctx(size_t i) const { return {c, nodes[i], nodes[0], tokens}; }
};

void shellcheck(const Script& s, const std::string& what) {
  fs::path p = fs::temp_directory_path() / ("gantry-script-" + std::to_string(getpid()) + ".sh");
  std::ofstream(p) << "#!/bin/sh\n" << s.text;
  Ran r = run({"shellcheck", "-s", "sh", p.string()});
  EXPECT_EQ(r.status, 0) << what << ":\n" << r.out << r.err << "\n" << s.text;
  fs::remove(p);
}

TEST(ClusterScripts, K3sHaInitialisesOnTheFirstServerAndJoinsTheRestWithTheirTokens) {
  fs::path bin = fs::temp_directory_path() / ("k3s-fake-" + std::to_string(getpid()));
  std::ofstream(bin) << "not really k3s";
  DistributionOptions o;
  o.k3s_binary = bin.string();
  auto d = make_distribution("k3s", o);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  Rendered r("ha");
  ASSERT_EQ(r.nodes.size(), 4u);
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    for (auto s : {(*d)->install(r.ctx(i)), (*d)->configure(r.ctx(i)), (*d)->stop(r.ctx(i)), (*d)->uninstall(r.ctx(i))})
      shellcheck(s, r.nodes[i].name + " " + s.step);
    std::string install = (*d)->install(r.ctx(i)).text;
    EXPECT_EQ(install.find("curl"), std::string::npos) << "a binary was given: nothing is downloaded";
    EXPECT_EQ(install.find("get.k3s.io"), std::string::npos);
    EXPECT_NE(install.find("sha256sum"), std::string::npos);
    for (int p : {25, 50, 75}) EXPECT_NE(install.find("echo " + std::to_string(p) + " > \"$P\""), std::string::npos) << p;
    EXPECT_NE((*d)->configure(r.ctx(i)).text.find("echo 100 > \"$P\""), std::string::npos);
    // The token goes to a 0600 file, never onto the command line the unit or ps shows.
    size_t exec = install.find("ExecStart=");
    ASSERT_NE(exec, std::string::npos);
    std::string exec_line = install.substr(exec, install.find('\n', exec) - exec);
    EXPECT_EQ(exec_line.find(r.tokens.server), std::string::npos);
    EXPECT_NE(exec_line.find("--token-file /etc/rancher/k3s/token"), std::string::npos);
    const std::string& token = r.nodes[i].role == "server" ? r.tokens.server : r.tokens.agent;
    EXPECT_NE(install.find("printf '%s\\n' '" + token + "' > /etc/rancher/k3s/token"), std::string::npos) << install;
    bool first = i == 0;
    EXPECT_EQ(install.find("--cluster-init") != std::string::npos, first) << r.nodes[i].name;
    EXPECT_EQ(install.find("--server https://10.0.0.10:6443") != std::string::npos, !first) << r.nodes[i].name;
    EXPECT_EQ(exec_line.find(" agent ") != std::string::npos || exec_line.find("k3s agent") != std::string::npos,
              r.nodes[i].role == "agent")
        << exec_line;
  }
  fs::remove(bin);

  // Without a binary the script downloads k3s (the spec's online path), and a dev cluster has
  // no --cluster-init.
  auto online = make_distribution("k3s", {});
  ASSERT_TRUE(online.is_ok());
  Rendered dev("dev");
  std::string s0 = (*online)->install(dev.ctx(0)).text;
  EXPECT_NE(s0.find("get.k3s.io"), std::string::npos);
  EXPECT_EQ(s0.find("--cluster-init"), std::string::npos);
  shellcheck((*online)->install(dev.ctx(0)), "online install");

  DistributionOptions missing;
  missing.k3s_binary = "/nonexistent/k3s";
  auto gone = make_distribution("k3s", missing);
  ASSERT_FALSE(gone.is_ok());
  EXPECT_NE(std::string(gone.status().message()).find("--k3s-binary"), std::string::npos);
}

TEST(ClusterScripts, GantryNodeScriptsPassShellcheckAndVerifyTheBinary) {
  DistributionOptions o;
  o.gantry_binary = GANTRY_BINARY;
  o.controller_url = "http://10.213.0.1:8080";
  auto d = make_distribution("gantry-node", o);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  Rendered r("dev");
  auto files = (*d)->files(r.ctx(1));
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].sha256.size(), 64u);
  for (auto s : {(*d)->install(r.ctx(1)), (*d)->configure(r.ctx(1)), (*d)->stop(r.ctx(1)), (*d)->uninstall(r.ctx(1))})
    shellcheck(s, s.step);
  std::string install = (*d)->install(r.ctx(1)).text;
  EXPECT_NE(install.find("SHA=" + files[0].sha256), std::string::npos);
  EXPECT_NE(install.find("AGENT_HOSTNAME=edge-workers-0"), std::string::npos);
  EXPECT_NE(install.find("CONTROLLER_URL=http://10.213.0.1:8080"), std::string::npos);
  EXPECT_NE((*d)->configure(r.ctx(1)).text.find("\"registered\":true"), std::string::npos);
}

// The scripts wait for a stopped node with `alive`: a process that has exited but that its parent
// has not reaped (a zombie, as under an init that reaps late) is gone, where kill -0 still sees it.
TEST(ClusterScripts, AliveTreatsAnUnreapedProcessAsGone) {
  fs::path pidfile = fs::temp_directory_path() / ("gantry-alive-" + std::to_string(getpid()));
  // sleep 0.05's parent becomes `sleep 1`, which never reaps it.
  std::string script = std::string(kShellAlive) + "sh -c 'sleep 0.05 & echo $! > " + pidfile.string() +
                       "; exec sleep 1' &\nsleep 0.5\np=$(cat " + pidfile.string() +
                       ")\nkill -0 \"$p\" && echo killable\nalive \"$p\" || echo gone\nalive $$ && echo self\n";
  Ran r = run({"sh", "-c", script});
  EXPECT_EQ(r.out, "killable\ngone\nself\n") << r.err;
  fs::remove(pidfile);
}

}  // namespace
}  // namespace gantry::testing
