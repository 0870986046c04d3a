#include "fleet/worker/html.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include <cstring>
#include <memory>

namespace gantry::fleet::worker {

namespace {

struct DocFree {
  void operator()(xmlDoc* d) const { xmlFreeDoc(d); }
};
using Doc = std::unique_ptr<xmlDoc, DocFree>;

Doc parse(std::string_view html) {
  return Doc(htmlReadMemory(html.data(), static_cast<int>(html.size()), nullptr, "UTF-8",
                            HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                                HTML_PARSE_COMPACT));
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool named(const xmlNode* n, const char* name) {
  return n->type == XML_ELEMENT_NODE && n->name && strcasecmp(reinterpret_cast<const char*>(n->name), name) == 0;
}

void collect(const xmlNode* n, std::string& out) {
  for (; n; n = n->next) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (n->content) out += reinterpret_cast<const char*>(n->content);
    } else if (n->type == XML_ELEMENT_NODE) {
      if (named(n, "script") || named(n, "style") || named(n, "noscript") || named(n, "template")) continue;
      // Block boundaries separate words that the markup kept apart.
      out += ' ';
      collect(n->children, out);
      out += ' ';
    }
  }
}

const xmlNode* find(const xmlNode* n, const std::function<bool(const xmlNode*)>& pred) {
  for (; n; n = n->next) {
    if (pred(n)) return n;
    if (n->type == XML_ELEMENT_NODE)
      if (const xmlNode* f = find(n->children, pred)) return f;
  }
  return nullptr;
}

std::string collapse(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (char c : s) {
    if (is_space(c)) {
      space = !out.empty();
    } else {
      if (space) out += ' ';
      space = false;
      out += c;
    }
  }
  return out;
}

}  // namespace

bool is_html(std::string_view ct, std::string_view body) {
  if (!ct.empty()) {
    for (size_t i = 0; i + 4 <= ct.size(); ++i)
      if (strncasecmp(ct.data() + i, "html", 4) == 0) return true;
    return false;
  }
  size_t i = 0;
  while (i < body.size() && is_space(body[i])) ++i;
  return i < body.size() && body[i] == '<';
}

std::string body_text(std::string_view html) {
  Doc d = parse(html);
  if (!d) return trim(html);
  const xmlNode* root = xmlDocGetRootElement(d.get());
  const xmlNode* body = find(root, [](const xmlNode* n) { return named(n, "body"); });
  std::string raw;
  collect(body ? body->children : root, raw);
  return collapse(raw);
}

std::optional<std::string> input_value(std::string_view html, std::string_view name) {
  Doc d = parse(html);
  if (!d) return std::nullopt;
  std::string want(name);
  const xmlNode* input = find(xmlDocGetRootElement(d.get()), [&](const xmlNode* n) {
    if (!named(n, "input")) return false;
    xmlChar* v = xmlGetProp(n, BAD_CAST "name");
    bool match = v && want == reinterpret_cast<const char*>(v);
    xmlFree(v);
    return match;
  });
  if (!input) return std::nullopt;
  xmlChar* v = xmlGetProp(input, BAD_CAST "value");
  if (!v) return std::string();
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace gantry::fleet::worker
