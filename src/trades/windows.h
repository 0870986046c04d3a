// One token's rolling windows (spec trades.md, "Aggregates per token and window").
//
// Trades are kept as buckets of `resolution` (1 s by default, the wire format's own
// resolution): a bucket holds its trades' counts and sums, its first and last trade's price (by
// stream order) and its high and low. A trade belongs to window w at time `now` when its
// bucket starts at or after now − w (the original's IsWithinWindow, exact for whole-second
// TransTimes; a trade with a fraction counts from the start of its second).
//
// Costs, as promised by the spec: a trade in time order is O(windows) (each window's sums
// updated, one amortised push on the high and low monotonic queues); expiry is O(windows)
// amortised per bucket; reading a window's high or low is a binary search in the queue. The
// queues serve every window at once: a window's high is the first queue entry inside it, since
// an entry stays in the queue exactly while no later bucket is higher. A trade older than the
// newest bucket (arrived out of order) updates its bucket in place; when that moves a bucket's
// high or low, or needs a new bucket in the middle, the token's derived state is rebuilt from
// its buckets (O(buckets)), which is rare on a stream in time order.
//
// Not thread-safe: a token belongs to one shard thread.
#pragma once

#include <climits>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "trades/trade.h"

namespace gantry::trades {

struct WindowSpec {
  std::string name;  // as written in TIME_WINDOWS ("5min"); the key in every output
  int64_t ms = 0;
};

// "1min,5min,15min,30min,1hour" or durations ("90s", "2h", "45m", "1d"), each > 0 and ≤ 24 h,
// no two equal; sorted ascending.
core::Result<std::vector<WindowSpec>> parse_windows(std::string_view text);
std::string default_windows();

struct Aggregate {
  int64_t sell_count = 0, buy_count = 0, total_trades = 0;
  double sell_volume = 0, buy_volume = 0, total_volume = 0, volume_usd = 0;
  double open_price = 0, close_price = 0, high = 0, low = 0, vwap = 0, price_change = 0;
};

// Fingerprints of the TxHashes seen within the longest window: an open-addressing set (load ≤
// 1/2, shrinking when mostly empty) and the order they expire in.
class SeenSet {
 public:
  bool insert(uint64_t fp, int64_t bucket_t);  // false: already there
  void expire_before(int64_t t);
  size_t size() const { return fifo_.size(); }
  size_t memory_bytes() const;

 private:
  bool contains(uint64_t fp) const;
  void put(uint64_t fp);
  void erase(uint64_t fp);
  void resize(size_t cap);
  std::vector<uint64_t> table_;  // 0 = empty slot
  size_t used_ = 0;
  std::deque<uint64_t> fifo_;
  struct Run {
    int64_t t;
    uint32_t n;
  };
  std::deque<Run> runs_;  // fifo_ in runs of one bucket time
};

class TokenWindows {
 public:
  struct Options {
    const std::vector<WindowSpec>* windows = nullptr;  // sorted ascending, outlives this
    int64_t resolution_ms = 1000;
    bool dedup = true;
    // A trade further ahead of now_ms is refused: held, it would sit in every window (and be
    // their close) until the clock reached it.
    int64_t max_future_ms = 60'000;
  };
  enum class Added { kApplied, kDuplicate, kTooOld, kTooNew };

  explicit TokenWindows(Options o);

  // Expires to `now_ms`, then applies the trade. Too old: before the longest window; too new:
  // more than max_future_ms ahead of now_ms.
  Added add(const Trade& t, int64_t now_ms);
  // Expires what left the windows by now_ms; true when any window changed.
  bool advance(int64_t now_ms);
  Aggregate aggregate(size_t window) const;
  bool empty() const { return buckets_.empty(); }
  int64_t last_trade_ms() const { return last_trade_ms_; }
  size_t memory_bytes() const;
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    int64_t t;
    uint64_t open_seq, close_seq;
    double open, close, high, low;
    double sell_vol, buy_vol, usd, tok;
    uint32_t n_sell, n_buy;
  };
  struct Sums {
    int64_t n_sell = 0, n_buy = 0;
    double sell_vol = 0, buy_vol = 0, usd = 0, tok = 0;
    void add(const Bucket& b, double sign);
  };
  struct Window {
    uint64_t first = 0;  // absolute index of the oldest bucket inside
    Sums sums;
  };
  static void add_trade(Sums& s, const Trade& t, double usd);
  void push_queues(uint64_t abs);
  void rebuild(int64_t now_ms);
  size_t pos(uint64_t abs) const { return static_cast<size_t>(abs - base_); }
  uint64_t end() const { return base_ + buckets_.size(); }
  // The first entry of a queue whose bucket is at or after `first`; end() when none.
  uint64_t first_in(const std::deque<uint64_t>& q, uint64_t first) const;

  Options o_;
  std::deque<Bucket> buckets_;  // ascending by t
  uint64_t base_ = 0;           // absolute index of buckets_.front()
  std::vector<Window> win_;
  std::deque<uint64_t> maxq_, minq_;  // absolute indices, highs descending / lows ascending
  SeenSet seen_;
  int64_t last_trade_ms_ = 0;
  int64_t advanced_to_ = INT64_MIN;  // the `now` of the last advance()
};

}  // namespace gantry::trades
