// What a scan bridge makes of a delivery's routing key: cptm8.<svc>.<method>.<path> ->
// <METHOD> <url>/<path>, the path's words joined by '/' (cptm8.num8.post.scan.full -> POST
// <url>/scan/full). The method is get, post, put, patch or delete (any case); each path word is
// letters, digits, '-', '_' or '~', so nothing in a key can leave the scanner's base URL.
#pragma once

#include <string>
#include <string_view>

#include "core/http/message.h"
#include "core/status.h"

namespace gantry::orchestrator {

struct Route {
  core::http::Method method;
  std::string path;  // "scan/full", no leading '/'
};

core::Result<Route> parse_routing_key(std::string_view key, std::string_view service);

}  // namespace gantry::orchestrator
