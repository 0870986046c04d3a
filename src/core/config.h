// Typed, validated configuration with one precedence everywhere:
//   command-line flag > environment variable > TOML file > default.
//
// A role declares its settings struct once and binds each member to a key:
//
//   struct Settings { uint16_t port = 8080; std::chrono::milliseconds timeout{10'000}; };
//   Schema s("controller");
//   s.add("port", &st.port, "listen port").env("CONTROLLER_PORT").range(1, 65535);
//   s.add("timeout", &st.timeout, "request timeout").env("REQUEST_TIMEOUT");
//
// The key is the TOML key inside the schema's section (`[controller] port = 8080`) and, with
// '_' and '.' turned into '-', the flag (`--port`). load() resolves every field, converts and
// validates it, and reports every problem at once; nothing is half-applied: on failure the
// bound members keep their defaults. print() shows the effective values and where each came
// from, with secrets masked.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace gantry::core::config {

enum class Source { kDefault, kFile, kEnv, kFlag };
std::string_view source_name(Source s);

// Conversion of one setting's text ("5s", "true", "a,b") to its type. Returns an error message
// or nothing. Durations accept a bare number of seconds ("5"), or a number with ns, us, ms,
// s, m, h ("250ms", "1.5s", "1m"); lists are comma-separated.
std::optional<std::string> parse(std::string_view text, std::string* out);
std::optional<std::string> parse(std::string_view text, bool* out);
std::optional<std::string> parse(std::string_view text, int* out);
std::optional<std::string> parse(std::string_view text, int64_t* out);
std::optional<std::string> parse(std::string_view text, uint16_t* out);
std::optional<std::string> parse(std::string_view text, double* out);
std::optional<std::string> parse(std::string_view text, std::chrono::milliseconds* out);
std::optional<std::string> parse(std::string_view text, std::vector<std::string>* out);

std::string format(const std::string& v);
std::string format(bool v);
std::string format(int v);
std::string format(int64_t v);
std::string format(uint16_t v);
std::string format(double v);
std::string format(std::chrono::milliseconds v);
std::string format(const std::vector<std::string>& v);

// What load() reads besides defaults. Every member is optional.
struct Inputs {
  // Raw flag values by key, as given on the command line (filled by bind_flags in cli).
  std::map<std::string, std::string> flags;
  // Lookup of environment variables; defaults to ::getenv. Tests inject a map.
  std::function<std::optional<std::string>(const std::string&)> env;
  // Path of a TOML file; empty = none.
  std::string file;
};

class Field {
 public:
  // Environment variables read for this field, first found wins (the original systems'
  // names, then ours).
  Field& env(std::string name) { envs_.push_back(std::move(name)); return *this; }
  // Shown masked by print() and in error messages.
  Field& secret() { secret_ = true; return *this; }
  // Overrides the derived flag name (without the leading dashes).
  Field& flag(std::string name) { flag_ = std::move(name); return *this; }
  // An inclusive numeric range (ints, doubles, durations in milliseconds).
  Field& range(double lo, double hi);
  // Any further rule: returns an error message when the value is not acceptable.
  Field& check(std::function<std::optional<std::string>()> rule) {
    rules_.push_back(std::move(rule));
    return *this;
  }
  Field& one_of(std::vector<std::string> allowed);

  const std::string& key() const { return key_; }
  const std::string& help() const { return help_; }
  const std::string& flag_name() const { return flag_; }
  const std::vector<std::string>& envs() const { return envs_; }
  bool is_secret() const { return secret_; }
  bool is_bool() const { return is_bool_; }
  // For help text: TEXT, BOOL, INT, NUMBER, PORT, DURATION or LIST.
  std::string_view type_name() const { return type_name_; }
  Source source() const { return source_; }
  std::string value_text() const { return format_(); }
  std::string default_text() const { return default_text_; }

 private:
  friend class Schema;
  Field() = default;

  std::string key_, help_, flag_, default_text_;
  std::vector<std::string> envs_;
  bool secret_ = false;
  bool is_bool_ = false;
  std::string_view type_name_ = "TEXT";
  Source source_ = Source::kDefault;
  std::function<std::optional<std::string>(std::string_view)> parse_;
  std::function<std::string()> format_;
  std::function<double()> numeric_;  // for range(); null for non-numeric types
  std::function<std::string(double)> bound_text_;  // a range bound as the value is written (1s, not 1000)
  std::function<void()> save_, restore_;
  std::vector<std::function<std::optional<std::string>()>> rules_;
};

class Schema {
 public:
  // section: the TOML table this schema reads ("" = the file's top level).
  explicit Schema(std::string section = "") : section_(std::move(section)) {}
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;

  template <class T>
  Field& add(std::string key, T* target, std::string help) {
    Field& f = new_field(std::move(key), std::move(help));
    f.is_bool_ = std::is_same_v<T, bool>;
    if constexpr (std::is_same_v<T, bool>) f.type_name_ = "BOOL";
    else if constexpr (std::is_same_v<T, uint16_t>) f.type_name_ = "PORT";
    else if constexpr (std::is_integral_v<T>) f.type_name_ = "INT";
    else if constexpr (std::is_floating_point_v<T>) f.type_name_ = "NUMBER";
    else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) f.type_name_ = "DURATION";
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) f.type_name_ = "LIST";
    f.parse_ = [target](std::string_view text) { return config::parse(text, target); };
    f.format_ = [target] { return config::format(*target); };
    f.default_text_ = config::format(*target);
    auto saved = std::make_shared<T>(*target);
    f.save_ = [target, saved] { *saved = *target; };
    f.restore_ = [target, saved] { *target = *saved; };
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      f.numeric_ = [target] { return static_cast<double>(*target); };
      f.bound_text_ = [](double v) { return config::format(v); };
    } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
      f.numeric_ = [target] { return static_cast<double>(target->count()); };
      f.bound_text_ = [](double v) { return config::format(std::chrono::milliseconds(static_cast<int64_t>(v))); };
    }
    return f;
  }

  // Resolves, converts and validates every field. On failure returns kInvalidArgument whose
  // message lists every problem, one per line, and leaves every bound member as it was.
  Status load(const Inputs& in);

  // key = value  # source   (TOML, secrets masked), one line per field.
  std::string print() const;

  const std::string& section() const { return section_; }
  const std::vector<std::unique_ptr<Field>>& fields() const { return fields_; }
  const Field* find(std::string_view key) const;
  std::vector<std::string> keys() const;  // in the order they were added

 private:
  Field& new_field(std::string key, std::string help);

  std::string section_;
  std::vector<std::unique_ptr<Field>> fields_;
};

// The names of the top-level tables of a TOML file, so a caller can reject sections nobody
// reads (a misspelled role). A file that does not parse is reported by Schema::load instead,
// and gives an empty list here.
std::vector<std::string> file_sections(const std::string& path);

// Masks a secret for display: "" stays "", anything else becomes "****".
std::string mask(std::string_view secret);

// What a person probably meant by a name nobody knows, for the end of its error message:
// " (did you mean port?)" when a candidate is a typo away (one edit, insertion, deletion or
// swap of neighbours per five characters, at least one); else " (similar: redis_addr,
// redis_password, redis_db, redis_pool_size and 9 more)" for the candidates, in their order,
// that share its first word (redis_url), or for a one-word name those holding it as a word
// (port: metrics_port, db_port), or when no name shares the first word those holding the last
// (nats_url: url); else "". Leading dashes are ignored and '-' and '_' compare
// alike, so flags (--redis-addr) and TOML keys (redis_addr) are matched the same way.
std::string suggestion(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace gantry::core::config
