#include "bus/amqp/amqp.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <map>

namespace gantry::bus::amqp {

using core::Code;

struct Channel::State {
  amqp_connection_state_t conn = nullptr;
  static constexpr amqp_channel_t kChannel = 1;
};

namespace {

amqp_bytes_t bytes(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }

timeval to_tv(std::chrono::milliseconds d) {
  return {static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>((d.count() % 1000) * 1000)};
}

// rabbitmq-c reports a failed TCP connect only as "a socket error occurred" (its errno is the
// non-blocking connect's EINPROGRESS). On that failure path, connect once more to learn why:
// "Connection refused" tells an operator where to look. Empty when this attempt succeeds.
std::string tcp_connect_reason(const char* host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host, std::to_string(port).c_str(), &hints, &found); rc != 0) return gai_strerror(rc);
  std::string reason;
  for (addrinfo* a = found; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      reason = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int ready = poll(&p, 1, static_cast<int>(timeout.count()));
        socklen_t len = sizeof err;
        if (ready == 0) err = ETIMEDOUT;
        else if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    close(fd);
    if (err == 0) {
      reason.clear();
      break;
    }
    reason = std::strerror(err);
  }
  freeaddrinfo(found);
  return reason;
}

// The broker's reason for closing the channel or connection, when that is what happened.
std::string server_reason(const amqp_rpc_reply_t& r, int* code) {
  *code = 0;
  if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION) return {};
  if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
    *code = m->reply_code;
    return std::string(static_cast<char*>(m->reply_text.bytes), m->reply_text.len);
  }
  if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
    *code = m->reply_code;
    return std::string(static_cast<char*>(m->reply_text.bytes), m->reply_text.len);
  }
  return "server exception";
}

}  // namespace

Status Channel::check_rpc(std::string_view what) {
  if (!s_->conn) return Status(Code::kUnavailable, "channel is closed", "amqp " + std::string(what));
  amqp_rpc_reply_t r = amqp_get_rpc_reply(s_->conn);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return {};
  alive_ = false;  // a channel or connection exception ends this channel
  int code = 0;
  std::string reason = server_reason(r, &code);
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
    return Status(Code::kUnavailable, amqp_error_string2(r.library_error), "amqp " + std::string(what));
  Code c = code == 406 || code == 405 ? Code::kFailedPrecondition
           : code == 404              ? Code::kNotFound
           : code == 403              ? Code::kPermissionDenied
                                      : Code::kUnavailable;
  return Status(c, reason + " (" + std::to_string(code) + ")", "amqp " + std::string(what));
}

Result<std::unique_ptr<Channel>> Channel::connect(const std::string& url, std::chrono::milliseconds timeout) {
  ChannelOptions o;
  o.timeout = timeout;
  return connect(url, o);
}

Result<std::unique_ptr<Channel>> Channel::connect(const std::string& url, ChannelOptions o) {
  std::unique_ptr<Channel> ch(new Channel());
  ch->s_ = std::make_unique<State>();
  ch->o_ = o;
  std::string mutable_url = url;
  amqp_connection_info info;
  if (amqp_parse_url(mutable_url.data(), &info) != AMQP_STATUS_OK)
    return Status(Code::kInvalidArgument, "not an AMQP URL (amqp://user:pass@host:port/vhost)", "amqp.connect");
  ch->s_->conn = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(ch->s_->conn);
  if (!sock) return Status(Code::kInternal, "cannot create socket", "amqp.connect");
  timeval tv = to_tv(o.timeout);
  int rc = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
  std::string where = std::string("amqp.connect ") + info.host + ":" + std::to_string(info.port);
  if (rc != AMQP_STATUS_OK) {
    std::string what = amqp_error_string2(rc);
    if (rc == AMQP_STATUS_SOCKET_ERROR)
      if (std::string why = tcp_connect_reason(info.host, info.port, o.timeout); !why.empty()) what += ": " + why;
    return Status(Code::kUnavailable, what, where);
  }
  amqp_set_rpc_timeout(ch->s_->conn, &tv);
  amqp_table_entry_t name_entry;
  name_entry.key = amqp_cstring_bytes("connection_name");
  name_entry.value.kind = AMQP_FIELD_KIND_UTF8;
  name_entry.value.value.bytes = bytes(ch->o_.connection_name);
  amqp_table_t props{1, &name_entry};
  amqp_rpc_reply_t login = amqp_login_with_properties(ch->s_->conn, info.vhost, 0, 131072, o.heartbeat_s, &props,
                                                      AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    int code = 0;
    std::string reason = server_reason(login, &code);
    if (reason.empty()) reason = login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(login.library_error) : "login failed";
    return Status(code == 403 || code == 530 ? Code::kPermissionDenied : Code::kUnavailable, reason, where);
  }
  amqp_channel_open(ch->s_->conn, State::kChannel);
  ch->alive_ = true;
  GANTRY_RETURN_IF_ERROR(ch->check_rpc("channel.open"));
  ch->opened_at_ = std::chrono::steady_clock::now();
  return ch;
}

