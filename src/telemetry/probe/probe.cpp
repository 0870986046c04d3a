// `gantry probe`: measures targets on an interval and delivers one event per measurement to
// ingest. Measuring and delivering are apart: measurements go into a bounded queue (the
// oldest is dropped, and counted, when it is full), and the sender always sends the event
// whose retry is due soonest, so one event being retried never holds back newer ones.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "core/clock.h"
#include "core/http/client.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/resilience/retry.h"
#include "core/runtime.h"
#include "core/thread_pool.h"
#include "telemetry/event.h"
#include "telemetry/probe/measure.h"
#include "telemetry/roles.h"

namespace gantry::telemetry::probe {

namespace {

namespace http = core::http;
using core::Status;
using Ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

const core::log::Logger probe_log("probe");

struct Settings {
  std::string address = "0.0.0.0";
  uint16_t port = 9100;
  std::vector<std::string> targets;
  std::string targets_file;
  int max_concurrent = 5;
  Ms interval{60'000};
  std::string throughput_url;  // "" = target + /fixed/1mb.bin
  bool throughput = true;
  std::string ingest_url = "http://localhost:8081/events";
  std::string api_token;
  int queue_size = 100;
  Ms max_backoff{60'000};
  std::string client_id;
  bool once = false;
  std::string interface_type = "wifi";
  bool vpn = false;
  std::string label;
  std::string schema = "1.0";
  Ms timeout{30'000};
  http::ServerOptions http;
};

std::string uuid4() {
  thread_local std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(36, '-');
  for (int i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) continue;
    s[i] = kHex[rd() & 15];
  }
  s[14] = '4';
  s[19] = "89ab"[rd() & 3];
  return s;
}

// --client-id, else TELEMETRY_CLIENT_ID, else ~/.telemetry_client_id, else a new one saved
// there (0600) so the probe keeps its identity across restarts.
std::string resolve_client_id(const std::string& given) {
  if (!given.empty()) return given;
  if (const char* env = std::getenv("TELEMETRY_CLIENT_ID"); env && *env) return env;
  const char* home = std::getenv("HOME");
  std::string path = std::string(home && *home ? home : ".") + "/.telemetry_client_id";
  {
    std::ifstream in(path);
    std::string id;
    if (in >> id && !id.empty()) return id;
  }
  std::string id = "probe-";
  std::string u = uuid4();
  for (char c : u)
    if (c != '-') id += c;
  std::ofstream out(path, std::ios::trunc);
  out << id << '\n';
  out.close();
  ::chmod(path.c_str(), 0600);
  probe_log.info("new client id saved", {{"client_id", id}, {"file", path}});
  return id;
}

struct Pending {
  std::string event_id;
  std::string body;
  int attempts = 0;
  Clock::time_point due;
};

class Probe final : public core::runtime::HttpRole {
 public:
  Probe(Settings s, std::string client_id)
      : HttpRole("probe", s.http),
        st_(std::move(s)),
        client_id_(std::move(client_id)),
        sender_client_(http::ClientOptions{.timeout = st_.timeout}),
        reg_(core::metrics::Registry::global()),
        measurements_(reg_.counter("probe_measurements_total", "measurements by outcome", {"outcome"})),
        delivered_(reg_.counter("probe_events_delivered_total", "events ingest accepted (202)").with({})),
        dropped_(reg_.counter("probe_events_dropped_total", "events dropped: queue full or refused", {"reason"})),
        retries_(reg_.counter("probe_delivery_retries_total", "delivery attempts that will be retried").with({})) {
    reg_.gauge_callback("probe_queue_depth", "events waiting for delivery", [this] {
      std::lock_guard lk(mu_);
      return static_cast<double>(queue_.size());
    });
  }
  ~Probe() override { reg_.remove_callback("probe_queue_depth"); }

 protected:
  Status on_start() override {
    probe_log.info("probe starting", {{"client_id", client_id_},
                               {"targets", static_cast<int64_t>(st_.targets.size())},
                               {"ingest", st_.ingest_url},
                               {"once", st_.once}});
    pool_ = std::make_unique<core::ThreadPool>(st_.max_concurrent, "measure");
    sender_ = std::thread([this] { send_loop(); });
    scheduler_ = std::thread([this] { schedule_loop(); });
    return {};
  }

  void before_drain() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (scheduler_.joinable()) scheduler_.join();
    if (pool_) pool_->stop();
    if (sender_.joinable()) sender_.join();
  }

 private:
  void schedule_loop() {
    for (;;) {
      std::atomic<int> left{static_cast<int>(st_.targets.size())};
      for (const std::string& t : st_.targets) {
        auto finished = [this, &left] {
          if (--left == 0) {
            std::lock_guard lk(mu_);  // so the scheduler cannot miss this between its check and its wait
            cv_.notify_all();
          }
        };
        if (!pool_->post([this, t, finished] {
              measure_one(t);
              finished();
            })) {
          probe_log.warn("measurement skipped: the measuring pool is full or stopping", {{"target", t}});
          finished();
        }
      }
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return left.load() == 0; });  // `left` lives on this frame
      if (st_.once) {
        measurements_done_ = true;
        cv_.notify_all();
        return;
      }
      if (cv_.wait_for(lk, st_.interval, [&] { return stopping_; })) return;
    }
  }

