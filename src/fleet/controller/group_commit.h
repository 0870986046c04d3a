// Group commit: callers submit rows and are told when their row is durable; one thread writes
// everything queued since its last write in one transaction. Under load a batch grows to what
// arrived during the previous commit, so throughput scales with the batch while an idle system
// still commits each row at once (no artificial delay).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/status.h"

namespace gantry::fleet::controller {

template <class Row>
class GroupCommit {
 public:
  using Write = std::function<core::Status(std::span<const Row>)>;
  using Done = std::function<void(const core::Status&)>;

  GroupCommit(Write write, size_t max_batch, std::function<void(size_t)> on_batch = {})
      : write_(std::move(write)), max_batch_(max_batch), on_batch_(std::move(on_batch)), thread_([this] { loop(); }) {}
  ~GroupCommit() { stop(); }

  // Returns false (done not called) once stopped.
  bool submit(Row row, Done done) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return false;
      rows_.push_back(std::move(row));
      dones_.push_back(std::move(done));
    }
    cv_.notify_one();
    return true;
  }

  // Writes what is queued, then ends the thread.
  void stop() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::vector<Row> rows;
    std::vector<Done> dones;
    for (;;) {
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !rows_.empty(); });
        if (rows_.empty()) return;
        size_t n = std::min(rows_.size(), max_batch_);
        rows.assign(std::make_move_iterator(rows_.begin()), std::make_move_iterator(rows_.begin() + n));
        dones.assign(std::make_move_iterator(dones_.begin()), std::make_move_iterator(dones_.begin() + n));
        rows_.erase(rows_.begin(), rows_.begin() + n);
        dones_.erase(dones_.begin(), dones_.begin() + n);
      }
      core::Status s = write_(rows);
      if (on_batch_) on_batch_(rows.size());
      for (auto& d : dones) d(s);
      rows.clear();
      dones.clear();
    }
  }

  Write write_;
  size_t max_batch_;
  std::function<void(size_t)> on_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Row> rows_;
  std::vector<Done> dones_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gantry::fleet::controller
