#include "bus/nats/jetstream.h"

#include <nats/nats.h>

#include <algorithm>
#include <thread>

#include "core/json.h"
#include "core/log.h"

namespace gantry::bus::nats {

using core::Code;

namespace {
const core::log::Logger jetstream_log("nats");

Status from(natsStatus s, std::string_view where, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  if (s == NATS_OK) return {};
  Code c = Code::kIoError;
  switch (s) {
    case NATS_TIMEOUT: c = Code::kDeadlineExceeded; break;
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NO_RESPONDERS:
    case NATS_STALE_CONNECTION:
    case NATS_INSUFFICIENT_BUFFER:  // publishing while reconnecting, with no reconnect buffer
      c = Code::kUnavailable;
      break;
    case NATS_NOT_FOUND: c = Code::kNotFound; break;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT: c = Code::kInvalidArgument; break;
    default: break;
  }
  std::string msg = natsStatus_GetText(s);
  if (const char* last = nats_GetLastError(nullptr); last && *last) msg = last;
  if (jerr) msg += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  return Status(c, msg, where);
}

int64_t ms(std::chrono::milliseconds d) { return d.count(); }

// The server list as given, without credentials (user:password@ or token@), for errors.
std::string without_credentials(const std::string& urls) {
  std::string out;
  size_t start = 0;
  while (start <= urls.size()) {
    size_t comma = urls.find(',', start);
    std::string u = urls.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t scheme = u.find("://");
    size_t host = scheme == std::string::npos ? 0 : scheme + 3;
    size_t at = u.rfind('@', u.find('/', host));
    if (at != std::string::npos && at >= host) u.erase(host, at + 1 - host);
    out += (out.empty() ? "" : ",") + u;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}
}  // namespace

Message::~Message() {
  if (m_) natsMsg_Destroy(m_);
}
std::string_view Message::subject() const { return natsMsg_GetSubject(m_); }
std::string_view Message::data() const {
  return {natsMsg_GetData(m_), static_cast<size_t>(natsMsg_GetDataLength(m_))};
}
std::string_view Message::header(const char* name) const {
  const char* v = nullptr;
  return natsMsgHeader_Get(m_, name, &v) == NATS_OK && v ? std::string_view(v) : std::string_view();
}
uint64_t Message::delivered() const {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, m_) != NATS_OK) return 0;
  uint64_t n = meta->NumDelivered;
  jsMsgMetaData_Destroy(meta);
  return n;
}
uint64_t Message::stream_sequence() const {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, m_) != NATS_OK) return 0;
  uint64_t n = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  return n;
}
Status Message::ack() { return from(natsMsg_AckSync(m_, nullptr, nullptr), "nats.ack"); }
Status Message::ack_nowait() { return from(natsMsg_Ack(m_, nullptr), "nats.ack"); }
Status Message::nak(std::chrono::milliseconds delay) {
  return from(delay.count() > 0 ? natsMsg_NakWithDelay(m_, delay.count(), nullptr) : natsMsg_Nak(m_, nullptr), "nats.nak");
}
Status Message::term() { return from(natsMsg_Term(m_, nullptr), "nats.term"); }

PullConsumer::~PullConsumer() {
  if (sub_) natsSubscription_Destroy(sub_);
}

int PullConsumer::pending() const {
  int msgs = 0, bytes = 0;
  return natsSubscription_GetPending(sub_, &msgs, &bytes) == NATS_OK ? msgs : 0;
}

Status PullConsumer::request(int batch, std::chrono::milliseconds expires) {
  std::string body;
  core::json::Writer(body)
      .object()
      .field("batch", static_cast<int64_t>(batch))
      .field("expires", static_cast<int64_t>(std::chrono::nanoseconds(expires).count()))
      .end();
  return from(natsConnection_PublishRequest(nc_, next_subject_.c_str(), natsSubscription_GetSubject(sub_), body.data(),
                                            static_cast<int>(body.size())),
              "nats.fetch");
}

Result<std::vector<Message>> PullConsumer::take(int batch, std::chrono::milliseconds timeout) {
  natsMsgList list{};
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = natsSubscription_Fetch(&list, sub_, batch, ms(timeout), &jerr);
  std::vector<Message> out;
  if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND) return out;  // nothing arrived: an outcome, not an error
  if (s != NATS_OK) return from(s, "nats.fetch", jerr);
  out.reserve(static_cast<size_t>(list.Count));
  for (int i = 0; i < list.Count; ++i) {
    out.emplace_back(list.Msgs[i]);
    list.Msgs[i] = nullptr;  // ownership moved to Message
  }
  natsMsgList_Destroy(&list);
  return out;
}

