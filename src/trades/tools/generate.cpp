// `gantry trades generate`: synthetic trades into the stream, like the original's test
// collector: N tokens, each a random walk in price, at a given total rate, published every
// batch interval through JetStream with acks. Ends after --duration (0: on SIGTERM) and prints
// one JSON line with what was stored.
#include <boost/asio.hpp>

#include <cmath>
#include <cstdio>
#include <random>

#include "bus/nats/publisher.h"
#include "core/json.h"
#include "core/log.h"
#include "core/runtime.h"
#include "trades/roles.h"

namespace gantry::trades {

namespace {
namespace nats = bus::nats;
namespace asio = boost::asio;
using core::Status;
using Ms = std::chrono::milliseconds;

const core::log::Logger generate_log("trades-generate");

struct GenSettings {
  std::string nats_url = "nats://localhost:4222";
  std::string subject_prefix = "trades";
  int tokens = 20;
  double rate = 1000;
  int batch_ms = 200;
  Ms duration{0};
  int64_t seed = 1;
  bool whole_seconds = true;
};

const char kBase58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

class Generator final : public core::runtime::Role {
 public:
  explicit Generator(GenSettings s) : st_(std::move(s)), rng_(static_cast<uint64_t>(st_.seed)) {
    for (int i = 0; i < st_.tokens; ++i) {
      std::string t;
      for (int k = 0; k < 44; ++k) t += kBase58[rng_() % 58];
      tokens_.push_back(t);
      price_.push_back(std::exp(std::uniform_real_distribution<double>(-12, 0)(rng_)));  // 6e-6 .. 1 USD
    }
  }
  std::string_view name() const override { return "trades-generate"; }

  Status start() override {
    pub_ = std::make_unique<nats::Publisher>(ioc_, nats::Publisher::Options{.urls = st_.nats_url, .name = "gantry-trades-generate"});
    GANTRY_RETURN_IF_ERROR(pub_->connect().within("connecting to NATS"));
    t0_ = std::chrono::steady_clock::now();
    timer_ = std::make_unique<asio::steady_timer>(ioc_);
    tick();
    thread_ = std::thread([this] { ioc_.run(); });
    generate_log.info("generating", {{"tokens", st_.tokens}, {"rate", st_.rate}, {"batch_ms", st_.batch_ms}});
    return {};
  }

