// The JetStream client against real NATS servers.
#include "bus/nats/jetstream.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <thread>

#include "core/http/test_socket.h"
#include "env.h"
#include "process.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
using bus::nats::ConsumerSpec;
using bus::nats::JetStream;
using bus::nats::PubAck;
using bus::nats::StreamSpec;
using core::Code;


TEST(JetStream, PublishAckDedupAndPullConsumer) {
  std::string url = server_url("GANTRY_NATS_URL");
  ASSERT_FALSE(url.empty());
  auto js = JetStream::connect(url);
  ASSERT_TRUE(js.is_ok()) << js.status().to_string();
  std::string stream = unique("EVENTS");
  std::string subject = stream + ".events";
  StreamSpec spec{stream, {subject}, /*work_queue=*/true, 7 * 24h};
  ASSERT_TRUE((*js)->ensure_stream(spec).is_ok());
  spec.max_age = 24h;
  ASSERT_TRUE((*js)->ensure_stream(spec).is_ok());  // exists: updated, not an error

  auto a1 = (*js)->publish(subject, R"({"n":1})", "event-1");
  ASSERT_TRUE(a1.is_ok()) << a1.status().to_string();
  EXPECT_EQ(a1->stream, stream);
  EXPECT_EQ(a1->sequence, 1u);
  EXPECT_FALSE(a1->duplicate);
  auto again = (*js)->publish(subject, R"({"n":1})", "event-1");
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->duplicate);  // dropped at the source

  for (int i = 2; i <= 501; ++i) {
    auto a = (*js)->publish(subject, "{\"n\":" + std::to_string(i) + "}", "event-" + std::to_string(i));
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    EXPECT_EQ(a->sequence, static_cast<uint64_t>(i));
  }

  auto consumer = (*js)->pull_consumer(stream, subject, ConsumerSpec{"aggregator", 3, 1s, 1000});
  ASSERT_TRUE(consumer.is_ok()) << consumer.status().to_string();
  size_t seen = 0;
  while (seen < 501) {
    auto batch = (*consumer)->fetch(100, 2s);
    ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
    ASSERT_FALSE(batch->empty()) << "after " << seen;
    for (auto& m : *batch) {
      if (seen == 0) {
        EXPECT_EQ(m.data(), R"({"n":1})");
        EXPECT_EQ(m.header("Nats-Msg-Id"), "event-1");
        EXPECT_EQ(m.delivered(), 1u);
      }
      ASSERT_TRUE(m.ack().is_ok());
      ++seen;
    }
  }
  auto none = (*consumer)->fetch(10, 300ms);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());  // acked messages are gone (work queue)
}

// A full batch puts the consumer in backlog mode (the next batch is requested whole and
// collected once it has arrived): every message still comes once, in order, none is left
// delivered and unacked, and once the backlog is gone a fetch returns what there is at once.
TEST(JetStream, UnderABacklogFetchReturnsFullBatchesEachMessageOnceThenWhatThereIsAtOnce) {
  std::string url = server_url("GANTRY_NATS_URL");
  ASSERT_FALSE(url.empty());
  auto js = JetStream::connect(url);
  ASSERT_TRUE(js.is_ok()) << js.status().to_string();
  std::string stream = unique("BACKLOG");
  std::string subject = stream + ".events";
  ASSERT_TRUE((*js)->ensure_stream(StreamSpec{stream, {subject}, /*work_queue=*/true, 24h}).is_ok());
  constexpr int kBacklog = 2'500, kBatch = 500;
  for (int i = 0; i < kBacklog; ++i) ASSERT_TRUE((*js)->publish(subject, std::to_string(i)).is_ok());
  auto consumer = (*js)->pull_consumer(stream, subject, ConsumerSpec{"backlog", 3, 30s, 10'000});
  ASSERT_TRUE(consumer.is_ok()) << consumer.status().to_string();

  int next = 0;
  for (int b = 0; b < kBacklog / kBatch; ++b) {
    auto batch = (*consumer)->fetch(kBatch, 5s);
    ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
    ASSERT_EQ(batch->size(), static_cast<size_t>(kBatch)) << "batch " << b;
    for (auto& m : *batch) {
      EXPECT_EQ(m.data(), std::to_string(next++));
      EXPECT_EQ(m.delivered(), 1u);
      ASSERT_TRUE(m.ack_nowait().is_ok());
    }
  }
  auto none = (*consumer)->fetch(kBatch, 300ms);  // still in backlog mode: waits, gets nothing
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_TRUE(none->empty());

  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*js)->publish(subject, "late " + std::to_string(i)).is_ok());
  auto t0 = std::chrono::steady_clock::now();
  auto few = (*consumer)->fetch(kBatch, 10s);
  ASSERT_TRUE(few.is_ok()) << few.status().to_string();
  ASSERT_EQ(few->size(), 3u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);  // at once, not at the 10 s timeout
  for (auto& m : *few) ASSERT_TRUE(m.ack().is_ok());

  // Nothing delivered and left unacked, nothing left to deliver.
  bus::nats::ConsumerState st{};
  for (int i = 0; i < 50; ++i) {
    auto q = (*js)->consumer_state(stream, "backlog");
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    st = *q;
    if (st.ack_pending == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(st.ack_pending, 0u);
  EXPECT_EQ(st.pending, 0u);
}

TEST(JetStream, NakRedeliversTermDoesNot) {
  std::string url = server_url("GANTRY_NATS_URL");
  ASSERT_FALSE(url.empty());
  auto js = JetStream::connect(url);
  ASSERT_TRUE(js.is_ok());
  std::string stream = unique("NAK");
  std::string subject = stream + ".x";
  ASSERT_TRUE((*js)->ensure_stream({stream, {subject}, true}).is_ok());
  ASSERT_TRUE((*js)->publish(subject, "a").is_ok());
  ASSERT_TRUE((*js)->publish(subject, "b").is_ok());
  auto c = (*js)->pull_consumer(stream, subject, ConsumerSpec{"c", 5, 30s, 100});
  ASSERT_TRUE(c.is_ok());
  auto first = (*c)->fetch(2, 2s);
  ASSERT_TRUE(first.is_ok());
  ASSERT_EQ(first->size(), 2u);
  ASSERT_TRUE((*first)[0].nak().is_ok());   // "a": try again
  ASSERT_TRUE((*first)[1].term().is_ok());  // "b": poison, never again
  auto second = (*c)->fetch(2, 2s);
  ASSERT_TRUE(second.is_ok());
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0].data(), "a");
  EXPECT_EQ((*second)[0].delivered(), 2u);
  ASSERT_TRUE((*second)[0].ack().is_ok());
}

