#include "bus/nats/ack.h"

#include <string>

#include <boost/json.hpp>

namespace gantry::bus::nats {

// {"stream":"S","seq":12,"duplicate":true} or {"error":{"code":...,"err_code":...,"description":"..."}}.
// Parsed as JSON, member by member: a substring scan read a stream named "seq" (or a
// description holding "error") as the wrong field.
core::Result<PubAck> parse_ack(std::string_view body) {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object())
    return core::Status(core::Code::kIoError, "unreadable JetStream ack: " + std::string(body.substr(0, 200)), "nats.publish");
  const auto& o = v.as_object();
  if (auto* e = o.if_contains("error"); e && e->is_object()) {
    std::string what = "JetStream refused the message";
    if (auto* d = e->as_object().if_contains("description"); d && d->is_string()) what = std::string(d->as_string());
    if (auto* c = e->as_object().if_contains("err_code"); c && c->is_int64())
      what += " (JetStream error " + std::to_string(c->as_int64()) + ")";
    return core::Status(core::Code::kIoError, what, "nats.publish");
  }
  PubAck a;
  auto* seq = o.if_contains("seq");
  if (!seq || !(seq->is_uint64() || (seq->is_int64() && seq->as_int64() >= 0)))
    return core::Status(core::Code::kIoError, "unreadable JetStream ack: " + std::string(body.substr(0, 200)), "nats.publish");
  a.sequence = seq->is_uint64() ? seq->as_uint64() : static_cast<uint64_t>(seq->as_int64());
  if (auto* st = o.if_contains("stream"); st && st->is_string()) a.stream = std::string(st->as_string());
  if (auto* d = o.if_contains("duplicate"); d && d->is_bool()) a.duplicate = d->as_bool();
  return a;
}

}  // namespace gantry::bus::nats
