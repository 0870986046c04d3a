// The JetStream publish acknowledgement a server (or anything on the NATS port) sends back.
#include <cstdint>
#include <string_view>

#include "bus/nats/ack.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)gantry::bus::nats::parse_ack(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
