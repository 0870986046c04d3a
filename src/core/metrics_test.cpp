#include "core/metrics.h"

#include <gtest/gtest.h>

#include <thread>

namespace gantry::core::metrics {
namespace {

TEST(Metrics, CounterGaugeHistogramValues) {
  Registry r;
  auto& c = r.counter("jobs_total", "Jobs.", {"kind"}).with({"a"});
  c.inc();
  c.inc(4);
  c.add(0.5);
  EXPECT_DOUBLE_EQ(c.value(), 5.5);
  auto& g = r.gauge("queue_depth", "Depth.").get();
  g.set(3);
  g.dec();
  EXPECT_DOUBLE_EQ(g.value(), 2);
  auto& h = r.histogram("op_seconds", "Op time.", {}, {0.1, 1}).get();
  h.observe(0.05);
  h.observe(0.1);  // on a bound: counted in that bucket (le = less or equal)
  h.observe(5);
  EXPECT_EQ(h.cumulative(), (std::vector<uint64_t>{2, 2, 3}));
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.sum(), 5.15);
}

TEST(Metrics, ExpositionText) {
  Registry r;
  r.counter("b_requests_total", "Requests.", {"code"}).with({"200"}).inc(3);
  r.histogram("a_seconds", "Latency.", {}, {0.5}).get().observe(0.25);
  r.gauge_callback("c_depth", "Computed.", [] { return 7.0; });
  r.gauge("d_label", "Escaping.", {"v"}).with({"a\"b\\c\nd"}).set(1);
  EXPECT_EQ(r.expose(),
            "# HELP a_seconds Latency.\n"
            "# TYPE a_seconds histogram\n"
            "a_seconds_bucket{le=\"0.5\"} 1\n"
            "a_seconds_bucket{le=\"+Inf\"} 1\n"
            "a_seconds_sum 0.25\n"
            "a_seconds_count 1\n"
            "# HELP b_requests_total Requests.\n"
            "# TYPE b_requests_total counter\n"
            "b_requests_total{code=\"200\"} 3\n"
            "# HELP c_depth Computed.\n"
            "# TYPE c_depth gauge\n"
            "c_depth 7\n"
            "# HELP d_label Escaping.\n"
            "# TYPE d_label gauge\n"
            "d_label{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, ExpositionReadsBackSampleBySample) {
  Registry r;
  r.counter("b_requests_total", "Requests.", {"code", "path"}).with({"200", "/a b} \"c\""}).inc(3);
  r.histogram("a_seconds", "Latency.", {}, {0.5}).get().observe(0.25);
  r.gauge("c_depth", "Depth.").get().set(-2.5);
  std::string page = r.expose() + "\nnot a sample\nx{unclosed=\"1} 2\ny 1 1700000000000\nz NaNo\n";
  std::vector<std::string> seen;
  for_each_sample(page, [&](const Sample& s) {
    std::string v;
    append_number(s.value, v);
    seen.push_back(std::string(s.name) + "|" + std::string(s.labels) + "|" + v);
  });
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "a_seconds_bucket|le=\"0.5\"|1",
                      "a_seconds_bucket|le=\"+Inf\"|1",
                      "a_seconds_sum||0.25",
                      "a_seconds_count||1",
                      "b_requests_total|code=\"200\",path=\"/a b} \\\"c\\\"\"|3",
                      "c_depth||-2.5",
                      "y||1",  // a timestamp after the value
                  }));
}

TEST(Metrics, SameNameSameFamilyConflictThrows) {
  Registry r;
  auto& a = r.counter("x_total", "X.", {"l"});
  auto& b = r.counter("x_total", "X.", {"l"});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a.with({"1"}), &b.with({"1"}));
  EXPECT_THROW(r.gauge("x_total", "X."), std::logic_error);
  EXPECT_THROW(r.counter("x_total", "X.", {"other"}), std::logic_error);
  EXPECT_THROW(a.with({"1", "2"}), std::logic_error);
}

TEST(Metrics, ConcurrentIncrementsAreNotLost) {
  Registry r;
  auto& c = r.counter("n_total", "N.").get();
  auto& h = r.histogram("h_seconds", "H.").get();
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 100'000; ++i) {
        c.inc();
        h.observe(0.001);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_DOUBLE_EQ(c.value(), 400'000);
  EXPECT_EQ(h.count(), 400'000u);
}

TEST(Metrics, NumberFormat) {
  std::string s;
  append_number(0.0005, s);
  s += ' ';
  append_number(42, s);
  s += ' ';
  append_number(std::numeric_limits<double>::infinity(), s);
  EXPECT_EQ(s, "0.0005 42 +Inf");
}

TEST(Metrics, ProcessMetricsHaveValues) {
  Registry r;
  register_process_metrics(r);
  std::string text = r.expose();
  EXPECT_NE(text.find("# TYPE process_resident_memory_bytes gauge"), std::string::npos);
  auto pos = text.find("\nprocess_resident_memory_bytes ");
  ASSERT_NE(pos, std::string::npos);
  EXPECT_GT(std::stod(text.substr(pos + 31)), 1e6);  // a live process has more than 1 MB resident
}

}  // namespace
}  // namespace gantry::core::metrics
