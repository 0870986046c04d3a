// gantry: one binary, one subcommand per role, plus `up` to run several roles in one process.
//
// Exit status: 0 success; 1 a role failed at run time; 2 bad usage or configuration (unknown
// flag, bad value in a flag, the environment or the TOML file: every problem is listed).
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

#include <CLI/CLI.hpp>

#include "cli/catalog.h"
#include "core/build_info.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/runtime.h"

namespace {

using namespace gantry;
using namespace gantry::core;

constexpr int kUsage = 2;

// Settings every command shares: logging and the shutdown deadline.
struct Globals {
  log::Settings log;
  std::chrono::milliseconds shutdown_timeout{30'000};
};

void bind_globals(config::Schema& s, Globals* g) {
  log::bind(s, &g->log);
  s.add("shutdown_timeout", &g->shutdown_timeout, "time allowed for a graceful stop after SIGTERM")
      .env("SHUTDOWN_TIMEOUT")
      .range(0, 3'600'000);
}

// The raw text of each flag the user gave, by config key, for config::Inputs::flags.
struct FlagSet {
  std::vector<std::pair<std::string, CLI::Option*>> options;
  std::map<std::string, std::string> storage;

  void add_all(CLI::App* app, const config::Schema& schema) {
    for (auto& f : schema.fields()) {
      std::string help = f->help();
      if (!f->envs().empty()) {
        help += " [env:";
        for (auto& e : f->envs()) help += " " + e;
        help += "]";
      }
      std::string def = f->is_secret() ? config::mask(f->default_text()) : f->default_text();
      if (!def.empty()) help += " (default: " + def + ")";
      std::string& slot = storage[f->key()];
      CLI::Option* o = app->add_option("--" + f->flag_name(), slot, help)->type_name(std::string(f->type_name()));
      if (f->is_bool()) o->expected(0, 1);  // `--access-log` alone means true
      // A list flag may be repeated (`--target A --target B`) as well as comma-separated.
      if (f->type_name() == "LIST") o->multi_option_policy(CLI::MultiOptionPolicy::Join)->delimiter(',');
      options.emplace_back(f->key(), o);
    }
  }
  std::map<std::string, std::string> given() const {
    std::map<std::string, std::string> out;
    for (auto& [key, opt] : options)
      if (opt->count() > 0) out[key] = storage.at(key).empty() && opt->get_type_name() == "BOOL" ? "true" : storage.at(key);
    return out;
  }
};

int config_errors(std::string_view command, const std::vector<Status>& statuses) {
  bool any = false;
  // Each schema reads the same file: a syntax error in it is reported by every one, but shown once.
  std::set<std::string> shown;
  for (auto& s : statuses) {
    if (s.is_ok()) continue;
    if (!any) std::fprintf(stderr, "gantry %.*s: invalid configuration:\n", int(command.size()), command.data());
    any = true;
    std::string msg(s.message());
    size_t start = 0;
    while (start <= msg.size()) {
      size_t nl = msg.find('\n', start);
      std::string line = msg.substr(start, nl - start);
      if (shown.insert(line).second) std::fprintf(stderr, "  - %s\n", line.c_str());
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
  return any ? kUsage : 0;
}

// CLI11 says only "The following arguments were not expected: 1 --prot", last word first and
// without the command, or "A subcommand is required" for a misspelt one. Name the command, each
// unknown word with what was probably meant, and where the choices are listed. Returns 0 when
// there is nothing of that kind (CLI11's text is kept).
int unknown_arguments(const CLI::App& app) {
  const CLI::App* cmd = nullptr;
  for (const CLI::App* sub : app.get_subcommands()) cmd = sub;
  auto long_names = [](const CLI::App& a) {
    std::vector<std::string> out;
    for (const CLI::Option* o : a.get_options())
      for (auto& l : o->get_lnames()) out.push_back("--" + l);
    return out;
  };
  auto option_name = [](const std::string& word) { return word.substr(0, word.find('=')); };
  // Words before the command are gantry's own: an unknown one, or a command's option too early.
  std::vector<std::string> top = app.remaining(false);
  if (!top.empty()) {
    const std::string& first = top.front();
    if (first.empty()) return 0;
    if (first[0] != '-') {
      std::vector<std::string> commands;
      for (const CLI::App* sub : const_cast<CLI::App&>(app).get_subcommands([](CLI::App*) { return true; }))
        commands.push_back(sub->get_name());
      std::fprintf(stderr, "gantry: unknown command '%s'%s\n", first.c_str(), config::suggestion(first, commands).c_str());
    } else {
      std::string opt = option_name(first);
      std::vector<std::string> own = cmd ? long_names(*cmd) : std::vector<std::string>{};
      if (std::find(own.begin(), own.end(), opt) != own.end())
        std::fprintf(stderr, "gantry: %s is an option of %s: put it after the command (gantry %s %s …)\n", opt.c_str(),
                     cmd->get_name().c_str(), cmd->get_name().c_str(), opt.c_str());
      else if (std::string hint = config::suggestion(opt, long_names(app)); !hint.empty())
        std::fprintf(stderr, "gantry: unknown option %s%s\n", opt.c_str(), hint.c_str());
      else
        std::fprintf(stderr, "gantry: unknown option %s (a role's options go after its name: gantry ROLE %s)\n", opt.c_str(), opt.c_str());
    }
    std::fprintf(stderr, "`gantry --help` lists the commands\n");
    return kUsage;
  }
  std::vector<std::string> extras = cmd ? cmd->remaining(true) : std::vector<std::string>{};
  if (extras.empty()) return 0;
  const std::vector<std::string> flags = long_names(*cmd);
  const std::string command = "gantry " + cmd->get_name();
  bool value_of_unknown = false;  // `--prot 1`: the 1 is the unknown option's, not a stray word
  for (auto& x : extras) {
    // `--poll-interval -5`: a negative number after an unknown option is its value, not an option.
    bool negative_number = x.size() > 1 && x[0] == '-' && (std::isdigit(static_cast<unsigned char>(x[1])) || x[1] == '.');
    if (x.size() > 1 && x[0] == '-' && !(value_of_unknown && negative_number)) {
      std::string opt = option_name(x);
      std::fprintf(stderr, "%s: unknown option %s%s\n", command.c_str(), opt.c_str(), config::suggestion(opt, flags).c_str());
      value_of_unknown = x.find('=') == std::string::npos;
    } else {
      if (!value_of_unknown) std::fprintf(stderr, "%s: unexpected argument '%s'\n", command.c_str(), x.c_str());
      value_of_unknown = false;
    }
  }
  std::fprintf(stderr, "`%s --help` lists its options\n", command.c_str());
  return kUsage;
}

// Every table of the file must be a role's: a misspelled [contoller] would otherwise be
// silently ignored.
Status check_sections(const std::string& file, const std::vector<std::string>& roles, const std::string& known) {
  if (file.empty()) return {};
  std::string bad;
  for (auto& sec : config::file_sections(file)) {
    if (std::find(roles.begin(), roles.end(), sec) != roles.end()) continue;
    std::string hint = config::suggestion(sec, roles);
    bad += (bad.empty() ? "" : "\n") + file + ": unknown table [" + sec + "]" + (hint.empty() ? " (roles: " + known + ")" : hint);
  }
  return bad.empty() ? Status() : invalid_argument(bad);
}

int run_roles(std::vector<std::unique_ptr<runtime::RoleFactory>>& factories, const Globals& g, bool announce) {
  if (Status s = log::init(g.log); !s.is_ok()) {
    std::fprintf(stderr, "gantry: %s\n", s.to_string().c_str());
    return kUsage;
  }
  metrics::register_process_metrics(metrics::Registry::global());
  metrics::Registry::global().gauge_callback(
      "gantry_build_info", "The version and git commit of the running binary (always 1).", {"version", "commit"},
      {std::string(build::version()), std::string(build::commit())}, [] { return 1.0; });
  runtime::Runtime rt;
  for (auto& f : factories) {
    auto role = f->build();
    if (!role.is_ok()) {
      std::fprintf(stderr, "gantry: %s\n", role.status().to_string().c_str());
      return kUsage;
    }
    rt.add(std::move(*role));
  }
  if (Status s = rt.start(); !s.is_ok()) {
    std::fprintf(stderr, "gantry: %s\n", s.to_string().c_str());
    log::shutdown();
    return 1;
  }
  if (announce) {
    std::printf("gantry up: %zu role(s) running; Ctrl-C stops\n", rt.roles().size());
    for (auto& r : rt.roles())
      for (auto& [what, url] : r->endpoints())
        std::printf("  %-14s %-6s %s\n", std::string(r->name()).c_str(), what.c_str(), url.c_str());
    std::fflush(stdout);
  }
  // Under each role's own name: a "role" field beside the logger's would give the line the key
  // twice, and JSON readers keep only one of them.
  for (auto& r : rt.roles()) {
    log::Logger lg(r->name());
    for (auto& [what, url] : r->endpoints()) lg.info("listening", {{"what", what}, {"url", url}});
  }
  int rc = rt.wait_and_stop(g.shutdown_timeout);
  log::shutdown();
  // A failed job says why on stderr too, as a role that cannot start does: a script that keeps
  // stdout (the log) apart still reads the reason.
  for (auto& r : rt.roles())
    if (auto* job = dynamic_cast<runtime::Job*>(r.get()); job && !job->failure().is_ok())
      std::fprintf(stderr, "gantry %s: %s\n", std::string(job->name()).c_str(), job->failure().to_string().c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  runtime::Runtime::block_signals();
  auto catalog = cli::catalog();

  // `gantry migrate telemetry …` reads as `gantry migrate --system telemetry …`.
  std::vector<std::string> args(argv, argv + argc);
  if (args.size() > 2 && args[1] == "migrate" && !args[2].empty() && args[2][0] != '-')
    args.insert(args.begin() + 2, "--system");
  // The original orchestrator's `orchestrator launch --ip --port` is `gantry orchestrator`.
  if (args.size() > 2 && args[1] == "orchestrator" && args[2] == "launch") args.erase(args.begin() + 2);
  // `gantry trades generate|top …` are the roles trades-generate and trades-top.
  if (args.size() > 2 && args[1] == "trades" && (args[2] == "generate" || args[2] == "top")) {
    args[1] = "trades-" + args[2];
    args.erase(args.begin() + 2);
  }
  // `gantry cluster VERB [NAME] [-f FILE] …` is the role cluster-VERB with --name and --file.
  if (args.size() > 1 && args[1] == "cluster") {
    if (args.size() == 2 || args[2] == "--help" || args[2] == "-h") {
      std::printf("gantry cluster: declare clusters and keep them at their declared shape (docs/cluster.md)\n\n"
                  "Usage: gantry cluster VERB [NAME] [OPTIONS]   (gantry cluster VERB --help for a verb's options)\n\n");
      for (auto& info : catalog)
        if (info.name.rfind("cluster-", 0) == 0)
          std::printf("  %-10s %s\n", info.name.substr(8).c_str(), info.summary.substr(info.summary.find(": ") + 2).c_str());
      return args.size() == 2 ? kUsage : 0;
    }
    args[1] = "cluster-" + args[2];
    args.erase(args.begin() + 2);
  }
  // The role names (`gantry cluster-status NAME`, as --help lists them) take the same first
  // argument as the spaced form.
  if (args.size() > 1 && args[1].rfind("cluster-", 0) == 0) {
    if (args.size() > 2 && !args[2].empty() && args[2][0] != '-') args.insert(args.begin() + 2, "--name");
    for (auto& a : args)
      if (a == "-f") a = "--file";
  }
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argc = static_cast<int>(argp.size());
  argv = argp.data();

  CLI::App app{"gantry: one binary running the fleet, orchestrator, telemetry, trades and cluster roles.\n"
               "Each role is a subcommand; `gantry up --roles a,b` runs several in one process.\n"
               "Settings: flag > environment > TOML file (--config) > default; --print-config shows them."};
  app.name("gantry");
  const std::string version_line =
      "gantry " + std::string(build::version()) + " (commit " + std::string(build::commit()) + ")";
  app.set_version_flag("--version", version_line, "print the version and the git commit it was built from, then exit");
  app.require_subcommand(1);
  app.get_formatter()->column_width(34);

  Globals globals;
  config::Schema global_schema("");
  bind_globals(global_schema, &globals);

  // One subcommand per role.
  struct RoleCmd {
    const runtime::RoleInfo* info;
    CLI::App* app;
    std::unique_ptr<runtime::RoleFactory> factory;
    std::unique_ptr<config::Schema> schema;
    FlagSet role_flags, global_flags;
    std::string file;
    bool print = false;
  };
  std::vector<std::unique_ptr<RoleCmd>> cmds;
  for (auto& info : catalog) {
    auto c = std::make_unique<RoleCmd>();
    c->info = &info;
    c->app = app.add_subcommand(info.name, info.summary);
    c->factory = info.factory();
    c->schema = std::make_unique<config::Schema>(info.name);
    c->factory->bind(*c->schema);
    c->app->add_option("--config", c->file, "TOML file; this role reads its [" + info.name + "] table")
        ->check(CLI::ExistingFile);
    c->app->add_flag("--print-config", c->print, "print the effective settings and their sources, then exit");
    c->role_flags.add_all(c->app, *c->schema);
    c->global_flags.add_all(c->app, global_schema);
    cmds.push_back(std::move(c));
  }

  CLI::App* version_cmd = app.add_subcommand("version", "print the version and the git commit it was built from");

  // gantry up
  std::vector<std::string> up_roles, up_sets;
  std::string up_file;
  bool up_print = false;
  FlagSet up_globals;
  std::string known;
  std::vector<std::string> role_names;
  for (auto& info : catalog) {
    known += (known.empty() ? "" : ", ") + info.name;
    role_names.push_back(info.name);
  }
  CLI::App* up = app.add_subcommand("up", "run several roles in one process; each gets a free port unless set");
  up->add_option("--roles", up_roles, "roles to run, comma-separated (" + known + ")")
      ->required()->delimiter(',');
  up->add_option("--config", up_file, "TOML file with one [role] table per role")->check(CLI::ExistingFile);
  up->add_option("--set", up_sets, "override a role setting: role.key=value (repeatable)");
  up->add_flag("--print-config", up_print, "print the effective settings of every role, then exit");
  up_globals.add_all(up, global_schema);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (dynamic_cast<const CLI::ExtrasError*>(&e) || dynamic_cast<const CLI::RequiredError*>(&e))
      if (int rc = unknown_arguments(app)) return rc;
    int rc = app.exit(e);
    return rc == 0 ? 0 : kUsage;
  }

  if (version_cmd->parsed()) {
    std::printf("%s\n", version_line.c_str());
    return 0;
  }
  for (auto& c : cmds) {
    if (!c->app->parsed()) continue;
    Status sections = check_sections(c->file, role_names, known);
    config::Inputs in;
    in.file = c->file;
    in.flags = c->global_flags.given();
    // A cluster command talks to a person: its own output says what happened, and the
    // runtime's lifecycle lines would bury it. Warnings and errors still show. (The service,
    // cluster-serve, logs as every service does.)
    if (c->info->name.rfind("cluster-", 0) == 0 && c->info->name != "cluster-serve" && !in.flags.count("log_level") &&
        !std::getenv("LOG_LEVEL"))
      in.flags["log_level"] = "warn";
    Status gs = global_schema.load(in);
    in.flags = c->role_flags.given();
    Status rs = c->schema->load(in);
    if (int rc = config_errors(c->info->name, {sections, gs, rs})) return rc;
    if (c->print) {
      std::cout << global_schema.print() << "\n" << c->schema->print();
      return 0;
    }
    std::vector<std::unique_ptr<runtime::RoleFactory>> fs;
    fs.push_back(std::move(c->factory));
    return run_roles(fs, globals, false);
  }

  // up
  std::vector<std::unique_ptr<runtime::RoleFactory>> factories;
  std::vector<std::unique_ptr<config::Schema>> schemas;
  std::vector<Status> statuses;
  config::Inputs gin;
  gin.file = up_file;
  gin.flags = up_globals.given();
  statuses.push_back(global_schema.load(gin));
  statuses.push_back(check_sections(up_file, role_names, known));
  std::set<std::string> seen;
  for (auto& name : up_roles) {
    const runtime::RoleInfo* info = nullptr;
    for (auto& i : catalog)
      if (i.name == name) info = &i;
    if (!info) {
      std::string hint = config::suggestion(name, role_names);
      statuses.push_back(invalid_argument("--roles: unknown role '" + name + "'" + (hint.empty() ? " (known: " + known + ")" : hint)));
      continue;
    }
    if (!seen.insert(name).second) {
      statuses.push_back(invalid_argument("--roles: '" + name + "' given twice"));
      continue;
    }
    auto f = info->factory();
    auto schema = std::make_unique<config::Schema>(name);
    f->bind(*schema);
    config::Inputs in;
    in.file = up_file;
    for (auto& s : up_sets) {
      auto dot = s.find('.'), eq = s.find('=');
      if (dot == std::string::npos || eq == std::string::npos || eq < dot) {
        statuses.push_back(invalid_argument("--set '" + s + "': expected role.key=value"));
        continue;
      }
      if (s.substr(0, dot) != name) continue;
      std::string key = s.substr(dot + 1, eq - dot - 1);
      if (!schema->find(key)) {
        statuses.push_back(invalid_argument("--set '" + s + "': role " + name + " has no setting '" + key + "'" +
                                            config::suggestion(key, schema->keys())));
        continue;
      }
      in.flags[key] = s.substr(eq + 1);
    }
    Status st = schema->load(in);
    // Roles share one host here, and their default ports collide: a port nobody chose becomes
    // "any free port".
    if (st.is_ok())
      if (const config::Field* port = schema->find("port"); port && port->source() == config::Source::kDefault) {
        in.flags["port"] = "0";
        st = schema->load(in);
      }
    statuses.push_back(std::move(st));
    factories.push_back(std::move(f));
    schemas.push_back(std::move(schema));
  }
  for (auto& s : up_sets) {
    auto dot = s.find('.');
    if (dot != std::string::npos && !seen.count(s.substr(0, dot)) && s.find('=') != std::string::npos)
      statuses.push_back(invalid_argument("--set '" + s + "': role '" + s.substr(0, dot) + "' is not in --roles"));
  }
  if (int rc = config_errors("up", statuses)) return rc;
  if (up_print) {
    std::cout << global_schema.print();
    for (auto& s : schemas) std::cout << "\n" << s->print();
    return 0;
  }
  return run_roles(factories, globals, true);
}
