#include "fleet/controller/long_poll.h"

#include <vector>

namespace gantry::fleet::controller {

LongPollHub::LongPollHub() : expirer_([this] { expire_loop(); }) {}

LongPollHub::~LongPollHub() {
  close();
  if (expirer_.joinable()) expirer_.join();
}

bool LongPollHub::hold(Clock::time_point until, core::http::Responder r, Answer answer) {
  std::lock_guard lk(mu_);
  if (closed_) return false;
  bool earliest = held_.empty() || until < held_.begin()->first;
  held_.emplace(until, Held{std::move(r), std::move(answer)});
  if (earliest) cv_.notify_one();
  return true;
}

void LongPollHub::publish() {
  std::multimap<Clock::time_point, Held> all;
  {
    std::lock_guard lk(mu_);
    all.swap(held_);
  }
  // Answers are sent outside the lock: each send posts to a connection's io thread.
  for (auto& [_, h] : all) h.responder.send(h.answer(true));
}

void LongPollHub::close() {
  std::multimap<Clock::time_point, Held> all;
  {
    std::lock_guard lk(mu_);
    closed_ = true;
    all.swap(held_);
  }
  cv_.notify_all();
  for (auto& [_, h] : all) h.responder.send(h.answer(false));
}

size_t LongPollHub::holding() const {
  std::lock_guard lk(mu_);
  return held_.size();
}

void LongPollHub::expire_loop() {
  std::unique_lock lk(mu_);
  while (!closed_) {
    if (held_.empty()) {
      cv_.wait(lk);
      continue;
    }
    auto first = held_.begin()->first;
    if (Clock::now() < first) {
      cv_.wait_until(lk, first);
      continue;
    }
    std::vector<Held> due;
    auto now = Clock::now();
    while (!held_.empty() && held_.begin()->first <= now) {
      due.push_back(std::move(held_.begin()->second));
      held_.erase(held_.begin());
    }
    lk.unlock();
    for (Held& h : due) h.responder.send(h.answer(false));
    lk.lock();
  }
}

}  // namespace gantry::fleet::controller
