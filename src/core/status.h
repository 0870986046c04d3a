// Status and Result<T>: how expected failures travel in gantry.
//
// A Status is OK or carries a code, a message and where it happened ("pg.connect"). The OK
// path is one null pointer: constructing, copying, testing and destroying an OK status never
// allocates. Failures are values; exceptions are kept for bad startup configuration and bugs.
// "Not found" is normally an outcome (std::optional), not a Status.
#pragma once

#include <cassert>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace gantry::core {

enum class Code : unsigned char {
  kOk = 0,
  kInvalidArgument,     // bad input from a caller: never retried
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kUnauthenticated,
  kResourceExhausted,   // rate limit, queue full, size limit: retry later
  kFailedPrecondition,
  kAborted,             // conflict; retry the whole operation
  kDeadlineExceeded,
  kUnavailable,         // a server is down or unreachable: retryable
  kCancelled,
  kCircuitOpen,         // a circuit breaker refused the call without trying it
  kInternal,            // a bug or an impossible state
  kIoError,
};

std::string_view code_name(Code c) noexcept;

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;  // OK
  Status(Code code, std::string message, std::string_view where = {});

  Status(const Status& o) : rep_(o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr) {}
  Status& operator=(const Status& o) {
    if (this != &o) rep_ = o.rep_ ? std::make_unique<Rep>(*o.rep_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status ok() noexcept { return {}; }

  bool is_ok() const noexcept { return rep_ == nullptr; }
  explicit operator bool() const noexcept { return is_ok(); }
  Code code() const noexcept { return rep_ ? rep_->code : Code::kOk; }
  std::string_view message() const noexcept { return rep_ ? std::string_view(rep_->message) : std::string_view(); }
  std::string_view where() const noexcept { return rep_ ? std::string_view(rep_->where) : std::string_view(); }

  // Prefixes the location, so a failure deep in a call chain reads "agent.register: http.client: ...".
  Status& within(std::string_view outer);

  // "unavailable: pg.connect: connection refused"
  std::string to_string() const;

 private:
  struct Rep {
    Code code;
    std::string message;
    std::string where;
  };
  std::unique_ptr<Rep> rep_;
};

inline Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status internal_error(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status deadline_exceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status io_error(std::string m) { return {Code::kIoError, std::move(m)}; }

// A value or the Status explaining why there is none. Holding an OK Status is a bug.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::in_place_index<1>, std::move(status)) {  // NOLINT
    assert(!std::get<1>(v_).is_ok() && "Result built from an OK status");
  }

  bool is_ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return is_ok(); }

  T& value() & { assert(is_ok()); return std::get<0>(v_); }
  const T& value() const& { assert(is_ok()); return std::get<0>(v_); }
  T&& value() && { assert(is_ok()); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The failure; an OK Status when there is a value.
  Status status() const { return is_ok() ? Status() : std::get<1>(v_); }
  T value_or(T fallback) const& { return is_ok() ? std::get<0>(v_) : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace gantry::core

// Returns the failure of a Status-valued expression from the enclosing function.
#define GANTRY_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::gantry::core::Status gantry_status_ = (expr);  \
    if (!gantry_status_.is_ok()) return gantry_status_; \
  } while (0)

// `GANTRY_ASSIGN(x, expr);` declares x as the value of a Result-valued expression, or returns
// its failure from the enclosing function (which returns a Status or a Result).
#define GANTRY_CONCAT_INNER_(a, b) a##b
#define GANTRY_CONCAT_(a, b) GANTRY_CONCAT_INNER_(a, b)
#define GANTRY_ASSIGN(name, expr)                                                                          \
  auto GANTRY_CONCAT_(gantry_result_, __LINE__) = (expr);                                                  \
  if (!GANTRY_CONCAT_(gantry_result_, __LINE__).is_ok()) return GANTRY_CONCAT_(gantry_result_, __LINE__).status(); \
  auto name = std::move(*GANTRY_CONCAT_(gantry_result_, __LINE__))
