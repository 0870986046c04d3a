// The RabbitMQ channel against the real broker, with the orchestrator's kind of topology:
// a topic exchange and a queue of length 1 that rejects publishes when full.
#include "bus/amqp/amqp.h"

#include <gtest/gtest.h>

#include <random>

#include "env.h"

namespace gantry::testing {
namespace {

using namespace std::chrono_literals;
using bus::amqp::Channel;
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
  ASSERT_TRUE(pub->declare_queue(queue, true, QueueArgs{1, "reject-publish"}).is_ok());
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
  ASSERT_TRUE(c->declare_queue(queue, true, QueueArgs{1, "reject-publish"}).is_ok());
  Status s = c->declare_queue(queue, true, QueueArgs{5, "drop-head"});
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.to_string();
  EXPECT_NE(s.to_string().find("PRECONDITION_FAILED"), std::string::npos) << s.to_string();
  EXPECT_FALSE(c->alive());
  EXPECT_EQ(c->publish("", queue, "x").code(), Code::kUnavailable);
}

TEST(Amqp, UnreachableBrokerIsUnavailable) {
  auto c = Channel::connect("amqp://guest:guest@127.0.0.1:1", 1s);
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), Code::kUnavailable);
  EXPECT_FALSE(Channel::connect("http://nope").is_ok());
}

}  // namespace
}  // namespace gantry::testing
