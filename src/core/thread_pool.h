// A fixed set of threads running submitted jobs in submission order, for blocking work that
// must not run on an io_context thread (libcurl fetches, blocking database calls).
//
// post() never blocks and never runs the job inline: it refuses (returns false) when
// `max_queued` jobs are already waiting or after stop(), so a caller can answer "busy" or
// "shutting down" instead of growing memory or leaving a client hanging. stop() lets queued
// jobs finish, then joins; called from one of the pool's own jobs it stops the pool without
// joining the calling thread (which finishes its job and exits); a later stop() or the destructor from
// elsewhere waits for that thread too. Never destroy the pool from one of its own jobs. A job that throws is logged
// and counted in thread_pool_job_failures_total{pool}; the pool keeps its thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gantry::core {

class ThreadPool {
 public:
  static constexpr size_t kDefaultMaxQueued = 10'000;

  explicit ThreadPool(int threads, std::string name = "pool", size_t max_queued = kDefaultMaxQueued);
  ~ThreadPool();  // stop()
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  bool post(std::function<void()> job);
  void stop();
  size_t queued() const;
  size_t max_queued() const { return max_queued_; }
  // True on one of this pool's threads.
  bool on_pool_thread() const;

 private:
  void loop();

  std::string name_;
  size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  int live_ = 0;  // threads still in loop(), detached ones included
  std::vector<std::thread::id> ids_;  // set in the constructor, then only read
  std::vector<std::thread> threads_;
};

// The process's pool for blocking work started from coroutines (co_offload): 8 threads, at
// most 1,024 jobs waiting. Created on first use and never destroyed (a job running at exit is
// cut short with the process; stop work that must finish before returning from main).
ThreadPool& blocking_pool();

}  // namespace gantry::core
