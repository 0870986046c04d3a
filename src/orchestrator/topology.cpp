#include "orchestrator/topology.h"

#include "core/json.h"

namespace gantry::orchestrator {

core::Status declare_topology(bus::amqp::Channel& ch, const std::vector<std::string>& services) {
  for (const char* ex : {"cptm8", "scheduler", "notification"})
    GANTRY_RETURN_IF_ERROR(ch.declare_exchange(ex, "topic", true).within(std::string("declaring exchange ") + ex));
  bus::amqp::QueueArgs args;
  args.max_length = 1;
  args.overflow = "reject-publish";
  for (auto& svc : services) {
    std::string q = queue_of(svc);
    GANTRY_RETURN_IF_ERROR(ch.declare_queue(q, true, args).within("declaring queue " + q));
    GANTRY_RETURN_IF_ERROR(ch.bind(q, kExchange, "cptm8." + svc + ".#").within("binding queue " + q));
  }
  return {};
}

core::Status declare_dlq(bus::amqp::Channel& ch, std::string_view svc) {
  std::string q = dlq_of(svc);
  return ch.declare_queue(q, true).within("declaring queue " + q);
}

std::string kick_body(std::string_view svc, core::WallTime now) {
  std::string b;
  core::json::Writer(b).object().field("channel", scan_key(svc)).field("timestamp", core::rfc3339_nano(now)).field("source", kSource).end();
  return b;
}

}  // namespace gantry::orchestrator
