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

// `s` on one line for a table or a progress line: each line break (\n, \r\n) becomes " | ",
// trailing ones are dropped, and any other control byte is shown as '?'.
inline std::string one_line(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    if (s[i] == '\n') out += " | ";
    else out += is_control(s[i]) ? '?' : s[i];
  }
  return out;
}

}  // namespace gantry::core
