#include "cluster/distribution/gantry_node.h"

#include <unistd.h>

#include <climits>

#include <boost/json.hpp>

#include "core/http/auth.h"
#include "core/http/client.h"
#include "core/log.h"

namespace gantry::cluster {

namespace {

constexpr const char* kGantryBin = "/opt/gantry/bin/gantry";
constexpr const char* kGantryUpload = "/opt/gantry/bin/gantry.upload";
constexpr const char* kDir = "/var/lib/gantry-node";

const core::log::Logger gantry_node_log("cluster");

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

class GantryNode final : public Distribution {
 public:
  GantryNode(DistributionOptions o, std::string sha) : o_(std::move(o)), sha_(std::move(sha)) {
    while (!o_.controller_url.empty() && o_.controller_url.back() == '/') o_.controller_url.pop_back();
  }
  std::string_view name() const override { return "gantry-node"; }

  std::vector<FileCopy> files(const NodeContext&) const override {
    return {{o_.gantry_binary, kGantryUpload, true, sha_}};
  }

  Script install(const NodeContext& n) const override {
    std::string s = header() + kShellAlive + "SHA=" + sha_ + "\n";
    s += "mkdir -p \"$D\" /opt/gantry/bin\n"
         "echo 25 > \"$D/progress\"\n"
         // The upload is verified before it replaces the binary; an install resumed after the
         // move finds the binary already right.
         // Hashed once per install (the largest cost of a node's install in CPU), by OpenSSL
         // where the node has it (SHA extensions: ~3x coreutils' speed), else sha256sum.
         "sha() { if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r \"$1\"; else sha256sum \"$1\"; fi | cut -d' ' -f1; }\n"
         "if [ -f " + std::string(kGantryUpload) + " ]; then\n"
         "  [ \"$(sha " + kGantryUpload + ")\" = \"$SHA\" ] || { echo 'gantry binary: checksum mismatch after copy' >&2; exit 1; }\n"
         "  mv -f " + kGantryUpload + " " + kGantryBin + "\n"
         "else\n"
         "  [ \"$(sha " + kGantryBin + ")\" = \"$SHA\" ] || { echo 'gantry binary: missing or not the expected one' >&2; exit 1; }\n"
         "fi\n"
         "echo 50 > \"$D/progress\"\n"
         "cat > \"$D/env\" <<'EOF'\n"
         "AGENT_HOSTNAME=" + n.node.name + "\n"
         "CONTROLLER_URL=" + o_.controller_url + "\n"
         "AGENT_USER=" + o_.agent_user + "\n"
         "AGENT_PASSWORD=" + o_.agent_password + "\n"
         "AGENT_PORT=" + std::to_string(kNodeAgentPort) + "\n"
         "WORKER_URL=http://127.0.0.1:" + std::to_string(kNodeWorkerPort) + "\n"
         "WORKER_PORT=" + std::to_string(kNodeWorkerPort) + "\n"
         "REGISTRATION_MAX_RETRIES=-1\n"
         "EOF\n"
         "chmod 600 \"$D/env\"\n"
         "if [ -d /run/systemd/system ]; then\n"
         "  cat > /etc/systemd/system/gantry-node.service <<EOF\n"
         "[Unit]\nDescription=gantry node (Fleet agent and worker)\nAfter=network-online.target\n"
         "[Service]\nEnvironmentFile=$D/env\nExecStart=" + kGantryBin + " up --roles agent,worker\nRestart=always\nRestartSec=1\n"
         "[Install]\nWantedBy=multi-user.target\nEOF\n"
         "  systemctl daemon-reload\n"
         "  systemctl enable --now gantry-node.service\n"
         "else\n"
         // Supervised: a restart loop in its own session, its pid in a file; a second install
         // finds it alive and starts nothing.
         "  if [ -f \"$D/pid\" ] && alive \"$(cat \"$D/pid\")\"; then :; else\n"
         "    rm -f \"$D/pid\"\n"
         "    cat > \"$D/run\" <<EOF\n"
         "#!/bin/sh\n"
         // Its own pid, which leads its session: setsid may fork, so $! would not be it.
         "echo \\$\\$ > $D/pid\n"
         "set -a; . $D/env; set +a\n"
         "while :; do " + kGantryBin + " up --roles agent,worker --set agent.port=\\$AGENT_PORT --set worker.port=\\$WORKER_PORT; sleep 1; done\n"
         "EOF\n"
         "    chmod 755 \"$D/run\"\n"
         "    setsid \"$D/run\" > \"$D/log\" 2>&1 < /dev/null 9>&- &\n"  // not holding the step lock
         "    i=0\n"
         "    while [ ! -s \"$D/pid\" ] && [ \"$i\" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done\n"
         "  fi\n"
         "fi\n"
         "echo 75 > \"$D/progress\"\n";
    return {"install", s};
  }

  Script configure(const NodeContext&) const override {
    std::string s = header();
    s += "i=0\n"
         "while [ \"$i\" -lt 240 ]; do\n"
         "  if curl -fsS --max-time 2 http://127.0.0.1:" + std::to_string(kNodeAgentPort) +
         "/health 2>/dev/null | grep -q '\"registered\":true'; then echo 100 > \"$D/progress\"; exit 0; fi\n"
         "  sleep 0.25\n"
         "  i=$((i + 1))\n"
         "done\n"
         "echo 'the agent did not register with the controller within 60 s; its log ends:' >&2\n"
         "grep -v 'path=/health' \"$D/log\" | tail -n 8 >&2 2>/dev/null || journalctl -u gantry-node -n 8 >&2 2>/dev/null || true\n"
         "exit 1\n";
    return {"configure", s};
  }

