#include "core/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include <toml++/toml.h>

namespace gantry::core::config {

std::string_view source_name(Source s) {
  switch (s) {
    case Source::kDefault: return "default";
    case Source::kFile: return "file";
    case Source::kEnv: return "env";
    case Source::kFlag: return "flag";
  }
  return "?";
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

template <class Int>
std::optional<std::string> parse_int(std::string_view text, Int* out) {
  text = trim(text);
  Int v{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range) return "'" + std::string(text) + "' is out of range";
  if (ec != std::errc() || p != text.data() + text.size() || text.empty())
    return "'" + std::string(text) + "' is not an integer";
  *out = v;
  return std::nullopt;
}

}  // namespace

std::optional<std::string> parse(std::string_view text, std::string* out) {
  *out = std::string(text);
  return std::nullopt;
}

std::optional<std::string> parse(std::string_view text, bool* out) {
  std::string t(trim(text));
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") { *out = true; return std::nullopt; }
  if (t == "false" || t == "0" || t == "no" || t == "off") { *out = false; return std::nullopt; }
  return "'" + std::string(text) + "' is not a boolean (true/false)";
}

std::optional<std::string> parse(std::string_view text, int* out) { return parse_int(text, out); }
std::optional<std::string> parse(std::string_view text, int64_t* out) { return parse_int(text, out); }
std::optional<std::string> parse(std::string_view text, uint16_t* out) {
  int64_t v = 0;
  if (auto e = parse_int(text, &v)) return e;
  if (v < 0 || v > 65535) return "'" + std::string(trim(text)) + "' is not a port (0..65535)";
  *out = static_cast<uint16_t>(v);
  return std::nullopt;
}

std::optional<std::string> parse(std::string_view text, double* out) {
  std::string t(trim(text));
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || errno == ERANGE || !std::isfinite(v))
    return "'" + t + "' is not a number";
  *out = v;
  return std::nullopt;
}

std::optional<std::string> parse(std::string_view text, std::chrono::milliseconds* out) {
  std::string t(trim(text));
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || errno == ERANGE || !std::isfinite(v))
    return "'" + t + "' is not a duration (e.g. 5, 5s, 250ms, 1m, 2h)";
  std::string_view unit = trim(std::string_view(end));
  double ms_per = 0;
  if (unit.empty() || unit == "s") ms_per = 1000;  // a bare number is seconds, as the originals read it
  else if (unit == "ms") ms_per = 1;
  else if (unit == "us" || unit == "µs") ms_per = 0.001;
  else if (unit == "ns") ms_per = 0.000001;
  else if (unit == "m" || unit == "min") ms_per = 60'000;
  else if (unit == "h") ms_per = 3'600'000;
  else return "'" + t + "' has an unknown duration unit (use ms, s, m or h)";
  if (v < 0) return "'" + t + "' is negative";
  double ms = v * ms_per;
  if (ms > 1e15) return "'" + t + "' is out of range";
  *out = std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
  return std::nullopt;
}

std::optional<std::string> parse(std::string_view text, std::vector<std::string>* out) {
  std::vector<std::string> items;
  std::string_view rest = text;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    if (!item.empty()) items.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  *out = std::move(items);
  return std::nullopt;
}

std::string format(const std::string& v) { return v; }
std::string format(bool v) { return v ? "true" : "false"; }
std::string format(int v) { return std::to_string(v); }
std::string format(int64_t v) { return std::to_string(v); }
std::string format(uint16_t v) { return std::to_string(v); }
std::string format(double v) {
  // Whole numbers in full (1000000000, not 1e+09), as a user would type them.
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream o;
  o << v;
  return o.str();
}
std::string format(std::chrono::milliseconds v) {
  int64_t ms = v.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}
