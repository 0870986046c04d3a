// scripts/hosts: the test hosts the Clusters ssh provider, its tests, the demo and the Ansible
// benchmark run against. Checked from outside with OpenSSH and shellcheck: each host answers
// ssh at its own address with its own hostname, keeps its own /opt and /var/lib, reaches this
// machine over the bridge, and `down` leaves nothing behind.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "hosts_lock.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kScript = std::string(GANTRY_SOURCE_DIR) + "/scripts/hosts";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Hosts, ShellcheckFindsNothing) {
  Ran r = run({"shellcheck", kScript});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(Hosts, UpGivesSeparateSshHostsAndDownRemovesEverything) {
  ASSERT_EQ(geteuid(), 0u) << "scripts/hosts needs root (namespaces, a bridge, mounts); this test cannot run here";
  HostsLock lock;
  fs::path dir = fs::temp_directory_path() / ("gantry-hosts-test-" + std::to_string(getpid()));
  std::map<std::string, std::string> env{{"GANTRY_HOSTS_DIR", dir.string()}};
  Ran bad = run({"bash", kScript, "up", "zero"}, env);
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("host count"), std::string::npos) << bad.err;

  Ran up = run({"bash", kScript, "up", "3"}, env, 120s);
  ASSERT_EQ(up.status, 0) << up.out << up.err;
  EXPECT_NE(up.out.find("GANTRY_HOSTS=10.213.0.11,10.213.0.12,10.213.0.13"), std::string::npos) << up.out;
  std::string cfg = (dir / "ssh_config").string();
  auto ssh = [&](const std::string& host, const std::string& cmd) {
    return run({"ssh", "-F", cfg, host, cmd}, {}, 20s);
  };

  // Own address and hostname, reached by OpenSSH with the generated key and known host keys
  // (StrictHostKeyChecking yes: a wrong host key would fail).
  for (int i = 1; i <= 3; ++i) {
    std::string name = "h" + std::to_string(i);
    Ran r = ssh(name, "hostname; ip -4 -o addr show eth0");
    ASSERT_EQ(r.status, 0) << name << ": " << r.err;
    EXPECT_EQ(r.out.substr(0, r.out.find('\n')), name);
    EXPECT_NE(r.out.find("inet 10.213.0.1" + std::to_string(i) + "/24"), std::string::npos) << r.out;
  }

  // An install on one host is not seen on another, nor on this machine.
  std::string marker = "gantry-hosts-test-" + std::to_string(getpid());
  ASSERT_EQ(ssh("h1", "mkdir -p /opt/" + marker + " /var/lib/" + marker).status, 0);
  EXPECT_EQ(ssh("h1", "test -d /opt/" + marker + " && test -d /var/lib/" + marker).status, 0);
  EXPECT_NE(ssh("h2", "test -e /opt/" + marker).status, 0);
  EXPECT_NE(ssh("h3", "test -e /var/lib/" + marker).status, 0);
  EXPECT_FALSE(fs::exists("/opt/" + marker));
  EXPECT_FALSE(fs::exists("/var/lib/" + marker));

  // A host reaches a service of this machine at the bridge's address (where a controller
  // listens for the agents a cluster installs).
  int s = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, "10.213.0.1", &a.sin_addr);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(s, 4), 0);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  Ran sent = ssh("h3", "echo from-h3 > /dev/tcp/10.213.0.1/" + std::to_string(ntohs(a.sin_port)));
  EXPECT_EQ(sent.status, 0) << sent.err;
  pollfd p{s, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1);
  int c = accept(s, nullptr, nullptr);
  ASSERT_GE(c, 0);
  char buf[64] = {};
  (void)!read(c, buf, sizeof buf - 1);
  EXPECT_EQ(std::string(buf), "from-h3\n");
  close(c);
  close(s);

  // The inventories name every host with the key.
  std::string inv = slurp(dir / "inventory.yaml");
  for (int i = 1; i <= 3; ++i) {
    EXPECT_NE(inv.find("- name: h" + std::to_string(i) + "\n    address: 10.213.0.1" + std::to_string(i)), std::string::npos)
        << inv;
  }
  EXPECT_NE(inv.find("ssh_key: " + (dir / "id_ed25519").string()), std::string::npos) << inv;
  EXPECT_NE(slurp(dir / "inventory.ini").find("h2 ansible_host=10.213.0.12 ansible_user=root"), std::string::npos);
  Ran st = run({"bash", kScript, "status"}, env);
  EXPECT_NE(st.out.find("h3 10.213.0.13 running"), std::string::npos) << st.out;

  Ran down = run({"bash", kScript, "down"}, env, 60s);
  EXPECT_EQ(down.status, 0) << down.err;
  EXPECT_EQ(run({"sh", "-c", "ip netns list | grep -c gantry-h"}).out, "0\n");
  EXPECT_NE(run({"ip", "link", "show", "gantry-br0"}).status, 0);
  EXPECT_FALSE(fs::exists(dir));
  // No sshd of theirs is left (a zombie not yet reaped by PID 1 is not a process that runs).
  // ([s]shd: the pattern must not match this sh's own command line, which holds it.)
  Ran left = run({"sh", "-c", "pgrep -f '[s]shd -D -E " + dir.string() + "' | xargs -r ps -o stat= -p | grep -vc Z || true"});
  EXPECT_EQ(left.out, "0\n") << left.out;
}

}  // namespace
}  // namespace gantry::testing
