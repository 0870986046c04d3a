#include "trades/windows.h"

#include <algorithm>
#include <charconv>

namespace gantry::trades {

using core::Result;

// ---- TIME_WINDOWS ----
// Errors follow the value in a configuration message (`trades.time_windows: 1min,7x has "7x",
// not a window …`), so they name the entry at fault, not the setting.

std::string default_windows() { return "1min,5min,15min,30min,1hour"; }

Result<std::vector<WindowSpec>> parse_windows(std::string_view text) {
  std::vector<WindowSpec> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) return core::invalid_argument("has an empty entry");
    int64_t n = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
    std::string_view unit(p, static_cast<size_t>(item.data() + item.size() - p));
    int64_t mult = 0;
    if (unit == "ms") mult = 1;
    else if (unit == "s" || unit == "sec") mult = 1000;
    else if (unit == "m" || unit == "min") mult = 60'000;
    else if (unit == "h" || unit == "hour" || unit == "hours") mult = 3'600'000;
    else if (unit == "d" || unit == "day") mult = 86'400'000;
    if (ec != std::errc() || mult == 0 || n <= 0)
      return core::invalid_argument("has \"" + std::string(item) +
                                    "\", not a window (1min, 5min, 15min, 30min, 1hour, or a number with ms, s, m, h or d)");
    if (n > 86'400'000 / mult) return core::invalid_argument("has \"" + std::string(item) + "\", longer than 24 h");
    for (auto& w : out)
      if (w.ms == n * mult) return core::invalid_argument("has \"" + std::string(item) + "\", the same as " + w.name);
    out.push_back({std::string(item), n * mult});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.ms < b.ms; });
  return out;
}

// ---- SeenSet ----

bool SeenSet::contains(uint64_t fp) const {
  if (table_.empty()) return false;
  size_t m = table_.size() - 1;
  for (size_t i = fp & m;; i = (i + 1) & m) {
    if (table_[i] == fp) return true;
    if (table_[i] == 0) return false;
  }
}

void SeenSet::put(uint64_t fp) {
  size_t m = table_.size() - 1;
  size_t i = fp & m;
  while (table_[i] != 0) i = (i + 1) & m;
  table_[i] = fp;
  ++used_;
}

// Backward-shift deletion: later entries of the probe run move up, so no tombstones pile up.
void SeenSet::erase(uint64_t fp) {
  if (table_.empty()) return;
  size_t m = table_.size() - 1;
  size_t i = fp & m;
  while (table_[i] != fp) {
    if (table_[i] == 0) return;
    i = (i + 1) & m;
  }
  for (size_t j = i;;) {
    j = (j + 1) & m;
    if (table_[j] == 0) break;
    size_t k = table_[j] & m;  // where that entry would like to be
    bool stays = i < j ? (k > i && k <= j) : (k > i || k <= j);
    if (!stays) {
      table_[i] = table_[j];
      i = j;
    }
  }
  table_[i] = 0;
  --used_;
}

void SeenSet::resize(size_t cap) {
  std::vector<uint64_t> old;
  old.swap(table_);
  table_.assign(cap, 0);
  used_ = 0;
  for (uint64_t v : old)
    if (v) put(v);
}

bool SeenSet::insert(uint64_t fp, int64_t bucket_t) {
  if (fp == 0) fp = 1;  // 0 marks an empty slot
  if (contains(fp)) return false;
  if ((used_ + 1) * 2 > table_.size()) resize(std::max<size_t>(16, table_.size() * 2));
  put(fp);
  fifo_.push_back(fp);
  if (runs_.empty() || runs_.back().t != bucket_t) runs_.push_back({bucket_t, 1});
  else ++runs_.back().n;
  return true;
}

void SeenSet::expire_before(int64_t t) {
  bool any = false;
  while (!runs_.empty() && runs_.front().t < t) {
    for (uint32_t i = 0; i < runs_.front().n; ++i) {
      erase(fifo_.front());
      fifo_.pop_front();
    }
    runs_.pop_front();
    any = true;
  }
  if (!any) return;
  if (used_ == 0) {
    std::vector<uint64_t>().swap(table_);  // an idle token gives its memory back
    fifo_.shrink_to_fit();
  } else if (table_.size() > 16 && used_ * 8 < table_.size()) {
    size_t cap = 16;
    while (cap < used_ * 2) cap *= 2;
    resize(cap);
  }
}

