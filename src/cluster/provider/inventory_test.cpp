// The ssh provider's inputs: the inventory file and the extra OpenSSH options.
#include "cluster/provider/inventory.h"

#include <gtest/gtest.h>

namespace gantry::cluster {
namespace {

TEST(SshInventory, HostsParseWithTheirDefaultsAndEveryProblemIsNamed) {
  auto inv = parse_inventory("known_hosts: /k\nhosts:\n  - {name: h1, address: 10.0.0.1}\n  - {address: 10.0.0.2, port: 2222, user: ops}\n",
                             "inv.yaml");
  ASSERT_TRUE(inv.is_ok()) << inv.status().to_string();
  EXPECT_EQ(inv->known_hosts, "/k");
  ASSERT_EQ(inv->hosts.size(), 2u);
  EXPECT_EQ(inv->hosts[0].user, "root");
  EXPECT_EQ(inv->hosts[0].port, 22);
  EXPECT_EQ(inv->hosts[1].name, "10.0.0.2");  // the address names a host without a name
  EXPECT_EQ(inv->hosts[1].port, 2222);

  auto bad = parse_inventory("hosts:\n  - {name: h1}\n  - {name: h1, address: a, port: 70000}\n  - x\n", "inv.yaml");
  ASSERT_FALSE(bad.is_ok());
  std::string m(bad.status().message());
  EXPECT_NE(m.find("4 problems"), std::string::npos) << m;
  EXPECT_NE(m.find("inv.yaml:2: address is required"), std::string::npos) << m;
  EXPECT_NE(m.find("inv.yaml:3: port must be 1..65535"), std::string::npos) << m;
  EXPECT_NE(m.find("inv.yaml:3: host 'h1' is listed twice"), std::string::npos) << m;
  EXPECT_NE(m.find("inv.yaml:4: a host must be a map"), std::string::npos) << m;
  EXPECT_FALSE(parse_inventory("hosts: []\n", "i").is_ok());
  EXPECT_FALSE(parse_inventory("[not", "i").is_ok());
}

TEST(SshOptions, KeyValuePairsAreTakenAndAnythingElseRefused) {
  auto none = parse_ssh_options("");
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  auto two = parse_ssh_options("KexAlgorithms=curve25519-sha256,Ciphers=aes128-gcm@openssh.com");
  ASSERT_TRUE(two.is_ok());
  EXPECT_EQ(*two, (std::vector<std::string>{"KexAlgorithms=curve25519-sha256", "Ciphers=aes128-gcm@openssh.com"}));
  for (const char* bad : {"KexAlgorithms", "=x", "Kex=", "A=b,", "ProxyCommand=sh -c x", "A=b\n"}) {
    auto r = parse_ssh_options(bad);
    EXPECT_FALSE(r.is_ok()) << bad;
    if (!r.is_ok()) {
      EXPECT_NE(r.status().message().find("expected Key=Value"), std::string::npos) << bad;
    }
  }
}

}  // namespace
}  // namespace gantry::cluster
