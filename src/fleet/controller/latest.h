// The latest configuration as every poll reads it: an immutable snapshot swapped atomically,
// so a published version is seen whole or not at all and readers never touch the store.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "core/json.h"
#include "fleet/controller/store.h"

namespace gantry::fleet::controller {

// The latest configuration and the parts of its answers that never change.
struct Snapshot {
  ConfigRecord rec;
  std::string body_head;  // {"id":…,"etag":…,"config":…,"poll_interval_seconds":
};

inline std::shared_ptr<const Snapshot> make_snapshot(ConfigRecord rec) {
  auto s = std::make_shared<Snapshot>();
  // Left open after the last key: each answer appends its interval and the closing brace.
  core::json::Writer(s->body_head)
      .object()
      .field("id", rec.id)
      .field("etag", rec.etag)
      .field_raw("config", rec.config_data)
      .key("poll_interval_seconds");
  s->rec = std::move(rec);
  return s;
}

// The latest configuration, read on every poll by every HTTP thread. A reader keeps a
// per-thread reference and re-reads only when the generation moved, so the common read is one
// load of a counter that is written once per published version.
class Latest {
 public:
  void store(std::shared_ptr<const Snapshot> s) {
    std::lock_guard lk(mu_);
    cur_ = std::move(s);
    gen_.fetch_add(1, std::memory_order_release);
  }
  std::shared_ptr<const Snapshot> load() const {
    std::lock_guard lk(mu_);
    return cur_;
  }
  // Valid until this thread's next call.
  const Snapshot& cached() const {
    thread_local struct {
      uint64_t owner = 0, gen = 0;
      std::shared_ptr<const Snapshot> snap;
    } c;
    uint64_t g = gen_.load(std::memory_order_acquire);
    if (c.owner != id_ || c.gen != g || !c.snap) {
      c.snap = load();
      c.owner = id_;
      c.gen = g;
    }
    return *c.snap;
  }

 private:
  static inline std::atomic<uint64_t> next_id_{1};
  const uint64_t id_ = next_id_.fetch_add(1);  // not the address: a later instance may reuse it
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> cur_;
  std::atomic<uint64_t> gen_{1};
};

}  // namespace gantry::fleet::controller
