// A fixed set of threads running submitted jobs in submission order, for blocking work that
// must not run on an io_context thread (libcurl fetches, blocking database calls).
//
// post() never blocks and never runs the job inline. stop() lets queued jobs finish, then
// joins; jobs posted after stop() are refused (post returns false) so a caller can answer
// "shutting down" instead of leaving a client hanging.
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
  explicit ThreadPool(int threads, std::string name = "pool");
  ~ThreadPool();  // stop()
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  bool post(std::function<void()> job);
  void stop();
  size_t queued() const;

 private:
  void loop();

  std::string name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace gantry::core
