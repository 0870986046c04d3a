// Each server scripts/servers starts answers through the client library gantry uses for it.
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <nats/nats.h>
#include <sys/time.h>

#include <chrono>
#include <memory>
#include <random>

#include "env.h"

namespace gantry::testing {
namespace {

TEST(Servers, PostgresAnswersThroughLibpq) {
  std::string url = server_url("GANTRY_PG_URL");
  ASSERT_FALSE(url.empty());
  std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb(url.c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  auto exec = [&](const std::string& sql) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
    EXPECT_TRUE(PQresultStatus(r.get()) == PGRES_COMMAND_OK || PQresultStatus(r.get()) == PGRES_TUPLES_OK)
        << sql << ": " << PQerrorMessage(c.get());
    return std::string(PQntuples(r.get()) ? PQgetvalue(r.get(), 0, 0) : "");
  };
  EXPECT_EQ(exec("show server_version_num").substr(0, 2), "15");
  std::string t = unique("t_");
  exec("create table " + t + " (id int primary key, v text)");
  exec("insert into " + t + " values (1, 'one'), (2, 'two')");
  EXPECT_EQ(exec("select string_agg(v, ',' order by id) from " + t), "one,two");
  exec("drop table " + t);
}

TEST(Servers, RedisAnswersThroughHiredis) {
  std::string url = server_url("GANTRY_REDIS_URL");
  ASSERT_FALSE(url.empty());
  auto [host, port] = host_port(url);
  std::unique_ptr<redisContext, decltype(&redisFree)> c(redisConnect(host.c_str(), port), &redisFree);
  ASSERT_TRUE(c && !c->err) << (c ? c->errstr : "no context");
  auto cmd = [&](auto... args) {
    auto* r = static_cast<redisReply*>(redisCommand(c.get(), args...));
    EXPECT_NE(r, nullptr);
    std::string out = r && r->str ? std::string(r->str, r->len) : (r ? std::to_string(r->integer) : "");
    freeReplyObject(r);
    return out;
  };
  EXPECT_EQ(cmd("PING"), "PONG");
  std::string key = unique("k");
  EXPECT_EQ(cmd("SET %s %s", key.c_str(), "v1"), "OK");
  EXPECT_EQ(cmd("GET %s", key.c_str()), "v1");
  EXPECT_EQ(cmd("DEL %s", key.c_str()), "1");
}

TEST(Servers, NatsJetStreamPublishIsAcknowledgedAndDeduplicated) {
  std::string url = server_url("GANTRY_NATS_URL");
  ASSERT_FALSE(url.empty());
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK) << nats_GetLastError(nullptr);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);

  std::string stream = unique("TEST");
  std::string subject = stream + ".events";
  const char* subjects[] = {subject.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  ASSERT_EQ(js_AddStream(&si, js, &cfg, nullptr, &jerr), NATS_OK) << "jerr " << jerr << " " << nats_GetLastError(nullptr);
  jsStreamInfo_Destroy(si);

  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = "event-1";
  jsPubAck* ack = nullptr;
  ASSERT_EQ(js_Publish(&ack, js, subject.c_str(), "hello", 5, &po, &jerr), NATS_OK) << nats_GetLastError(nullptr);
  EXPECT_EQ(std::string(ack->Stream), stream);
  EXPECT_EQ(ack->Sequence, 1u);
  EXPECT_FALSE(ack->Duplicate);
  jsPubAck_Destroy(ack);
  // The same Nats-Msg-Id again: acknowledged as a duplicate, not stored twice.
  ASSERT_EQ(js_Publish(&ack, js, subject.c_str(), "hello", 5, &po, &jerr), NATS_OK);
  EXPECT_TRUE(ack->Duplicate);
  jsPubAck_Destroy(ack);

  ASSERT_EQ(js_GetStreamInfo(&si, js, stream.c_str(), nullptr, &jerr), NATS_OK);
  EXPECT_EQ(si->State.Msgs, 1u);
  jsStreamInfo_Destroy(si);

  ASSERT_EQ(js_DeleteStream(js, stream.c_str(), nullptr, &jerr), NATS_OK);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

TEST(Servers, RabbitMqPublishIsConfirmed) {
  std::string url = server_url("GANTRY_AMQP_URL");
  ASSERT_FALSE(url.empty());
  std::string mutable_url = url;
  amqp_connection_info info;
  ASSERT_EQ(amqp_parse_url(mutable_url.data(), &info), AMQP_STATUS_OK);
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(conn);
  ASSERT_EQ(amqp_socket_open(sock, info.host, info.port), AMQP_STATUS_OK);
  amqp_rpc_reply_t login = amqp_login(conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  ASSERT_EQ(login.reply_type, AMQP_RESPONSE_NORMAL);
  amqp_channel_open(conn, 1);
  ASSERT_EQ(amqp_get_rpc_reply(conn).reply_type, AMQP_RESPONSE_NORMAL);
  amqp_confirm_select(conn, 1);
  ASSERT_EQ(amqp_get_rpc_reply(conn).reply_type, AMQP_RESPONSE_NORMAL);
  std::string queue = unique("q");
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue.c_str()), 0, 1, 0, 0, amqp_empty_table);
  ASSERT_EQ(amqp_get_rpc_reply(conn).reply_type, AMQP_RESPONSE_NORMAL);

  amqp_basic_properties_t props;
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;  // persistent
  props.content_type = amqp_cstring_bytes("application/json");
  ASSERT_EQ(amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()), 0, 0, &props,
                               amqp_cstring_bytes(R"({"kick":1})")),
            AMQP_STATUS_OK);
  // Publisher confirm: the broker answers basic.ack for delivery tag 1.
  amqp_frame_t frame;
  timeval tv{10, 0};
  ASSERT_EQ(amqp_simple_wait_frame_noblock(conn, &frame, &tv), AMQP_STATUS_OK);
  ASSERT_EQ(frame.frame_type, AMQP_FRAME_METHOD);
  ASSERT_EQ(frame.payload.method.id, AMQP_BASIC_ACK_METHOD);
  EXPECT_EQ(static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded)->delivery_tag, 1u);

  // And the message is really there.
  amqp_rpc_reply_t got = amqp_basic_get(conn, 1, amqp_cstring_bytes(queue.c_str()), 1);
  ASSERT_EQ(got.reply_type, AMQP_RESPONSE_NORMAL);
  ASSERT_EQ(got.reply.id, AMQP_BASIC_GET_OK_METHOD);
  amqp_message_t msg;
  ASSERT_EQ(amqp_read_message(conn, 1, &msg, 0).reply_type, AMQP_RESPONSE_NORMAL);
  EXPECT_EQ(std::string(static_cast<char*>(msg.body.bytes), msg.body.len), R"({"kick":1})");
  amqp_destroy_message(&msg);

  amqp_queue_delete(conn, 1, amqp_cstring_bytes(queue.c_str()), 0, 0);
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

}  // namespace
}  // namespace gantry::testing
