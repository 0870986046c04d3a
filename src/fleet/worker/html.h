// What a worker returns for a fetched page: HTML reduced to the text people read.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace gantry::fleet::worker {

// True when the response is HTML: its content type says so, or it has none and the body
// starts (after whitespace) with '<'.
bool is_html(std::string_view content_type, std::string_view body);

// The text of <body>, whitespace runs collapsed to one space, trimmed. Script and style
// contents are not text and are left out. A document without <body> gives its whole text.
std::string body_text(std::string_view html);

// The value attribute of the first <input name="…">, if any.
std::optional<std::string> input_value(std::string_view html, std::string_view name);

// Leading and trailing whitespace removed.
std::string trim(std::string_view s);

}  // namespace gantry::fleet::worker
