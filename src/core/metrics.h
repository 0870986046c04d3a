// Prometheus metrics: counters, gauges and histograms with labels, and the text exposition
// format (version 0.0.4) that `promtool check metrics` accepts.
//
//   auto& reqs = metrics::Registry::global().counter("http_requests_total", "Requests served",
//                                                     {"role", "code"});
//   metrics::Counter& ok = reqs.with({"controller", "200"});   // look up once, keep the ref
//   ok.inc();                                                 // lock-free
//
// Registering the same name again with the same type and labels returns the same family, so
// several roles in one process share families and tell themselves apart by a label.
// References returned by with() stay valid for the registry's lifetime.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace gantry::core::metrics {

class Counter {
 public:
  void inc() noexcept { n_.fetch_add(1, std::memory_order_relaxed); }
  void inc(uint64_t n) noexcept { n_.fetch_add(n, std::memory_order_relaxed); }
  void add(double v) noexcept { frac_.fetch_add(v, std::memory_order_relaxed); }  // v >= 0
  double value() const noexcept {
    return static_cast<double>(n_.load(std::memory_order_relaxed)) + frac_.load(std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> n_{0};
  std::atomic<double> frac_{0};
};

class Gauge {
 public:
  void set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void inc(double d = 1) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  void dec(double d = 1) noexcept { v_.fetch_sub(d, std::memory_order_relaxed); }
  double value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void observe(double v) noexcept;
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound (then +Inf), sum and count, read for exposition and tests.
  std::vector<uint64_t> cumulative() const;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }
  uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last is +Inf)
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Prometheus' default buckets, in seconds.
const std::vector<double>& default_seconds_buckets();

enum class Type { kCounter, kGauge, kHistogram };

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, Type type, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), type_(type), labels_(std::move(labels)) {}
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  Type type() const { return type_; }
  const std::vector<std::string>& labels() const { return labels_; }
  virtual void expose(std::string& out) const = 0;

 protected:
  std::string name_, help_;
  Type type_;
  std::vector<std::string> labels_;
};

template <class M>
class Family final : public FamilyBase {
 public:
  Family(std::string name, std::string help, Type type, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : FamilyBase(std::move(name), std::move(help), type, std::move(labels)), bounds_(std::move(bounds)) {}

  // The series for these label values (one per declared label, in order). Takes a lock: call
  // it once and keep the reference on hot paths.
  M& with(std::initializer_list<std::string_view> values) {
    std::vector<std::string> key(values.begin(), values.end());
    return with(key);
  }
  M& with(const std::vector<std::string>& values);
  // The series without labels (for a family declared without labels).
  M& get() { return with({}); }

  void expose(std::string& out) const override;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> series_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry that /metrics serves.
  static Registry& global();

  // Throws std::logic_error if the name is taken by a different type or label set (a bug).
  Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<std::string> labels = {},
                               std::vector<double> bounds = default_seconds_buckets());
  // A value read at scrape time (queue depth, memory). Replaces an earlier callback of that
  // name and label values. The labelled form lets several objects (one per store, one per
  // breaker) report under one name; remove_callback() before such an object dies.
  void gauge_callback(std::string name, std::string help, std::function<double()> fn);
  void counter_callback(std::string name, std::string help, std::function<double()> fn);
  void gauge_callback(std::string name, std::string help, std::vector<std::string> labels,
                      std::vector<std::string> values, std::function<double()> fn);
  void counter_callback(std::string name, std::string help, std::vector<std::string> labels,
                        std::vector<std::string> values, std::function<double()> fn);
  void remove_callback(const std::string& name, const std::vector<std::string>& values = {});

  // The text exposition of every family, sorted by name.
  std::string expose() const;

 private:
  template <class M>
  Family<M>& family(std::string name, std::string help, Type type, std::vector<std::string> labels,
                    std::vector<double> bounds);

  struct Callback {
    std::string help;
    Type type;
    std::vector<std::string> labels;
    std::map<std::vector<std::string>, std::function<double()>> series;
  };
  void add_callback(std::string name, std::string help, Type type, std::vector<std::string> labels,
                    std::vector<std::string> values, std::function<double()> fn);
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>> families_;
  std::map<std::string, Callback> callbacks_;
};

// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds, process_threads.
void register_process_metrics(Registry& r);

// Appends a metric value the way Prometheus writes it (integers without a fraction, +Inf, NaN).
void append_number(double v, std::string& out);

// One sample line of a text exposition read back, for what scrapes a role (tests, benchmarks).
// `labels` is what stands between the braces, as written (escapes kept); empty without braces.
struct Sample {
  std::string_view name;
  std::string_view labels;
  double value = 0;
};

// Calls f for every sample line of `page`, in order; comments, blank lines and lines that are
// not samples are skipped. A label value may hold spaces, braces and escaped quotes.
void for_each_sample(std::string_view page, const std::function<void(const Sample&)>& f);

}  // namespace gantry::core::metrics
