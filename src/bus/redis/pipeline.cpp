#include "bus/redis/pipeline.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "core/log.h"

namespace gantry::bus::redis {

using core::Code;
namespace resilience = core::resilience;

namespace {
const core::log::Logger pipeline_log("redis.pipeline");

// exec_writes' reader functions: every reply is the same non-null token; an error reply's text
// is kept in the tally (the reader's privdata).
struct Tally {
  size_t errors = 0;
  std::string first_error;
};
char token;
void* tally_string(const redisReadTask* t, char* s, size_t len) {
  if (t->type == REDIS_REPLY_ERROR && !t->parent) {
    auto* tally = static_cast<Tally*>(t->privdata);
    if (tally->errors++ == 0) tally->first_error.assign(s, len);
  }
  return &token;
}
void* tally_array(const redisReadTask*, int) { return &token; }
void* tally_integer(const redisReadTask*, long long) { return &token; }
void* tally_nil(const redisReadTask*) { return &token; }
void tally_free(void*) {}
redisReplyObjectFunctions tally_functions{tally_string, tally_array, tally_integer, tally_nil, tally_free};
}  // namespace

Pipeline::Pipeline(Endpoint e, PipelineOptions o)
    : ep_(std::move(e)),
      o_(std::move(o)),
      breaker_(o_.breaker, resilience::BreakerRegistry::preset("redis")) {
  if (o_.max_in_flight == 0) o_.max_in_flight = 1;
}

Pipeline::~Pipeline() {
  if (c_) redisFree(c_);
  if (tally_reader_) redisReaderFree(tally_reader_);
}

void Pipeline::begin_command(size_t args) {
  char num[24];
  out_ += '*';
  out_.append(num, std::to_chars(num, num + sizeof num, args).ptr);
  out_ += "\r\n";
}

void Pipeline::append_arg(std::string_view a) {
  char num[24];
  out_ += '$';
  out_.append(num, std::to_chars(num, num + sizeof num, a.size()).ptr);
  out_ += "\r\n";
  out_.append(a.data(), a.size());
  out_ += "\r\n";
}

void Pipeline::add(std::initializer_list<std::string_view> args) {
  begin_command(args.size());
  for (auto a : args) append_arg(a);
  ends_.push_back(out_.size());
}

void Pipeline::add(const std::vector<std::string>& args) {
  begin_command(args.size());
  for (auto& a : args) append_arg(a);
  ends_.push_back(out_.size());
}

void Pipeline::drop() {
  if (c_) redisFree(c_);
  c_ = nullptr;
  // It may hold part of a reply of the dead connection.
  if (tally_reader_) redisReaderFree(tally_reader_);
  tally_reader_ = nullptr;
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
    if (backoff_->attempts() % 20 == 1) pipeline_log.warn("cannot reach Redis; retrying", {{"error", c.status().to_string()}});
    return c.status();
  }
  c_ = *c;
  if (ever_connected_) {
    ++reconnects_;
    pipeline_log.info("reconnected", {{"redis", ep_.describe()}});
  }
  ever_connected_ = true;
  backoff_.reset();
  return {};
}

template <class OnReply>
Status Pipeline::send_all(redisReader* (Pipeline::*reader_of)(), OnReply&& on_reply, void* privdata) {
  std::string out;
  std::vector<size_t> ends;
  out.swap(out_);
  ends.swap(ends_);
  // The queue's buffers go back empty but with their capacity: the next batch of the same size
  // allocates (and page-faults) nothing.
  struct Reuse {
    Pipeline& p;
    std::string& o;
    std::vector<size_t>& e;
    ~Reuse() {
      o.clear();
      e.clear();
      if (p.out_.empty()) p.out_.swap(o);
      if (p.ends_.empty()) p.ends_.swap(e);
    }
  } reuse{*this, out, ends};
  if (ends.empty()) return {};
  GANTRY_RETURN_IF_ERROR(ensure_connected());
  auto p = breaker_.acquire();
  if (!p.is_ok()) return p.status();
  auto fail = [&](const std::string& what) -> Status {
    Status s(Code::kUnavailable, what + " (" + ep_.describe() + ")", "redis.pipeline");
    drop();
    p->failure();
    return s;
  };
  auto sys_fail = [&](const char* what) { return fail(std::string(what) + ": " + std::strerror(errno)); };
  if (in_.empty()) in_.resize(64 * 1024);
  const int fd = c_->fd;
  redisReader* reader = (this->*reader_of)();
  reader->privdata = privdata;
  const int timeout_ms = static_cast<int>(std::max<int64_t>(1, ep_.timeout.count()));
  size_t replies = 0, sent = 0;  // replies read, bytes written
  while (replies < ends.size()) {
    // Written but unanswered: at most max_in_flight commands.
    size_t limit = ends[std::min(ends.size(), replies + o_.max_in_flight) - 1];
    bool progressed = false;
    if (sent < limit) {
      ssize_t w = ::send(fd, out.data() + sent, limit - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w > 0) {
        sent += static_cast<size_t>(w);
        progressed = true;
      } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return sys_fail("connection failed mid-batch");
      }
    }
    ssize_t r = ::recv(fd, in_.data(), in_.size(), MSG_DONTWAIT);
    if (r > 0) {
      progressed = true;
      if (redisReaderFeed(reader, in_.data(), static_cast<size_t>(r)) != REDIS_OK) return fail("reply buffer");
      for (;;) {
        void* reply = nullptr;
        if (redisReaderGetReply(reader, &reply) != REDIS_OK) return fail(std::string("protocol error: ") + reader->errstr);
        if (!reply) break;
        if (replies < ends.size()) on_reply(reply);
        reader->fn->freeObject(reply);
        ++replies;
      }
    } else if (r == 0) {
      return fail("connection closed by the server mid-batch");
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      return sys_fail("connection failed mid-batch");
    }
    if (progressed) continue;
    pollfd pf{fd, static_cast<short>(POLLIN | (sent < limit ? POLLOUT : 0)), 0};
    int n = ::poll(&pf, 1, timeout_ms);
    if (n == 0) return fail("no reply within " + std::to_string(timeout_ms) + " ms");
    if (n < 0 && errno != EINTR) return sys_fail("poll");
  }
  p->success();
  return {};
}

redisReader* Pipeline::connection_reader() { return c_->reader; }

redisReader* Pipeline::tally_reader() {
  if (!tally_reader_) tally_reader_ = redisReaderCreateWithFunctions(&tally_functions);
  return tally_reader_;
}

Result<std::vector<Reply>> Pipeline::exec() {
  std::vector<Reply> out;
  out.reserve(ends_.size());
  GANTRY_RETURN_IF_ERROR(send_all(&Pipeline::connection_reader,
                                  [&](void* r) { out.push_back(detail::convert(static_cast<redisReply*>(r))); }));
  return out;
}

Result<Pipeline::WriteSummary> Pipeline::exec_writes() {
  Tally tally;
  WriteSummary w;
  w.commands = ends_.size();
  GANTRY_RETURN_IF_ERROR(send_all(&Pipeline::tally_reader, [&](void*) {}, &tally));
  w.errors = tally.errors;
  w.first_error = std::move(tally.first_error);
  return w;
}

}  // namespace gantry::bus::redis
