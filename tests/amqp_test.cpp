// The RabbitMQ channel against the real broker, with the orchestrator's kind of topology:
// a topic exchange and a queue of length 1 that rejects publishes when full.
#include "bus/amqp/amqp.h"
#include "bus/amqp/pool.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "env.h"
#include "private_servers.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
using bus::amqp::Channel;
using bus::amqp::Message;
using bus::amqp::Pool;
using bus::amqp::PoolOptions;
using bus::amqp::QueueArgs;
using core::Code;

struct AmqpTest : ::testing::Test {
  std::string url = server_url("GANTRY_AMQP_URL");
  std::string suffix = std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}() % 100000);
  std::string exchange = "cptm8_" + suffix;
  std::string queue = "qasmm8_" + suffix;
  std::unique_ptr<Channel> open() {
    auto c = Channel::connect(url);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    return c.is_ok() ? std::move(*c) : nullptr;
  }
  void TearDown() override {
    if (auto c = Channel::connect(url); c.is_ok()) {
      (void)(*c)->delete_queue(queue);
      (void)(*c)->delete_exchange(exchange);
    }
  }
};

TEST_F(AmqpTest, ConfirmedPublishFullQueueIsAlreadyPendingAndConsume) {
  auto pub = open();
  ASSERT_TRUE(pub);
  ASSERT_TRUE(pub->declare_exchange(exchange, "topic", true).is_ok());
  ASSERT_TRUE(pub->declare_queue(queue, true, QueueArgs{1, "reject-publish", ""}).is_ok());
  ASSERT_TRUE(pub->bind(queue, exchange, "cptm8.asmm8.#").is_ok());

  std::string kick = R"({"channel":"cptm8.asmm8.get.scan","source":"orchestratorm8"})";
  ASSERT_TRUE(pub->publish(exchange, "cptm8.asmm8.get.scan", kick).is_ok());
  Status full = pub->publish(exchange, "cptm8.asmm8.get.scan", kick);
  EXPECT_EQ(full.code(), Code::kResourceExhausted) << full.to_string();  // already pending, not lost silently
  EXPECT_NE(full.to_string().find("already pending"), std::string::npos);
  EXPECT_TRUE(pub->alive());  // a refusal does not end the channel

  auto sub = open();
  ASSERT_TRUE(sub);
  ASSERT_TRUE(sub->consume(queue, 1, "scan-bridge").is_ok());
  auto d = sub->next(5s);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ((*d)->body, kick);
  EXPECT_EQ((*d)->routing_key, "cptm8.asmm8.get.scan");
  EXPECT_EQ((*d)->content_type, "application/json");
  EXPECT_EQ((*d)->consumer_tag, "scan-bridge");
  EXPECT_FALSE((*d)->redelivered);
  ASSERT_TRUE(sub->ack((*d)->tag).is_ok());
  auto none = sub->next(300ms);
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->has_value());

  // The queue has room again: the next kick is confirmed and delivered.
  ASSERT_TRUE(pub->publish(exchange, "cptm8.asmm8.get.scan", kick).is_ok());
  auto again = sub->next(5s);
  ASSERT_TRUE(again.is_ok() && again->has_value());
  ASSERT_TRUE(sub->nack((*again)->tag, /*requeue=*/true).is_ok());
  auto redelivered = sub->next(5s);
  ASSERT_TRUE(redelivered.is_ok() && redelivered->has_value());
  EXPECT_TRUE((*redelivered)->redelivered);
  ASSERT_TRUE(sub->ack((*redelivered)->tag).is_ok());
}

TEST_F(AmqpTest, MismatchedDeclarationIsAClearPreconditionFailure) {
  auto c = open();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->declare_queue(queue, true, QueueArgs{1, "reject-publish", ""}).is_ok());
  Status s = c->declare_queue(queue, true, QueueArgs{5, "drop-head", ""});
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.to_string();
  EXPECT_NE(s.to_string().find("PRECONDITION_FAILED"), std::string::npos) << s.to_string();
  EXPECT_FALSE(c->alive());
  EXPECT_EQ(c->publish("", queue, "x").code(), Code::kUnavailable);
}

// What a client nobody here wrote (amqp-get, Debian's amqp-tools) takes from the queue, one
// message per call, until it says the queue is empty.
std::vector<std::string> drain_with_amqp_get(const std::string& url, const std::string& queue) {
  std::vector<std::string> bodies;
  for (int i = 0; i < 10'000; ++i) {
    auto r = run({"amqp-get", "-u", url, "-q", queue});
    if (r.status != 0) break;
    bodies.push_back(r.out);
  }
  return bodies;
}

