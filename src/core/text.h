// Control bytes in text from outside: they act on a terminal (escape sequences) or break a
// line-based format (logs, Redis keys, NATS subjects) instead of showing.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace gantry::core {

// C0 controls and DEL.
inline bool is_control(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7f;
}

inline bool has_control(std::string_view s) noexcept { return std::any_of(s.begin(), s.end(), is_control); }

// `s` with each control byte shown as '?', for a terminal.
inline std::string printable(std::string_view s) {
  std::string out(s);
  std::replace_if(out.begin(), out.end(), is_control, '?');
  return out;
}

}  // namespace gantry::core
