// The controller's in-memory agents: which token finds which agent after rotations, deletions
// and another controller's changes, and the census the Fleet alerts read.
#include "fleet/controller/agents.h"

#include <gtest/gtest.h>

namespace gantry::fleet::controller {
namespace {

using namespace std::chrono_literals;

AgentRecord agent_record(const std::string& id, const std::string& token_hash, const std::string& last_heartbeat = "",
                         const std::string& version = "") {
  AgentRecord r;
  r.agent_id = id;
  r.agent_name = "agent-" + id;
  r.token_hash = token_hash;
  r.created_at = "2026-12-01T00:00:00Z";
  r.last_heartbeat = last_heartbeat;
  r.last_config_version = version;
  return r;
}

TEST(ControllerAgents, ATokenFindsItsAgentUntilRotatedOrForgotten) {
  Agents agents(90s, 300s);
  auto a = agents.remember(agent_record("a", "hash-a"));
  agents.remember(agent_record("b", "hash-b"));
  EXPECT_EQ(agents.by_token("hash-a"), a);
  EXPECT_EQ(agents.find("a"), a);
  EXPECT_EQ(agents.size(), 2u);

  // Remembering a known id again (a lookup racing a registration) keeps the agent held.
  auto again = agents.remember(agent_record("a", "hash-other"));
  EXPECT_EQ(again, a);
  EXPECT_EQ(agents.by_token("hash-other"), nullptr);

  agents.set_token(*a, "hash-a2", "2026-12-02T00:00:00Z");
  EXPECT_EQ(agents.by_token("hash-a"), nullptr);
  EXPECT_EQ(agents.by_token("hash-a2"), a);
  EXPECT_EQ(a->updated_at, "2026-12-02T00:00:00Z");

  agents.forget(*a);
  EXPECT_EQ(agents.by_token("hash-a2"), nullptr);
  EXPECT_EQ(agents.find("a"), nullptr);
  EXPECT_EQ(agents.size(), 1u);
  // A rotation finishing after a deletion does not bring the agent back.
  agents.set_token(*a, "hash-a3", "2026-12-02T00:00:01Z");
  EXPECT_EQ(agents.by_token("hash-a3"), nullptr);
  EXPECT_EQ(agents.size(), 1u);
}

TEST(ControllerAgents, TakesInAnotherControllersChanges) {
  Agents agents(90s, 300s);
  auto a = agents.remember(agent_record("a", "hash-a"));
  agents.remember(agent_record("b", "hash-b"));

  AgentRecord changed = agent_record("a", "hash-a2");
  changed.poll_interval_seconds = 42;
  EXPECT_TRUE(agents.update(changed));  // rotated elsewhere: the old token stops working here
  EXPECT_EQ(agents.by_token("hash-a"), nullptr);
  EXPECT_EQ(agents.by_token("hash-a2"), a);
  int interval = 0;
  ASSERT_TRUE(agents.interval_by_token("hash-a2", &interval));
  EXPECT_EQ(interval, 42);
  EXPECT_FALSE(agents.interval_by_token("hash-a", &interval));

  changed.poll_interval_seconds.reset();
  EXPECT_FALSE(agents.update(changed));  // same token: only the interval changed
  ASSERT_TRUE(agents.interval_by_token("hash-a2", &interval));
  EXPECT_EQ(interval, 0);

  EXPECT_FALSE(agents.update(agent_record("c", "hash-c")));  // registered elsewhere
  EXPECT_NE(agents.by_token("hash-c"), nullptr);

  auto gone = agents.keep_only({"a", "c"});  // b deleted elsewhere
  EXPECT_EQ(gone, std::vector<std::string>{"b"});
  EXPECT_EQ(agents.by_token("hash-b"), nullptr);
  EXPECT_EQ(agents.find("b"), nullptr);
  EXPECT_EQ(agents.size(), 2u);
}

TEST(ControllerAgents, CensusCountsByAgeOfLastContactAndLaggingVersions) {
  Agents agents(90s, 300s);
  auto now = core::parse_rfc3339("2026-12-02T12:00:00Z").value();
  agents.remember(agent_record("fresh", "h1", "2026-12-02T11:59:00Z", "v2"));   // 60 s
  agents.remember(agent_record("quiet", "h2", "2026-12-02T11:58:00Z", "v1"));   // 120 s
  agents.remember(agent_record("gone", "h3", "2026-12-02T11:54:00Z", "v2"));    // 360 s
  agents.remember(agent_record("never", "h4", "", ""));  // registered a day earlier, no heartbeat

  Census c = agents.census("v2", now);
  EXPECT_EQ(c.online, 1u);
  EXPECT_EQ(c.stale, 1u);
  EXPECT_EQ(c.offline, 2u);
  EXPECT_EQ(c.lagging, 2u);  // quiet (v1) and never (none)
  EXPECT_EQ(c.by_status("stale"), 1u);

  auto fresh = agents.find("fresh");
  std::lock_guard lk(fresh->mu);
  EXPECT_EQ(agents.status_of(*fresh, now), "online");
  EXPECT_EQ(agents.status_of(*fresh, now + 31s), "stale");    // 91 s
  EXPECT_EQ(agents.status_of(*fresh, now + 241s), "offline");  // 301 s
}

TEST(ControllerAgents, NewestRegistrationFirst) {
  Agents agents(90s, 300s);
  auto older = agent_record("x", "hx");
  auto newer = agent_record("y", "hy");
  newer.created_at = "2026-12-03T00:00:00Z";
  agents.remember(older);
  agents.remember(newer);
  auto all = agents.newest_first();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]->id, "y");
  EXPECT_EQ(all[1]->id, "x");
}

}  // namespace
}  // namespace gantry::fleet::controller
