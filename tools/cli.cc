// cli: the helpers of tools/cli.h.
#include "cli.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lilcache/lilcache.h"
#include "util/ascii.h"
#include "util/quote.h"
#include "util/size.h"

namespace lilcache::tools {

std::string OneLine(std::string_view text) { return Escape(text, EscapeMode::kControlBytes); }

void PrintError(std::string_view program, std::string_view command, std::string_view what) {
  std::string line = std::string(program) + ": ";
  if (!command.empty()) line += std::string(command) + ": ";
  line += OneLine(what);  // messages may quote keys or paths with any bytes
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

int UsageError(std::string_view program, std::string_view command, std::string_view what) {
  std::string help(program);
  if (!command.empty()) help += " " + std::string(command);
  PrintError(program, command, std::string(what) + " (see '" + help + " --help')");
  return kExitUsage;
}

std::uint64_t ParseSizeOption(std::string_view option, const std::string& text, bool limit) {
  try {
    return limit ? ParseSizeLimit(text) : ParseSize(text);
  } catch (const Error& e) {
    throw UsageProblem(std::string(option) + ": " + e.what());
  }
}

std::string SizeLimitText(std::uint64_t bytes) { return FormatSizeLimit(bytes); }

std::string EffectiveBackend(const std::string& option) {
  if (!option.empty()) return option;
  const char* env = std::getenv("LILCACHE_BACKEND");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string("local");
}

namespace {

// `backend` with a URL's password replaced by "***".
std::string Redacted(std::string_view backend) {
  // scheme://[[user]:password@]hosts...: hide what follows the first ':' of
  // the part before the last '@'.
  const std::size_t scheme = backend.find("://");
  if (scheme == std::string_view::npos) return std::string(backend);
  const std::size_t start = scheme + 3;
  const std::size_t at = backend.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(backend);
  const std::size_t colon = backend.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::string(backend);
  return std::string(backend.substr(0, colon + 1)) + "***" + std::string(backend.substr(at));
}

}  // namespace

std::string ShownBackend(std::string_view backend) { return OneLine(Redacted(backend)); }

std::string BackendProblem(std::string_view what, std::string_view backend) {
  if (backend == "local") return "";
  for (std::string_view scheme : {"redis-cluster://", "redis://"}) {
    if (backend.starts_with(scheme) && backend.size() > scheme.size()) return "";
  }
  return std::string(what) + ": invalid backend " + Quote(Redacted(backend)) +
         " (expected local, redis-cluster://host:port[,host:port...] or redis://host:port)";
}

void RequireLocalBackend(const std::string& option) {
  const std::string backend = EffectiveBackend(option);
  if (IsLocalBackend(backend)) return;
  if (std::string problem =
          BackendProblem(option.empty() ? "$LILCACHE_BACKEND" : "--backend", backend);
      !problem.empty()) {
    throw UsageProblem(problem);
  }
  throw UsageProblem(
      "works on local caches only (the files under the root), not on backend " +
      ShownBackend(backend) +
      (option.empty() ? " from $LILCACHE_BACKEND; unset it or pass --backend local" : ""));
}

namespace {

// The usage problem with the variables every tool reads, or "".
std::string EnvironmentProblem() {
  // ($LILCACHE_TOKEN, read by `lilcache serve` only, is checked there.)
  for (const char* var : {"LILCACHE_ROOT", "LILCACHE_LOGLEVEL", "LILCACHE_BACKEND"}) {
    const char* value = std::getenv(var);
    if (value != nullptr && *value == '\0') {
      return "$" + std::string(var) + " is set but empty; unset it for the default";
    }
  }
  if (const char* level = std::getenv("LILCACHE_LOGLEVEL")) {
    std::string lower = AsciiLower(level);
    bool known = lower == "warning";
    for (const char* name : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
      known = known || lower == name;
    }
    if (!known) {
      return "$LILCACHE_LOGLEVEL: invalid log level " + Quote(level) +
             " (expected trace, debug, info, warn, error, critical or off; unset it for info)";
    }
  }
  if (const char* backend = std::getenv("LILCACHE_BACKEND")) {
    return BackendProblem("$LILCACHE_BACKEND", backend);
  }
  return "";
}

// Makes every non-positional option of `app` and its subcommands that takes
// a value refuse an empty one.
void RefuseEmptyValues(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    if (!opt->nonpositional() || opt->get_expected_min() == 0) continue;  // positionals, flags
    opt->check(CLI::Validator(
        [](std::string& value) -> std::string { return value.empty() ? "EMPTY" : ""; }, "",
        "non-empty"));
  }
  for (CLI::App* sub : app.get_subcommands({})) RefuseEmptyValues(*sub);
}

// The subcommand of `app` named in argv, and where; {"", argc} if none.
std::pair<std::string, int> CommandIn(const CLI::App& app, int argc, char** argv) {
  for (const CLI::App* sub : app.get_subcommands()) {
    for (int i = 1; i < argc; ++i) {
      if (sub->check_name(argv[i])) return {sub->get_name(), i};
    }
  }
  return {"", argc};
}

// Where `token` is in argv (its first occurrence, also as "--opt=value"), or argc.
int PositionOf(std::string_view token, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == token || (arg.starts_with(token) && arg.substr(token.size()).starts_with("="))) {
      return i;
    }
  }
  return argc;
}

