#include "cli/hello.h"

namespace gantry::cli {

namespace {

using namespace gantry::core;

struct HelloSettings {
  std::string address = "0.0.0.0";
  uint16_t port = 8090;
  std::string body = "Hello, World!";
  std::string content_type = "text/plain; charset=utf-8";
  http::ServerOptions http;
};

class Hello final : public runtime::HttpRole {
 public:
  explicit Hello(const HelloSettings& s) : HttpRole("hello", s.http) {
    router().get("/", [body = s.body, type = s.content_type](const http::Request&, http::Response& r) {
      r.text(200, body);
      r.content_type = type;
    });
  }
};

class HelloFactory final : public runtime::RoleFactory {
 public:
  void bind(config::Schema& s) override {
    s.add("address", &st_.address, "listen address").env("HELLO_ADDRESS");
    s.add("port", &st_.port, "listen port (0 = any free port)").env("HELLO_PORT");
    s.add("body", &st_.body, "text answered on GET /").env("HELLO_BODY");
    s.add("content_type", &st_.content_type, "its content type (text/html makes it a page for the fleet demo)")
        .env("HELLO_CONTENT_TYPE");
    http::bind(s, &st_.http);
  }
  Result<std::unique_ptr<runtime::Role>> build() override {
    st_.http.address = st_.address;
    st_.http.port = st_.port;
    return std::unique_ptr<runtime::Role>(std::make_unique<Hello>(st_));
  }

 private:
  HelloSettings st_;
};

}  // namespace

core::runtime::RoleInfo hello_role() {
  return {"hello", "minimal HTTP role: answers GET / with fixed text (smoke tests, benchmarks)",
          [] { return std::make_unique<HelloFactory>(); }};
}

}  // namespace gantry::cli