  void measure_one(const std::string& target) {
    ThroughputStep tput;
    if (st_.throughput) {
      tput.defaulted = st_.throughput_url.empty();
      tput.url = tput.defaulted ? trim_slash(target) + "/fixed/1mb.bin" : st_.throughput_url;
    }
    int64_t ts = std::chrono::duration_cast<Ms>(std::chrono::system_clock::now().time_since_epoch()).count();
    Measurement m = measure(target, tput, st_.timeout);
    if (m.throughput_from_page) {
      std::lock_guard lk(mu_);
      if (page_throughput_told_.insert(target).second)
        probe_log.info("the target serves no /fixed/1mb.bin: its throughput is measured from its own page "
                "(give --throughput-url for a download of your choice)",
                {{"target", target}, {"tried", tput.url}});
    }
    measurements_.with({m.error_stage ? "error" : "ok"}).inc();
    if (m.error_stage) probe_log.info("measurement failed", {{"target", target}, {"stage", *m.error_stage}, {"error", m.error}});
    Event e;
    e.event_id = uuid4();
    e.client_id = client_id_;
    e.ts_ms = ts;
    e.schema_version = st_.schema;
    e.target = target;
    e.interface_type = st_.interface_type;
    e.vpn_enabled = st_.vpn;
    if (!st_.label.empty()) e.user_label = st_.label;
    e.timings = m.timings;
    e.throughput_kbps = m.throughput_kbps;
    e.error_stage = m.error_stage;
    enqueue({e.event_id, to_json(e), 0, Clock::now()});
  }

  static std::string trim_slash(std::string s) {
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
  }

  void enqueue(Pending p) {
    {
      std::lock_guard lk(mu_);
      if (static_cast<int>(queue_.size()) >= st_.queue_size) {
        queue_.pop_front();  // the oldest goes: fresh measurements are worth more
        dropped_.with({"queue_full"}).inc();
      }
      queue_.push_back(std::move(p));
    }
    cv_.notify_all();
  }

