#include "cluster/distribution/k3s.h"

namespace gantry::cluster {

namespace {

constexpr const char* kK3sBin = "/usr/local/bin/k3s";
constexpr const char* kK3sUpload = "/usr/local/bin/k3s.upload";

class K3s final : public Distribution {
 public:
  K3s(DistributionOptions o, std::string sha) : o_(std::move(o)), sha_(std::move(sha)) {}
  std::string_view name() const override { return "k3s"; }
  bool first_server_alone() const override { return true; }

  std::vector<FileCopy> files(const NodeContext&) const override {
    if (o_.k3s_binary.empty()) return {};
    return {{o_.k3s_binary, kK3sUpload, true, sha_}};
  }

  // The k3s command line of this node: cluster-init on the first HA server, joins elsewhere.
  std::string exec(const NodeContext& n) const {
    const Cluster& c = n.cluster;
    bool first = n.first_server && n.first_server->name == n.node.name;
    std::string join = n.first_server ? "https://" + n.first_server->private_ip + ":6443" : "";
    std::string a;
    if (n.node.role == "server") {
      a = "server --token-file /etc/rancher/k3s/token --node-name " + n.node.name;
      a += " --cluster-cidr " + c.spec.network_cidr + " --service-cidr " + c.spec.service_cidr + " --cluster-dns " +
           c.spec.cluster_dns;
      if (!c.spec.features.traefik) a += " --disable traefik";
      if (!c.spec.features.service_lb) a += " --disable servicelb";
      if (!c.spec.features.local_storage) a += " --disable local-storage";
      if (!c.spec.features.metrics_server) a += " --disable metrics-server";
      if (first && c.spec.mode == "ha") a += " --cluster-init";
      else if (!first) a += " --server " + join;
    } else {
      a = "agent --token-file /etc/rancher/k3s/token --node-name " + n.node.name + " --server " + join;
    }
    return a;
  }

  Script install(const NodeContext& n) const override {
    bool server = n.node.role == "server";
    std::string token = server ? n.tokens.server : n.tokens.agent;
    std::string s =
        "set -eu\n" + std::string(kShellAlive) +
        "P=/var/lib/rancher/k3s-install-progress\n"
        "mkdir -p /var/lib/rancher /etc/rancher/k3s\n"
        "echo 25 > \"$P\"\n";
    if (!o_.k3s_binary.empty()) {
      // Airgap: the copied binary, verified; nothing is downloaded.
      s += "if [ -f " + std::string(kK3sUpload) + " ]; then\n"
           "  [ \"$(sha256sum " + kK3sUpload + " | cut -d' ' -f1)\" = '" + sha_ + "' ] || { echo 'k3s binary: checksum mismatch after copy' >&2; exit 1; }\n"
           "  mv -f " + kK3sUpload + " " + kK3sBin + "\n"
           "fi\n"
           "[ \"$(sha256sum " + kK3sBin + " | cut -d' ' -f1)\" = '" + sha_ + "' ] || { echo 'k3s binary: missing or not the expected one' >&2; exit 1; }\n";
    } else {
      std::string version = n.cluster.spec.k3s_version.empty() ? "" : "INSTALL_K3S_VERSION=" + shell_quote(n.cluster.spec.k3s_version) + " ";
      s += "[ -x " + std::string(kK3sBin) + " ] || curl -sfL https://get.k3s.io | " + version +
           "INSTALL_K3S_SKIP_START=true INSTALL_K3S_SKIP_ENABLE=true sh -\n";
    }
    s += "echo 50 > \"$P\"\n"
         "umask 077\n"
         "printf '%s\\n' " + shell_quote(token) + " > /etc/rancher/k3s/token\n"
         "umask 022\n"
         "if [ -d /run/systemd/system ]; then\n"
         "  cat > /etc/systemd/system/k3s.service <<'EOF'\n"
         "[Unit]\nDescription=k3s\nAfter=network-online.target\n"
         "[Service]\nExecStart=" + kK3sBin + " " + exec(n) + "\nRestart=always\nRestartSec=5\nKillMode=process\nDelegate=yes\n"
         "LimitNOFILE=1048576\n[Install]\nWantedBy=multi-user.target\nEOF\n"
         "  systemctl daemon-reload\n"
         "  systemctl enable --now k3s.service\n"
         "else\n"
         "  if [ -f /var/lib/rancher/k3s.pid ] && alive \"$(cat /var/lib/rancher/k3s.pid)\"; then :; else\n"
         // sh -c's own pid leads the session setsid made (setsid may fork, so $! would not be it).
         "    setsid sh -c 'echo $$ > /var/lib/rancher/k3s.pid; exec " + kK3sBin + " " + exec(n) + "' > /var/lib/rancher/k3s.log 2>&1 < /dev/null &\n"
         "    i=0\n"
         "    while [ ! -s /var/lib/rancher/k3s.pid ] && [ \"$i\" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done\n"
         "  fi\n"
         "fi\n"
         "echo 75 > \"$P\"\n";
    return {"install", s};
  }

  Script configure(const NodeContext& n) const override {
    std::string s =
        "set -eu\n"
        "P=/var/lib/rancher/k3s-install-progress\n"
        "i=0\n";
    if (n.node.role == "server")
      s += "until " + std::string(kK3sBin) + " kubectl get node " + shell_quote(n.node.name) +
           " 2>/dev/null | grep -q ' Ready'; do\n";
    else
      s += "until [ -f /var/lib/rancher/k3s/agent/kubelet.kubeconfig ]; do\n";
    s += "  i=$((i + 1))\n"
         "  [ \"$i\" -lt 600 ] || { echo 'k3s: the node is not Ready after 5 minutes' >&2; exit 1; }\n"
         "  sleep 0.5\n"
         "done\n"
         "echo 100 > \"$P\"\n";
    return {"configure", s};
  }

  Script stop(const NodeContext&) const override {
    return {"stop",
            "set -eu\n"
            "if [ -d /run/systemd/system ] && [ -f /etc/systemd/system/k3s.service ]; then systemctl stop k3s.service; fi\n"
            "if [ -f /var/lib/rancher/k3s.pid ]; then kill -TERM \"-$(cat /var/lib/rancher/k3s.pid)\" 2>/dev/null || true; "
            "rm -f /var/lib/rancher/k3s.pid; fi\n"};
  }

  Script start(const NodeContext& n) const override {
    Script s = install(n);
    s.step = "start";
    return s;
  }

  Script uninstall(const NodeContext& n) const override {
    Script s = stop(n);
    s.step = "uninstall";
    s.text += "if [ -d /run/systemd/system ]; then systemctl disable k3s.service 2>/dev/null || true; fi\n"
              "rm -f /etc/systemd/system/k3s.service " + std::string(kK3sBin) + "\n"
              "rm -rf /etc/rancher/k3s /var/lib/rancher\n";
    return s;
  }

 private:
  DistributionOptions o_;
  std::string sha_;
};

}  // namespace

core::Result<std::unique_ptr<Distribution>> make_k3s(const DistributionOptions& o) {
  std::string sha;
  if (!o.k3s_binary.empty()) {
    auto h = sha256_file(o.k3s_binary);
    if (!h.is_ok()) return core::not_found("--k3s-binary: " + std::string(h.status().message()));
    sha = *h;
  }
  return std::unique_ptr<Distribution>(std::make_unique<K3s>(o, sha));
}

}  // namespace gantry::cluster
