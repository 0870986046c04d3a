#include "telemetry/aggregator/copy_line.h"

#include <charconv>
#include <optional>
#include <string_view>

namespace gantry::telemetry::aggregator {

namespace {

// COPY text format: a field, with the characters COPY treats specially escaped.
void copy_text(std::string& out, std::string_view v) {
  if (v.find_first_of("\\\t\n\r") == std::string_view::npos) {  // the usual case: nothing to escape
    out += v;
    return;
  }
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

void copy_num(std::string& out, std::optional<double> v) {
  if (!v) {
    out += "\\N";
    return;
  }
  char buf[32];  // shortest text that reads back as the same double
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *v);
  out.append(buf, end);
}

}  // namespace

void append_copy_line(std::string& out, const Event& e, int64_t window) {
  copy_text(out, e.event_id);
  out += '\t';
  copy_text(out, e.client_id);
  out += '\t';
  copy_text(out, e.target);
  out += '\t';
  out += std::to_string(e.ts_ms);
  out += '\t';
  out += std::to_string(window);
  out += e.error_stage ? "\tf\t" : "\tt\t";
  if (e.error_stage) copy_text(out, *e.error_stage);
  else out += "\\N";
  for (std::optional<double> v : {e.timings.dns_ms, e.timings.tcp_ms, e.timings.tls_ms, e.timings.http_ttfb_ms,
                                  e.throughput_kbps}) {
    out += '\t';
    copy_num(out, v);
  }
  out += '\n';
}

}  // namespace gantry::telemetry::aggregator
