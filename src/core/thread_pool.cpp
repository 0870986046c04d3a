#include "core/thread_pool.h"

#include <pthread.h>

#include <exception>

#include "core/log.h"
#include "core/metrics.h"

namespace gantry::core {

namespace {
log::Logger thread_pool_log("thread_pool");
}

ThreadPool::ThreadPool(int threads, std::string name, size_t max_queued)
    : name_(std::move(name)), max_queued_(max_queued ? max_queued : 1) {
  if (threads < 1) threads = 1;
  std::lock_guard lk(mu_);  // the threads wait for ids_ to be complete before their first look at it
  live_ = threads;
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { loop(); });
    ids_.push_back(threads_.back().get_id());
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  }
}

ThreadPool::~ThreadPool() { stop(); }

bool ThreadPool::post(std::function<void()> job) {
  {
    std::lock_guard lk(mu_);
    if (stopping_ || jobs_.size() >= max_queued_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

bool ThreadPool::on_pool_thread() const {
  for (auto& id : ids_)
    if (id == std::this_thread::get_id()) return true;
  return false;
}

void ThreadPool::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  bool own = on_pool_thread();
  for (auto& t : threads) {
    // A job stopping its own pool cannot join itself: its thread is let go, finishes the job,
    // helps drain the queue and leaves loop(), which is the last time it touches the pool.
    if (t.get_id() == std::this_thread::get_id())
      t.detach();
    else if (t.joinable())
      t.join();
  }
  if (!own) {  // a thread an earlier stop() let go may still be finishing
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return live_ == 0; });
  }
}

size_t ThreadPool::queued() const {
  std::lock_guard lk(mu_);
  return jobs_.size();
}

void ThreadPool::loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) {  // stopping and drained
        --live_;
        cv_.notify_all();  // under mu_: a stop() waiting for live_ == 0 cannot free the pool before we let go
        return;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      metrics::Registry::global().counter("thread_pool_job_failures_total", "Pool jobs that threw.", {"pool"})
          .with({name_}).inc();
      thread_pool_log.error("job threw; the pool goes on", {{"pool", name_}, {"error", e.what()}});
    } catch (...) {
      metrics::Registry::global().counter("thread_pool_job_failures_total", "Pool jobs that threw.", {"pool"})
          .with({name_}).inc();
      thread_pool_log.error("job threw; the pool goes on", {{"pool", name_}, {"error", "unknown exception"}});
    }
  }
}

ThreadPool& blocking_pool() {
  // Never destroyed: static destruction would join threads that may still be serving work
  // started by other statics' destructors; at exit the threads simply end with the process.
  static ThreadPool* pool = new ThreadPool(8, "blocking", 1024);
  return *pool;
}

}  // namespace gantry::core
