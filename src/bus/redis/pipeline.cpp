#include "bus/redis/pipeline.h"

#include <hiredis/hiredis.h>

#include "core/log.h"

namespace gantry::bus::redis {

using core::Code;
namespace resilience = core::resilience;

namespace {
const core::log::Logger lg("redis.pipeline");
}

Pipeline::Pipeline(Endpoint e, PipelineOptions o)
    : ep_(std::move(e)),
      o_(std::move(o)),
      breaker_(o_.breaker, resilience::BreakerRegistry::preset("redis")) {
  if (o_.max_in_flight == 0) o_.max_in_flight = 1;
}

Pipeline::~Pipeline() {
  if (c_) redisFree(c_);
}

void Pipeline::add(std::initializer_list<std::string_view> args) {
  for (auto a : args) {
    args_.append(a.data(), a.size());
    arg_lens_.push_back(a.size());
  }
  lens_.push_back(args.size());
}

void Pipeline::add(const std::vector<std::string>& args) {
  for (auto& a : args) {
    args_.append(a);
    arg_lens_.push_back(a.size());
  }
  lens_.push_back(args.size());
}

void Pipeline::drop() {
  if (c_) redisFree(c_);
  c_ = nullptr;
}

Status Pipeline::ensure_connected() {
  if (c_) return {};
  auto now = core::Clock::real().now();
  if (backoff_ && now < next_attempt_)
    return Status(Code::kUnavailable, "reconnecting to " + ep_.describe() + " (waiting out the backoff)", "redis.pipeline");
  auto c = breaker_.call([&]() -> Result<redisContext*> { return detail::connect(ep_); });
  if (!c.is_ok()) {
    if (!backoff_) backoff_.emplace(o_.reconnect, core::Clock::real(), core::Random::real());
    auto wait = backoff_->next(c.status());
    next_attempt_ = core::Clock::real().now() + (wait.is_ok() ? *wait : std::chrono::nanoseconds(o_.reconnect.max_delay));
    if (backoff_->attempts() % 20 == 1) lg.warn("cannot reach Redis; retrying", {{"error", c.status().to_string()}});
    return c.status();
  }
  c_ = *c;
  if (ever_connected_) {
    ++reconnects_;
    lg.info("reconnected", {{"redis", ep_.describe()}});
  }
  ever_connected_ = true;
  backoff_.reset();
  return {};
}

template <class OnReply>
Status Pipeline::send_all(OnReply&& on_reply) {
  std::string args;
  std::vector<size_t> arg_lens, lens;
  args.swap(args_);
  arg_lens.swap(arg_lens_);
  lens.swap(lens_);
  // The queue's buffers go back empty but with their capacity: the next batch of the same size
  // allocates (and page-faults) nothing.
  struct Reuse {
    Pipeline& p;
    std::string& a;
    std::vector<size_t>& al;
    std::vector<size_t>& l;
    ~Reuse() {
      a.clear();
      al.clear();
      l.clear();
      if (p.args_.empty()) p.args_.swap(a);
      if (p.arg_lens_.empty()) p.arg_lens_.swap(al);
      if (p.lens_.empty()) p.lens_.swap(l);
    }
  } reuse{*this, args, arg_lens, lens};
  if (lens.empty()) return {};
  GANTRY_RETURN_IF_ERROR(ensure_connected());
  auto p = breaker_.acquire();
  if (!p.is_ok()) return p.status();
  std::vector<const char*> argv;
  size_t arg = 0, offset = 0;  // next argument to send, and its place in `args`
  auto fail = [&](const char* what) -> Status {
    Status s(Code::kUnavailable, std::string(what) + ": " + c_->errstr + " (" + ep_.describe() + ")", "redis.pipeline");
    drop();
    p->failure();
    return s;
  };
  for (size_t sent = 0; sent < lens.size();) {
    size_t window = std::min(o_.max_in_flight, lens.size() - sent);
    for (size_t i = 0; i < window; ++i) {
      size_t n = lens[sent + i];
      argv.clear();
      for (size_t k = 0; k < n; ++k) {
        argv.push_back(args.data() + offset);
        offset += arg_lens[arg + k];
      }
      if (redisAppendCommandArgv(c_, static_cast<int>(n), argv.data(), arg_lens.data() + arg) != REDIS_OK)
        return fail("cannot queue a command");
      arg += n;
    }
    for (size_t i = 0; i < window; ++i) {
      void* r = nullptr;
      if (redisGetReply(c_, &r) != REDIS_OK || !r) return fail("connection failed mid-batch");
      on_reply(static_cast<redisReply*>(r));
      freeReplyObject(r);
    }
    sent += window;
  }
  p->success();
  return {};
}

Result<std::vector<Reply>> Pipeline::exec() {
  std::vector<Reply> out;
  out.reserve(lens_.size());
  GANTRY_RETURN_IF_ERROR(send_all([&](redisReply* r) { out.push_back(detail::convert(r)); }));
  return out;
}

Result<Pipeline::WriteSummary> Pipeline::exec_writes() {
  WriteSummary w;
  w.commands = lens_.size();
  GANTRY_RETURN_IF_ERROR(send_all([&](redisReply* r) {
    if (r->type != REDIS_REPLY_ERROR) return;
    if (w.errors++ == 0) w.first_error.assign(r->str, r->len);
  }));
  return w;
}

}  // namespace gantry::bus::redis
