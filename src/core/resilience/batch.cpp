#include "core/resilience/batch.h"

#include "core/log.h"

namespace gantry::core::resilience {

namespace {
const log::Logger batch_log("batch");
}

BatchReport run_batches(size_t n, const BatchOptions& o, const BatchFn& fn, const Clock& clock) {
  BatchReport rep;
  rep.items.resize(n);
  size_t size = std::max<size_t>(1, o.max_batch_size);
  rep.batches = (n + size - 1) / size;
  std::vector<Operation> ops;
  ops.reserve(rep.batches);
  for (size_t b = 0; b < rep.batches; ++b) {
    size_t begin = b * size, end = std::min(n, begin + size);
    ops.push_back({"batch " + std::to_string(b + 1) + "/" + std::to_string(rep.batches),
                   [&, begin, end](const OpContext& ctx) -> Status {
                     std::vector<Status> st = fn(begin, end, ctx);
                     if (st.size() == end - begin) {
                       for (size_t i = begin; i < end; ++i) rep.items[i] = std::move(st[i - begin]);
                       return {};
                     }
                     if (st.size() == 1 && !st[0].is_ok()) return st[0];  // the batch failed as a whole
                     return Status(Code::kInternal, "batch answered " + std::to_string(st.size()) + " results for " +
                                                         std::to_string(end - begin) + " items", o.name);
                   }});
  }
  ParallelManager pm({o.name, std::max(1, o.parallel_batches), o.batch_timeout}, clock);
  ParallelReport pr = pm.run(std::move(ops));
  for (size_t b = 0; b < rep.batches; ++b) {
    if (pr.results[b].status.is_ok()) continue;
    size_t begin = b * size, end = std::min(n, begin + size);
    for (size_t i = begin; i < end; ++i) rep.items[i] = pr.results[b].status;
  }
  for (auto& s : rep.items) (s.is_ok() ? rep.succeeded : rep.failed)++;
  rep.wall = pr.wall;
  batch_log.info("[BATCH] finished", {{"name", o.name}, {"items", static_cast<long long>(n)},
                               {"batches", static_cast<long long>(rep.batches)}, {"succeeded", rep.succeeded},
                               {"failed", rep.failed},
                               {"wall_ms", log::ms(rep.wall)}});
  return rep;
}

}  // namespace gantry::core::resilience
