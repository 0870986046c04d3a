// The reference the AMQP benchmarks compare with: a plain rabbitmq-c client, no gantry code.
#pragma once

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace gantry::bench {

// Connected and logged in, channel 1 open; exits the benchmark on failure.
inline amqp_connection_state_t raw_amqp_connect(const std::string& url) {
  std::string u = url;
  amqp_connection_info info;
  if (amqp_parse_url(u.data(), &info) != AMQP_STATUS_OK) std::exit(1);
  amqp_connection_state_t c = amqp_new_connection();
  amqp_socket_t* s = amqp_tcp_socket_new(c);
  if (amqp_socket_open(s, info.host, info.port) != AMQP_STATUS_OK) std::exit(1);
  if (amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password).reply_type !=
      AMQP_RESPONSE_NORMAL)
    std::exit(1);
  amqp_channel_open(c, 1);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) std::exit(1);
  return c;
}

inline void raw_amqp_close(amqp_connection_state_t c) {
  amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(c, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(c);
}

// Confirmed publishes/s for `secs`: confirm.select, `batch` persistent application/json
// messages published, then acks read until all are in, again and again.
inline double raw_amqp_confirmed_per_s(const std::string& url, const std::string& exchange, const std::string& key,
                                       const std::string& body, int batch, double secs) {
  using Clock = std::chrono::steady_clock;
  amqp_connection_state_t c = raw_amqp_connect(url);
  amqp_confirm_select(c, 1);
  if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) std::exit(1);
  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;
  props.content_type = amqp_cstring_bytes("application/json");
  uint64_t tag = 0, acked = 0;
  auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  while (elapsed() < secs) {
    for (int i = 0; i < batch; ++i) {
      amqp_basic_publish(c, 1, amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes(key.c_str()), 0, 0, &props,
                         amqp_bytes_t{body.size(), const_cast<char*>(body.data())});
      ++tag;
    }
    while (acked < tag) {
      amqp_frame_t f;
      if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK) std::exit(1);
      if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        auto* a = static_cast<amqp_basic_ack_t*>(f.payload.method.decoded);
        acked = a->multiple ? a->delivery_tag : std::max<uint64_t>(acked, a->delivery_tag);
      }
    }
  }
  double rate = static_cast<double>(acked) / elapsed();
  raw_amqp_close(c);
  return rate;
}

}  // namespace gantry::bench
