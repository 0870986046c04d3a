// The event-loop JetStream publisher against real NATS servers: acks, dedup, errors, a
// killed server, a frozen server.
#include "bus/nats/publisher.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <random>
#include <set>
#include <thread>

#include "env.h"
#include "private_servers.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
using bus::nats::JetStream;
using bus::nats::Publisher;
using bus::nats::PubAck;
using bus::nats::StreamSpec;
using core::Code;


// A publisher on its own io_context thread, the way a server worker runs it.
struct Loop {
  explicit Loop(Publisher::Options o) : pub(ioc, std::move(o)) {}
  ~Loop() {
    ioc.stop();
    if (t.joinable()) t.join();
  }
  Status connect_and_run() {
    Status s = pub.connect();
    t = std::thread([this] { ioc.run(); });
    return s;
  }
  template <class F>
  auto on_loop(F f) {
    std::promise<decltype(f())> p;
    boost::asio::post(ioc, [&] { p.set_value(f()); });
    return p.get_future().get();
  }
  // Publishes on the loop thread; the answers arrive in `results` (guarded by mu).
  Status publish(const std::string& subject, const std::string& data, const std::string& id) {
    return on_loop([&] {
      return pub.publish(subject, data, id, [this](core::Result<PubAck> r) {
        EXPECT_TRUE(ioc.get_executor().running_in_this_thread());
        std::lock_guard lk(mu);
        results.push_back(std::move(r));
      });
    });
  }
  size_t answered() {
    std::lock_guard lk(mu);
    return results.size();
  }
  boost::asio::io_context ioc;
  Publisher pub;
  std::thread t;
  std::mutex mu;
  std::vector<core::Result<PubAck>> results;
};

