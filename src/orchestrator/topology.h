// The broker topology the scanners declare, argument for argument (spec orchestrator.md): a
// declaration with any other argument would be refused by the broker (PRECONDITION_FAILED) for
// whichever side comes second.
//
//   exchanges cptm8, scheduler, notification: topic, durable, not auto-delete, not internal
//   queue q<svc> per service: durable, x-max-length 1, x-overflow reject-publish,
//                             bound to cptm8 with cptm8.<svc>.#
//
// Beyond the scanners' topology, for the scan bridge: a durable queue q<svc>.dlq without
// arguments, which the bridge publishes a message to (through the default exchange) once its
// retry budget is spent. The main queues' arguments stay exactly the scanners'.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "bus/amqp/amqp.h"
#include "core/clock.h"

namespace gantry::orchestrator {

inline constexpr const char* kExchange = "cptm8";
inline constexpr const char* kSource = "orchestratorm8";

inline std::string queue_of(std::string_view svc) { return "q" + std::string(svc); }
inline std::string dlq_of(std::string_view svc) { return "q" + std::string(svc) + ".dlq"; }
// cptm8.<svc>.get.scan: what the kick and every next hop are published with.
inline std::string scan_key(std::string_view svc) { return "cptm8." + std::string(svc) + ".get.scan"; }

// Declares the three exchanges, then each service's queue and binding.
core::Status declare_topology(bus::amqp::Channel& ch, const std::vector<std::string>& services);
// The dead-letter queue of one service (the bridge's).
core::Status declare_dlq(bus::amqp::Channel& ch, std::string_view svc);

// {"channel":"cptm8.<svc>.get.scan","timestamp":"<RFC3339Nano>","source":"orchestratorm8"}
std::string kick_body(std::string_view svc, core::WallTime now);

}  // namespace gantry::orchestrator
