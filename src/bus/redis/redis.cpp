#include "bus/redis/redis.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <charconv>
#include <cstring>
#include <optional>

#include "core/log.h"

namespace gantry::bus::redis {

using core::Code;

namespace {
const core::log::Logger redis_log("redis");

timeval to_timeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

}  // namespace

namespace detail {
Reply convert(const redisReply* r) {
  Reply out;
  if (!r) return out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = Reply::kString; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = Reply::kStatus; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = Reply::kError; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = Reply::kInteger; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::kArray;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    default: break;
  }
  return out;
}

// Connects, authenticates and selects the database.
Result<redisContext*> connect(const Endpoint& ep) {
  timeval tv = to_timeval(ep.timeout);
  redisContext* c = redisConnectWithTimeout(ep.host.c_str(), ep.port, tv);
  if (!c) return Status(Code::kUnavailable, "out of memory", "redis.connect");
  if (c->err) {
    Status s(Code::kUnavailable, std::string(c->errstr) + " (" + ep.describe() + ")", "redis.connect");
    redisFree(c);
    return s;
  }
  redisSetTimeout(c, tv);
  auto simple = [&](std::initializer_list<std::string_view> args) -> Status {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (auto a : args) argv.push_back(a.data()), lens.push_back(a.size());
    auto* r = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!r) return Status(Code::kUnavailable, c->errstr, "redis.connect");
    Status s;
    if (r->type == REDIS_REPLY_ERROR) s = Status(Code::kPermissionDenied, std::string(r->str, r->len), "redis.connect");
    freeReplyObject(r);
    return s;
  };
  Status s;
  if (!ep.user.empty()) s = simple({"AUTH", ep.user, ep.password});
  else if (!ep.password.empty()) s = simple({"AUTH", ep.password});
  if (s.is_ok() && ep.db != 0) s = simple({"SELECT", std::to_string(ep.db)});
  if (!s.is_ok()) {
    redisFree(c);
    return s;
  }
  return c;
}
}  // namespace detail

namespace {
using detail::connect;
using detail::convert;

}  // namespace

Connection::~Connection() {
  if (c_) redisFree(c_);
}

Connection::Connection(Endpoint e, std::string breaker)
    : ep_(std::move(e)), breaker_(std::move(breaker), core::resilience::BreakerRegistry::preset("redis")) {}

Status Connection::ensure_connected() {
  if (c_) return {};
  auto c = breaker_.call([&] { return connect(ep_); });
  if (!c.is_ok()) return c.status();
  c_ = *c;
  return {};
}

Result<Reply> Connection::command(std::initializer_list<std::string_view> args) {
  GANTRY_RETURN_IF_ERROR(ensure_connected());
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (auto a : args) argv.push_back(a.data()), lens.push_back(a.size());
  auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (!r) {
    // The context is unusable after an I/O error: drop it, the next command reconnects.
    Status s(Code::kUnavailable, std::string(c_->errstr) + " (" + ep_.describe() + ")", "redis");
    redisFree(c_);
    c_ = nullptr;
    return s;
  }
  Reply out = convert(r);
  freeReplyObject(r);
  return out;
}

Status Connection::ping() {
  auto r = command({"PING"});
  if (!r.is_ok()) return r.status();
  if (r->type != Reply::kStatus || r->str != "PONG") return Status(Code::kUnavailable, "unexpected PING reply: " + r->str, "redis");
  return {};
}

Result<int64_t> Connection::publish(std::string_view channel, std::string_view message) {
  auto r = command({"PUBLISH", channel, message});
  if (!r.is_ok()) return r.status();
  if (r->type != Reply::kInteger) return Status(Code::kInternal, "PUBLISH answered " + r->str, "redis");
  return r->integer;
}

core::resilience::RetryPolicy Subscriber::reconnect_policy() { return core::resilience::RetryPolicy::reconnect(); }

Subscriber::Subscriber(Endpoint e, std::vector<std::string> channels, Handlers h, core::resilience::RetryPolicy backoff,
                       std::chrono::milliseconds ping_every)
    : ep_(std::move(e)),
      channels_(std::move(channels)),
      h_(std::move(h)),
      backoff_(std::move(backoff)),
      ping_every_(ping_every),
      breaker_("redis:subscribe", core::resilience::BreakerRegistry::preset("redis")) {}

Subscriber::~Subscriber() { stop(); }

void Subscriber::start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { loop(); });
}

