#include "trades/engine.h"

#include <algorithm>
#include <unordered_map>

namespace gantry::trades {

namespace {
struct Hash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// A counter only its shard's thread writes: a plain load and store (no locked instruction on
// the per-trade path); readers on other threads see it a moment later.
void bump(std::atomic<uint64_t>& a, uint64_t n = 1) { a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }

int64_t wall_ms(const core::Clock& c) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(c.wall_now().time_since_epoch()).count();
}
}  // namespace

class Engine::Shard {
 public:
  Shard(Engine& e, size_t index) : e_(e), index_(index) {}

  void start() { thread_ = std::thread([this] { loop(); }); }
  void join() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  void push_raw(RawBatch&& b) {
    {
      std::lock_guard lk(mu_);
      raw_.push_back(std::move(b));
    }
    cv_.notify_one();
  }
  void push_trades(std::vector<Trade>&& t) {
    {
      std::lock_guard lk(mu_);
      trades_.push_back(std::move(t));
    }
    cv_.notify_one();
  }

  // Counters read by stats() from any thread.
  std::atomic<uint64_t> applied{0}, duplicates{0}, too_old{0}, too_new{0}, invalid{0}, refused{0};
  std::atomic<uint64_t> evicted_idle{0}, evicted_limit{0}, evicted_memory{0}, tokens{0}, state_bytes{0};
  std::atomic<int64_t> busy_ns{0};

 private:
  struct Slot {
    explicit Slot(TokenWindows::Options o) : w(o) {}
    TokenWindows w;
    bool dirty = false;
  };

  void loop() {
    std::vector<RawBatch> raw;
    std::vector<std::vector<Trade>> trades;
    auto next_flush = std::chrono::steady_clock::now() + e_.flush_interval();
    for (;;) {
      bool stopping;
      {
        std::unique_lock lk(mu_);
        cv_.wait_until(lk, next_flush, [&] { return stop_ || !raw_.empty() || !trades_.empty(); });
        raw.swap(raw_);
        trades.swap(trades_);
        stopping = stop_ && raw.empty() && trades.empty();
      }
      if (!raw.empty() || !trades.empty()) {
        auto t0 = std::chrono::steady_clock::now();
        int64_t now = wall_ms(*e_.o_.clock);
        for (auto& b : raw) process_raw(b, now);
        for (auto& t : trades) {
          for (const Trade& tr : t) apply(tr, now);
          done_batch();
        }
        busy_ns.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
        raw.clear();
        trades.clear();
      }
      if (stopping) {
        flush(/*final=*/true);
        return;
      }
      if (std::chrono::steady_clock::now() >= next_flush) {
        flush(false);
        next_flush = std::chrono::steady_clock::now() + e_.flush_interval();
      }
    }
  }

  void done_batch() {
    e_.pending_.fetch_sub(1, std::memory_order_acq_rel);
  }

  void process_raw(RawBatch& b, int64_t now) {
    size_t n = e_.shards_.size();
    if (out_.size() != n) out_.resize(n);
    size_t count = 0;
    for (size_t i = 0; i < b.data.size(); ++i) {
      parsed_.clear();
      core::Status s = parser_.parse(b.data[i], b.seq.empty() ? 0 : b.seq[i], parsed_);
      if (!s.is_ok()) {
        bump(invalid);
        if (e_.on_invalid_) e_.on_invalid_(b.data[i], s);
        continue;
      }
      for (Trade& t : parsed_) {
        size_t o = e_.owner_of(t.token());
        if (o == index_) apply(t, now);
        else out_[o].push_back(t);
        ++count;
      }
    }
    // Forwards first, then this batch is done: pending_ never reads zero while trades travel.
    for (size_t o = 0; o < n; ++o) {
      if (out_[o].empty()) continue;
      e_.pending_.fetch_add(1, std::memory_order_acq_rel);
      size_t sent = out_[o].size();
      e_.shards_[o]->push_trades(std::move(out_[o]));
      out_[o] = {};
      out_[o].reserve(sent);  // the next batch's forwards, without growing step by step
    }
    if (e_.on_batch_) e_.on_batch_(count, std::chrono::steady_clock::now() - b.received);
    b = RawBatch{};  // the bytes may go now
    e_.raw_queued_.fetch_sub(1, std::memory_order_acq_rel);
    {
      std::lock_guard lk(e_.space_mu_);
    }
    e_.space_cv_.notify_all();
    done_batch();
  }