TEST(NatsPublisher, AcksEveryMessageDropsDuplicatesAndReportsErrors) {
  std::string url = server_url("GANTRY_NATS_URL");
  ASSERT_FALSE(url.empty());
  auto js = JetStream::connect(url);
  ASSERT_TRUE(js.is_ok()) << js.status().to_string();
  std::string stream = unique("PUB");
  std::string subject = stream + ".events";
  ASSERT_TRUE((*js)->ensure_stream(StreamSpec{stream, {subject}}).is_ok());

  Loop l({.urls = url, .name = "publisher-test"});
  ASSERT_TRUE(l.connect_and_run().is_ok());
  EXPECT_TRUE(l.pub.connected());

  constexpr int kN = 3000;
  // All published in one pass of the loop: they go out together and are acked one by one.
  Status s = l.on_loop([&] {
    for (int i = 0; i < kN; ++i) {
      Status st = l.pub.publish(subject, "{\"n\":" + std::to_string(i) + "}", "id-" + std::to_string(i), [&l](core::Result<PubAck> r) {
        std::lock_guard lk(l.mu);
        l.results.push_back(std::move(r));
      });
      if (!st.is_ok()) return st;
    }
    return Status{};
  });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_TRUE(eventually([&] { return l.answered() == kN; })) << l.answered();
  std::set<uint64_t> seqs;
  {
    std::lock_guard lk(l.mu);
    for (auto& r : l.results) {
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      EXPECT_EQ(r->stream, stream);
      EXPECT_FALSE(r->duplicate);
      seqs.insert(r->sequence);
    }
    l.results.clear();
  }
  EXPECT_EQ(seqs.size(), static_cast<size_t>(kN));
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), static_cast<uint64_t>(kN));
  EXPECT_EQ(l.on_loop([&] { return l.pub.in_flight(); }), 0u);

  // The same id again: JetStream drops it and says so.
  ASSERT_TRUE(l.publish(subject, "{\"n\":7}", "id-7").is_ok());
  ASSERT_TRUE(eventually([&] { return l.answered() == 1; }));
  // A subject no stream takes: no responders (answered by the server, maybe before an ack
  // JetStream still owes: the answers need not come in publishing order).
  ASSERT_TRUE(l.publish("nobody.listens." + stream, "{}", "x").is_ok());
  ASSERT_TRUE(eventually([&] { return l.answered() == 2; }));
  {
    std::lock_guard lk(l.mu);
    ASSERT_TRUE(l.results[0].is_ok()) << l.results[0].status().to_string();
    EXPECT_TRUE(l.results[0]->duplicate);
    EXPECT_EQ(l.results[0]->sequence, 8u);  // the stored copy's sequence
    ASSERT_FALSE(l.results[1].is_ok());
    EXPECT_EQ(l.results[1].status().code(), Code::kUnavailable);
    EXPECT_NE(l.results[1].status().message().find("no JetStream stream"), std::string::npos) << l.results[1].status().to_string();
  }
  // Refused before sending: nothing was sent, no callback.
  Status bad = l.publish("has space", "{}", "x");
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  EXPECT_EQ(l.publish(subject, std::string(2 << 20, 'x'), "big").code(), Code::kInvalidArgument);

  // What was stored is what was sent, with the message id as Nats-Msg-Id.
  auto consumer = (*js)->pull_consumer(stream, subject, {"check", 1, 30s, 10'000});
  ASSERT_TRUE(consumer.is_ok()) << consumer.status().to_string();
  auto batch = (*consumer)->fetch(10, 5s);
  ASSERT_TRUE(batch.is_ok());
  ASSERT_FALSE(batch->empty());
  EXPECT_EQ((*batch)[0].data(), "{\"n\":0}");
  EXPECT_EQ((*batch)[0].header("Nats-Msg-Id"), "id-0");
}

TEST(NatsPublisher, KilledServerFailsPendingAndTheConnectionComesBack) {
  PrivateNats nats;
  std::string stream = "KILLED", subject = "killed.events";
  {
    auto js = JetStream::connect(nats.url());
    ASSERT_TRUE(js.is_ok());
    ASSERT_TRUE((*js)->ensure_stream(StreamSpec{stream, {subject}}).is_ok());
  }
  Loop l({.urls = nats.url(), .reconnect_wait = 100ms});
  ASSERT_TRUE(l.connect_and_run().is_ok());
  ASSERT_TRUE(l.publish(subject, "{}", "a").is_ok());
  ASSERT_TRUE(eventually([&] { return l.answered() == 1; }));

  nats.kill();
  ASSERT_TRUE(eventually([&] { return !l.pub.connected(); }));
  Status down = l.publish(subject, "{}", "b");
  EXPECT_EQ(down.code(), Code::kUnavailable) << down.to_string();

  nats.start();
  ASSERT_TRUE(eventually([&] { return l.pub.connected(); }, 15s));
  ASSERT_TRUE(l.publish(subject, "{}", "b").is_ok());
  ASSERT_TRUE(eventually([&] { return l.answered() == 2; }));
  std::lock_guard lk(l.mu);
  ASSERT_TRUE(l.results[1].is_ok()) << l.results[1].status().to_string();
  EXPECT_EQ(l.results[1]->sequence, 2u);  // the stream survived the restart
}

TEST(NatsPublisher, FrozenServerTimesOutAcksThenTheDeadConnectionIsReplaced) {
  PrivateNats nats;
  {
    auto js = JetStream::connect(nats.url());
    ASSERT_TRUE(js.is_ok());
    ASSERT_TRUE((*js)->ensure_stream(StreamSpec{"FROZEN", {"frozen.events"}}).is_ok());
  }
  Loop l({.urls = nats.url(), .connect_timeout = 500ms, .ack_timeout = 300ms, .reconnect_wait = 100ms, .ping_interval = 200ms});
  ASSERT_TRUE(l.connect_and_run().is_ok());
  nats.proc->freeze();
  ASSERT_TRUE(l.publish("frozen.events", "{}", "f1").is_ok());
  ASSERT_TRUE(eventually([&] { return l.answered() == 1; }, 5s));
  {
    std::lock_guard lk(l.mu);
    ASSERT_FALSE(l.results[0].is_ok());
    EXPECT_EQ(l.results[0].status().code(), Code::kDeadlineExceeded) << l.results[0].status().to_string();
  }
  // Unanswered PINGs: the connection is declared dead.
  EXPECT_TRUE(eventually([&] { return !l.pub.connected(); }, 5s));
  nats.proc->signal(SIGCONT);
  ASSERT_TRUE(eventually([&] { return l.pub.connected(); }, 15s));
  ASSERT_TRUE(l.publish("frozen.events", "{}", "f1").is_ok());  // the resend
  ASSERT_TRUE(eventually([&] { return l.answered() == 2; }));
  std::lock_guard lk(l.mu);
  EXPECT_TRUE(l.results[1].is_ok()) << l.results[1].status().to_string();
}

// The ack used to be scanned for substrings: in a stream named "seq" every ack read as
// unreadable and every publish failed.
TEST(NatsPublisher, AStreamNamedSeqIsAckedLikeAnyOther) {
  PrivateNats nats;
  {
    auto js = JetStream::connect(nats.url());
    ASSERT_TRUE(js.is_ok());
    ASSERT_TRUE((*js)->ensure_stream(StreamSpec{"seq", {"seqsubj"}}).is_ok());
  }
  Loop l({.urls = nats.url()});
  ASSERT_TRUE(l.connect_and_run().is_ok());
  ASSERT_TRUE(l.publish("seqsubj", "{}", "s1").is_ok());
  ASSERT_TRUE(eventually([&] { return l.answered() == 1; }, 5s));
  std::lock_guard lk(l.mu);
  ASSERT_TRUE(l.results[0].is_ok()) << l.results[0].status().to_string();
  EXPECT_EQ(l.results[0]->stream, "seq");
  EXPECT_EQ(l.results[0]->sequence, 1u);
}

// The write buffer used to grow without limit while the server took nothing (frozen).
TEST(NatsPublisher, WriteBufferIsBoundedWhileTheServerTakesNothing) {
  PrivateNats nats;
  {
    auto js = JetStream::connect(nats.url());
    ASSERT_TRUE(js.is_ok());
    ASSERT_TRUE((*js)->ensure_stream(StreamSpec{"BOUNDED", {"bounded.events"}}).is_ok());
  }
  Loop l({.urls = nats.url(), .ack_timeout = 60s, .ping_interval = 60s, .max_in_flight = 1'000'000,
          .max_buffered_bytes = 1u << 20});
  ASSERT_TRUE(l.connect_and_run().is_ok());
  nats.proc->freeze();
  std::string data(4096, 'x');
  Status refused;
  int accepted = 0;
  for (int i = 0; i < 20'000 && refused.is_ok(); ++i) {  // 80 MB: more than the kernel's socket buffers hold
    Status st = l.publish("bounded.events", data, "b" + std::to_string(i));
    if (st.is_ok()) ++accepted;
    else refused = st;
  }
  l.on_loop([&] {
    l.pub.close();  // fails what is pending here, on the loop's thread
    return 0;
  });
  nats.proc->signal(SIGCONT);
  EXPECT_EQ(refused.code(), Code::kUnavailable) << "accepted " << accepted << " without refusing";
  EXPECT_NE(refused.to_string().find("write buffer full"), std::string::npos) << refused.to_string();
}

TEST(NatsPublisher, BadUrlsAndUnreachableServersAreClearErrors) {
  EXPECT_EQ(Publisher::check_urls("tls://host:4222").code(), Code::kInvalidArgument);
  EXPECT_EQ(Publisher::check_urls("nats://host:notaport").code(), Code::kInvalidArgument);
  EXPECT_EQ(Publisher::check_urls("").code(), Code::kInvalidArgument);
  EXPECT_TRUE(Publisher::check_urls("nats://a:1, nats://user:pw@b:4223,c").is_ok());

  boost::asio::io_context ioc;
  Publisher bad(ioc, {.urls = "tls://127.0.0.1:4222"});
  Status s = bad.connect();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("only nats://"), std::string::npos) << s.to_string();

  Publisher refused(ioc, {.urls = "nats://127.0.0.1:" + std::to_string(core::http::testing::free_loopback_port()),
                          .connect_timeout = 1s});
  s = refused.connect();
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("cannot connect"), std::string::npos) << s.to_string();
  EXPECT_FALSE(refused.connected());
}

}  // namespace
}  // namespace gantry::testing