// CLI11's message `what` (of error `e`) in our words; sets `token` to the
// argument at fault, if one is known.
std::string Reword(const CLI::ParseError& e, std::string what, const CLI::App& app,
                   std::string& token) {
  constexpr std::string_view kConvert = "Could not convert: ";
  if (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr && what.starts_with(kConvert)) {
    // "Could not convert: --limit = x"
    const std::string rest = what.substr(kConvert.size());
    const std::size_t eq = rest.find(" = ");
    if (eq != std::string::npos) {
      token = rest.substr(0, eq);
      return token + ": expected a whole number, got " + Quote(rest.substr(eq + 3));
    }
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr ||
      dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    // CLI11 checks requirements before extras: an extra is the real problem.
    std::vector<std::string> extra = app.remaining();
    for (const CLI::App* sub : app.get_subcommands()) {
      if (extra.empty()) extra = sub->remaining();
    }
    if (!extra.empty()) {
      token = extra.front();
      if (token.starts_with("-")) return "unknown option " + Quote(token);
      if (!app.get_subcommands({}).empty() && app.get_subcommands().empty()) {
        return "unknown command " + Quote(token);
      }
      return "unexpected argument " + Quote(token);
    }
  }
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
    // "--ttl: 1 required TEXT missing"
    const std::size_t colon = what.find(": ");
    if (colon != std::string::npos && what.ends_with(" missing")) {
      token = what.substr(0, colon);
      return token + ": missing value";
    }
  }
  if (dynamic_cast<const CLI::ValidationError*>(&e) != nullptr) {
    const std::size_t colon = what.find(": ");
    if (colon != std::string::npos) {
      token = what.substr(0, colon);
      // RefuseEmptyValues's mark.
      if (what.substr(colon + 2) == "EMPTY") return token + " is empty; omit it for its default";
    }
  }
  if (what == "A subcommand is required") return "missing command";
  return what;
}

}  // namespace

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  if (std::string problem = EnvironmentProblem(); !problem.empty()) {
    return UsageError(app.get_name(), "", problem);
  }
  RefuseEmptyValues(app);
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string token;
    const std::string what = Reword(e, e.what(), app, token);
    // Name the subcommand only if the fault follows its name: the global
    // options before it are the program's.
    auto [command, at] = CommandIn(app, argc, argv);
    if (!token.empty() && PositionOf(token, argc, argv) < at) command.clear();
    return UsageError(app.get_name(), command, what);
  }
}

}  // namespace lilcache::tools
