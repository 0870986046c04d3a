// What Fleet takes from outside: the controller's request bodies (register, config,
// heartbeat, interval), the controller's answers the agent reads (register, configuration),
// the worker's (its configuration from the agent), the push message agents receive on Redis, a configuration's target URL
// (normalized as stored) and its proxy string. Invariants: a normalized URL is accepted again
// unchanged; an accepted proxy has a libcurl form; a push message that parses writes back to
// one that parses the same; an accepted config body's URL passes the URL check again.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fleet/protocol.h"

namespace f = gantry::fleet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)f::parse_register(text);
  (void)f::parse_heartbeat(text);
  if (auto w = f::parse_worker_config(text); w.is_ok() && (w->etag.empty() || f::check_proxy(w->proxy))) std::abort();
  if (auto iv = f::parse_interval(text); iv.is_ok() && *iv && (**iv < 1 || **iv > f::kMaxInterval)) std::abort();
  if (auto c = f::parse_config_body(text); c.is_ok() && f::check_target_url(c->url)) std::abort();
  if (auto a = f::parse_register_answer(text); a.is_ok() && (a->api_token.empty() || (a->poll_interval && *a->poll_interval < 1)))
    std::abort();
  // What the agent forwards from an accepted answer is a configuration its worker reads.
  if (auto c = f::parse_config_answer(text); c.is_ok()) {
    auto back = f::parse_worker_config(c->worker_body);
    if (back.is_ok() && back->etag != c->etag) std::abort();
  }
  if (auto m = f::parse_push(text); m.is_ok()) {
    auto back = f::parse_push(f::to_json(*m));
    if (!back.is_ok() || f::to_json(*back) != f::to_json(*m)) std::abort();
  }
  std::string normalized;
  if (!f::check_target_url(text, &normalized)) {
    std::string twice;
    if (f::check_target_url(normalized, &twice) || twice != normalized) std::abort();
  }
  if (!f::check_proxy(text) && !text.empty() && f::proxy_url(text).empty()) std::abort();
  return 0;
}