size_t SeenSet::memory_bytes() const {
  return table_.capacity() * sizeof(uint64_t) + fifo_.size() * sizeof(uint64_t) + runs_.size() * sizeof(Run);
}

// ---- TokenWindows ----

void TokenWindows::Sums::add(const Bucket& b, double sign) {
  int64_t s = sign > 0 ? 1 : -1;
  n_sell += s * b.n_sell;
  n_buy += s * b.n_buy;
  sell_vol += sign * b.sell_vol;
  buy_vol += sign * b.buy_vol;
  usd += sign * b.usd;
  tok += sign * b.tok;
}

void TokenWindows::add_trade(Sums& s, const Trade& t, double usd) {
  if (t.sell) {
    ++s.n_sell;
    s.sell_vol += t.native_amount;
  } else {
    ++s.n_buy;
    s.buy_vol += t.native_amount;
  }
  s.usd += usd;
  s.tok += t.token_amount;
}

TokenWindows::TokenWindows(Options o) : o_(o), win_(o.windows->size()) {}

namespace {
int64_t floor_to(int64_t t, int64_t res) {
  int64_t q = t / res;
  if (t % res != 0 && t < 0) --q;
  return q * res;
}
}  // namespace

void TokenWindows::push_queues(uint64_t abs) {
  const Bucket& b = buckets_[pos(abs)];
  if (!maxq_.empty() && maxq_.back() == abs) maxq_.pop_back();
  while (!maxq_.empty() && buckets_[pos(maxq_.back())].high <= b.high) maxq_.pop_back();
  maxq_.push_back(abs);
  if (!minq_.empty() && minq_.back() == abs) minq_.pop_back();
  while (!minq_.empty() && buckets_[pos(minq_.back())].low >= b.low) minq_.pop_back();
  minq_.push_back(abs);
}

TokenWindows::Added TokenWindows::add(const Trade& t, int64_t now_ms) {
  const auto& ws = *o_.windows;
  int64_t bt = floor_to(t.t_ms, o_.resolution_ms);
  if (bt < now_ms - ws.back().ms) return Added::kTooOld;
  if (t.t_ms > now_ms + o_.max_future_ms) return Added::kTooNew;
  // First, so the seen set no longer holds what left the longest window (a no-op when a batch's
  // trades share their `now`, the common case: then nothing can have expired since).
  if (now_ms != advanced_to_) advance(now_ms);
  if (o_.dedup && !seen_.insert(t.tx_fp, bt)) return Added::kDuplicate;
  last_trade_ms_ = std::max(last_trade_ms_, now_ms);
  double p = t.price_usd, usd = t.token_amount * t.price_usd;

  if (buckets_.empty() || bt > buckets_.back().t) {
    Bucket b{bt, t.seq, t.seq, p, p, p, p, 0, 0, 0, 0, 0, 0};
    (t.sell ? b.sell_vol : b.buy_vol) = t.native_amount;
    (t.sell ? b.n_sell : b.n_buy) = 1;
    b.usd = usd;
    b.tok = t.token_amount;
    buckets_.push_back(b);
    for (size_t i = 0; i < ws.size(); ++i) {
      if (bt >= now_ms - ws[i].ms) add_trade(win_[i].sums, t, usd);
      else win_[i].first = end();  // newer than every bucket, yet already outside this window
    }
    push_queues(end() - 1);
    return Added::kApplied;
  }

  // Into an existing bucket (the newest, on a stream in time order), or a late one.
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), bt, [](const Bucket& b, int64_t v) { return b.t < v; });
  if (it == buckets_.end() || it->t != bt) {
    Bucket b{bt, t.seq, t.seq, p, p, p, p, 0, 0, 0, 0, 0, 0};
    (t.sell ? b.sell_vol : b.buy_vol) = t.native_amount;
    (t.sell ? b.n_sell : b.n_buy) = 1;
    b.usd = usd;
    b.tok = t.token_amount;
    buckets_.insert(it, b);
    rebuild(now_ms);
    return Added::kApplied;
  }
  Bucket& b = *it;
  uint64_t abs = base_ + static_cast<uint64_t>(it - buckets_.begin());
  if (t.sell) {
    ++b.n_sell;
    b.sell_vol += t.native_amount;
  } else {
    ++b.n_buy;
    b.buy_vol += t.native_amount;
  }
  b.usd += usd;
  b.tok += t.token_amount;
  if (t.seq < b.open_seq) b.open_seq = t.seq, b.open = p;
  if (t.seq > b.close_seq) b.close_seq = t.seq, b.close = p;
  bool moved = false;
  if (p > b.high) b.high = p, moved = true;
  if (p < b.low) b.low = p, moved = true;
  for (size_t i = 0; i < ws.size(); ++i)
    if (win_[i].first <= abs) add_trade(win_[i].sums, t, usd);
  if (moved) {
    if (abs == end() - 1) push_queues(abs);
    else rebuild(now_ms);
  }
  return Added::kApplied;
}

