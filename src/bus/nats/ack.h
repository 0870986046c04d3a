// A JetStream publish acknowledgement, as the server sends it to the publish's reply inbox.
// Outside input (fuzzed: fuzz/jetstream_ack.cpp).
#pragma once

#include <string_view>

#include "bus/nats/jetstream.h"
#include "core/status.h"

namespace gantry::bus::nats {

// {"stream":"S","seq":12,"duplicate":true} -> the PubAck; {"error":{…}} -> kIoError with the
// server's description; anything else -> kIoError "unreadable JetStream ack".
core::Result<PubAck> parse_ack(std::string_view body);

}  // namespace gantry::bus::nats
