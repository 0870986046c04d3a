#include "telemetry/aggregator/copy_line.h"

#include <gtest/gtest.h>

namespace gantry::telemetry::aggregator {
namespace {

TEST(CopyLine, AMeasuredEventIsOneTabSeparatedRowInKCopyEventsOrder) {
  Event e;
  e.event_id = "8c0d5f3e-0000-4000-8000-000000000001";
  e.client_id = "probe-1";
  e.target = "https://example.com/";
  e.ts_ms = 1'700'000'012'345;
  e.timings = {.dns_ms = 0.1, .tcp_ms = 2.5, .tls_ms = std::nullopt, .http_ttfb_ms = 20};
  e.throughput_kbps = 1000.5;
  std::string out;
  append_copy_line(out, e, 1'700'000'000'000);
  EXPECT_EQ(out,
            "8c0d5f3e-0000-4000-8000-000000000001\tprobe-1\thttps://example.com/\t1700000012345\t1700000000000\tt\t\\N"
            "\t0.1\t2.5\t\\N\t20\t1000.5\n");
}

TEST(CopyLine, TextFieldsAreEscapedAndAFailedEventNamesItsStage) {
  Event e;
  e.event_id = "id";
  e.client_id = "a\tb\\c";
  e.target = "line\nbreak\r";
  e.ts_ms = 5;
  e.error_stage = "DNS";
  std::string out = "kept|";
  append_copy_line(out, e, 0);
  EXPECT_EQ(out, "kept|id\ta\\tb\\\\c\tline\\nbreak\\r\t5\t0\tf\tDNS\t\\N\t\\N\t\\N\t\\N\t\\N\n");
}

}  // namespace
}  // namespace gantry::telemetry::aggregator