void Subscriber::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Subscriber::loop() {
  std::optional<core::resilience::Backoff> b;
  while (!stop_) {
    Status s = session();
    if (stop_) break;
    // A connection that was up starts the backoff over; failed attempts in a row grow it.
    if (connected_.exchange(false)) {
      b.reset();
      if (h_.on_disconnected) h_.on_disconnected(s);
    }
    if (!b) b.emplace(backoff_, core::Clock::real(), core::Random::real());
    auto wait = b->next(Status(Code::kUnavailable, std::string(s.message())));
    auto d = wait.is_ok() ? *wait : std::chrono::duration_cast<core::Duration>(backoff_.max_delay);
    redis_log.warn("subscriber disconnected; reconnecting", {{"endpoint", ep_.describe()}, {"error", s.to_string()},
                                                      {"retry_in_ms", core::log::ms(d)}});
    // Sleep in short steps so stop() is prompt.
    for (auto left = d; left > core::Duration::zero() && !stop_; left -= std::chrono::milliseconds(50))
      std::this_thread::sleep_for(std::min<core::Duration>(left, std::chrono::milliseconds(50)));
    ++reconnects_;
  }
  connected_ = false;
}

Status Subscriber::session() {
  auto cr = breaker_.call([&] { return connect(ep_); });
  if (!cr.is_ok()) return cr.status();
  std::unique_ptr<redisContext, decltype(&redisFree)> c(*cr, &redisFree);
  std::vector<const char*> argv{"SUBSCRIBE"};
  std::vector<size_t> lens{9};
  for (auto& ch : channels_) argv.push_back(ch.c_str()), lens.push_back(ch.size());
  if (redisAppendCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK)
    return Status(Code::kUnavailable, c->errstr, "redis.subscribe");
  int done = 0;
  while (!done) {
    if (redisBufferWrite(c.get(), &done) != REDIS_OK) return Status(Code::kUnavailable, c->errstr, "redis.subscribe");
  }
  size_t confirmed = 0;
  using clock = std::chrono::steady_clock;
  auto last_heard = clock::now();
  // When a PING is outstanding (time_point{} = none); not an optional, which GCC 12 misreads
  // as maybe-uninitialized.
  clock::time_point ping_sent{};
  while (!stop_) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(c.get(), &raw) != REDIS_OK) return Status(Code::kUnavailable, c->errstr, "redis.subscribe");
    if (!raw) {
      auto now = clock::now();
      if (ping_sent != clock::time_point{} && now - ping_sent > ep_.timeout)
        return Status(Code::kUnavailable, "no answer to PING within " + std::to_string(ep_.timeout.count()) + " ms",
                      "redis.subscribe");
      if (ping_sent == clock::time_point{} && now - last_heard > ping_every_) {
        const char* ping[] = {"PING"};
        size_t len[] = {4};
        int sent = 0;
        if (redisAppendCommandArgv(c.get(), 1, ping, len) != REDIS_OK) return Status(Code::kUnavailable, c->errstr, "redis.subscribe");
        while (!sent)
          if (redisBufferWrite(c.get(), &sent) != REDIS_OK) return Status(Code::kUnavailable, c->errstr, "redis.subscribe");
        ping_sent = now;
      }
      // Nothing buffered: wait for data in short slices so stop() is noticed.
      pollfd p{c->fd, POLLIN, 0};
      int n = ::poll(&p, 1, 50);
      if (n < 0 && errno != EINTR) return Status(Code::kUnavailable, std::strerror(errno), "redis.subscribe");
      if (n > 0 && redisBufferRead(c.get()) != REDIS_OK) return Status(Code::kUnavailable, c->errstr, "redis.subscribe");
      continue;
    }
    last_heard = clock::now();
    std::unique_ptr<redisReply, decltype(&freeReplyObject)> r(static_cast<redisReply*>(raw), &freeReplyObject);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) continue;
    std::string_view kind(r->element[0]->str, r->element[0]->len);
    if (kind == "pong") {  // in subscribed mode PING answers ["pong", ""]
      ping_sent = {};
      continue;
    }
    if (r->elements < 3) continue;
    if (kind == "subscribe") {
      if (++confirmed == channels_.size()) {
        connected_ = true;
        redis_log.info("subscribed", {{"endpoint", ep_.describe()}, {"channels", static_cast<long long>(channels_.size())}});
        if (h_.on_connected) h_.on_connected();
      }
    } else if (kind == "message" && h_.on_message) {
      h_.on_message(std::string_view(r->element[1]->str, r->element[1]->len),
                    std::string_view(r->element[2]->str, r->element[2]->len));
    }
  }
  return {};
}

}  // namespace gantry::bus::redis
