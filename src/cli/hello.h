// `gantry hello`: the smallest HTTP role. It answers GET / with a fixed text and serves the
// admin endpoints every role has. It exists to smoke-test a deployment (is the binary, the
// port, the proxy in front working?) and as the subject of bench/run http_hello, which
// measures the core HTTP server against nginx; the fleet demo uses it as a worker's target page.
#pragma once

#include "core/runtime.h"

namespace gantry::cli {

core::runtime::RoleInfo hello_role();

}  // namespace gantry::cli
