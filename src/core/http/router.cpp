#include "core/http/router.h"

#include <stdexcept>

namespace gantry::core::http {

void Responder::send(Response&& r) const {
  if (!state_ || state_->sent) return;
  state_->sent = true;
  state_->done(std::move(r));
}

Responder::State::~State() {
  if (!sent) {
    Response r;
    r.error(500, "handler did not answer");
    done(std::move(r));
  }
}

namespace {
std::vector<std::string> split_path(std::string_view p) {
  std::vector<std::string> out;
  if (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (true) {
    auto slash = p.find('/');
    out.emplace_back(p.substr(0, slash));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  return out;
}
bool is_param(const std::string& seg) { return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}'; }
}  // namespace

Router& Router::add(Method m, std::string pattern, Handler h) {
  auto r = std::make_unique<Route>();
  r->method = m;
  r->pattern = std::move(pattern);
  r->sync = std::move(h);
  if (r->pattern.empty() || r->pattern.front() != '/') throw std::invalid_argument("route must start with /: " + r->pattern);
  r->segments = split_path(r->pattern);
  bool literal = true;
  for (size_t i = 0; i < r->segments.size(); ++i) {
    auto& s = r->segments[i];
    if (!is_param(s)) continue;
    literal = false;
    if (s.size() > 5 && s.compare(s.size() - 4, 4, "...}") == 0) {
      if (i + 1 != r->segments.size()) throw std::invalid_argument("{name...} must be last: " + r->pattern);
      r->rest = true;
      s = "{" + s.substr(1, s.size() - 5) + "}";
    }
  }
  const Route* raw = r.get();
  routes_.push_back(std::move(r));
  if (literal) literal_[raw->pattern].push_back(raw);
  else patterned_.push_back(raw);
  return *this;
}

Router& Router::add_async(Method m, std::string pattern, AsyncHandler h) {
  add(m, std::move(pattern), nullptr);
  const_cast<Route*>(routes_.back().get())->async = std::move(h);
  return *this;
}

Router& Router::add_deferrable(Method m, std::string pattern, DeferrableHandler h) {
  add(m, std::move(pattern), nullptr);
  const_cast<Route*>(routes_.back().get())->deferrable = std::move(h);
  return *this;
}

bool Router::has(Method m, std::string_view pattern) const {
  for (auto& r : routes_)
    if (r->method == m && r->pattern == pattern) return true;
  return false;
}

std::vector<std::pair<Method, std::string>> Router::routes() const {
  std::vector<std::pair<Method, std::string>> out;
  out.reserve(routes_.size());
  for (auto& r : routes_) out.emplace_back(r->method, r->pattern);
  return out;
}

bool Router::match(const Route& r, std::string_view path,
                   std::vector<std::pair<std::string_view, std::string_view>>& params) {
  params.clear();
  if (path.empty() || path.front() != '/') return false;
  path.remove_prefix(1);
  for (size_t i = 0; i < r.segments.size(); ++i) {
    const std::string& seg = r.segments[i];
    bool last = i + 1 == r.segments.size();
    if (last && r.rest) {
      if (path.empty()) return false;
      params.emplace_back(std::string_view(seg).substr(1, seg.size() - 2), path);
      return true;
    }
    auto slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (is_param(seg)) {
      if (part.empty()) return false;
      params.emplace_back(std::string_view(seg).substr(1, seg.size() - 2), part);
    } else if (part != seg) {
      return false;
    }
    if (last) return slash == std::string_view::npos;
    if (slash == std::string_view::npos) return false;
    path.remove_prefix(slash + 1);
  }
  return false;
}

const Router::Route* Router::find(Request& req, std::string* allow) const {
  const Route* get_fallback = nullptr;  // HEAD is served by the GET route when none is declared
  auto consider = [&](const Route* r) -> bool {
    if (r->method == req.method_) return true;
    if (req.method_ == Method::kHead && r->method == Method::kGet && !get_fallback) get_fallback = r;
    if (allow->find(method_name(r->method)) == std::string::npos) {
      if (!allow->empty()) *allow += ", ";
      *allow += method_name(r->method);
    }
    return false;
  };
  if (auto it = literal_.find(req.path_); it != literal_.end()) {
    req.params_.clear();
    for (const Route* r : it->second)
      if (consider(r)) return r;
  }
  std::vector<std::pair<std::string_view, std::string_view>> params;
  for (const Route* r : patterned_) {
    if (!match(*r, req.path_, params)) continue;
    if (consider(r)) {
      req.params_ = std::move(params);
      return r;
    }
    if (get_fallback == r) req.params_ = params;
  }
  return get_fallback;
}

bool Router::dispatch(Request& req, Response& out, const std::function<Responder()>& make_responder) const {
  std::string allow;
  const Route* r = find(req, &allow);
  if (!r) {
    if (!allow.empty()) {
      out.error(405, "method " + std::string(req.method_text()) + " not allowed on " + std::string(req.path()));
      out.set_header("Allow", allow);
    } else {
      out.error(404, "no such path: " + std::string(req.path()));
    }
    return true;
  }
  if (r->async) {
    r->async(req, make_responder());
    return false;
  }
  if (r->deferrable) return r->deferrable(req, out, make_responder);
  r->sync(req, out);
  return true;
}

}  // namespace gantry::core::http
