// NATS JetStream over cnats: streams, publishing with acknowledgements, pull consumers.
//
// A publish counts only once JetStream has acknowledged it (stored it): publish() waits for
// the ack. It is for occasional publishes (a dead letter); a server answering requests
// publishes through Publisher (bus/nats/publisher.h), the one asynchronous path. A message id (Nats-Msg-Id) makes JetStream drop a resent message within the
// stream's duplicate window: the ack then says duplicate.
//
// The connection reconnects by itself, forever; while it is down, publishes fail fast with
// kUnavailable and are not queued for later (no reconnect buffer), so a publish reported as
// failed was not sent. A publish that times out waiting for its ack (kDeadlineExceeded) may
// still have been stored: resend it with the same message id and JetStream drops the copy.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

// cnats types (C library): natsConnection, jsCtx, natsMsg, natsSubscription.
typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;
typedef struct __natsMsg natsMsg;
typedef struct __natsSubscription natsSubscription;
struct jsPubAck;
struct jsPubAckErr;

namespace gantry::bus::nats {

using core::Result;
using core::Status;

struct PubAck {
  std::string stream;
  uint64_t sequence = 0;
  bool duplicate = false;
};

struct StreamSpec {
  std::string name;
  std::vector<std::string> subjects;
  bool work_queue = false;  // WorkQueue retention (else Limits)
  std::chrono::milliseconds max_age{0};  // 0 = unlimited
  std::chrono::milliseconds duplicate_window{120'000};
  bool memory = false;  // file storage unless set
};

struct ConsumerSpec {
  std::string durable;
  int max_deliver = 5;
  std::chrono::milliseconds ack_wait{30'000};
  int max_ack_pending = 1000;
  // An ack covers every earlier message too (AckAll): one ack per fetched batch.
  bool ack_all = false;
  // Non-zero: the consumer is made anew to start at this stream sequence (an existing one of
  // this name is deleted first), for a consumer whose owner rebuilt its state from the stream
  // up to start_sequence - 1 and must not be handed those messages again.
  uint64_t start_sequence = 0;
};

// Where a durable consumer stands.
struct ConsumerState {
  uint64_t pending = 0;      // in the stream, not yet delivered
  uint64_t ack_pending = 0;  // delivered, not yet acked
  uint64_t redelivered = 0;  // delivered more than once and not yet acked
};

struct Options {
  std::string name = "gantry";
  std::chrono::milliseconds reconnect_wait{250};
  std::chrono::milliseconds timeout{5000};  // connect, API requests, synchronous publish
};

// One received message; ack, nak or term it (or let ack_wait pass and it is redelivered).
class Message {
 public:
  explicit Message(natsMsg* m) : m_(m) {}
  Message(Message&& o) noexcept : m_(o.m_) { o.m_ = nullptr; }
  Message& operator=(Message&&) = delete;
  ~Message();
  std::string_view subject() const;
  std::string_view data() const;
  std::string_view header(const char* name) const;  // "" when absent
  uint64_t delivered() const;                       // 1 on first delivery
  uint64_t stream_sequence() const;
  Status ack();                                     // waits for the server's confirmation
  // Sends the ack without waiting. A lost ack means a redelivery, so only for consumers that
  // deduplicate (the aggregator, by event_id); then one round trip per batch, not per message.
  Status ack_nowait();
  Status nak(std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  Status term();                                    // never redeliver

 private:
  natsMsg* m_;
};

class PullConsumer {
 public:
  ~PullConsumer();
  // Up to `batch` messages within `timeout`; an empty vector when none came. What is available
  // is returned at once, except under a backlog (the previous fetch came back full, and
  // `timeout` is at least 50 ms): then the batch is requested whole and collected once it has
  // arrived, or at `timeout` with what did.
  //
  // Why: a fetch waiting in cnats is woken by its reader thread for every message that
  // arrives, and on this project's 2-core VMs those thread switches (~2 per message) cost the
  // aggregator a fifth of its CPU during a drain. Collecting an arrived batch takes a few
  // wake-ups instead of thousands.
  Result<std::vector<Message>> fetch(int batch, std::chrono::milliseconds timeout);

 private:
  friend class JetStream;
  explicit PullConsumer(natsSubscription* s) : sub_(s) {}
  int pending() const;
  // Asks the server for `batch` messages to this subscription's inbox, as cnats' fetch does,
  // without waiting for them.
  Status request(int batch, std::chrono::milliseconds expires);
  Result<std::vector<Message>> take(int batch, std::chrono::milliseconds timeout);

  natsSubscription* sub_;
  natsConnection* nc_ = nullptr;
  std::string next_subject_;  // $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>; empty: no backlog mode
  bool backlog_ = false;      // the previous fetch came back full
};

class JetStream {
 public:
  static Result<std::unique_ptr<JetStream>> connect(const std::string& url, Options o = {});
  ~JetStream();
  JetStream(const JetStream&) = delete;
  JetStream& operator=(const JetStream&) = delete;

  // Creates the stream, or updates it to this spec when it exists.
  Status ensure_stream(const StreamSpec& s);
  Result<PubAck> publish(std::string_view subject, std::string_view data, std::string_view msg_id = {});
  Result<std::unique_ptr<PullConsumer>> pull_consumer(const std::string& stream, const std::string& subject,
                                                      const ConsumerSpec& c);
  Result<ConsumerState> consumer_state(const std::string& stream, const std::string& durable);
  // An ephemeral consumer (no acks) of the messages stored since `since`, for rebuilding state
  // from the stream; it goes when its subscription does.
  Result<std::unique_ptr<PullConsumer>> replay_consumer(const std::string& stream, const std::string& subject,
                                                        std::chrono::system_clock::time_point since);
  // The stream's last message: its sequence (0 when the stream is empty) and when the server
  // stored it.
  struct Last {
    uint64_t sequence = 0;
    std::chrono::system_clock::time_point stored;
  };
  Result<Last> last_message(const std::string& stream);
  // A core NATS publish (no JetStream, no ack; subscribers that are not listening miss it).
  // Fails at once while disconnected.
  Status publish_core(std::string_view subject, std::string_view data);
  // Deletes every message of the stream (benchmarks and tests start from an empty stream).
  Status purge_stream(const std::string& stream);

  bool connected() const;
  uint64_t reconnects() const { return reconnects_.load(); }

 private:
  JetStream() = default;
  static void on_reconnected(natsConnection*, void* closure);

  Options o_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<uint64_t> reconnects_{0};
};

}  // namespace gantry::bus::nats
