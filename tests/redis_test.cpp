// The Redis client against real servers: commands and pub/sub on the shared test server, and
// reconnection against a private redis-server this test kills and restarts.
#include "bus/redis/redis.h"
#include "bus/redis/pipeline.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "core/http/test_socket.h"
#include "env.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
using RedisConnection = bus::redis::Connection;  // postgres_test.cpp, in the same unity source, has a `Connection`
using bus::redis::Endpoint;
using bus::redis::Reply;
using bus::redis::Subscriber;

struct Inbox {
  std::mutex mu;
  std::vector<std::string> got;
  std::atomic<int> connects{0}, disconnects{0};
  Subscriber::Handlers handlers() {
    return {[this](std::string_view, std::string_view m) {
              std::lock_guard l(mu);
              got.emplace_back(m);
            },
            [this] { ++connects; }, [this](const core::Status&) { ++disconnects; }};
  }
  size_t size() {
    std::lock_guard l(mu);
    return got.size();
  }
};

TEST(Redis, CommandsAndPubSub) {
  std::string url = server_url("GANTRY_REDIS_URL");
  ASSERT_FALSE(url.empty());
  auto ep = Endpoint::parse_url(url);
  ASSERT_TRUE(ep.is_ok()) << ep.status().to_string();
  RedisConnection c(*ep);
  ASSERT_TRUE(c.ping().is_ok());
  std::string key = "gantry-test-" + std::to_string(::getpid());
  auto set = c.command({"SET", key, std::string("bin\0ary", 7)});
  ASSERT_TRUE(set.is_ok());
  EXPECT_EQ(set->type, Reply::kStatus);
  auto get = c.command({"GET", key});
  EXPECT_EQ(get->str, std::string("bin\0ary", 7));
  auto err = c.command({"INCR", key});  // not an integer: an error reply, not a failed call
  ASSERT_TRUE(err.is_ok());
  EXPECT_EQ(err->type, Reply::kError);
  (void)c.command({"DEL", key});

  Inbox in;
  std::string channel = "config-updates-" + std::to_string(::getpid());
  Subscriber sub(*ep, {channel}, in.handlers());
  sub.start();
  ASSERT_TRUE(eventually([&] { return sub.connected(); }));
  EXPECT_TRUE(eventually([&] { return in.connects.load() == 1; }));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*c.publish(channel, "etag-" + std::to_string(i)), 1);
  ASSERT_TRUE(eventually([&] { return in.size() == 3; }));
  EXPECT_EQ(in.got[2], "etag-2");
  sub.stop();
  EXPECT_FALSE(sub.connected());
}

// The URL parser used to drop the ACL user: redis://user:pass@host authenticated as the
// default user with that password, which Redis refuses.
TEST(Redis, AnAclUserFromTheUrlIsUsed) {
  std::string url = server_url("GANTRY_REDIS_URL");
  ASSERT_FALSE(url.empty());
  auto admin_ep = Endpoint::parse_url(url);
  ASSERT_TRUE(admin_ep.is_ok());
  RedisConnection admin(*admin_ep);
  std::string user = "gantry-acl-" + std::to_string(::getpid());
  auto made = admin.command({"ACL", "SETUSER", user, "on", ">p@ss:word", "~*", "+@all"});
  ASSERT_TRUE(made.is_ok() && made->type == Reply::kStatus) << (made.is_ok() ? made->str : made.status().to_string());
  std::string rest = url.substr(std::string("redis://").size());
  if (auto at = rest.find('@'); at != std::string::npos) rest = rest.substr(at + 1);
  auto ep = Endpoint::parse_url("redis://" + user + ":p%40ss%3Aword@" + rest);
  ASSERT_TRUE(ep.is_ok()) << ep.status().to_string();
  EXPECT_EQ(ep->user, user);
  EXPECT_EQ(ep->password, "p@ss:word");
  RedisConnection c(*ep);
  auto who = c.command({"ACL", "WHOAMI"});
  ASSERT_TRUE(who.is_ok()) << who.status().to_string();
  EXPECT_EQ(who->str, user);
  (void)admin.command({"ACL", "DELUSER", user});
  EXPECT_FALSE(Endpoint::parse_url("redis://u:bad%zz@h").is_ok());
}

