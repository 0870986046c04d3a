// A JetStream publisher that lives on one asio io_context, for servers whose request handlers
// run on that io_context's thread (core/http gives each worker thread its own, see
// Request::io_context()).
//
// Why not JetStream::publish_async (cnats): a cnats publish crosses three threads before its
// ack callback runs (the caller, cnats' flusher, the ack subscription's delivery thread) and
// the HTTP answer then crosses back; at ingest's rates those wake-ups cost more than the work.
// Here the publish, the socket write, the ack and the callback all happen on the caller's
// thread, and every publish made in one pass of the event loop goes out in one write.
//
// Promises, the same as JetStream::publish_async: `done` runs exactly once, on the
// io_context's thread and never inside publish(), with the PubAck once JetStream stored the
// message (`duplicate` when its Nats-Msg-Id was already in the stream's window), or with a
// failure: kUnavailable when the connection is down or was lost before the ack (the message
// may have been stored; resend with the same id and JetStream drops the copy),
// kDeadlineExceeded when no ack came within ack_timeout (the same), or JetStream's own error.
// When publish() itself fails, nothing was sent and `done` is never called.
//
// The connection reconnects by itself, forever, by the shared reconnect policy starting at
// reconnect_wait and doubling per failed attempt to 5 s (a handshake that fails in any way,
// an exception included, is one failed attempt) and through the "nats" circuit breaker preset,
// cycling through the URLs; while it is down publishes fail at once (nothing is buffered for later). A connection
// that answers no PING for two ping intervals is dropped as dead. Plain TCP only: a server
// that requires TLS is refused at connect with an error that says so.
//
// Threads: publish() and close() on the io_context's thread only; connected() and in_flight()
// from anywhere. Destroy the publisher on its io_context's thread or once that io_context has
// stopped; what is still pending then fails (kUnavailable) on the destroying thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bus/nats/jetstream.h"
#include "core/status.h"

namespace boost::asio {
class io_context;
}

namespace gantry::bus::nats {

class Publisher {
 public:
  struct Options {
    std::string urls = "nats://127.0.0.1:4222";  // nats://[user[:password]@]host[:port], comma-separated
    std::string name = "gantry";                 // the connection's name in the server's monitoring
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds ack_timeout{5000};
    std::chrono::milliseconds reconnect_wait{250};
    std::chrono::milliseconds ping_interval{2000};
    size_t max_in_flight = 100'000;  // publishes awaiting acks; beyond it publish() fails
    // Bytes written by publish() and not yet taken by the socket (a slow or frozen server);
    // beyond it publish() fails with kUnavailable instead of growing memory.
    size_t max_buffered_bytes = 64u << 20;
  };
  using Done = std::function<void(core::Result<PubAck>)>;

  Publisher(boost::asio::io_context& ioc, Options o);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Connects (trying each URL once) and completes the handshake before returning, running
  // the io_context on the calling thread: for use before the io_context's own thread runs it.
  // After a failure the publisher keeps trying in the background once the io_context runs.
  Status connect();
  Status publish(std::string_view subject, std::string_view data, std::string_view msg_id, Done done);
  // Fails whatever is pending and stops reconnecting.
  void close();

  bool connected() const;
  size_t in_flight() const;

  // The URL list parsed, for errors at configuration time.
  static Status check_urls(std::string_view urls);

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace gantry::bus::nats