void Channel::close_now() {
  alive_ = false;
  if (s_ && s_->conn) {
    amqp_destroy_connection(s_->conn);  // closes the socket; no handshake with a broker that may not answer
    s_->conn = nullptr;
  }
}

Channel::~Channel() {
  if (!s_ || !s_->conn) return;
  if (alive_) {
    amqp_channel_close(s_->conn, State::kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(s_->conn, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(s_->conn);
}

bool Channel::service() {
  if (!alive_) return false;
  for (;;) {
    timeval zero{0, 0};
    amqp_frame_t frame;
    int rc = amqp_simple_wait_frame_noblock(s_->conn, &frame, &zero);
    if (rc == AMQP_STATUS_TIMEOUT) return true;  // nothing to read; a due heartbeat was sent
    if (rc != AMQP_STATUS_OK) {
      close_now();
      return false;
    }
    if (frame.frame_type == AMQP_FRAME_METHOD &&
        (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
      close_now();
      return false;
    }
  }
}

Status Channel::declare_exchange(const std::string& name, const std::string& type, bool durable) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp exchange.declare");
  amqp_exchange_declare(s_->conn, State::kChannel, bytes(name), bytes(type), /*passive=*/0, durable,
                        /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
  return check_rpc("exchange.declare " + name);
}

Status Channel::declare_queue(const std::string& name, bool durable, const QueueArgs& args) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp queue.declare");
  std::vector<amqp_table_entry_t> entries;
  if (args.max_length) {
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes("x-max-length");
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = *args.max_length;
    entries.push_back(e);
  }
  for (auto [key, text] : {std::pair<const char*, const std::string*>{"x-overflow", &args.overflow},
                            {"x-dead-letter-exchange", &args.dead_letter_exchange}}) {
    if (text->empty()) continue;
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = bytes(*text);
    entries.push_back(e);
  }
  amqp_table_t table{static_cast<int>(entries.size()), entries.data()};
  amqp_queue_declare(s_->conn, State::kChannel, bytes(name), 0, durable, 0, 0, table);
  return check_rpc("queue.declare " + name);
}

Status Channel::bind(const std::string& queue, const std::string& exchange, const std::string& key) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp queue.bind");
  amqp_queue_bind(s_->conn, State::kChannel, bytes(queue), bytes(exchange), bytes(key), amqp_empty_table);
  return check_rpc("queue.bind " + queue);
}

Status Channel::delete_queue(const std::string& name) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp queue.delete");
  amqp_queue_delete(s_->conn, State::kChannel, bytes(name), 0, 0);
  return check_rpc("queue.delete " + name);
}

Status Channel::delete_exchange(const std::string& name) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp exchange.delete");
  amqp_exchange_delete(s_->conn, State::kChannel, bytes(name), 0);
  return check_rpc("exchange.delete " + name);
}

Status Channel::publish(const std::string& exchange, const std::string& key, std::string_view body,
                        const std::string& content_type) {
  Message m{exchange, key, std::string(body), content_type};
  return std::move(publish_batch(std::span<const Message>(&m, 1)).front());
}

