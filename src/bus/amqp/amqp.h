// RabbitMQ over rabbitmq-c: one connection with one channel, for publishing with publisher
// confirms or for consuming, not both (a confirm wait would otherwise swallow deliveries).
//
// publish() returns once the broker has confirmed the message: kOk when it took it;
// kResourceExhausted when it refused it (a queue with x-overflow=reject-publish that is full
// answers this way: "already pending", not lost silently); kUnavailable when the connection
// failed (the Channel is then dead: make a new one). A declaration the broker rejects (an
// existing queue with other arguments) is kFailedPrecondition with the broker's reason.
//
// Not thread-safe: one owner per Channel.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace gantry::bus::amqp {

using core::Result;
using core::Status;

struct QueueArgs {
  std::optional<int64_t> max_length;  // x-max-length
  std::string overflow;               // x-overflow: "" | drop-head | reject-publish | reject-publish-dlx
};

struct Delivery {
  uint64_t tag = 0;
  std::string exchange, routing_key, consumer_tag, content_type;
  std::string body;
  bool redelivered = false;
};

class Channel {
 public:
  // url: amqp://user:pass@host:port[/vhost] (no path = vhost "/").
  static Result<std::unique_ptr<Channel>> connect(const std::string& url,
                                                  std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  Status declare_exchange(const std::string& name, const std::string& type = "topic", bool durable = true);
  Status declare_queue(const std::string& name, bool durable = true, const QueueArgs& args = {});
  Status bind(const std::string& queue, const std::string& exchange, const std::string& routing_key);
  Status delete_queue(const std::string& name);
  Status delete_exchange(const std::string& name);

  // Publishes persistently and waits for the broker's confirm (the first call turns confirms on).
  Status publish(const std::string& exchange, const std::string& routing_key, std::string_view body,
                 const std::string& content_type = "application/json");

  // Starts consuming with a prefetch limit; then next() yields deliveries.
  Status consume(const std::string& queue, uint16_t prefetch = 1, const std::string& consumer_tag = "");
  // The next delivery, or nullopt when none arrived within the timeout.
  Result<std::optional<Delivery>> next(std::chrono::milliseconds timeout);
  Status ack(uint64_t tag);
  Status nack(uint64_t tag, bool requeue);

  bool alive() const { return alive_; }

 private:
  Channel() = default;
  Status check_rpc(std::string_view what);
  struct State;
  std::unique_ptr<State> s_;
  std::chrono::milliseconds timeout_{5000};
  bool confirms_ = false;
  uint64_t next_publish_tag_ = 1;
  bool alive_ = false;
};

}  // namespace gantry::bus::amqp
