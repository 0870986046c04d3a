// Routes (method, path pattern) to handlers. Patterns are literal segments and `{name}`
// parameters ("/agents/{id}/interval"); a final `{name...}` captures the rest of the path.
// Literal paths are found by one hash lookup; patterns are tried in registration order.
// A path that matches no pattern is 404; one that matches for another method is 405 with an
// Allow header.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/http/message.h"

namespace gantry::core::http {

// Completes an asynchronous request. May be moved to any thread and called once; dropping it
// without calling send() answers 500 (a handler bug must not hang the client). The Request
// given with it stays valid until send() is called.
class Responder {
 public:
  Responder() = default;
  explicit Responder(std::function<void(Response&&)> done) : state_(std::make_shared<State>(std::move(done))) {}
  void send(Response&& r) const;
  bool valid() const { return state_ != nullptr; }

 private:
  struct State {
    explicit State(std::function<void(Response&&)> d) : done(std::move(d)) {}
    ~State();
    std::function<void(Response&&)> done;
    bool sent = false;
  };
  std::shared_ptr<State> state_;
};

using Handler = std::function<void(const Request&, Response&)>;
using AsyncHandler = std::function<void(const Request&, Responder)>;
// Answers in `out` and returns true (the cheap, common case), or takes a Responder from
// `defer()` and returns false to answer later (a long poll that has to wait).
using DeferrableHandler = std::function<bool(const Request&, Response& out, const std::function<Responder()>& defer)>;

class Router {
 public:
  Router& add(Method m, std::string pattern, Handler h);
  Router& add_async(Method m, std::string pattern, AsyncHandler h);
  Router& add_deferrable(Method m, std::string pattern, DeferrableHandler h);
  Router& get(std::string p, Handler h) { return add(Method::kGet, std::move(p), std::move(h)); }
  Router& post(std::string p, Handler h) { return add(Method::kPost, std::move(p), std::move(h)); }
  Router& put(std::string p, Handler h) { return add(Method::kPut, std::move(p), std::move(h)); }
  Router& del(std::string p, Handler h) { return add(Method::kDelete, std::move(p), std::move(h)); }
  // True when a route for this method and exact pattern exists (lets roles override defaults).
  bool has(Method m, std::string_view pattern) const;
  // Every (method, pattern) registered, in registration order: what an API description of
  // the role must list.
  std::vector<std::pair<Method, std::string>> routes() const;

  // Finds the handler, fills req's path parameters and runs it. A synchronous handler fills
  // `sync_out` and this returns true; an asynchronous one returns false and answers through
  // the responder later. 404/405 are answered synchronously.
  bool dispatch(Request& req, Response& sync_out, const std::function<Responder()>& make_responder) const;

 private:
  struct Route {
    Method method;
    std::string pattern;
    std::vector<std::string> segments;  // pattern split on '/'
    bool rest = false;                  // last segment is {name...}
    Handler sync;
    AsyncHandler async;
    DeferrableHandler deferrable;
  };
  const Route* find(Request& req, std::string* allow) const;
  static bool match(const Route& r, std::string_view path,
                    std::vector<std::pair<std::string_view, std::string_view>>& params);

  std::vector<std::unique_ptr<Route>> routes_;
  // literal pattern -> routes for it (one per method)
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<const Route*>, Hash, std::equal_to<>> literal_;
  std::vector<const Route*> patterned_;
};

}  // namespace gantry::core::http