std::vector<Status> Channel::publish_batch(std::span<const Message> messages) {
  std::vector<Status> out(messages.size());
  std::vector<bool> settled(messages.size(), false);
  auto settle_rest = [&](const Status& s) {
    for (size_t i = 0; i < messages.size(); ++i)
      if (!settled[i]) {
        out[i] = s;
        settled[i] = true;
      }
  };
  if (messages.empty()) return out;
  std::string where = "amqp.publish " + messages.front().exchange + " " + messages.front().routing_key;
  if (!alive_) {
    settle_rest(Status(Code::kUnavailable, "channel is closed", where));
    return out;
  }
  if (!confirms_) {
    amqp_confirm_select(s_->conn, State::kChannel);
    if (Status st = check_rpc("confirm.select"); !st.is_ok()) {
      settle_rest(st);
      return out;
    }
    confirms_ = true;
  }
  // delivery tag -> message index, for the messages awaiting their confirm
  std::map<uint64_t, size_t> waiting;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = 2;  // persistent
    props.content_type = bytes(m.content_type);
    int rc = amqp_basic_publish(s_->conn, State::kChannel, bytes(m.exchange), bytes(m.routing_key), 0, 0, &props,
                                bytes(m.body));
    if (rc != AMQP_STATUS_OK) {
      close_now();
      settle_rest(Status(Code::kUnavailable, std::string("connection failed before the confirm: ") + amqp_error_string2(rc), where));
      return out;
    }
    waiting.emplace(next_publish_tag_++, i);
  }
  auto credit = [&](uint64_t tag, bool multiple, const Status& s) {
    auto end = multiple ? waiting.upper_bound(tag) : waiting.find(tag);
    auto begin = multiple ? waiting.begin() : end;
    if (!multiple) {
      if (end == waiting.end()) return;  // not ours: cannot happen on a channel closed after any timeout
      ++end;
    }
    for (auto it = begin; it != end; ++it) {
      out[it->second] = s;
      settled[it->second] = true;
    }
    waiting.erase(begin, end);
  };
  auto deadline = std::chrono::steady_clock::now() + o_.timeout;
  while (!waiting.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      // Closed now, so that a confirm arriving later cannot be read as another message's.
      close_now();
      settle_rest(Status(Code::kDeadlineExceeded,
                         "no confirm within " + std::to_string(o_.timeout.count()) +
                             " ms (the message may or may not have been taken; the connection was closed)",
                         where));
      return out;
    }
    timeval tv = to_tv(left);
    amqp_frame_t frame;
    int rc = amqp_simple_wait_frame_noblock(s_->conn, &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) continue;
    if (rc != AMQP_STATUS_OK) {
      close_now();
      settle_rest(Status(Code::kUnavailable, std::string("connection lost before the confirm: ") + amqp_error_string2(rc), where));
      return out;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    auto id = frame.payload.method.id;
    if (id == AMQP_BASIC_ACK_METHOD) {
      auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      credit(ack->delivery_tag, ack->multiple, Status());
    } else if (id == AMQP_BASIC_NACK_METHOD) {
      auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
      credit(nack->delivery_tag, nack->multiple,
             Status(Code::kResourceExhausted, "the broker refused the message (queue full: already pending)", where));
    } else if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD) {
      auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      std::string reason(static_cast<char*>(m->reply_text.bytes), m->reply_text.len);
      close_now();
      settle_rest(Status(Code::kUnavailable, "the broker closed the channel: " + reason, where));
      return out;
    }
  }
  return out;
}

Status Channel::consume(const std::string& queue, uint16_t prefetch, const std::string& consumer_tag) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp basic.consume");
  amqp_basic_qos(s_->conn, State::kChannel, 0, prefetch, 0);
  GANTRY_RETURN_IF_ERROR(check_rpc("basic.qos"));
  amqp_basic_consume(s_->conn, State::kChannel, bytes(queue), bytes(consumer_tag), 0, /*no_ack=*/0, 0,
                     amqp_empty_table);
  return check_rpc("basic.consume " + queue);
}

Result<std::optional<Delivery>> Channel::next(std::chrono::milliseconds timeout) {
  if (!alive_ || !s_->conn) return Status(Code::kUnavailable, "channel is closed", "amqp.next");
  amqp_maybe_release_buffers(s_->conn);
  amqp_envelope_t env;
  timeval tv = to_tv(timeout);
  amqp_rpc_reply_t r = amqp_consume_message(s_->conn, &env, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
    return std::optional<Delivery>();
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    alive_ = false;
    int code = 0;
    std::string reason = server_reason(r, &code);
    if (reason.empty()) reason = amqp_error_string2(r.library_error);
    return Status(Code::kUnavailable, reason, "amqp.next");
  }
  Delivery d;
  d.tag = env.delivery_tag;
  d.redelivered = env.redelivered;
  d.exchange.assign(static_cast<char*>(env.exchange.bytes), env.exchange.len);
  d.routing_key.assign(static_cast<char*>(env.routing_key.bytes), env.routing_key.len);
  d.consumer_tag.assign(static_cast<char*>(env.consumer_tag.bytes), env.consumer_tag.len);
  d.body.assign(static_cast<char*>(env.message.body.bytes), env.message.body.len);
  if (env.message.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
    d.content_type.assign(static_cast<char*>(env.message.properties.content_type.bytes),
                          env.message.properties.content_type.len);
  amqp_destroy_envelope(&env);
  return std::optional<Delivery>(std::move(d));
}

Status Channel::ack(uint64_t tag) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp.ack");
  int rc = amqp_basic_ack(s_->conn, State::kChannel, tag, 0);
  return rc == AMQP_STATUS_OK ? Status() : Status(Code::kUnavailable, amqp_error_string2(rc), "amqp.ack");
}

Status Channel::nack(uint64_t tag, bool requeue) {
  if (!alive_) return Status(Code::kUnavailable, "channel is closed", "amqp.nack");
  int rc = amqp_basic_nack(s_->conn, State::kChannel, tag, 0, requeue);
  return rc == AMQP_STATUS_OK ? Status() : Status(Code::kUnavailable, amqp_error_string2(rc), "amqp.nack");
}

}  // namespace gantry::bus::amqp