  // Sends whichever queued event is due soonest; a failure reschedules only that event.
  void send_loop() {
    core::resilience::RetryPolicy backoff;
    backoff.base_delay = Ms(500);
    backoff.max_delay = st_.max_backoff;
    for (;;) {
      Pending p;
      {
        std::unique_lock lk(mu_);
        for (;;) {
          if (stopping_ && queue_.empty()) return;
          if (st_.once && measurements_done_ && queue_.empty()) {
            finish_once(true);
            return;
          }
          if (st_.once && measurements_done_ && Clock::now() >= once_deadline()) {
            finish_once(false);
            return;
          }
          if (stopping_) return;  // what is still queued is lost with the process; counted below
          auto it = std::min_element(queue_.begin(), queue_.end(), [](auto& a, auto& b) { return a.due < b.due; });
          if (it != queue_.end() && it->due <= Clock::now()) {
            p = std::move(*it);
            queue_.erase(it);
            break;
          }
          auto until = it == queue_.end() ? Clock::now() + Ms(1000) : it->due;
          // --once gives up at its deadline, not at the next retry after it (up to max_backoff).
          if (st_.once && measurements_done_) until = std::min(until, once_deadline());
          cv_.wait_until(lk, until);
        }
      }
      http::ClientRequest req;
      req.method = http::Method::kPost;
      req.url = st_.ingest_url;
      req.body = p.body;
      req.headers = {{"Content-Type", "application/json"}};
      if (!st_.api_token.empty()) req.headers.emplace_back("Authorization", "Bearer " + st_.api_token);
      auto r = sender_client_.send(req);
      int status = r.is_ok() ? r->status : 0;
      if (status == 202) {
        delivered_.inc();
        std::lock_guard lk(mu_);
        if (!last_failure_.empty()) {
          probe_log.info("ingest accepts events again", {{"after", last_failure_}});
          last_failure_.clear();
        }
        continue;
      }
      if (status == 400 || status == 401 || status == 413) {  // resending will not help
        dropped_.with({"refused"}).inc();
        probe_log.warn("ingest refused an event", {{"status", static_cast<int64_t>(status)}, {"body", r->body}});
        std::lock_guard lk(mu_);
        if (refused_++ == 0) first_refusal_ = "HTTP " + std::to_string(status) + ": " + r->body;
        continue;
      }
      retries_.inc();
      ++p.attempts;
      core::Duration wait = backoff.delay(p.attempts, core::Random::real().uniform());
      if (status == 429) {
        if (auto ra = r->header("Retry-After"); !ra.empty()) wait = std::max<core::Duration>(wait, std::chrono::seconds(std::atoi(std::string(ra).c_str())));
      }
      p.due = Clock::now() + std::chrono::duration_cast<Clock::duration>(wait);
      std::string failure = r.is_ok() ? "HTTP " + std::to_string(status) : r.status().to_string();
      probe_log.debug("delivery will be retried", {{"event_id", p.event_id}, {"error", failure}});
      std::lock_guard lk(mu_);
      // Warn once when delivery starts failing (a wrong --ingest-url, ingest down), not once per
      // event: the events stay queued and are retried, and recovery is logged above.
      if (last_failure_.empty())
        probe_log.warn("ingest does not accept events; they are kept and retried",
                       {{"ingest", st_.ingest_url}, {"error", failure}});
      last_failure_ = std::move(failure);
      queue_.push_back(std::move(p));
    }
  }

  Clock::time_point once_deadline() {
    if (once_deadline_ == Clock::time_point{}) once_deadline_ = Clock::now() + st_.timeout;
    return once_deadline_;
  }

  // --once: the process exits 0 when every event was delivered (accepted by ingest), 1
  // otherwise: undelivered in time, or refused (a wrong --api-token, a 413, a 400). Called
  // with mu_ held.
  void finish_once(bool all) {
    if (refused_ > 0)
      probe_log.error("ingest refused events; they are not resent",
               {{"refused", static_cast<int64_t>(refused_)}, {"first", first_refusal_}});
    if (!all)
      probe_log.error("not every event was delivered",
                      {{"undelivered", static_cast<int64_t>(queue_.size())}, {"last_error", last_failure_}});
    bool ok = all && refused_ == 0;
    if (ok) probe_log.info("all events delivered");
    core::runtime::request_exit(ok ? 0 : 1);
  }

  Settings st_;
  // Under mu_: events ingest refused, the first refusal's answer, the last failed delivery's
  // error while deliveries fail (empty once one succeeds), and the targets already logged as
  // measured from their page.
  int64_t refused_ = 0;
  std::string first_refusal_;
  std::string last_failure_;
  std::set<std::string> page_throughput_told_;
  std::string client_id_;
  http::Client sender_client_;
  core::metrics::Registry& reg_;
  core::metrics::Family<core::metrics::Counter>& measurements_;
  core::metrics::Counter& delivered_;
  core::metrics::Family<core::metrics::Counter>& dropped_;
  core::metrics::Counter& retries_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  bool measurements_done_ = false;
  Clock::time_point once_deadline_{};
  std::unique_ptr<core::ThreadPool> pool_;
  std::thread sender_, scheduler_;
};

class ProbeFactory final : public core::runtime::RoleFactory {
  // Every target that is not an http(s) URL, after the value in a configuration message.
  static std::optional<std::string> not_urls(const std::vector<std::string>& targets) {
    std::vector<std::string> bad;
    for (const std::string& t : targets)
      if (t.rfind("http://", 0) != 0 && t.rfind("https://", 0) != 0) bad.push_back("'" + t + "'");
    if (bad.empty()) return std::nullopt;
    std::string list;
    for (size_t i = 0; i < bad.size(); ++i) list += (i == 0 ? "" : i + 1 == bad.size() ? " and " : ", ") + bad[i];
    return "has " + list + (bad.size() == 1 ? ", not an http(s) URL" : ", not http(s) URLs") + " (e.g. https://example.com/)";
  }