Result<std::vector<Message>> PullConsumer::fetch(int batch, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  // Backlog mode needs room for the request to expire before the deadline (below).
  if (!backlog_ || next_subject_.empty() || timeout < std::chrono::milliseconds(50)) {
    auto r = take(batch, timeout);
    backlog_ = r.is_ok() && static_cast<int>(r->size()) == batch;
    return r;
  }
  // Messages left from an earlier request count towards this batch. The request expires at the
  // server 10 ms before the deadline, so what it sends has arrived when the deadline passes.
  auto deadline = Clock::now() + timeout;
  int have = pending();
  if (have < batch) GANTRY_RETURN_IF_ERROR(request(batch - have, timeout - std::chrono::milliseconds(10)));
  // Poll, not wait: 1 ms while messages arrive, backing off to 8 ms when none do.
  auto step = std::chrono::milliseconds(1);
  while (have < batch && Clock::now() < deadline) {
    std::this_thread::sleep_for(step);
    int now = pending();
    step = now > have ? std::chrono::milliseconds(1) : std::min(step * 2, std::chrono::milliseconds(8));
    have = now;
  }
  if (have == 0) {
    backlog_ = false;
    return std::vector<Message>{};
  }
  // The arrived messages are taken from the subscription's queue without a request; a status
  // message among them (the request's expiry) leaves a few short, which cnats then asks for
  // without waiting.
  auto r = take(std::min(have, batch), std::chrono::milliseconds(50));
  backlog_ = r.is_ok() && static_cast<int>(r->size()) == batch;
  return r;
}

void JetStream::on_reconnected(natsConnection*, void* closure) {
  auto* self = static_cast<JetStream*>(closure);
  ++self->reconnects_;
  jetstream_log.info("reconnected", {{"reconnects", static_cast<long long>(self->reconnects_.load())}});
}

Result<std::unique_ptr<JetStream>> JetStream::connect(const std::string& url, Options o) {
  std::unique_ptr<JetStream> j(new JetStream());
  j->o_ = o;
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return Status(Code::kInternal, "natsOptions_Create", "nats.connect");
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetName(opts, o.name.c_str());
  natsOptions_SetTimeout(opts, ms(o.timeout));
  natsOptions_SetMaxReconnect(opts, -1);  // forever
  natsOptions_SetReconnectWait(opts, ms(o.reconnect_wait));
  natsOptions_SetRetryOnFailedConnect(opts, false, nullptr, nullptr);
  // No reconnect buffer: a publish made while disconnected fails at once instead of being
  // queued and sent after the reconnection, when its caller has already been told it failed.
  natsOptions_SetReconnectBufSize(opts, 0);
  natsOptions_SetReconnectedCB(opts, &JetStream::on_reconnected, j.get());
  natsStatus s = natsConnection_Connect(&j->nc_, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    Status st = from(s, "nats.connect");
    return Status(st.code(), std::string(st.message()) + " (" + without_credentials(url) + ")", "nats.connect");
  }

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = ms(o.timeout);
  s = natsConnection_JetStream(&j->js_, j->nc_, &jo);
  if (s != NATS_OK) return from(s, "nats.jetstream");
  return j;
}

JetStream::~JetStream() {
  if (nc_) natsConnection_Close(nc_);  // stops callbacks before the context goes
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
}

bool JetStream::connected() const { return nc_ && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED; }

Status JetStream::ensure_stream(const StreamSpec& spec) {
  std::vector<const char*> subjects;
  for (auto& s : spec.subjects) subjects.push_back(s.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = spec.name.c_str();
  cfg.Subjects = subjects.data();
  cfg.SubjectsLen = static_cast<int>(subjects.size());
  cfg.Retention = spec.work_queue ? js_WorkQueuePolicy : js_LimitsPolicy;
  cfg.Storage = spec.memory ? js_MemoryStorage : js_FileStorage;
  cfg.MaxAge = std::chrono::nanoseconds(spec.max_age).count();
  cfg.Duplicates = std::chrono::nanoseconds(spec.duplicate_window).count();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* si = nullptr;
  natsStatus s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    jetstream_log.info("stream created", {{"stream", spec.name}});
    return {};
  }
  if (jerr != JSStreamNameExistErr) return from(s, "nats.ensure_stream " + spec.name, jerr);
  s = js_UpdateStream(&si, js_, &cfg, nullptr, &jerr);
  if (s != NATS_OK) return from(s, "nats.ensure_stream " + spec.name, jerr);
  jsStreamInfo_Destroy(si);
  return {};
}

