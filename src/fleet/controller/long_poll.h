// Held `GET /config?wait=` requests: answered with the new version the moment one is
// published, or with 304 when their wait ends or the controller shuts down. One thread
// expires them; publishing answers every holder from the publishing thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "core/http/router.h"

namespace gantry::fleet::controller {

class LongPollHub {
 public:
  using Clock = std::chrono::steady_clock;
  // What a holder is answered with: `changed` false means its wait ended (304).
  using Answer = std::function<core::http::Response(bool changed)>;

  LongPollHub();
  ~LongPollHub();  // close()

  // Holds until publish() or `until`. Returns false (not held) once closed.
  bool hold(Clock::time_point until, core::http::Responder r, Answer answer);
  // Answers every holder with answer(true).
  void publish();
  // Answers every holder with answer(false) and refuses new ones.
  void close();
  size_t holding() const;

 private:
  struct Held {
    core::http::Responder responder;
    Answer answer;
  };
  void expire_loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<Clock::time_point, Held> held_;
  bool closed_ = false;
  std::thread expirer_;
};

}  // namespace gantry::fleet::controller
