// RabbitMQ over rabbitmq-c: one connection with one channel, for publishing with publisher
// confirms or for consuming, not both (a confirm wait would otherwise swallow deliveries).
//
// Confirms are tracked per delivery tag: publish_batch() sends every message, then credits
// each basic.ack / basic.nack (with `multiple`, every outstanding tag up to it) to exactly the
// messages it names. Per message: kOk when the broker took it; kResourceExhausted when it
// refused it (a full queue with x-overflow=reject-publish: "already pending", not lost
// silently); kUnavailable when the connection failed before its confirm; kDeadlineExceeded
// when no confirm came within the timeout. After a failure or a timeout the connection is
// closed at once, so a late confirm can never be credited to a later message: make a new
// Channel (Pool does). A declaration the broker rejects (an existing queue with other
// arguments) is kFailedPrecondition with the broker's reason.
//
// Heartbeats (negotiated, `heartbeat` seconds) are serviced by every call that waits on the
// socket; a channel left idle must have service() called at least every heartbeat/2 (Pool
// does this for the channels it holds), or the broker closes it.
//
// Not thread-safe: one owner per Channel.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
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
  std::string dead_letter_exchange;   // x-dead-letter-exchange
};

struct Delivery {
  uint64_t tag = 0;
  std::string exchange, routing_key, consumer_tag, content_type;
  std::string body;
  bool redelivered = false;
};

struct Message {
  std::string exchange, routing_key;
  std::string body;
  std::string content_type = "application/json";
};

struct ChannelOptions {
  std::chrono::milliseconds timeout{5000};  // connect, each RPC, and the wait for confirms
  int heartbeat_s = 30;                     // 0 = none
  std::string connection_name = "gantry";   // shown by rabbitmqctl list_connections client_properties
};

class Channel {
 public:
  // url: amqp://user:pass@host:port[/vhost] (no path = vhost "/").
  static Result<std::unique_ptr<Channel>> connect(const std::string& url, ChannelOptions o);
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
  // Publishes every message, then waits for their confirms: one outcome per message, in order.
  std::vector<Status> publish_batch(std::span<const Message> messages);

  // Starts consuming with a prefetch limit; then next() yields deliveries.
  Status consume(const std::string& queue, uint16_t prefetch = 1, const std::string& consumer_tag = "");
  // The next delivery, or nullopt when none arrived within the timeout.
  Result<std::optional<Delivery>> next(std::chrono::milliseconds timeout);
  Status ack(uint64_t tag);
  Status nack(uint64_t tag, bool requeue);

  // Sends a heartbeat when one is due and reads what the broker sent meanwhile, without
  // waiting. False (and the channel is closed) when the connection is gone.
  bool service();

  bool alive() const { return alive_; }
  std::chrono::steady_clock::time_point opened_at() const { return opened_at_; }

 private:
  Channel() = default;
  Status check_rpc(std::string_view what);
  void close_now();  // drops the connection without a handshake
  struct State;
  std::unique_ptr<State> s_;
  ChannelOptions o_;
  bool confirms_ = false;
  uint64_t next_publish_tag_ = 1;
  bool alive_ = false;
  std::chrono::steady_clock::time_point opened_at_{};
};

}  // namespace gantry::bus::amqp
