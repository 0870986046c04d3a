// What `gantry trades top` shows for one answer of a trades role's GET /tokens.
#pragma once

#include <string>
#include <string_view>

namespace gantry::trades {

struct TopView {
  std::string stamp;  // when the answer came (RFC 3339)
  std::string url;    // the role asked
  std::string window;
  int limit = 10;
};

// A header line, column titles, then a line per token that has the window (its volume, trades,
// close price and change). The answer may come from any server the operator points --url at,
// so nothing in it reaches the terminal as a control character: a token's are shown as '?'. An
// answer that is not the expected JSON reads "unreadable answer".
std::string top_screen(std::string_view body, const TopView& v);

}  // namespace gantry::trades