int rabbitmqctl(const std::vector<std::string>& args, std::string* out = nullptr) {
  std::vector<std::string> argv{"bash", std::string(GANTRY_SOURCE_DIR) + "/scripts/servers", "rabbitmqctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run(argv, {}, 60s);
  if (out) *out = r.out;
  return r.status;
}

// Confirms used to be matched to "the current publish": a nack or a multiple ack was credited
// to whatever was being waited for. Now each message gets its own outcome, checked against
// what the queue really holds.
TEST_F(AmqpTest, EachMessageGetsItsOwnConfirmInABatch) {
  auto pub = open();
  ASSERT_TRUE(pub);
  ASSERT_TRUE(pub->declare_queue(queue, true, QueueArgs{3, "reject-publish", ""}).is_ok());
  std::vector<Message> batch;
  for (int i = 0; i < 8; ++i) batch.push_back({"", queue, "m" + std::to_string(i)});
  auto out = pub->publish_batch(batch);
  ASSERT_EQ(out.size(), 8u);
  std::vector<std::string> confirmed;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].is_ok()) confirmed.push_back(batch[i].body);
    else EXPECT_EQ(out[i].code(), Code::kResourceExhausted) << i << ": " << out[i].to_string();
  }
  EXPECT_EQ(confirmed, (std::vector<std::string>{"m0", "m1", "m2"}));
  EXPECT_TRUE(pub->alive());
  EXPECT_EQ(drain_with_amqp_get(url, queue), confirmed);
}

// A TCP relay whose broker-to-client direction can be held: confirms are then late.
struct HoldingRelay {
  explicit HoldingRelay(int broker_port) : broker(broker_port) {
    lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(lfd, reinterpret_cast<sockaddr*>(&a), len);
    ::listen(lfd, 16);
    ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    t = std::thread([this] { loop(); });
  }
  ~HoldingRelay() {
    stop = true;
    t.join();
    ::close(lfd);
    for (auto& [c, b] : pairs) {
      ::close(c);
      ::close(b);
    }
  }
  void loop() {
    while (!stop) {
      std::vector<pollfd> p{{lfd, POLLIN, 0}};
      for (auto& [c, b] : pairs) {
        p.push_back({c, POLLIN, 0});
        p.push_back({b, static_cast<short>(hold ? 0 : POLLIN), 0});
      }
      if (::poll(p.data(), p.size(), 20) <= 0) continue;
      if (p[0].revents & POLLIN) {
        int c = ::accept(lfd, nullptr, nullptr);
        int b = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(broker));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::connect(b, reinterpret_cast<sockaddr*>(&a), sizeof a);
        pairs.emplace_back(c, b);
        continue;
      }
      for (size_t i = 0; i < pairs.size(); ++i) {
        auto [c, b] = pairs[i];
        char buf[65536];
        if (p[1 + 2 * i].revents & (POLLIN | POLLHUP)) {
          ssize_t n = ::read(c, buf, sizeof buf);
          if (n > 0) (void)!::write(b, buf, static_cast<size_t>(n));
        }
        if (p[2 + 2 * i].revents & (POLLIN | POLLHUP)) {
          ssize_t n = ::read(b, buf, sizeof buf);
          if (n > 0) (void)!::write(c, buf, static_cast<size_t>(n));
        }
      }
    }
  }
  int broker;
  int lfd = -1;
  uint16_t port = 0;
  std::atomic<bool> stop{false}, hold{false};
  std::vector<std::pair<int, int>> pairs;
  std::thread t;
};

// After a confirm deadline the channel used to live on, so the late ack could be taken for a
// later message's. Now the connection is closed at once: the late confirm is never read.
TEST_F(AmqpTest, AConfirmDeadlineClosesTheChannelSoALateAckCannotCreditAnotherMessage) {
  auto [host, broker_port] = host_port(url);
  HoldingRelay relay(broker_port);
  std::string relayed = "amqp://guest:guest@127.0.0.1:" + std::to_string(relay.port);
  bus::amqp::ChannelOptions o;
  o.timeout = 500ms;
  auto ch = Channel::connect(relayed, o);
  ASSERT_TRUE(ch.is_ok()) << ch.status().to_string();
  ASSERT_TRUE((*ch)->declare_queue(queue, true).is_ok());
  ASSERT_TRUE((*ch)->publish("", queue, "first").is_ok());
  relay.hold = true;  // the broker's confirm for "late" is held back
  Status late = (*ch)->publish("", queue, "late");
  EXPECT_EQ(late.code(), Code::kDeadlineExceeded) << late.to_string();
  EXPECT_FALSE((*ch)->alive());
  relay.hold = false;
  std::this_thread::sleep_for(200ms);  // the held ack is now deliverable
  Status next = (*ch)->publish("", queue, "next");
  EXPECT_EQ(next.code(), Code::kUnavailable) << next.to_string();  // not "confirmed" by the late ack
  // The broker did take "late" (its outcome was unknown to us, and said so); "next" never left.
  auto bodies = drain_with_amqp_get(url, queue);
  EXPECT_EQ(bodies, (std::vector<std::string>{"first", "late"}));
}