  void apply(const Trade& t, int64_t now) {
    Slot* s = slot(t.token(), now);
    if (!s) {
      bump(refused);
      return;
    }
    switch (s->w.add(t, now)) {
      case TokenWindows::Added::kApplied:
        bump(applied);
        mark(*s);
        break;
      case TokenWindows::Added::kDuplicate: bump(duplicates); break;
      case TokenWindows::Added::kTooOld: bump(too_old); break;
      case TokenWindows::Added::kTooNew: bump(too_new); break;
    }
  }

  void mark(Slot& s) { s.dirty = true; }

  Slot* slot(std::string_view token, int64_t now) {
    auto it = map_.find(token);
    if (it != map_.end()) return it->second.get();
    if (e_.over_memory_.load(std::memory_order_relaxed)) return nullptr;
    // At MAX_TOKEN_PROCESSORS this shard's least recently active token makes room (the count
    // stays). A shard with none goes over by one; a later flush of a shard that has tokens
    // claims the excess (a compare-and-swap, so two shards flushing at once cannot both take
    // the same excess and evict one token too many) and evicts its least recently active.
    TokenWindows::Options o{.windows = &e_.o_.windows,
                            .resolution_ms = e_.o_.resolution_ms,
                            .dedup = e_.o_.dedup,
                            .max_future_ms = e_.o_.max_future_ms};
    if (e_.live_tokens_.load(std::memory_order_relaxed) >= static_cast<int64_t>(e_.o_.max_tokens) && !map_.empty())
      evict_lru(now);
    else
      e_.live_tokens_.fetch_add(1, std::memory_order_relaxed);
    auto [ins, _] = map_.emplace(std::string(token), std::make_unique<Slot>(o));
    return ins->second.get();
  }

  // Evicts this shard's least recently active token; the caller has already accounted for it
  // in live_tokens_.
  void evict_lru(int64_t now) {
    auto victim = map_.begin();
    for (auto i = map_.begin(); i != map_.end(); ++i)
      if (i->second->w.last_trade_ms() < victim->second->w.last_trade_ms()) victim = i;
    evict(victim, now);
    bump(evicted_limit);
  }

  // One token over MAX_TOKEN_PROCESSORS claimed by this shard, if there is one to claim.
  bool claim_excess() {
    auto max = static_cast<int64_t>(e_.o_.max_tokens);
    int64_t live = e_.live_tokens_.load(std::memory_order_relaxed);
    while (live > max)
      if (e_.live_tokens_.compare_exchange_weak(live, live - 1, std::memory_order_relaxed)) return true;
    return false;
  }

  // The token's last report (its statistics as they are now), then it goes.
  void evict(std::unordered_map<std::string, std::unique_ptr<Slot>, Hash, std::equal_to<>>::iterator it, int64_t now) {
    it->second->w.advance(now);
    evicted_reports_.push_back(report(it->first, *it->second));
    evicted_reports_.back().evicted = true;
    map_.erase(it);
  }

  TokenUpdate report(const std::string& token, const Slot& s) const {
    TokenUpdate u;
    u.token = token;
    u.last_trade_ms = s.w.last_trade_ms();
    u.windows.reserve(e_.o_.windows.size());
    for (size_t i = 0; i < e_.o_.windows.size(); ++i) u.windows.push_back(s.w.aggregate(i));
    return u;
  }