// Pipelined writes, checked with redis-cli (a client nobody here wrote).
TEST(Redis, PipelineWritesABatchInWindowsAndRedisCliReadsItBack) {
  std::string url = server_url("GANTRY_REDIS_URL");
  ASSERT_FALSE(url.empty());
  auto ep = Endpoint::parse_url(url);
  ASSERT_TRUE(ep.is_ok());
  bus::redis::PipelineOptions o;
  o.max_in_flight = 64;
  o.breaker = "redis-test-batch";
  bus::redis::Pipeline p(*ep, o);
  std::string prefix = "gantry-pipe-" + std::to_string(::getpid()) + ":";
  for (int i = 0; i < 5000; ++i) {
    p.add({"SET", prefix + std::to_string(i), "v" + std::to_string(i)});
    p.add({"EXPIRE", prefix + std::to_string(i), "600"});
  }
  p.add({"INCR", prefix + "0"});  // an error reply has its own slot; the batch goes on
  auto r = p.exec();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 10001u);
  EXPECT_EQ((*r)[0].type, Reply::kStatus);
  EXPECT_EQ((*r)[1].integer, 1);
  EXPECT_EQ((*r)[10000].type, Reply::kError);
  EXPECT_EQ(p.queued(), 0u);
  auto get = run({"redis-cli", "-u", url, "GET", prefix + "4999"});
  EXPECT_EQ(get.out, "v4999\n");
  auto ttl = run({"redis-cli", "-u", url, "TTL", prefix + "4999"});
  EXPECT_GT(std::stoi(ttl.out), 590) << ttl.out;
  auto n = run({"sh", "-c", "redis-cli -u '" + url + "' --scan --pattern '" + prefix + "*' | wc -l"});
  EXPECT_EQ(std::stoi(n.out), 5000);
  p.add({"SET", prefix + "w", "1"});
  p.add({"INCR", prefix + "4998"});  // not a number: counted, first error kept
  p.add({"EVAL", "for i=0,4999 do redis.call('DEL', ARGV[1]..i) end return 1", "0", prefix});
  auto w = p.exec_writes();
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(w->commands, 3u);
  EXPECT_EQ(w->errors, 1u);
  EXPECT_NE(w->first_error.find("not an integer"), std::string::npos) << w->first_error;
}

// Redis restarted under pipelined writes: the writer fails fast while it is gone (never
// blocking longer than a connect timeout) and resumes on its own when it is back.
TEST(Redis, PipelineResumesAfterARestartWithoutOperatorAction) {
  int port = core::http::testing::free_loopback_port();
  std::vector<std::string> argv{"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"};
  auto redis = std::make_unique<Child>(argv);
  Endpoint ep;
  ep.port = port;
  ep.timeout = 500ms;
  ASSERT_TRUE(eventually([&] { return RedisConnection(ep).ping().is_ok(); }));
  bus::redis::PipelineOptions o;
  o.breaker = "redis-test-restart";
  o.reconnect.base_delay = 50ms;
  o.reconnect.max_delay = 500ms;
  bus::redis::Pipeline p(ep, o);
  int ok = 0, failed = 0, last_ok = -1;
  bool restarted = false;
  auto killed_at = std::chrono::steady_clock::time_point{};
  for (int round = 0; round < 2000 && !(restarted && ok > 40); ++round) {
    for (int i = 0; i < 100; ++i) p.add({"SET", "k" + std::to_string(i), std::to_string(round)});
    auto t0 = std::chrono::steady_clock::now();
    auto r = p.exec();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);  // never stuck on the dead server
    if (r.is_ok()) {
      ++ok;
      last_ok = round;
    } else {
      ++failed;
    }
    if (ok == 20 && killed_at == std::chrono::steady_clock::time_point{}) {
      redis->signal(SIGKILL);
      redis->wait(5s);
      killed_at = std::chrono::steady_clock::now();
    }
    if (!restarted && killed_at != std::chrono::steady_clock::time_point{} &&
        std::chrono::steady_clock::now() - killed_at > 1s) {
      redis = std::make_unique<Child>(argv);
      restarted = true;
    }
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(restarted);
  EXPECT_GT(failed, 0);
  EXPECT_GT(ok, 40);
  EXPECT_GE(p.reconnects(), 1u);
  auto get = run({"redis-cli", "-p", std::to_string(port), "GET", "k99"});
  EXPECT_EQ(get.out, std::to_string(last_ok) + "\n");
}