std::string format(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

std::vector<std::string> file_sections(const std::string& path) {
  std::vector<std::string> out;
  try {
    toml::table t = toml::parse_file(path);
    for (auto&& [k, node] : t)
      if (node.is_table()) out.emplace_back(k.str());
  } catch (const toml::parse_error&) {
  }
  return out;
}

std::string mask(std::string_view secret) { return secret.empty() ? std::string() : std::string("****"); }

namespace {

std::string comparable(std::string_view name) {
  while (!name.empty() && name.front() == '-') name.remove_prefix(1);
  std::string out(name);
  for (char& c : out)
    if (c == '-') c = '_';
  return out;
}

// Optimal string alignment distance: edits, insertions, deletions and swaps of neighbours.
size_t typo_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

}  // namespace

std::string suggestion(std::string_view name, const std::vector<std::string>& candidates) {
  const std::string want = comparable(name);
  if (want.empty()) return {};
  const size_t allowed = std::max<size_t>(1, want.size() / 5);
  const std::string* best = nullptr;
  size_t best_distance = allowed + 1;
  for (auto& c : candidates) {
    std::string other = comparable(c);
    // The distance is at least the difference in length: a long key from a file costs nothing.
    if (std::max(want.size(), other.size()) - std::min(want.size(), other.size()) > allowed) continue;
    if (size_t dist = typo_distance(want, other); dist < best_distance) {
      best = &c;
      best_distance = dist;
    }
  }
  if (best) return " (did you mean " + *best + "?)";
  // redis_url: the redis_* family. A single word (port) has no family: the names holding it
  // as one of their words (metrics_port, db_port). A first word nobody uses (nats_url where
  // only url exists): the names holding the last word.
  auto holding = [](const std::string& other, const std::string& word, bool anywhere) {
    auto at_word = [&](size_t at) {
      return (at == 0 || other[at - 1] == '_') && (at + word.size() == other.size() || other[at + word.size()] == '_');
    };
    if (other.compare(0, word.size(), word) == 0 && at_word(0)) return true;
    for (size_t at = other.find(word, 1); anywhere && at != std::string::npos; at = other.find(word, at + 1))
      if (at_word(at)) return true;
    return false;
  };
  const std::string first = want.substr(0, want.find('_')), last = want.substr(want.rfind('_') + 1);
  const bool one_word = first.size() == want.size();
  std::vector<const std::string*> similar;
  for (auto& c : candidates)
    if (holding(comparable(c), first, one_word)) similar.push_back(&c);
  if (similar.empty() && !one_word && !last.empty())
    for (auto& c : candidates)
      if (holding(comparable(c), last, true)) similar.push_back(&c);
  if (similar.empty()) return {};
  constexpr size_t kShown = 4;
  std::string out = " (similar: ";
  for (size_t i = 0; i < similar.size() && i < kShown; ++i) out += (i ? ", " : "") + *similar[i];
  if (similar.size() > kShown) out += " and " + std::to_string(similar.size() - kShown) + " more";
  return out + ")";
}

Field& Field::range(double lo, double hi) {
  auto numeric = numeric_;
  auto text = bound_text_;
  rules_.push_back([numeric, text, lo, hi]() -> std::optional<std::string> {
    if (!numeric) return std::nullopt;
    double v = numeric();
    if (v < lo || v > hi) return "must be between " + text(lo) + " and " + text(hi);
    return std::nullopt;
  });
  return *this;
}

Field& Field::one_of(std::vector<std::string> allowed) {
  auto fmt = format_;
  rules_.push_back([fmt, allowed]() -> std::optional<std::string> {
    std::string v = fmt();
    if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return std::nullopt;
    return "must be one of " + config::format(allowed);
  });
  return *this;
}

Field& Schema::new_field(std::string key, std::string help) {
  auto f = std::unique_ptr<Field>(new Field());
  f->flag_ = key;
  std::replace(f->flag_.begin(), f->flag_.end(), '_', '-');
  std::replace(f->flag_.begin(), f->flag_.end(), '.', '-');
  f->key_ = std::move(key);
  f->help_ = std::move(help);
  fields_.push_back(std::move(f));
  return *fields_.back();
}

const Field* Schema::find(std::string_view key) const {
  for (auto& f : fields_)
    if (f->key_ == key) return f.get();
  return nullptr;
}

std::vector<std::string> Schema::keys() const {
  std::vector<std::string> out;
  for (auto& f : fields_) out.push_back(f->key_);
  return out;
}

namespace {

// Flattens a TOML table into dotted keys with their values as text.
void flatten(const toml::table& t, const std::string& prefix, std::map<std::string, std::string>& out,
             std::vector<std::string>& errors) {
  for (auto&& [k, node] : t) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (auto* sub = node.as_table()) {
      flatten(*sub, key, out, errors);
    } else if (auto* arr = node.as_array()) {
      std::string joined;
      for (size_t i = 0; i < arr->size(); ++i) {
        auto& e = (*arr)[i];
        std::string item;
        // value_exact: toml++'s converting value<int64_t>() casts a float such as 1e195 to an
        // integer, which is undefined (found by fuzz/config_values).
        if (auto s = e.value_exact<std::string>()) item = *s;
        else if (auto n = e.value_exact<int64_t>()) item = std::to_string(*n);
        else {
          errors.push_back(key + ": list items must be strings or integers");
          break;
        }
        joined += (i ? "," : "") + item;
      }
      out[key] = joined;
    } else if (auto s = node.value_exact<std::string>()) {
      out[key] = *s;
    } else if (auto b = node.value_exact<bool>()) {
      out[key] = *b ? "true" : "false";
    } else if (auto i = node.value_exact<int64_t>()) {
      out[key] = std::to_string(*i);
    } else if (auto d = node.value_exact<double>()) {
      out[key] = format(*d);
    } else {
      errors.push_back(key + ": unsupported TOML value type");
    }
  }
}

}  // namespace