bool TokenWindows::advance(int64_t now_ms) {
  advanced_to_ = now_ms;
  const auto& ws = *o_.windows;
  bool changed = false;
  for (size_t i = 0; i < ws.size(); ++i) {
    Window& w = win_[i];
    int64_t cut = now_ms - ws[i].ms;
    bool moved = false;
    while (w.first < end() && buckets_[pos(w.first)].t < cut) {
      w.sums.add(buckets_[pos(w.first)], -1);
      ++w.first;
      moved = true;
    }
    if (moved && w.first == end()) w.sums = Sums{};  // exactly zero, whatever rounding left
    changed |= moved;
  }
  // The longest window starts earliest: what is before it is in no window.
  uint64_t keep = win_.back().first;
  while (base_ < keep) {
    buckets_.pop_front();
    ++base_;
  }
  while (!maxq_.empty() && maxq_.front() < base_) maxq_.pop_front();
  while (!minq_.empty() && minq_.front() < base_) minq_.pop_front();
  if (o_.dedup) seen_.expire_before(now_ms - ws.back().ms);
  if (buckets_.empty() && changed) {
    std::deque<Bucket>().swap(buckets_);  // an idle token gives its memory back
    std::deque<uint64_t>().swap(maxq_);
    std::deque<uint64_t>().swap(minq_);
  }
  return changed;
}

void TokenWindows::rebuild(int64_t now_ms) {
  const auto& ws = *o_.windows;
  for (size_t i = 0; i < ws.size(); ++i) {
    Window& w = win_[i];
    w = Window{};
    int64_t cut = now_ms - ws[i].ms;
    w.first = end();
    for (size_t k = 0; k < buckets_.size(); ++k) {
      if (buckets_[k].t >= cut) {
        if (w.first == end()) w.first = base_ + k;
        w.sums.add(buckets_[k], 1);
      }
    }
  }
  maxq_.clear();
  minq_.clear();
  for (uint64_t a = base_; a < end(); ++a) push_queues(a);
}

uint64_t TokenWindows::first_in(const std::deque<uint64_t>& q, uint64_t first) const {
  auto it = std::lower_bound(q.begin(), q.end(), first);
  return it == q.end() ? end() : *it;
}

Aggregate TokenWindows::aggregate(size_t i) const {
  Aggregate a;
  const Window& w = win_[i];
  if (w.first >= end()) return a;
  const Sums& s = w.sums;
  a.sell_count = s.n_sell;
  a.buy_count = s.n_buy;
  a.total_trades = s.n_sell + s.n_buy;
  a.sell_volume = s.sell_vol;
  a.buy_volume = s.buy_vol;
  a.total_volume = s.sell_vol + s.buy_vol;
  a.volume_usd = s.usd;
  a.open_price = buckets_[pos(w.first)].open;
  a.close_price = buckets_.back().close;
  a.high = buckets_[pos(first_in(maxq_, w.first))].high;
  a.low = buckets_[pos(first_in(minq_, w.first))].low;
  a.vwap = s.tok > 0 ? s.usd / s.tok : 0;
  a.price_change = a.open_price > 0 ? (a.close_price - a.open_price) / a.open_price * 100 : 0;
  return a;
}

size_t TokenWindows::memory_bytes() const {
  return sizeof(*this) + buckets_.size() * sizeof(Bucket) + (maxq_.size() + minq_.size()) * sizeof(uint64_t) +
         win_.capacity() * sizeof(Window) + seen_.memory_bytes();
}

}  // namespace gantry::trades