 public:
  void bind(core::config::Schema& s) override {
    s.add("address", &st_.address, "listen address (health, metrics)").env("PROBE_HOST");
    s.add("port", &st_.port, "listen port for /health /metrics (0 = any free port)").env("PROBE_PORT");
    s.add("target", &st_.targets, "URLs to measure (repeat the flag, or comma-separate)").env("PROBE_TARGETS").check([this] {
      return not_urls(st_.targets);
    });
    s.add("targets_file", &st_.targets_file, "file with one URL per line (adds to target)");
    s.add("max_concurrent", &st_.max_concurrent, "targets measured at once").range(1, 1000);
    s.add("interval", &st_.interval, "time between rounds of measurements").range(100, 86'400'000);
    s.add("throughput_url", &st_.throughput_url, "download for throughput (default: target + /fixed/1mb.bin)");
    s.add("throughput", &st_.throughput, "measure throughput at all");
    s.add("ingest_url", &st_.ingest_url, "ingest endpoint").env("INGEST_URL");
    s.add("api_token", &st_.api_token, "Bearer token for ingest").env("API_TOKEN").secret();
    s.add("queue_size", &st_.queue_size, "events held for delivery; beyond it the oldest is dropped").range(1, 1'000'000);
    s.add("max_backoff", &st_.max_backoff, "longest wait between delivery attempts of one event").range(100, 3'600'000);
    s.add("client_id", &st_.client_id, "identity (else TELEMETRY_CLIENT_ID, else ~/.telemetry_client_id)");
    s.add("once", &st_.once, "measure every target once, deliver, exit (0 = all delivered)");
    s.add("interface", &st_.interface_type, "network_context.interface_type reported").check([this]() -> std::optional<std::string> {
      if (st_.interface_type.empty()) return "must not be empty";
      return std::nullopt;
    });
    s.add("vpn", &st_.vpn, "network_context.vpn_enabled reported");
    s.add("label", &st_.label, "network_context.user_label reported");
    s.add("schema", &st_.schema, "schema_version sent");
    s.add("timeout", &st_.timeout, "one measurement's limit (and --once's delivery limit)").range(100, 600'000);
    http::bind(s, &st_.http);
  }

  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    if (!st_.targets_file.empty()) {
      std::ifstream in(st_.targets_file);
      if (!in) return core::invalid_argument("probe.targets_file: cannot read " + st_.targets_file);
      for (std::string line; std::getline(in, line);) {
        line.erase(0, line.find_first_not_of(" \t\r"));
        line.erase(line.find_last_not_of(" \t\r") + 1);
        if (!line.empty() && line[0] != '#') st_.targets.push_back(line);
      }
    }
    if (st_.targets.empty()) return core::invalid_argument("probe: no targets (use --target URL[,URL…] or --targets-file)");
    if (auto bad = not_urls(st_.targets)) return core::invalid_argument("probe.targets_file: " + st_.targets_file + " " + *bad);
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Probe>(st_, resolve_client_id(st_.client_id)));
  }

 private:
  Settings st_;
};

}  // namespace

}  // namespace gantry::telemetry::probe

namespace gantry::telemetry {

core::runtime::RoleInfo probe_role() {
  return {"probe", "Telemetry: measures targets (DNS, TCP, TLS, TTFB, throughput) and delivers events to ingest",
          [] { return std::make_unique<probe::ProbeFactory>(); }};
}

}  // namespace gantry::telemetry
