// UUIDs in their text form (8-4-4-4-12 hex digits), as clients send them and PostgreSQL's
// uuid type prints them.
#pragma once

#include <string_view>

namespace gantry::core {

// 36 characters, hyphens at 8, 13, 18 and 23, hex digits (either case) elsewhere.
inline bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace gantry::core
