#include "cluster/model.h"

#include <gtest/gtest.h>

namespace gantry::cluster {
namespace {

TEST(ClusterModel, AValidFileParsesWithItsDefaultsAndRoundTrips) {
  auto c = parse_cluster(R"(apiVersion: gantry.io/v1
kind: Cluster
metadata:
  name: edge
  labels: {team: sre}
spec:
  mode: ha
  provider: sim
  distribution: k3s
  nodePools:
    - name: workers
      count: 2
      taints: [{key: gpu, value: "true", effect: NoSchedule}]
)");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->metadata.labels.at("team"), "sre");
  EXPECT_EQ(c->spec.desired_state, "running");
  auto nodes = desired_nodes(*c);
  ASSERT_EQ(nodes.size(), 5u);
  EXPECT_EQ(nodes[0].name, "edge-server-0");
  EXPECT_EQ(nodes[2].role, "server");
  EXPECT_EQ(nodes[3].name, "edge-workers-0");
  EXPECT_EQ(nodes[4].role, "agent");

  auto again = parse_cluster(to_yaml(*c));
  ASSERT_TRUE(again.is_ok()) << again.status().to_string() << "\n" << to_yaml(*c);
  EXPECT_EQ(to_yaml(*again), to_yaml(*c));
  EXPECT_EQ(again->spec.node_pools[0].taints[0].effect, "NoSchedule");
}

TEST(ClusterModel, EveryProblemIsListedWithItsLine) {
  auto c = parse_cluster(R"(apiVersion: gantry.io/v1
kind: Cluster
metadata:
  name: Edge_1
spec:
  mode: ha
  provider: gcp
  distribution: k8s
  nodePools:
    - name: servers
      role: server
      count: 2
    - name: workers
      count: -1
      cpus: 4
)", "edge.yaml");
  ASSERT_FALSE(c.is_ok());
  std::string m(c.status().message());
  EXPECT_NE(m.find("6 problems"), std::string::npos) << m;
  EXPECT_NE(m.find("edge.yaml:4:9: metadata.name: 'Edge_1' is not a valid name"), std::string::npos) << m;
  EXPECT_NE(m.find("edge.yaml:7:13: spec.provider: unknown provider 'gcp'"), std::string::npos) << m;
  EXPECT_NE(m.find("edge.yaml:8:17: spec.distribution: unknown distribution 'k8s'"), std::string::npos) << m;
  EXPECT_NE(m.find("edge.yaml:12:14: spec.nodePools[0].count: mode ha has 3 servers, not 2"), std::string::npos) << m;
  EXPECT_NE(m.find("edge.yaml:14:14: spec.nodePools[1].count: must be 0 or more, not -1"), std::string::npos) << m;
  EXPECT_NE(m.find("edge.yaml:15:7: spec.nodePools[1].cpus: unknown field"), std::string::npos) << m;
}

TEST(ClusterModel, NotYamlAndNotAClusterAreClearErrors) {
  auto bad = parse_cluster("a: [1, 2\nb: c\n", "x.yaml");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(std::string(bad.status().message()).find("x.yaml:"), std::string::npos);
  EXPECT_NE(std::string(bad.status().message()).find("not YAML"), std::string::npos) << bad.status().message();

  auto other = parse_cluster("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n");
  ASSERT_FALSE(other.is_ok());
  EXPECT_NE(std::string(other.status().message()).find("apiVersion: must be gantry.io/v1"), std::string::npos)
      << other.status().message();

  auto deep = parse_cluster(std::string(10000, '[') + std::string(10000, ']'));
  ASSERT_FALSE(deep.is_ok());
  EXPECT_NE(std::string(deep.status().message()).find("nested too deeply"), std::string::npos);
  auto deep_block = parse_cluster(std::string(5000, '-').insert(0, ""));
  EXPECT_FALSE(deep_block.is_ok());
}

// Found by the fuzzer: a value with a carriage return did not read back as written.
TEST(ClusterModel, ControlCharactersInValuesAreRefused) {
  auto c = parse_cluster("apiVersion: gantry.io/v1\nkind: Cluster\nmetadata: {name: a}\nspec:\n  instanceType: \"t3\\r\"\n");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(std::string(c.status().message()).find("cluster.yaml:5:17: spec.instanceType: holds a control character"), std::string::npos)
      << c.status().message();
}

TEST(ClusterModel, TheOriginalsFilesAreAcceptedAndTheirUnknownFieldsIgnored) {
  auto c = parse_cluster(R"(apiVersion: goman.io/v1
kind: K3sCluster
metadata:
  name: legacy
spec:
  mode: dev
  provider: ssh
  sshKeyName: ops
  nodePools:
    - {name: workers, count: 1}
)");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->spec.distribution, "k3s");  // the original installed only K3s
  EXPECT_EQ(desired_nodes(*c).size(), 2u);

  // Its AWS provider is named as not built, with the way out.
  auto aws = parse_cluster("apiVersion: goman.io/v1\nkind: K3sCluster\nmetadata: {name: legacy}\nspec: {mode: dev}\n");
  ASSERT_FALSE(aws.is_ok());
  EXPECT_NE(std::string(aws.status().message()).find("provider: ssh"), std::string::npos) << aws.status().message();
}

TEST(ClusterModel, StatusRoundTrips) {
  ClusterStatus s;
  s.phase = "Installing";
  s.observed_generation = 3;
  s.installing = {2, 5};
  Instance i;
  i.id = "sim-1", i.name = "edge-server-0", i.role = "server", i.pool = "server", i.provisioned = true;
  i.private_ip = "10.0.0.1";
  s.instances.push_back(i);
  s.operations.passes = 4, s.operations.steps = 12, s.operations.retries = 3, s.operations.last_slot_ms = 900;
  s.operations.phase_ms = {{"Installing", 1234}};
  s.operations.breakers = {{"ssh:h1", "open"}};
  auto back = parse_status(to_yaml(s));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(to_yaml(*back), to_yaml(s));
  EXPECT_TRUE(back->instances[0].provisioned);
  EXPECT_FALSE(back->instances[0].installed);
  EXPECT_EQ(back->installing.done, 2);
  EXPECT_EQ(back->operations.retries, 3);
  EXPECT_EQ(back->operations.phase_ms.at("Installing"), 1234);
  EXPECT_EQ(back->operations.breakers.at("ssh:h1"), "open");
  // A status written before operations were recorded still reads.
  auto old = parse_status("phase: Running\nobservedGeneration: 1\n");
  ASSERT_TRUE(old.is_ok()) << old.status().to_string();
  EXPECT_EQ(old->operations.passes, 0);
}

}  // namespace
}  // namespace gantry::cluster
