#include "core/metrics.h"

#include "core/log.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace gantry::core::metrics {

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  std::sort(bounds_.begin(), bounds_.end());
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) noexcept {
  // Bounds lists are short (~10-20); a linear scan beats a binary search on them.
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    out[i] = acc;
  }
  return out;
}

const std::vector<double>& default_seconds_buckets() {
  static const std::vector<double> b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

void append_number(double v, std::string& out) {
  if (std::isnan(v)) { out += "NaN"; return; }
  if (std::isinf(v)) { out += v > 0 ? "+Inf" : "-Inf"; return; }
  // Shortest text that reads back as the same double: 0.0005, not 0.00050000000000000001.
  fmt::format_to(std::back_inserter(out), "{}", v);
}

namespace {

void append_escaped_label(std::string_view v, std::string& out) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void append_help(const std::string& name, const std::string& help, std::string_view type, std::string& out) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

// {a="x",b="y"} with an optional extra label (le for histogram buckets).
void append_labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   std::string_view extra_name, std::string_view extra_value, std::string& out) {
  if (names.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    append_escaped_label(values[i], out);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

std::string_view type_name(Type t) {
  switch (t) {
    case Type::kCounter: return "counter";
    case Type::kGauge: return "gauge";
    case Type::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

template <class M>
M& Family<M>::with(const std::vector<std::string>& values) {
  if (values.size() != labels_.size())
    throw std::logic_error("metric " + name_ + ": expected " + std::to_string(labels_.size()) + " label values");
  std::lock_guard lock(mu_);
  auto it = series_.find(values);
  if (it != series_.end()) return *it->second;
  std::unique_ptr<M> m;
  if constexpr (std::is_same_v<M, Histogram>) m = std::make_unique<M>(bounds_);
  else m = std::make_unique<M>();
  return *series_.emplace(values, std::move(m)).first->second;
}

template <class M>
void Family<M>::expose(std::string& out) const {
  append_help(name_, help_, type_name(type_), out);
  std::lock_guard lock(mu_);
  for (auto& [values, m] : series_) {
    if constexpr (std::is_same_v<M, Histogram>) {
      auto cum = m->cumulative();
      for (size_t i = 0; i < cum.size(); ++i) {
        std::string le;
        if (i < m->bounds().size()) append_number(m->bounds()[i], le);
        else le = "+Inf";
        out += name_;
        out += "_bucket";
        append_labels(labels_, values, "le", le, out);
        out += ' ';
        append_number(static_cast<double>(cum[i]), out);
        out += '\n';
      }
      out += name_;
      out += "_sum";
      append_labels(labels_, values, {}, {}, out);
      out += ' ';
      append_number(m->sum(), out);
      out += '\n';
      out += name_;
      out += "_count";
      append_labels(labels_, values, {}, {}, out);
      out += ' ';
      append_number(static_cast<double>(m->count()), out);
      out += '\n';
    } else {
      out += name_;
      append_labels(labels_, values, {}, {}, out);
      out += ' ';
      append_number(m->value(), out);
      out += '\n';
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry& Registry::global() {
  static Registry* r = new Registry();  // never destroyed: metrics may be touched during exit
  return *r;
}

template <class M>
Family<M>& Registry::family(std::string name, std::string help, Type type, std::vector<std::string> labels,
                            std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->type() != type || it->second->labels() != labels)
      throw std::logic_error("metric " + name + " registered twice with different type or labels");
    return static_cast<Family<M>&>(*it->second);
  }
  if (callbacks_.count(name)) throw std::logic_error("metric " + name + " is already a callback");
  auto f = std::make_unique<Family<M>>(name, std::move(help), type, std::move(labels), std::move(bounds));
  auto& ref = *f;
  families_.emplace(std::move(name), std::move(f));
  return ref;
}

Family<Counter>& Registry::counter(std::string name, std::string help, std::vector<std::string> labels) {
  return family<Counter>(std::move(name), std::move(help), Type::kCounter, std::move(labels), {});
}
Family<Gauge>& Registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  return family<Gauge>(std::move(name), std::move(help), Type::kGauge, std::move(labels), {});
}
Family<Histogram>& Registry::histogram(std::string name, std::string help, std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  return family<Histogram>(std::move(name), std::move(help), Type::kHistogram, std::move(labels), std::move(bounds));
}

void Registry::add_callback(std::string name, std::string help, Type type, std::vector<std::string> labels,
                            std::vector<std::string> values, std::function<double()> fn) {
  if (labels.size() != values.size()) throw std::logic_error("metric " + name + ": label values do not match labels");
  std::lock_guard lock(mu_);
  if (families_.count(name)) throw std::logic_error("metric " + name + " is already a family");
  auto& cb = callbacks_[name];
  if (!cb.series.empty() && (cb.type != type || cb.labels != labels))
    throw std::logic_error("metric " + name + " registered twice with different type or labels");
  cb.help = std::move(help);
  cb.type = type;
  cb.labels = std::move(labels);
  cb.series[std::move(values)] = std::move(fn);
}

void Registry::gauge_callback(std::string name, std::string help, std::function<double()> fn) {
  add_callback(std::move(name), std::move(help), Type::kGauge, {}, {}, std::move(fn));
}
void Registry::counter_callback(std::string name, std::string help, std::function<double()> fn) {
  add_callback(std::move(name), std::move(help), Type::kCounter, {}, {}, std::move(fn));
}
void Registry::gauge_callback(std::string name, std::string help, std::vector<std::string> labels,
                              std::vector<std::string> values, std::function<double()> fn) {
  add_callback(std::move(name), std::move(help), Type::kGauge, std::move(labels), std::move(values), std::move(fn));
}
void Registry::counter_callback(std::string name, std::string help, std::vector<std::string> labels,
                                std::vector<std::string> values, std::function<double()> fn) {
  add_callback(std::move(name), std::move(help), Type::kCounter, std::move(labels), std::move(values), std::move(fn));
}
void Registry::remove_callback(const std::string& name, const std::vector<std::string>& values) {
  std::lock_guard lock(mu_);
  auto it = callbacks_.find(name);
  if (it == callbacks_.end()) return;
  it->second.series.erase(values);
  if (it->second.series.empty()) callbacks_.erase(it);
}

std::string Registry::expose() const {
  std::string out;
  out.reserve(4096);
  std::lock_guard lock(mu_);
  // Families and callbacks interleaved in name order, so the output is stable.
  auto fi = families_.begin();
  auto ci = callbacks_.begin();
  while (fi != families_.end() || ci != callbacks_.end()) {
    if (ci == callbacks_.end() || (fi != families_.end() && fi->first < ci->first)) {
      fi->second->expose(out);
      ++fi;
    } else {
      append_help(ci->first, ci->second.help, type_name(ci->second.type), out);
      for (auto& [values, fn] : ci->second.series) {
        out += ci->first;
        append_labels(ci->second.labels, values, {}, {}, out);
        out += ' ';
        append_number(fn(), out);
        out += '\n';
      }
      ++ci;
    }
  }
  return out;
}

namespace {

// Fields 14 (utime), 15 (stime), 20 (num_threads), 22 (starttime), 23 (vsize), 24 (rss) of
// /proc/self/stat, counted from 1.
std::vector<std::string> proc_stat() {
  std::ifstream f("/proc/self/stat");
  std::string line;
  std::getline(f, line);
  std::vector<std::string> out;
  auto close = line.rfind(')');  // the command name may contain spaces
  if (close == std::string::npos) return out;
  out.push_back("pid");
  out.push_back("comm");
  std::istringstream rest(line.substr(close + 2));
  std::string tok;
  while (rest >> tok) out.push_back(tok);
  return out;
}

double stat_field(int n) {
  auto v = proc_stat();
  return n - 1 < static_cast<int>(v.size()) ? std::strtod(v[n - 1].c_str(), nullptr) : 0.0;
}

double boot_time() {
  std::ifstream f("/proc/stat");
  std::string key;
  double v = 0;
  while (f >> key) {
    if (key == "btime") {
      f >> v;
      return v;
    }
  }
  return 0;
}

}  // namespace

void register_process_metrics(Registry& r) {
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  static const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  static const double start = boot_time() + stat_field(22) / ticks;
  r.counter_callback("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                     [] { return (stat_field(14) + stat_field(15)) / ticks; });
  r.counter_callback("log_lines_dropped_total", "Log lines dropped because the writer could not keep up.",
                     [] { return static_cast<double>(log::dropped_lines()); });
  r.gauge_callback("process_resident_memory_bytes", "Resident memory size in bytes.",
                   [] { return stat_field(24) * page; });
  r.gauge_callback("process_virtual_memory_bytes", "Virtual memory size in bytes.", [] { return stat_field(23); });
  r.gauge_callback("process_threads", "Number of OS threads in the process.", [] { return stat_field(20); });
  r.gauge_callback("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                   [] { return start; });
  r.gauge_callback("process_open_fds", "Number of open file descriptors.", [] {
    double n = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
      while (readdir(d)) ++n;
      closedir(d);
      n -= 3;  // ".", ".." and the directory's own descriptor
    }
    return n;
  });
  r.gauge_callback("process_max_fds", "Maximum number of open file descriptors.", [] {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    return static_cast<double>(rl.rlim_cur);
  });
}

void for_each_sample(std::string_view page, const std::function<void(const Sample&)>& f) {
  for (size_t at = 0; at < page.size();) {
    size_t eol = page.find('\n', at);
    std::string_view line = page.substr(at, eol == std::string_view::npos ? std::string_view::npos : eol - at);
    at = eol == std::string_view::npos ? page.size() : eol + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t end = line.find_first_of(" {");
    if (end == 0 || end == std::string_view::npos) continue;
    s.name = line.substr(0, end);
    if (line[end] == '{') {  // to the closing brace outside quotes
      bool quoted = false;
      size_t i = end + 1;
      for (; i < line.size(); ++i) {
        if (quoted && line[i] == '\\') ++i;
        else if (line[i] == '"') quoted = !quoted;
        else if (!quoted && line[i] == '}') break;
      }
      if (i >= line.size()) continue;
      s.labels = line.substr(end + 1, i - end - 1);
      end = i + 1;
    }
    if (end >= line.size() || line[end] != ' ') continue;
    std::string value(line.substr(end + 1, line.find(' ', end + 1) - end - 1));  // a timestamp may follow
    char* stop = nullptr;
    s.value = std::strtod(value.c_str(), &stop);
    if (value.empty() || *stop) continue;
    f(s);
  }
}

}  // namespace gantry::core::metrics
