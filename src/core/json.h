// The one way gantry writes JSON: a streaming writer appending to a std::string, with commas,
// escaping (RFC 8259: quotes, backslash, control characters) and number formatting handled.
// Reading JSON is Boost.JSON's (or simdjson on measured hot paths).
//
//   std::string body;
//   json::Writer w(body);
//   w.object().field("agent_id", id).field("interval", 30).key("tags").array();
//   for (auto& t : tags) w.value(t);
//   w.end().end();                       // -> {"agent_id":"…","interval":30,"tags":[…]}
//
// Doubles are written in the shortest form that reads back exactly (std::to_chars), or with a
// fixed number of decimals (value_fixed) for figures measured to a resolution; NaN and infinity,
// which JSON cannot hold, are written as null. raw() inserts text that is already JSON.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gantry::core::json {

// Appends s as a JSON string literal, quotes included.
void append_string(std::string_view s, std::string& out);
// Appends the inside of a JSON string literal (no quotes).
void append_escaped(std::string_view s, std::string& out);

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  Writer& object();
  Writer& array();
  Writer& end();  // closes the innermost object or array
  Writer& key(std::string_view k);

  Writer& value(std::string_view s);
  Writer& value(const char* s) { return value(std::string_view(s)); }
  Writer& value(const std::string& s) { return value(std::string_view(s)); }
  Writer& value(bool b);
  Writer& value(int v) { return value(static_cast<long long>(v)); }
  Writer& value(long v) { return value(static_cast<long long>(v)); }
  Writer& value(long long v);
  Writer& value(unsigned v) { return value(static_cast<unsigned long long>(v)); }
  Writer& value(unsigned long v) { return value(static_cast<unsigned long long>(v)); }
  Writer& value(unsigned long long v);
  Writer& value(double v);
  Writer& value_fixed(double v, int decimals);
  Writer& null();
  Writer& raw(std::string_view json);

  // key(k) then value(v).
  template <class V>
  Writer& field(std::string_view k, const V& v) {
    key(k);
    return value(v);
  }
  Writer& field_null(std::string_view k) { return key(k).null(); }
  Writer& field_raw(std::string_view k, std::string_view json) { return key(k).raw(json); }

 private:
  void before_value();
  std::string& out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  std::string closers_;      // per open container: '}' or ']'
  bool after_key_ = false;
};

}  // namespace gantry::core::json
