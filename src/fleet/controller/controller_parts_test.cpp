// The controller's parts that need no network: the store contract (on SQLite), the long-poll
// hub and the group commit.
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include <gtest/gtest.h>

#include "fleet/controller/group_commit.h"
#include "fleet/controller/long_poll.h"
#include "fleet/controller/store.h"

namespace gantry::fleet::controller {
namespace {

using namespace std::chrono_literals;
namespace http = core::http;

std::string temp_db() {
  char tmpl[] = "/tmp/gantry-store-XXXXXX";
  return std::string(mkdtemp(tmpl)) + "/data.db";
}

AgentRecord agent(std::string id, std::string hash) {
  AgentRecord a;
  a.agent_id = std::move(id);
  a.agent_name = "agent-" + a.agent_id;
  a.token_hash = std::move(hash);
  a.status = "registered";
  a.hostname = "h";
  a.start_time = "2026-11-22T07:00:00Z";
  a.created_at = a.updated_at = "2026-11-22T07:00:01.000Z";
  return a;
}

TEST(FleetStore, SqliteKeepsAgentsConfigurationsAndHeartbeats) {
  std::string path = temp_db();
  {
    auto s = open_sqlite_store(path);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    Store& st = **s;
    ASSERT_TRUE(st.migrate().is_ok());
    EXPECT_FALSE(*st.latest_config());
    ConfigRecord c1{0, "e1", R"({"url":"http://a"})", "admin", "2026-11-22T07:00:00.000Z"};
    ConfigRecord c2{0, "e2", R"({"url":"http://b"})", "admin", "2026-11-22T07:00:01.000Z"};
    ASSERT_TRUE(st.insert_config(c1).is_ok());
    ASSERT_TRUE(st.insert_config(c2).is_ok());
    EXPECT_GT(c2.id, c1.id);
    ConfigRecord dup{0, "e1", "{}", "admin", "x"};
    EXPECT_EQ(st.insert_config(dup).code(), core::Code::kAlreadyExists);  // etags are unique
    EXPECT_EQ((*st.latest_config())->etag, "e2");
    EXPECT_EQ((*st.config_by_etag("e1"))->config_data, R"({"url":"http://a"})");
    EXPECT_FALSE(*st.config_by_etag("nope"));
    auto h = st.history(10);
    ASSERT_EQ(h->size(), 2u);
    EXPECT_EQ((*h)[0].etag, "e2");

    ASSERT_TRUE(st.insert_agent(agent("a1", "h1")).is_ok());
    ASSERT_TRUE(st.insert_agent(agent("a2", "h2")).is_ok());
    EXPECT_EQ(st.insert_agent(agent("a3", "h1")).code(), core::Code::kAlreadyExists);  // token hash unique
    EXPECT_TRUE(*st.set_token_hash("a1", "h1b", "t"));
    EXPECT_FALSE(*st.set_token_hash("zz", "h9", "t"));
    EXPECT_TRUE(*st.set_poll_interval("a2", 42, "t"));
    std::vector<HeartbeatRow> rows = {{"a1", "2026-11-22T07:01:00.000Z", "e2", "healthy"},
                                      {"a2", "2026-11-22T07:01:01.000Z", "e1", "busy"},
                                      {"gone", "2026-11-22T07:01:01.000Z", "e1", "x"}};
    ASSERT_TRUE(st.write_heartbeats(rows).is_ok());
    EXPECT_TRUE(*st.delete_agent("a2"));
    EXPECT_FALSE(*st.delete_agent("a2"));
  }
  // Reopened: what was written is there.
  auto s = open_sqlite_store(path);
  ASSERT_TRUE((*s)->migrate().is_ok());
  auto agents = (*s)->load_agents();
  ASSERT_EQ(agents->size(), 1u);
  const AgentRecord& a = (*agents)[0];
  EXPECT_EQ(a.agent_id, "a1");
  EXPECT_EQ(a.token_hash, "h1b");
  EXPECT_EQ(a.last_config_version, "e2");
  EXPECT_EQ(a.last_heartbeat, "2026-11-22T07:01:00.000Z");
  EXPECT_EQ(a.status, "healthy");
  EXPECT_FALSE(a.poll_interval_seconds);
  EXPECT_EQ((*(*s)->agent_by_token_hash("h1b"))->agent_id, "a1");
  EXPECT_FALSE(*(*s)->agent_by_token_hash("h1"));
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

struct Answers {
  std::mutex mu;
  std::vector<int> statuses;
  void add(int s) {
    std::lock_guard lk(mu);
    statuses.push_back(s);
  }
  size_t size() {
    std::lock_guard lk(mu);
    return statuses.size();
  }
};

http::Responder recorder(Answers& a) {
  return http::Responder([&a](http::Response&& r) { a.add(r.status); });
}

LongPollHub::Answer answer_with(int changed_status) {
  return [changed_status](bool changed) {
    http::Response r;
    r.status = changed ? changed_status : 304;
    return r;
  };
}

TEST(FleetLongPoll, PublishAnswersEveryHolderExpiryAnswers304) {
  LongPollHub hub;
  Answers got;
  auto far = LongPollHub::Clock::now() + 60s;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(hub.hold(far, recorder(got), answer_with(200)));
  EXPECT_EQ(hub.holding(), 100u);
  hub.publish();
  EXPECT_EQ(hub.holding(), 0u);
  ASSERT_EQ(got.size(), 100u);
  for (int s : got.statuses) EXPECT_EQ(s, 200);

  Answers expired;
  ASSERT_TRUE(hub.hold(LongPollHub::Clock::now() + 50ms, recorder(expired), answer_with(200)));
  auto until = std::chrono::steady_clock::now() + 5s;
  while (expired.size() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired.statuses[0], 304);
}

TEST(FleetLongPoll, CloseAnswersHoldersAndRefusesNewOnes) {
  LongPollHub hub;
  Answers got;
  ASSERT_TRUE(hub.hold(LongPollHub::Clock::now() + 60s, recorder(got), answer_with(200)));
  hub.close();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got.statuses[0], 304);
  EXPECT_FALSE(hub.hold(LongPollHub::Clock::now() + 60s, recorder(got), answer_with(200)));
}

TEST(FleetGroupCommit, BatchesWhatArrivesDuringACommitAndReportsFailures) {
  std::mutex mu;
  std::vector<size_t> batches;
  GroupCommit<int> gc(
      [&](std::span<const int> rows) {
        std::this_thread::sleep_for(2ms);  // a commit takes time; rows pile up meanwhile
        std::lock_guard lk(mu);
        batches.push_back(rows.size());
        return core::Status();
      },
      64);
  std::atomic<int> ok{0}, failed{0};
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(gc.submit(i, [&](const core::Status& s) { (s.is_ok() ? ok : failed).fetch_add(1); }));
  gc.stop();
  EXPECT_EQ(ok.load(), 1000);
  size_t total = 0, biggest = 0;
  for (size_t b : batches) {
    total += b;
    biggest = std::max(biggest, b);
  }
  EXPECT_EQ(total, 1000u);
  EXPECT_LE(biggest, 64u);
  EXPECT_LT(batches.size(), 1000u);  // grouped, not one commit per row
  EXPECT_FALSE(gc.submit(1, [](const core::Status&) {}));

  GroupCommit<int> bad([&](std::span<const int>) { return core::io_error("disk full"); }, 8);
  std::atomic<int> errors{0};
  for (int i = 0; i < 10; ++i) bad.submit(i, [&](const core::Status& s) { errors += s.is_ok() ? 0 : 1; });
  bad.stop();
  EXPECT_EQ(errors.load(), 10);
}

}  // namespace
}  // namespace gantry::fleet::controller