Status Schema::load(const Inputs& in) {
  std::vector<std::string> errors;
  std::map<std::string, std::string> file_values;
  std::string where_file;

  if (!in.file.empty()) {
    where_file = in.file;
    toml::table parsed;
    bool parsed_ok = true;
    try {
      parsed = toml::parse_file(in.file);
    } catch (const toml::parse_error& err) {
      parsed_ok = false;
      std::ostringstream o;
      o << in.file << ":" << err.source().begin.line << ":" << err.source().begin.column << ": "
        << err.description();
      errors.push_back(o.str());
    }
    if (parsed_ok) {
      const toml::table& root = parsed;
      const toml::table* section = &root;
      if (!section_.empty()) section = root[section_].as_table();
      if (section) {
        std::map<std::string, std::string> all;
        // At the top level only plain values belong to this schema; tables are other sections.
        if (section_.empty()) {
          for (auto&& [k, node] : root)
            if (!node.is_table()) {
              toml::table single;
              single.insert(k, node);
              flatten(single, "", all, errors);
            }
        } else {
          flatten(*section, "", all, errors);
        }
        for (auto& [k, v] : all) {
          if (!find(k)) {
            errors.push_back(where_file + ": unknown key '" + (section_.empty() ? k : section_ + "." + k) + "'" +
                             suggestion(k, keys()));
          } else {
            file_values[k] = v;
          }
        }
      }
    }
  }

  auto getenv = in.env ? in.env : [](const std::string& n) -> std::optional<std::string> {
    const char* v = std::getenv(n.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  };

  for (auto& f : fields_) f->save_();
  for (auto& f : fields_) {
    std::optional<std::string> text;
    std::string origin;
    Source src = Source::kDefault;
    if (auto it = in.flags.find(f->key_); it != in.flags.end()) {
      text = it->second, src = Source::kFlag, origin = "flag --" + f->flag_;
    } else {
      for (auto& e : f->envs_)
        if (auto v = getenv(e)) { text = *v, src = Source::kEnv, origin = "env " + e; break; }
      if (!text) {
        if (auto it2 = file_values.find(f->key_); it2 != file_values.end())
          text = it2->second, src = Source::kFile, origin = where_file;
      }
    }
    std::string name = section_.empty() ? f->key_ : section_ + "." + f->key_;
    if (text) {
      if (auto err = f->parse_(*text)) {
        // A secret's text never reaches a message.
        errors.push_back(name + ": " + (f->secret_ ? std::string("invalid value") : *err) + " (from " + origin + ")");
        continue;
      }
      f->source_ = src;
    }
    for (auto& rule : f->rules_) {
      if (auto err = rule()) {
        std::string shown = f->secret_ ? "****" : f->format_();
        errors.push_back(name + ": " + (shown.empty() ? "(empty)" : shown) + " " + *err +
                         (origin.empty() ? "" : " (from " + origin + ")"));
        break;
      }
    }
  }

  if (!errors.empty()) {
    for (auto& f : fields_) {
      f->restore_();
      f->source_ = Source::kDefault;
    }
    std::string msg;
    for (auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  return {};
}

std::string Schema::print() const {
  std::ostringstream o;
  if (!section_.empty()) o << "[" << section_ << "]\n";
  for (auto& f : fields_) {
    std::string v = f->secret_ ? mask(f->format_()) : f->format_();
    std::string shown;
    if (f->numeric_ && !f->format_().empty() && f->format_().find_first_not_of("0123456789.-") == std::string::npos)
      shown = v;  // plain numbers print bare
    else if (f->is_bool_)
      shown = v;
    else {
      shown = "\"";
      for (char c : v) {
        if (c == '"' || c == '\\') shown += '\\';
        shown += c;
      }
      shown += "\"";
    }
    o << f->key_ << " = " << shown << "  # " << source_name(f->source_);
    if (!f->envs_.empty()) {
      o << "; env";
      for (auto& e : f->envs_) o << " " << e;
    }
    o << "\n";
  }
  return o.str();
}

}  // namespace gantry::core::config