Result<PubAck> JetStream::publish(std::string_view subject, std::string_view data, std::string_view msg_id) {
  std::string subj(subject), id(msg_id);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = ms(o_.timeout);
  if (!id.empty()) po.MsgId = id.c_str();
  jsPubAck* pa = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&pa, js_, subj.c_str(), data.data(), static_cast<int>(data.size()), &po, &jerr);
  if (s != NATS_OK) return from(s, "nats.publish " + subj, jerr);
  PubAck out{pa->Stream ? pa->Stream : "", pa->Sequence, pa->Duplicate};
  jsPubAck_Destroy(pa);
  return out;
}


Result<std::unique_ptr<PullConsumer>> JetStream::pull_consumer(const std::string& stream, const std::string& subject,
                                                               const ConsumerSpec& c) {
  // Create the durable consumer, or bring an existing one to this spec (an operator who
  // changes max_ack_pending must not find the service refusing to start), then bind to it.
  jsConsumerConfig cfg;
  jsConsumerConfig_Init(&cfg);
  cfg.Durable = c.durable.c_str();
  cfg.AckPolicy = c.ack_all ? js_AckAll : js_AckExplicit;
  cfg.MaxDeliver = c.max_deliver;
  cfg.AckWait = std::chrono::nanoseconds(c.ack_wait).count();
  cfg.MaxAckPending = c.max_ack_pending;
  cfg.FilterSubject = subject.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = NATS_OK;
  if (c.start_sequence > 0) {
    // A start position cannot be changed on an existing consumer: it is made anew.
    s = js_DeleteConsumer(js_, stream.c_str(), c.durable.c_str(), nullptr, &jerr);
    if (s != NATS_OK && jerr != JSConsumerNotFoundErr) return from(s, "nats.consumer delete " + c.durable, jerr);
    cfg.DeliverPolicy = js_DeliverByStartSequence;
    cfg.OptStartSeq = c.start_sequence;
    jerr = static_cast<jsErrCode>(0);
    s = NATS_NOT_FOUND;
  } else {
    s = js_UpdateConsumer(nullptr, js_, stream.c_str(), &cfg, nullptr, &jerr);
  }
  if (s != NATS_OK && (jerr == JSConsumerNotFoundErr || c.start_sequence > 0)) {
    jerr = static_cast<jsErrCode>(0);
    s = js_AddConsumer(nullptr, js_, stream.c_str(), &cfg, nullptr, &jerr);
  }
  if (s != NATS_OK) return from(s, "nats.consumer " + c.durable, jerr);

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = c.durable.c_str();
  natsSubscription* sub = nullptr;
  s = js_PullSubscribe(&sub, js_, subject.c_str(), c.durable.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) return from(s, "nats.pull_consumer " + c.durable, jerr);
  std::unique_ptr<PullConsumer> pc(new PullConsumer(sub));
  pc->nc_ = nc_;
  pc->next_subject_ = "$JS.API.CONSUMER.MSG.NEXT." + stream + "." + c.durable;
  return pc;
}

Result<ConsumerState> JetStream::consumer_state(const std::string& stream, const std::string& durable) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci, js_, stream.c_str(), durable.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return from(s, "nats.consumer_info " + durable, jerr);
  ConsumerState out{ci->NumPending, static_cast<uint64_t>(ci->NumAckPending), static_cast<uint64_t>(ci->NumRedelivered)};
  jsConsumerInfo_Destroy(ci);
  return out;
}

Result<std::unique_ptr<PullConsumer>> JetStream::replay_consumer(const std::string& stream, const std::string& subject,
                                                                 std::chrono::system_clock::time_point since) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Config.AckPolicy = js_AckNone;
  so.Config.DeliverPolicy = js_DeliverByStartTime;
  so.Config.OptStartTime = std::chrono::duration_cast<std::chrono::nanoseconds>(since.time_since_epoch()).count();
  so.Config.InactiveThreshold = std::chrono::nanoseconds(std::chrono::minutes(1)).count();
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PullSubscribe(&sub, js_, subject.c_str(), nullptr, nullptr, &so, &jerr);
  if (s != NATS_OK) return from(s, "nats.replay_consumer " + stream, jerr);
  return std::unique_ptr<PullConsumer>(new PullConsumer(sub));
}

Result<JetStream::Last> JetStream::last_message(const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return from(s, "nats.stream_info " + stream, jerr);
  Last last{si->State.LastSeq, std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                   std::chrono::nanoseconds(si->State.LastTime)))};
  jsStreamInfo_Destroy(si);
  return last;
}

Status JetStream::publish_core(std::string_view subject, std::string_view data) {
  std::string subj(subject);
  return from(natsConnection_Publish(nc_, subj.c_str(), data.data(), static_cast<int>(data.size())), "nats.publish " + subj);
}

Status JetStream::purge_stream(const std::string& stream) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  return from(js_PurgeStream(js_, stream.c_str(), nullptr, &jerr), "nats.purge " + stream, jerr);
}

}  // namespace gantry::bus::nats
