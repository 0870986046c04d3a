// Splits N items into batches of at most `max_batch_size` and runs each batch as one
// operation (through a ParallelManager, `parallel_batches` at a time), with `batch_timeout`
// per batch. Every item gets exactly one Status: what its batch said for it, the batch's own
// failure when the batch failed as a whole or timed out, or kInternal when a batch answered
// the wrong number of results. Log tag [BATCH].
//
//   auto rep = run_batches(instance_ids, {.max_batch_size = 25},
//       [&](std::span<const std::string> ids, const OpContext& ctx) { return ec2.start(ids, ctx.deadline); });
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/resilience/parallel.h"

namespace gantry::core::resilience {

struct BatchOptions {
  std::string name = "batch";
  size_t max_batch_size = 10;
  std::chrono::milliseconds batch_timeout{300'000};
  int parallel_batches = 1;
};

struct BatchReport {
  std::vector<Status> items;  // one per item, in order
  size_t batches = 0;
  int succeeded = 0, failed = 0;  // items
  Duration wall{};
};

// fn(begin, end, ctx) handles items [begin, end) and returns one Status per item, or a single
// failing Status for the whole batch (in a vector of size 1 with end - begin > 1 it is taken
// to apply to all items).
using BatchFn = std::function<std::vector<Status>(size_t begin, size_t end, const OpContext& ctx)>;
BatchReport run_batches(size_t n_items, const BatchOptions& o, const BatchFn& fn, const Clock& clock = Clock::real());

template <class Item, class F>
BatchReport run_batches(const std::vector<Item>& items, const BatchOptions& o, F&& fn, const Clock& clock = Clock::real()) {
  return run_batches(
      items.size(), o,
      [&](size_t b, size_t e, const OpContext& ctx) { return fn(std::span<const Item>(items.data() + b, e - b), ctx); },
      clock);
}

}  // namespace gantry::core::resilience