TEST(JetStream, ADurableConsumerFollowsItsNewSettings) {
  std::string url = server_url("GANTRY_NATS_URL");
  ASSERT_FALSE(url.empty());
  auto js = JetStream::connect(url);
  ASSERT_TRUE(js.is_ok());
  std::string stream = unique("CFG");
  std::string subject = stream + ".x";
  ASSERT_TRUE((*js)->ensure_stream({stream, {subject}, true}).is_ok());
  ASSERT_TRUE((*js)->publish(subject, "m").is_ok());
  {
    auto c = (*js)->pull_consumer(stream, subject, ConsumerSpec{"d", 5, 30s, 100});
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  }
  // Restarted with another max_ack_pending (an operator's change): it still starts, and the
  // unconsumed message is still there.
  auto c = (*js)->pull_consumer(stream, subject, ConsumerSpec{"d", 3, 10s, 2000});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto got = (*c)->fetch(1, 2s);
  ASSERT_TRUE(got.is_ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].data(), "m");
  EXPECT_TRUE((*got)[0].ack().is_ok());
}

// Nothing listening: the error names the servers tried, never the credentials in the URL.
TEST(JetStream, ConnectFailureNamesTheServersWithoutCredentials) {
  std::string port = std::to_string(core::http::testing::free_loopback_port());
  auto r = JetStream::connect("nats://alice:s3cret@127.0.0.1:" + port + ",nats://t0ken@127.0.0.1:" + port,
                              {.timeout = 1s});
  ASSERT_FALSE(r.is_ok());
  std::string text = r.status().to_string();
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << text;
  EXPECT_NE(text.find("(nats://127.0.0.1:" + port + ",nats://127.0.0.1:" + port + ")"), std::string::npos) << text;
  EXPECT_EQ(text.find("s3cret"), std::string::npos) << text;
  EXPECT_EQ(text.find("t0ken"), std::string::npos) << text;
}

TEST(JetStream, ServerDownFailsLoudlyAndRecoversWithDataIntact) {
  namespace fs = std::filesystem;
  std::string dir = ::testing::TempDir() + "/" + unique("gantry_nats_");
  fs::create_directories(dir);
  int port = core::http::testing::free_loopback_port();
  std::vector<std::string> argv{"nats-server", "-js", "-a", "127.0.0.1", "-p", std::to_string(port), "--store_dir", dir};
  auto server = std::make_unique<Child>(argv);
  std::string url = "nats://127.0.0.1:" + std::to_string(port);
  std::unique_ptr<JetStream> js;
  ASSERT_TRUE(eventually([&] {
    auto j = JetStream::connect(url);
    if (j.is_ok()) js = std::move(*j);
    return js != nullptr;
  }));
  ASSERT_TRUE(js->ensure_stream({"DUR", {"dur.>"}}).is_ok());
  ASSERT_TRUE(js->publish("dur.a", "kept").is_ok());

  server->signal(SIGKILL);
  server->wait(5s);
  ASSERT_TRUE(eventually([&] { return !js->connected(); }));
  auto down = js->publish("dur.a", "lost?");
  EXPECT_FALSE(down.is_ok());  // never an ack for something not stored
  EXPECT_TRUE(down.status().code() == Code::kUnavailable || down.status().code() == Code::kDeadlineExceeded)
      << down.status().to_string();

  server = std::make_unique<Child>(argv);  // same store directory
  ASSERT_TRUE(eventually([&] { return js->connected(); }, 15s)) << "did not reconnect";
  // cnats reports the reconnection from its own thread, possibly just after the status flips.
  EXPECT_TRUE(eventually([&] { return js->reconnects() >= 1u; }, 5s));
  core::Result<PubAck> after = core::Status(Code::kUnavailable, "not yet");
  ASSERT_TRUE(eventually([&] { after = js->publish("dur.a", "after"); return after.is_ok(); }));
  EXPECT_EQ(after->sequence, 2u);  // the message acked before the crash survived it
  js.reset();
  server.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gantry::testing