TEST(Redis, SubscriberReconnectsWhenTheServerComesBack) {
  int port = core::http::testing::free_loopback_port();
  std::vector<std::string> argv{"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"};
  auto redis = std::make_unique<Child>(argv);
  Endpoint ep;
  ep.port = port;
  ASSERT_TRUE(eventually([&] { return RedisConnection(ep).ping().is_ok(); }));

  Inbox in;
  Subscriber sub(ep, {"config-updates"}, in.handlers());
  sub.start();
  ASSERT_TRUE(eventually([&] { return sub.connected(); }));
  RedisConnection pub(ep);
  ASSERT_EQ(*pub.publish("config-updates", "v1"), 1);
  ASSERT_TRUE(eventually([&] { return in.size() == 1; }));

  redis->signal(SIGKILL);
  redis->wait(5s);
  ASSERT_TRUE(eventually([&] { return !sub.connected(); }));
  // connected() changes just before the handler runs.
  EXPECT_TRUE(eventually([&] { return in.disconnects.load() == 1; }));
  EXPECT_FALSE(pub.publish("config-updates", "lost").is_ok());  // no server: a clear failure

  redis = std::make_unique<Child>(argv);
  ASSERT_TRUE(eventually([&] { return sub.connected(); }, 15s)) << "subscriber did not come back";
  EXPECT_TRUE(eventually([&] { return in.connects.load() == 2; }));  // the owner hears of it (to catch up)
  ASSERT_TRUE(eventually([&] { return pub.publish("config-updates", "v2").value_or(0) == 1; }));
  ASSERT_TRUE(eventually([&] { return in.size() == 2; }));
  EXPECT_EQ(in.got[1], "v2");
  EXPECT_GE(sub.reconnects(), 1u);
  sub.stop();
}

TEST(Redis, SubscriberNoticesASilentServer) {
  int port = core::http::testing::free_loopback_port();
  Child redis({"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"});
  Endpoint ep;
  ep.port = port;
  ep.timeout = std::chrono::milliseconds(300);
  ASSERT_TRUE(eventually([&] { return RedisConnection(ep).ping().is_ok(); }));
  Inbox in;
  Subscriber sub(ep, {"c"}, in.handlers(), Subscriber::reconnect_policy(), std::chrono::milliseconds(200));
  sub.start();
  ASSERT_TRUE(eventually([&] { return sub.connected(); }));
  std::this_thread::sleep_for(600ms);  // several PING rounds answered: still connected
  EXPECT_TRUE(sub.connected());
  EXPECT_EQ(in.disconnects.load(), 0);
  redis.freeze();  // the socket stays open, the server says nothing
  EXPECT_TRUE(eventually([&] { return !sub.connected(); }, 5s));
  EXPECT_TRUE(eventually([&] { return in.disconnects.load() == 1; }));
  redis.signal(SIGCONT);
  EXPECT_TRUE(eventually([&] { return sub.connected(); }, 15s));
  sub.stop();
}

}  // namespace
}  // namespace gantry::testing
