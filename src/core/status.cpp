#include "core/status.h"

namespace gantry::core {

std::string_view code_name(Code c) noexcept {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kResourceExhausted: return "resource exhausted";
    case Code::kFailedPrecondition: return "failed precondition";
    case Code::kAborted: return "aborted";
    case Code::kDeadlineExceeded: return "deadline exceeded";
    case Code::kUnavailable: return "unavailable";
    case Code::kCancelled: return "cancelled";
    case Code::kCircuitOpen: return "circuit open";
    case Code::kInternal: return "internal";
    case Code::kIoError: return "I/O error";
  }
  return "unknown";
}

Status::Status(Code code, std::string message, std::string_view where) {
  // An OK code with a message is still OK; keep the invariant "rep_ != null <=> failure".
  if (code != Code::kOk) rep_ = std::make_unique<Rep>(Rep{code, std::move(message), std::string(where)});
}

Status& Status::within(std::string_view outer) {
  if (rep_ && !outer.empty()) {
    rep_->where = rep_->where.empty() ? std::string(outer) : std::string(outer) + ": " + rep_->where;
  }
  return *this;
}

std::string Status::to_string() const {
  if (!rep_) return "ok";
  std::string s(code_name(rep_->code));
  s += ": ";
  if (!rep_->where.empty()) {
    s += rep_->where;
    s += ": ";
  }
  s += rep_->message;
  return s;
}

}  // namespace gantry::core