// Heartbeats were negotiated but an idle channel never sent any, so the broker closed it. The
// pool services its idle channels: after idling past several heartbeat timeouts they work.
TEST_F(AmqpTest, PoolKeepsIdleConnectionsAliveWithHeartbeats) {
  PoolOptions o;
  o.url = url;
  o.name = "hb_" + suffix;
  o.min_open = 2;
  o.channel.heartbeat_s = 1;
  auto pool = Pool::open(o);
  ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
  ASSERT_TRUE((*pool)->run([&](Channel& c) { return c.declare_queue(queue, true); }).is_ok());
  std::this_thread::sleep_for(5s);  // the broker drops a connection silent for 2 heartbeats
  EXPECT_TRUE((*pool)->publish("", queue, "after idling").is_ok());
  auto st = (*pool)->stats();
  EXPECT_EQ(st.retired, 0u);
  EXPECT_EQ(st.dials, 2u);  // no connection had to be replaced
  EXPECT_EQ(drain_with_amqp_get(url, queue), (std::vector<std::string>{"after idling"}));
}

// Every message now in the queue, taken by a consumer of ours (thousands of messages:
// amqp-consume would run a process per message); bodies end in a newline, dropped here.
std::vector<std::string> drain(const std::string& url, const std::string& queue) {
  std::vector<std::string> out;
  auto c = Channel::connect(url);
  EXPECT_TRUE(c.is_ok());
  if (!c.is_ok() || !(*c)->consume(queue, 1000).is_ok()) return out;
  for (;;) {
    auto d = (*c)->next(1s);
    if (!d.is_ok() || !d->has_value()) break;
    std::string body = (*d)->body;
    if (!body.empty() && body.back() == '\n') body.pop_back();
    out.push_back(body);
    (void)(*c)->ack((*d)->tag);
  }
  return out;
}

// Batches of 5 confirmed publishes to `queue` on a thread of its own until stop(): what was
// sent, which bodies were confirmed (and how many since mark()), how many were reported failed.
// A failed batch pauses 50 ms, so a broker that is down is not spun on.
struct ConfirmedStream {
  ConfirmedStream(Pool& pool, std::string queue) : thread([this, &pool, queue] {
    for (int i = 0; !done; ++i) {
      std::vector<Message> batch;
      for (int j = 0; j < 5; ++j) batch.push_back({"", queue, std::to_string(i) + "." + std::to_string(j) + "\n"});
      auto out = pool.publish_batch(batch);
      {
        std::lock_guard l(mu);
        sent += out.size();
        for (size_t k = 0; k < out.size(); ++k) {
          if (!out[k].is_ok()) {
            ++failed;
            continue;
          }
          confirmed.insert(batch[k].body.substr(0, batch[k].body.size() - 1));
          if (marked) ++confirmed_since_mark;
        }
      }
      if (!out.empty() && !out[0].is_ok()) std::this_thread::sleep_for(50ms);
    }
  }) {}
  ~ConfirmedStream() { stop(); }
  void mark() { marked = true; }
  void stop() {
    done = true;
    if (thread.joinable()) thread.join();
  }
  // Confirmed bodies not among those the queue holds.
  size_t missing_from(const std::vector<std::string>& held) const {
    std::set<std::string> in(held.begin(), held.end());
    size_t n = 0;
    for (const std::string& c : confirmed) n += in.count(c) ? 0 : 1;
    return n;
  }

  std::atomic<bool> done{false}, marked{false};
  std::atomic<size_t> confirmed_since_mark{0};
  std::mutex mu;
  std::set<std::string> confirmed;
  size_t sent = 0, failed = 0;
  std::thread thread;  // last: starts once the members above exist
};