  void stop(Ms deadline) override {
    asio::post(ioc_, [this] { stopping_ = true; });
    auto until = std::chrono::steady_clock::now() + deadline;
    while (!done_.load() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(Ms(10));
    asio::post(ioc_, [this] {
      timer_->cancel();
      pub_->close();
    });
    if (thread_.joinable()) thread_.join();
    pub_.reset();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    std::string b;
    core::json::Writer(b).object().field("published", published_).field("stored", stored_).field("failed", failed_)
        .key("seconds").value_fixed(secs, 3).key("stored_per_second").value_fixed(secs > 0 ? static_cast<double>(stored_) / secs : 0, 1).end();
    std::printf("%s\n", b.c_str());
    std::fflush(stdout);
  }

 private:
  void tick() {
    if (stopping_) {
      if (in_flight_ == 0) finish();
      return;
    }
    // Due: the rate times the time since the start (so timer lateness does not lower the
    // rate); at the end of --duration exactly rate x duration in all.
    auto elapsed = std::chrono::steady_clock::now() - t0_;
    bool last = st_.duration.count() > 0 && elapsed >= st_.duration;
    if (last) elapsed = st_.duration;
    auto due = static_cast<uint64_t>(std::llround(st_.rate * std::chrono::duration<double>(elapsed).count()));
    uint64_t n = due > published_ ? due - published_ : 0;
    auto now = std::chrono::system_clock::now();
    std::string when = core::rfc3339_nano(st_.whole_seconds ? std::chrono::floor<std::chrono::seconds>(now) : std::chrono::floor<Ms>(now));
    std::uniform_real_distribution<double> u(0, 1);
    std::string body, hash;
    for (uint64_t i = 0; i < n; ++i) {
      size_t k = rng_() % tokens_.size();
      price_[k] *= std::exp((u(rng_) - 0.5) * 0.02);
      bool sell = u(rng_) < 0.5;
      double native = std::round(u(rng_) * 10'000) / 1000;  // 0..10 SOL
      double tokens_amt = std::round(native * 150 / price_[k]);
      hash.clear();
      for (int c = 0; c < 64; ++c) hash += kBase58[tx_rng_() % 58];
      body.clear();
      char p[32], a[32], t[32];
      std::snprintf(p, sizeof p, "%.10g", price_[k]);
      std::snprintf(a, sizeof a, "%.3f", native);
      std::snprintf(t, sizeof t, "%.0f", tokens_amt);
      core::json::Writer(body).object().field("Token", tokens_[k]).field("Wallet", "W" + hash.substr(0, 43))
          .field("SellBuy", sell ? "sell" : "buy").field("NativeAmount", a).field("TokenAmount", t).field("PriceUsd", p)
          .field("TransTime", when).field("TxHash", hash).end();
      ++published_;
      ++in_flight_;
      Status s = pub_->publish(st_.subject_prefix + "." + tokens_[k], body, tokens_[k] + ":" + hash, [this](core::Result<nats::PubAck> r) {
        --in_flight_;
        if (r.is_ok()) ++stored_;
        else if (++failed_ <= 5) generate_log.warn("trade not stored", {{"error", r.status().to_string()}});
        if (stopping_ && in_flight_ == 0) finish();
      });
      if (!s.is_ok()) {
        --in_flight_;
        if (++failed_ <= 5) generate_log.warn("trade not published", {{"error", s.to_string()}});
      }
    }
    if (last) {
      stopping_ = true;
      if (in_flight_ == 0) finish();
      return;
    }
    timer_->expires_after(Ms(st_.batch_ms));
    timer_->async_wait([this](boost::system::error_code ec) {
      if (!ec) tick();
    });
  }

  void finish() {
    if (done_.exchange(true)) return;
    if (st_.duration.count() > 0) core::runtime::request_exit(failed_ ? 1 : 0);
  }

  GenSettings st_;
  std::mt19937_64 rng_;
  // TxHashes differ on every run, whatever the seed: a second run is new trades, not
  // duplicates of the first run's still in the stream.
  std::mt19937_64 tx_rng_{std::random_device{}()};
  std::vector<std::string> tokens_;
  std::vector<double> price_;
  asio::io_context ioc_;
  std::unique_ptr<nats::Publisher> pub_;
  std::unique_ptr<asio::steady_timer> timer_;
  std::thread thread_;
  std::chrono::steady_clock::time_point t0_;
  bool stopping_ = false;
  std::atomic<bool> done_{false};
  uint64_t published_ = 0, stored_ = 0, failed_ = 0, in_flight_ = 0;
};

class GenerateFactory final : public core::runtime::RoleFactory {
 public:
  void bind(core::config::Schema& s) override {
    s.add("nats_url", &st_.nats_url, "NATS server with JetStream").env("NATS_URL");
    s.add("subject_prefix", &st_.subject_prefix, "trades go to <prefix>.<token> (the trades role's stream holds trades.>)");
    s.add("tokens", &st_.tokens, "how many tokens").range(1, 1'000'000);
    s.add("rate", &st_.rate, "trades per second, all tokens together").range(0.001, 10'000'000);
    s.add("batch_ms", &st_.batch_ms, "publish every this many milliseconds (rate x batch trades each time)").range(1, 60'000);
    s.add("duration", &st_.duration, "stop after this long (0: run until SIGTERM)").range(0, 1e12);
    s.add("seed", &st_.seed, "random seed: the same seed gives the same tokens and prices (TxHashes are new on every run)");
    s.add("whole_seconds", &st_.whole_seconds, "TransTime to the second, as the original's collector wrote it");
  }
  core::Result<std::unique_ptr<core::runtime::Role>> build() override {
    return std::unique_ptr<core::runtime::Role>(std::make_unique<Generator>(st_));
  }

 private:
  GenSettings st_;
};

}  // namespace

core::runtime::RoleInfo generate_role() {
  return {"trades-generate", "Trades: synthetic random-walk trades into the stream (`gantry trades generate`)",
          [] { return std::make_unique<GenerateFactory>(); }};
}

}  // namespace gantry::trades