  Script stop(const NodeContext&) const override { return {"stop", header() + stop_body()}; }

  Script start(const NodeContext& n) const override {
    Script s = install(n);
    s.step = "start";
    return s;
  }

  Script uninstall(const NodeContext&) const override {
    return {"uninstall", header() + stop_body() +
                             "rm -f /etc/systemd/system/gantry-node.service\n"
                             "if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi\n"
                             "rm -rf \"$D\" \"$D.lock\" /opt/gantry\n"};
  }

  // The node's agents, found by hostname (each start of the node's agent registers anew, so a
  // node may have several), are deleted through the controller's admin API: otherwise they
  // stay listed as offline forever. Asked from here, not from the node: nodes never hold the
  // admin login.
  core::Status forget(const NodeContext& n, const core::resilience::Deadline& d) const override {
    namespace http = core::http;
    auto left = [&](std::string why) {
      return core::unavailable("node " + n.node.name + " is uninstalled, but its agents may still be listed by " +
                               o_.controller_url + ": " + why + " (remove them with DELETE /agents/{id})");
    };
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min<core::Duration>(d.remaining(core::Clock::real()), std::chrono::seconds(10)));
    if (timeout <= std::chrono::milliseconds(0)) return left("no time left");
    http::Headers auth{{"Authorization", "Basic " + http::base64_encode(o_.admin_user + ":" + o_.admin_password)}};
    auto request = [&](http::Method m, std::string path) {
      http::ClientRequest r;
      r.method = m, r.url = o_.controller_url + path, r.headers = auth, r.timeout = timeout;
      return http_.send(r);
    };
    auto listed = request(http::Method::kGet, "/agents");
    if (!listed.is_ok()) return left(std::string(listed.status().message()));
    if (listed->status == 401) return left("the controller refused the admin login (set --admin-user/--admin-password)");
    if (listed->status != 200) return left("GET /agents answered " + std::to_string(listed->status));
    boost::system::error_code ec;
    boost::json::value doc = boost::json::parse(listed->body, ec);
    const boost::json::array* agents = nullptr;
    if (!ec && doc.is_object())
      if (auto* a = doc.as_object().if_contains("agents"); a && a->is_array()) agents = &a->as_array();
    if (!agents) return left("GET /agents did not answer an agent list");
    int removed = 0;
    for (const auto& a : *agents) {
      const auto* o = a.if_object();
      if (!o) continue;
      const auto* host = o->if_contains("hostname");
      const auto* id = o->if_contains("agent_id");
      if (!host || !id || !host->is_string() || !id->is_string() || host->as_string() != n.node.name) continue;
      std::string aid(id->as_string());
      auto del = request(http::Method::kDelete, "/agents/" + aid);
      if (!del.is_ok()) return left(std::string(del.status().message()));
      // 404: deleted meanwhile (another controller, an operator): what was wanted.
      if (del->status != 200 && del->status != 404)
        return left("DELETE /agents/" + aid + " answered " + std::to_string(del->status));
      ++removed;
    }
    gantry_node_log.info("node's agents removed from the controller", {{"node", n.node.name}, {"agents", static_cast<int64_t>(removed)}});
    return {};
  }

 private:
  // One step at a time on a host: a pass killed here leaves its remote script running (the
  // multiplexed connection outlives the client), and a resumed pass must wait for it rather
  // than start a second supervisor beside the first.
  static std::string header() {
    return "set -eu\nD=" + std::string(kDir) + "\nmkdir -p \"$D\"\nexec 9> \"$D.lock\"\nflock 9\n";
  }
  static std::string stop_body() {
    return std::string(kShellAlive) +
           "if [ -d /run/systemd/system ] && [ -f /etc/systemd/system/gantry-node.service ]; then\n"
           "  systemctl disable --now gantry-node.service\n"
           "fi\n"
           // The loop and the gantry it started share the loop's session: end them together.
           "if [ -f \"$D/pid\" ]; then\n"
           "  pid=$(cat \"$D/pid\")\n"
           "  kill -TERM \"-$pid\" 2>/dev/null || true\n"
           "  i=0\n"
           "  while alive \"$pid\" && [ \"$i\" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done\n"
           "  kill -KILL \"-$pid\" 2>/dev/null || true\n"
           "  sleep 0.1\n"
           "  if alive \"$pid\"; then echo \"gantry node (session $pid) did not stop\" >&2; exit 1; fi\n"
           "  rm -f \"$D/pid\"\n"
           "fi\n";
  }

  DistributionOptions o_;
  std::string sha_;
  mutable core::http::Client http_;
};

}  // namespace

core::Result<std::unique_ptr<Distribution>> make_gantry_node(const DistributionOptions& given) {
  DistributionOptions o = given;
  if (o.gantry_binary.empty()) o.gantry_binary = self_exe();
  GANTRY_ASSIGN(sha, sha256_file(o.gantry_binary));
  return std::unique_ptr<Distribution>(std::make_unique<GantryNode>(o, sha));
}

}  // namespace gantry::cluster