  void flush(bool final) {
    int64_t now = wall_ms(*e_.o_.clock);
    int64_t longest = e_.o_.windows.back().ms, shortest = e_.o_.windows.front().ms;
    bool over = e_.over_memory_.load(std::memory_order_relaxed);
    while (!final && !map_.empty() && claim_excess()) evict_lru(now);
    std::vector<TokenUpdate> updates = std::move(evicted_reports_);
    evicted_reports_.clear();
    uint64_t bytes = 0;
    for (auto it = map_.begin(); it != map_.end();) {
      Slot& s = *it->second;
      if (s.w.advance(now)) mark(s);
      int64_t idle = now - s.w.last_trade_ms();
      if (!final && (idle > longest || (over && idle > shortest))) {
        bump(idle > longest ? evicted_idle : evicted_memory);
        updates.push_back(report(it->first, s));
        updates.back().evicted = true;
        it = map_.erase(it);
        e_.live_tokens_.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      if (s.dirty) {
        updates.push_back(report(it->first, s));
        s.dirty = false;
      }
      bytes += s.w.memory_bytes() + it->first.capacity() + sizeof(Slot) + 64;  // 64: the map's node
      ++it;
    }
    tokens.store(map_.size(), std::memory_order_relaxed);
    state_bytes.store(bytes, std::memory_order_relaxed);
    if (!updates.empty() && e_.on_flush_) e_.on_flush_(std::move(updates));
  }

  Engine& e_;
  size_t index_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<RawBatch> raw_;
  std::vector<std::vector<Trade>> trades_;

  // Owned by the shard's thread.
  Parser parser_;
  std::vector<Trade> parsed_;
  std::vector<std::vector<Trade>> out_;
  std::unordered_map<std::string, std::unique_ptr<Slot>, Hash, std::equal_to<>> map_;
  std::vector<TokenUpdate> evicted_reports_;
};

Engine::Engine(EngineOptions o, OnFlush on_flush, OnInvalid on_invalid, OnBatch on_batch)
    : o_(std::move(o)),
      on_flush_(std::move(on_flush)),
      on_invalid_(std::move(on_invalid)),
      on_batch_(std::move(on_batch)),
      flush_ms_(o_.flush_interval.count()) {
  if (o_.windows.empty()) o_.windows = *parse_windows(default_windows());
  o_.shards = std::max(1, o_.shards);
  for (int i = 0; i < o_.shards; ++i) shards_.push_back(std::make_unique<Shard>(*this, static_cast<size_t>(i)));
}

Engine::~Engine() { stop(); }

void Engine::start() {
  for (auto& s : shards_) s->start();
}

void Engine::stop() {
  if (stopping_.exchange(true)) return;
  space_cv_.notify_all();
  wait_idle();
  for (auto& s : shards_) s->join();
}

size_t Engine::owner_of(std::string_view token) const {
  return std::hash<std::string_view>{}(token) % shards_.size();
}

bool Engine::submit_raw(RawBatch&& b) {
  {
    std::unique_lock lk(space_mu_);
    space_cv_.wait(lk, [&] {
      return stopping_ || raw_queued_.load(std::memory_order_acquire) < static_cast<int64_t>(o_.max_queued_batches);
    });
    if (stopping_) return false;
  }
  if (b.received == core::MonoTime{}) b.received = std::chrono::steady_clock::now();
  raw_queued_.fetch_add(1, std::memory_order_acq_rel);
  pending_.fetch_add(1, std::memory_order_acq_rel);
  shards_[next_.fetch_add(1, std::memory_order_relaxed) % shards_.size()]->push_raw(std::move(b));
  return true;
}

void Engine::submit(std::vector<Trade>&& trades) {
  std::vector<std::vector<Trade>> by(shards_.size());
  for (Trade& t : trades) by[owner_of(t.token())].push_back(t);
  for (size_t i = 0; i < by.size(); ++i) {
    if (by[i].empty()) continue;
    pending_.fetch_add(1, std::memory_order_acq_rel);
    shards_[i]->push_trades(std::move(by[i]));
  }
}

void Engine::wait_idle() const {
  while (pending_.load(std::memory_order_acquire) > 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
}

EngineStats Engine::stats() const {
  EngineStats s;
  for (auto& sh : shards_) {
    s.applied += sh->applied.load(std::memory_order_relaxed);
    s.duplicates += sh->duplicates.load(std::memory_order_relaxed);
    s.too_old += sh->too_old.load(std::memory_order_relaxed);
    s.too_new += sh->too_new.load(std::memory_order_relaxed);
    s.invalid += sh->invalid.load(std::memory_order_relaxed);
    s.refused += sh->refused.load(std::memory_order_relaxed);
    s.evicted_idle += sh->evicted_idle.load(std::memory_order_relaxed);
    s.evicted_limit += sh->evicted_limit.load(std::memory_order_relaxed);
    s.evicted_memory += sh->evicted_memory.load(std::memory_order_relaxed);
    s.tokens += sh->tokens.load(std::memory_order_relaxed);
    s.state_bytes += sh->state_bytes.load(std::memory_order_relaxed);
    s.busy_seconds += static_cast<double>(sh->busy_ns.load(std::memory_order_relaxed)) / 1e9;
  }
  return s;
}

}  // namespace gantry::trades