// Connections forced closed by the broker (as in a restart) under a stream of confirmed
// publishes: every publish is confirmed or reported failed, every confirmed message is in the
// queue, the pool retires the broken connections and carries on without operator action.
TEST_F(AmqpTest, PoolSurvivesForcedClosesAndNoConfirmIsCreditedToAnotherMessage) {
  PoolOptions o;
  o.url = url;
  o.name = "fc_" + suffix;
  o.min_open = 2;
  o.max_open = 4;
  o.dial_wait = 200ms;
  auto pool = Pool::open(o);
  ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
  ASSERT_TRUE((*pool)->run([&](Channel& c) { return c.declare_queue(queue, true); }).is_ok());
  ConfirmedStream stream(**pool, queue);
  int closes = 0;
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(300ms);
    std::string conns;
    ASSERT_EQ(rabbitmqctl({"list_connections", "pid", "client_properties", "--no-table-headers", "-q"}, &conns), 0);
    std::istringstream in(conns);
    for (std::string line; std::getline(in, line);) {
      if (line.find("gantry-" + o.name) == std::string::npos) continue;
      if (rabbitmqctl({"close_connection", line.substr(0, line.find('\t')), "test: forced close"}) == 0) ++closes;
    }
  }
  std::this_thread::sleep_for(500ms);  // a last stretch of publishing on fresh connections
  stream.stop();
  EXPECT_GT(closes, 0);
  auto st = (*pool)->stats();
  EXPECT_GT(st.retired, 0u);
  EXPECT_GT(st.dials, 2u);  // replacements were dialled without anyone's help
  EXPECT_EQ(stream.missing_from(drain(url, queue)), 0u) << "messages confirmed but not in the queue";
  EXPECT_EQ(stream.confirmed.size() + stream.failed, stream.sent);
  EXPECT_GT(stream.confirmed.size(), stream.sent / 2);
  EXPECT_TRUE((*pool)->publish("", queue, "still works").is_ok());
}

// A broker of its own, run by scripts/servers in a private run directory (so the restart
// disturbs no other test), restarted under a stream of confirmed publishes to a durable queue:
// every publish is confirmed or reported failed, every confirmed message is in the queue after
// the restart, and the pool publishes again without operator action.
TEST(AmqpRestart, BrokerRestartedUnderConfirmedPublishesLosesNothingConfirmed) {
  PrivateAmqp broker;
  ASSERT_FALSE(broker.url.empty());
  std::string url = broker.url;
  std::string queue = "restart_q";

  PoolOptions o;
  o.url = url;
  o.name = "restart";
  o.min_open = 2;
  o.dial_wait = 500ms;
  o.dial_retries = 60;
  auto pool = Pool::open(o);
  ASSERT_TRUE(pool.is_ok()) << pool.status().to_string();
  ASSERT_TRUE((*pool)->run([&](Channel& c) { return c.declare_queue(queue, true); }).is_ok());
  ConfirmedStream stream(**pool, queue);
  std::this_thread::sleep_for(500ms);
  auto re = broker.servers({"restart", "amqp"});
  stream.mark();
  EXPECT_EQ(re.status, 0) << re.err;
  EXPECT_TRUE(eventually([&] { return stream.confirmed_since_mark > 100; }, 60s)) << "no confirms after the restart";
  stream.stop();
  EXPECT_GT(stream.failed, 0u) << "the restart was not noticed";
  EXPECT_EQ(stream.confirmed.size() + stream.failed, stream.sent);
  // The broker's own count (rabbitmqctl), then the bodies.
  auto listed = broker.servers({"rabbitmqctl", "list_queues", "name", "messages", "--no-table-headers", "-q"});
  auto tab = listed.out.find(queue + "\t");
  ASSERT_NE(tab, std::string::npos) << listed.out << listed.err;
  EXPECT_GE(std::stoul(listed.out.substr(tab + queue.size() + 1)), stream.confirmed.size());
  EXPECT_EQ(stream.missing_from(drain(url, queue)), 0u)
      << "of " << stream.confirmed.size() << " confirmed messages, missing after the restart";
}

TEST(Amqp, UnreachableBrokerIsUnavailable) {
  auto c = Channel::connect("amqp://guest:guest@127.0.0.1:1", 1s);
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  // The reason, not only rabbitmq-c's "a socket error occurred".
  EXPECT_NE(c.status().to_string().find("127.0.0.1:1: a socket error occurred: Connection refused"), std::string::npos)
      << c.status().to_string();
  EXPECT_FALSE(Channel::connect("http://nope").is_ok());
}

}  // namespace
}  // namespace gantry::testing
