// api/<role>.openapi.json is held to two judges: Redocly's linter (a validator nobody here
// wrote, installed under api/ from its lockfile), and the running role itself: each HTTP role,
// started for real, serves exactly that document at /openapi.json, and the routes it registered
// (its debug log line "routes") are the document's paths and methods, no more and no fewer.
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "core/http/client.h"
#include "env.h"
#include "private_servers.h"
#include "process.h"

namespace gantry::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
const fs::path kApi = fs::path(GANTRY_SOURCE_DIR) / "api";


// Every HTTP role the platform ships. `hello` is left out on purpose: it is a fixture for
// smoke tests, benchmarks and the demo, with routes that change with its flags, not an API.
const std::vector<std::string> kRoles = {"controller", "agent",        "worker",      "probe",  "ingest",
                                         "aggregator", "orchestrator", "scan-bridge", "trades", "cluster-serve"};

// "GET /agents/{id}" for every operation of a document.
std::set<std::string> documented(const boost::json::value& doc) {
  std::set<std::string> out;
  for (auto& [path, item] : doc.at("paths").as_object())
    for (auto& [method, _] : item.as_object()) {
      std::string m(method);
      if (m == "parameters" || m == "summary" || m == "description" || m == "servers") continue;
      for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.insert(m + " " + std::string(path));
    }
  return out;
}

TEST(OpenApi, DocumentsPassRedoclyLintAndCoverExactlyTheShippedRoles) {
  std::set<std::string> files;
  for (auto& e : fs::directory_iterator(kApi)) {
    std::string name = e.path().filename();
    if (name.size() > 13 && name.ends_with(".openapi.json")) files.insert(name.substr(0, name.size() - 13));
  }
  EXPECT_EQ(files, std::set<std::string>(kRoles.begin(), kRoles.end()))
      << "api/ must hold one document per HTTP role of kRoles (a new role: add both)";

  ASSERT_TRUE(fs::exists(kApi / "node_modules/.bin/redocly")) << "api/node_modules is missing: run scripts/install-deps";
  // recommended-strict (api/redocly.yaml) makes every finding an error, so exit 0 means none.
  std::string cmd = "cd '" + kApi.string() + "' && node_modules/.bin/redocly lint --format=stylish *.openapi.json";
  Ran r = run({"sh", "-c", cmd}, {{"REDOCLY_TELEMETRY", "off"}, {"REDOCLY_SUPPRESS_UPDATE_NOTICE", "true"}}, 120s);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("valid"), std::string::npos) << r.out << r.err;
}

TEST(OpenApi, EveryRunningRoleServesItsDocumentListingExactlyItsRoutes) {
  // Every role in one process (`gantry up`), each on a free port, against servers of its own
  // where sharing would disturb other tests (streams, queues, tables).
  PrivateNats nats;
  FreshDatabase agg_db("openapi_agg"), orch_db("openapi_orch");
  std::string tag = std::to_string(::getpid());
  std::string svc = "openapi" + tag, amqp = server_url("GANTRY_AMQP_URL");
  fs::path dir = fs::temp_directory_path() / ("gantry-openapi-" + tag);
  fs::create_directories(dir);
  std::vector<std::string> argv{GANTRY_BINARY, "up", "--log-level", "debug", "--log-format", "json", "--roles", ""};
  for (auto& r : kRoles) argv.back() += (argv.back().empty() ? "" : ",") + r;
  for (const std::string& set : std::vector<std::string>{"controller.database_path=" + (dir / "fleet.db").string(),
                          "agent.registration_max_retries=-1",
                          "probe.target=http://127.0.0.1:1/",
                          "probe.interval=1h",
                          "ingest.nats_url=" + nats.url(),
                          "aggregator.nats_url=" + nats.url(),
                          "aggregator.db_url=" + agg_db.url,
                          "orchestrator.db_url=" + orch_db.url,
                          "orchestrator.amqp_url=" + amqp,
                          "orchestrator.services=" + svc,
                          "scan-bridge.amqp_url=" + amqp,
                          "scan-bridge.service=" + svc,
                          "scan-bridge.services=" + svc,
                          "scan-bridge.url=http://127.0.0.1:1",
                          "trades.nats_url=" + nats.url(),
                          "trades.redis_addr=" + server_url("GANTRY_REDIS_URL"),
                          "cluster-serve.state_dir=" + (dir / "clusters").string()}) {
    argv.push_back("--set");
    argv.push_back(set);
  }
  for (auto& r : kRoles)
    if (r != "controller") argv.insert(argv.end(), {"--set", r + ".access_log=false"});
  Child up(argv);
  std::string out = up.wait_for_output("Ctrl-C stops", 90s);
  ASSERT_NE(out, "") << up.out() << up.err();
  for (const std::string& role : kRoles) {  // the log is written by a thread of its own: wait for every line
    out = up.wait_for_output("\"role\":\"" + role + "\",\"msg\":\"routes\"", 10s);
    ASSERT_NE(out, "") << "no routes line for " << role << "\n" << up.out() << up.err();
    // Its "listening" line is logged under its name, with no second "role" key.
    EXPECT_NE(up.wait_for_output("\"role\":\"" + role + "\",\"msg\":\"listening\",\"what\":", 10s), "")
        << "no listening line under " << role;
  }

  core::http::Client client;
  for (const std::string& role : kRoles) {
    SCOPED_TRACE(role);
    // The routes it registered, from its debug line {"role":"<role>","msg":"routes","routes":"GET /a POST /b"}.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex("\"role\":\"" + role + "\",\"msg\":\"routes\",\"routes\":\"([^\"]*)\"")))
        << "no routes line for " << role;
    std::set<std::string> registered;
    std::string list = m[1];
    static const std::regex route(R"(([A-Z]+) (\S+))");
    for (std::sregex_iterator it(list.begin(), list.end(), route), end; it != end; ++it)
      registered.insert((*it)[1].str() + " " + (*it)[2].str());
    // Its address, from the `gantry up` table: "  <role> http http://127.0.0.1:PORT".
    ASSERT_TRUE(std::regex_search(out, m, std::regex("\n  " + role + " +http +(http://[0-9.:]+)"))) << out;
    std::string base = m[1];

    auto served = client.get(base + "/openapi.json");
    ASSERT_TRUE(served.is_ok()) << served.status().to_string();
    EXPECT_EQ(served->status, 200);
    std::string file = read_file(kApi / (role + ".openapi.json"));
    EXPECT_EQ(served->body, file) << "what " << role << " serves differs from api/" << role << ".openapi.json";
    boost::system::error_code ec;
    boost::json::value doc = boost::json::parse(file, ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(doc.at("openapi").as_string(), "3.1.0");

    std::set<std::string> listed = documented(doc);
    for (auto& r : registered) EXPECT_TRUE(listed.count(r)) << role << " serves " << r << ", which its document does not list";
    for (auto& l : listed) EXPECT_TRUE(registered.count(l)) << role << "'s document lists " << l << ", which it does not serve";
    EXPECT_GE(registered.size(), 4u);  // at least /health, /ready, /metrics, /openapi.json
  }

  up.signal(SIGTERM);
  EXPECT_EQ(up.wait(40s), 0) << up.out() << up.err();
  run({"amqp-delete-queue", "-u", amqp, "-q", "q" + svc}, {}, 20s);
  run({"amqp-delete-queue", "-u", amqp, "-q", "q" + svc + ".dlq"}, {}, 20s);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gantry::testing
