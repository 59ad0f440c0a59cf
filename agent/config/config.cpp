#include "agent/config/config.h"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace syncscope::config {

std::string Location::describe() const {
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

std::string TargetSelector::describe() const {
  switch (kind) {
    case Kind::unit: return "unit=" + value;
    case Kind::cgroup: return "cgroup=" + value;
    case Kind::exe: return "exe=" + value;
    case Kind::comm: return "comm=" + value;
    case Kind::pid: return "pid=" + value;
  }
  return value;
}

Result<ListenAddress> parse_listen_address(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return fail(fmt::format("\"{}\" is not HOST:PORT (e.g. 127.0.0.1:9479)", text));
  std::string host(text.substr(0, colon));
  std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return fail(fmt::format("\"{}\": port must be a number from 1 to 65535", text));
  unsigned char buf[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) != 1)
      return fail(fmt::format("\"{}\": \"{}\" is not an IPv6 address", text, host));
  } else if (host != "localhost" && inet_pton(AF_INET, host.c_str(), buf) != 1) {
    return fail(fmt::format("\"{}\": \"{}\" is not an IPv4 address, [IPv6] address or localhost", text, host));
  }
  return ListenAddress{host, static_cast<uint16_t>(port)};
}

namespace {

// Walks the YAML tree once, filling typed structs and collecting every problem
// as "FILE:LINE:COL: key.path: reason". Parsing goes on after an error so one
// run reports all of them.
class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  Config parse(const YAML::Node& root);
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  Location where(const YAML::Node& node) const {
    YAML::Mark mark = node.Mark();
    if (mark.is_null()) return Location{source_, 0, 0};
    return Location{source_, mark.line + 1, mark.column + 1};
  }
  void error(const YAML::Node& at, std::string_view path, std::string_view reason) {
    errors_.push_back(fmt::format("{}: {}: {}", where(at).describe(), path, reason));
  }

  static std::string join(std::string_view path, std::string_view key) {
    return path.empty() ? std::string(key) : fmt::format("{}.{}", path, key);
  }
  static std::string describe_kind(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Map: return "a mapping";
      case YAML::NodeType::Sequence: return "a list";
      case YAML::NodeType::Scalar: return fmt::format("\"{}\"", node.Scalar());
      case YAML::NodeType::Null: return "nothing";
      default: return "an undefined value";
    }
  }

  // A mapping whose keys must all be in `allowed`. Returns false (after
  // reporting) when the node is not a mapping.
  bool mapping(const YAML::Node& node, std::string_view path, std::initializer_list<std::string_view> allowed) {
    if (node.IsNull()) return false;
    if (!node.IsMap()) {
      error(node, path, fmt::format("expected a mapping, got {}", describe_kind(node)));
      return false;
    }
    for (const auto& entry : node) {
      std::string key = entry.first.Scalar();
      bool known = std::find(allowed.begin(), allowed.end(), key) != allowed.end();
      if (!known) {
        std::string choices;
        for (auto a : allowed) choices += fmt::format("{}{}", choices.empty() ? "" : ", ", a);
        error(entry.first, join(path, key), fmt::format("unknown key (expected one of: {})", choices));
      }
    }
    return true;
  }

  bool scalar_of(const YAML::Node& node, std::string_view path, std::string_view what) {
    if (node.IsScalar()) return true;
    error(node, path, fmt::format("expected {}, got {}", what, describe_kind(node)));
    return false;
  }

  void read(const YAML::Node& node, std::string_view path, bool& out) {
    if (!scalar_of(node, path, "true or false")) return;
    const std::string& s = node.Scalar();
    if (s == "true" || s == "yes" || s == "on") out = true;
    else if (s == "false" || s == "no" || s == "off") out = false;
    else error(node, path, fmt::format("expected true or false, got \"{}\"", s));
  }
  void read(const YAML::Node& node, std::string_view path, uint32_t& out) {
    uint64_t value = 0;
    read(node, path, value);
    if (value > UINT32_MAX) error(node, path, "number too large");
    else out = static_cast<uint32_t>(value);
  }
  void read(const YAML::Node& node, std::string_view path, uint64_t& out) {
    if (!scalar_of(node, path, "a non-negative integer")) return;
    const std::string& s = node.Scalar();
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size())
      error(node, path, fmt::format("expected a non-negative integer, got \"{}\"", s));
  }
  void read(const YAML::Node& node, std::string_view path, double& out) {
    if (!scalar_of(node, path, "a number")) return;
    const std::string& s = node.Scalar();
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(out))
      error(node, path, fmt::format("expected a number, got \"{}\"", s));
  }
  void read(const YAML::Node& node, std::string_view path, std::string& out) {
    if (!scalar_of(node, path, "a string")) return;
    out = node.Scalar();
  }
  void read(const YAML::Node& node, std::string_view path, Nanoseconds& out) {
    if (!scalar_of(node, path, "a duration such as 5ms, 30s, 1h or 30d")) return;
    auto parsed = parse_duration(node.Scalar());
    if (!parsed) error(node, path, parsed.error().message());
    else out = *parsed;
  }
  void read(const YAML::Node& node, std::string_view path, std::vector<std::string>& out) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
      error(node, path, fmt::format("expected a list, got {}", describe_kind(node)));
      return;
    }
    out.clear();
    for (size_t i = 0; i < node.size(); ++i) {
      std::string value;
      read(node[i], fmt::format("{}[{}]", path, i), value);
      out.push_back(std::move(value));
    }
  }

  // field("key", out): reads node[key] into out if present. True when the key
  // was present and read without error, so range checks run only on real values.
  template <typename T>
  bool field(const YAML::Node& map, std::string_view path, std::string_view key, T& out) {
    YAML::Node child = map[std::string(key)];
    if (!child) return false;
    size_t errors_before = errors_.size();
    read(child, join(path, key), out);
    return errors_.size() == errors_before;
  }

  TargetSelector selector(const YAML::Node& node, std::string_view path);
  void selectors(const YAML::Node& node, std::string_view path, std::vector<TargetSelector>& out);
  void sched(const YAML::Node& node, SchedConfig& out);
  void locks(const YAML::Node& node, LocksConfig& out);
  void golang(const YAML::Node& node, GolangConfig& out);
  void cachelines(const YAML::Node& node, CachelinesConfig& out);
  void slo(const YAML::Node& node, std::string_view path, SloConfig& out);
  void sli(const YAML::Node& node, std::string_view path, Sli& out);
  void burn_rules(const YAML::Node& node, std::string_view path, std::vector<BurnRateRule>& out);
  void notifier(const YAML::Node& node, std::string_view path, NotifierConfig& out);
  void cross_check(const YAML::Node& root, Config& config);

  std::string source_;
  std::vector<std::string> errors_;
};

TargetSelector Parser::selector(const YAML::Node& node, std::string_view path) {
  TargetSelector out;
  if (!mapping(node, path, {"unit", "cgroup", "exe", "comm", "pid"})) {
    if (node.IsNull()) error(node, path, "expected one of unit, cgroup, exe, comm, pid");
    return out;
  }
  if (node.size() != 1) {
    error(node, path, "a target names exactly one of unit, cgroup, exe, comm, pid");
    return out;
  }
  auto entry = *node.begin();
  std::string key = entry.first.Scalar();
  std::string key_path = join(path, key);
  if (!scalar_of(entry.second, key_path, "a string")) return out;
  out.value = entry.second.Scalar();
  if (key == "unit") {
    out.kind = TargetSelector::Kind::unit;
    if (out.value.empty() || out.value.find('/') != std::string::npos)
      error(entry.second, key_path, "expected a systemd unit name such as api.service");
  } else if (key == "cgroup") {
    out.kind = TargetSelector::Kind::cgroup;
    if (!out.value.starts_with('/'))
      error(entry.second, key_path, "expected an absolute cgroup v2 path such as /system.slice/api.service");
  } else if (key == "exe") {
    out.kind = TargetSelector::Kind::exe;
    if (!out.value.starts_with('/')) error(entry.second, key_path, "expected an absolute executable path");
  } else if (key == "comm") {
    out.kind = TargetSelector::Kind::comm;
    if (out.value.empty() || out.value.size() > 15)
      error(entry.second, key_path, "a comm has 1 to 15 characters (the kernel's TASK_COMM_LEN)");
  } else if (key == "pid") {
    out.kind = TargetSelector::Kind::pid;
    uint64_t pid = 0;
    read(entry.second, key_path, pid);
    if (pid == 0) error(entry.second, key_path, "expected a process id > 0");
  }
  return out;
}

void Parser::selectors(const YAML::Node& node, std::string_view path, std::vector<TargetSelector>& out) {
  if (!node || node.IsNull()) return;
  if (!node.IsSequence()) {
    error(node, path, fmt::format("expected a list of targets, got {}", describe_kind(node)));
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) out.push_back(selector(node[i], fmt::format("{}[{}]", path, i)));
}

void Parser::sched(const YAML::Node& node, SchedConfig& out) {
  if (!mapping(node, "sched", {"enabled", "runq_length_sample_hz"})) return;
  field(node, "sched", "enabled", out.enabled);
  if (field(node, "sched", "runq_length_sample_hz", out.runq_length_sample_hz) &&
      (out.runq_length_sample_hz == 0 || out.runq_length_sample_hz > 1000))
    error(node["runq_length_sample_hz"], "sched.runq_length_sample_hz", "expected 1 to 1000 samples per second");
}

void Parser::locks(const YAML::Node& node, LocksConfig& out) {
  if (!mapping(node, "locks", {"enabled", "targets", "top_k", "stacks", "glibc_uprobes"})) return;
  field(node, "locks", "enabled", out.enabled);
  selectors(node["targets"], "locks.targets", out.targets);
  field(node, "locks", "stacks", out.stacks);
  field(node, "locks", "glibc_uprobes", out.glibc_uprobes);
  if (field(node, "locks", "top_k", out.top_k) && (out.top_k == 0 || out.top_k > 10000))
    error(node["top_k"], "locks.top_k", "expected 1 to 10000");
}

void Parser::golang(const YAML::Node& node, GolangConfig& out) {
  if (!mapping(node, "golang", {"enabled", "targets", "top_k", "scan_interval"})) return;
  field(node, "golang", "enabled", out.enabled);
  selectors(node["targets"], "golang.targets", out.targets);
  if (field(node, "golang", "top_k", out.top_k) && (out.top_k == 0 || out.top_k > 10000))
    error(node["top_k"], "golang.top_k", "expected 1 to 10000");
  if (field(node, "golang", "scan_interval", out.scan_interval) && out.scan_interval < std::chrono::milliseconds(100))
    error(node["scan_interval"], "golang.scan_interval", "must be at least 100ms");
}

void Parser::cachelines(const YAML::Node& node, CachelinesConfig& out) {
  if (!mapping(node, "cachelines", {"enabled", "pmu", "targets", "watch", "atomics", "top_k"})) return;
  field(node, "cachelines", "enabled", out.enabled);
  if (YAML::Node pmu = node["pmu"]) {
    std::string value;
    read(pmu, "cachelines.pmu", value);
    if (value == "auto") out.pmu = CachelinesConfig::Pmu::auto_detect;
    else if (value == "on" || value == "true") out.pmu = CachelinesConfig::Pmu::on;
    else if (value == "off" || value == "false") out.pmu = CachelinesConfig::Pmu::off;
    else error(pmu, "cachelines.pmu", fmt::format("expected auto, on or off, got \"{}\"", value));
  }
  selectors(node["targets"], "cachelines.targets", out.targets);
  if (YAML::Node watch = node["watch"]; watch && mapping(watch, "cachelines.watch", {"window_ms", "duty_cycle", "symbols"})) {
    field(watch, "cachelines.watch", "symbols", out.watch_symbols);
    if (field(watch, "cachelines.watch", "window_ms", out.window_ms) && (out.window_ms == 0 || out.window_ms > 10000))
      error(watch["window_ms"], "cachelines.watch.window_ms", "expected 1 to 10000 milliseconds");
    if (field(watch, "cachelines.watch", "duty_cycle", out.duty_cycle) && !(out.duty_cycle > 0 && out.duty_cycle <= 1))
      error(watch["duty_cycle"], "cachelines.watch.duty_cycle", "expected a fraction in (0, 1]");
  }
  if (YAML::Node atomics = node["atomics"]; atomics && !atomics.IsNull()) {
    if (!atomics.IsSequence()) {
      error(atomics, "cachelines.atomics", "expected a list of {exe, symbol, addr_arg}");
    } else {
      for (size_t i = 0; i < atomics.size(); ++i) {
        std::string path = fmt::format("cachelines.atomics[{}]", i);
        AtomicFunction fn;
        if (!mapping(atomics[i], path, {"exe", "symbol", "addr_arg"})) continue;
        field(atomics[i], path, "exe", fn.exe);
        field(atomics[i], path, "symbol", fn.symbol);
        field(atomics[i], path, "addr_arg", fn.addr_arg);
        if (fn.exe.empty() || !fn.exe.starts_with('/')) error(atomics[i], path + ".exe", "expected an absolute path");
        if (fn.symbol.empty()) error(atomics[i], path + ".symbol", "missing");
        if (fn.addr_arg > 5) error(atomics[i], path + ".addr_arg", "expected 0 to 5 (register arguments)");
        out.atomics.push_back(std::move(fn));
      }
    }
  }
  field(node, "cachelines", "top_k", out.top_k);
}

void Parser::sli(const YAML::Node& node, std::string_view path, Sli& out) {
  if (!mapping(node, path, {"runq_latency", "lock_wait", "lock_wait_ratio", "goroutines"})) {
    if (node.IsNull()) error(node, path, "missing: one of runq_latency, lock_wait, lock_wait_ratio, goroutines");
    return;
  }
  if (node.size() != 1) {
    error(node, path, "an SLI names exactly one of runq_latency, lock_wait, lock_wait_ratio, goroutines");
    return;
  }
  auto entry = *node.begin();
  std::string kind = entry.first.Scalar();
  std::string kind_path = join(path, kind);
  const YAML::Node& body = entry.second;
  if (kind == "runq_latency" || kind == "lock_wait") {
    out.kind = kind == "runq_latency" ? Sli::Kind::runq_latency : Sli::Kind::lock_wait;
    if (!mapping(body, kind_path, {"threshold"})) {
      error(body, kind_path, "expected { threshold: DURATION }");
      return;
    }
    if (!body["threshold"]) error(body, kind_path + ".threshold", "missing");
    if (field(body, kind_path, "threshold", out.threshold) && out.threshold.count() <= 0) error(body["threshold"], kind_path + ".threshold", "must be > 0");
  } else if (kind == "lock_wait_ratio") {
    out.kind = Sli::Kind::lock_wait_ratio;
    if (!mapping(body, kind_path, {"max"})) {
      error(body, kind_path, "expected { max: FRACTION }");
      return;
    }
    if (!body["max"]) error(body, kind_path + ".max", "missing");
    if (field(body, kind_path, "max", out.max_ratio) && !(out.max_ratio > 0 && out.max_ratio < 1))
      error(body["max"], kind_path + ".max", "expected a fraction in (0, 1), e.g. 0.02 for 2%");
  } else if (kind == "goroutines") {
    out.kind = Sli::Kind::goroutines;
    if (!mapping(body, kind_path, {"max", "max_growth_per_min"})) {
      error(body, kind_path, "expected { max: N } and/or { max_growth_per_min: N }");
      return;
    }
    if (YAML::Node max = body["max"]) {
      uint64_t value = 0;
      read(max, kind_path + ".max", value);
      out.max_goroutines = value;
    }
    if (YAML::Node growth = body["max_growth_per_min"]) {
      double value = 0;
      read(growth, kind_path + ".max_growth_per_min", value);
      out.max_growth_per_min = value;
    }
    if (!out.max_goroutines && !out.max_growth_per_min)
      error(body, kind_path, "set max, max_growth_per_min, or both");
  }
}

void Parser::burn_rules(const YAML::Node& node, std::string_view path, std::vector<BurnRateRule>& out) {
  if (!node.IsSequence()) {
    error(node, path, "expected a list of { long: DURATION, short: DURATION, burn_rate: NUMBER }");
    return;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    std::string rule_path = fmt::format("{}[{}]", path, i);
    BurnRateRule rule;
    if (!mapping(node[i], rule_path, {"long", "short", "burn_rate"})) continue;
    for (auto key : {"long", "short", "burn_rate"})
      if (!node[i][key]) error(node[i], rule_path + "." + key, "missing");
    field(node[i], rule_path, "long", rule.long_window);
    field(node[i], rule_path, "short", rule.short_window);
    bool rate_ok = field(node[i], rule_path, "burn_rate", rule.burn_rate);
    if (rule.short_window >= rule.long_window && rule.long_window.count() > 0)
      error(node[i], rule_path + ".short", "the short window must be shorter than the long one");
    if (rate_ok && rule.burn_rate <= 0) error(node[i]["burn_rate"], rule_path + ".burn_rate", "must be > 0");
    out.push_back(rule);
  }
}

void Parser::slo(const YAML::Node& node, std::string_view path, SloConfig& out) {
  out.location = where(node);
  if (!mapping(node, path, {"name", "target", "sli", "objective", "window", "alerting", "min_events", "circuit"})) {
    if (node.IsNull()) error(node, path, "empty SLO");
    return;
  }
  for (auto key : {"name", "target", "sli"})
    if (!node[key]) error(node, join(path, key), "missing");
  field(node, path, "name", out.name);
  if (node["name"]) {
    bool valid = !out.name.empty() && std::all_of(out.name.begin(), out.name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
    if (!valid) error(node["name"], join(path, "name"), "use letters, digits, '-', '_' and '.'");
  }
  if (node["target"]) out.target = selector(node["target"], join(path, "target"));
  if (node["sli"]) sli(node["sli"], join(path, "sli"), out.sli);
  if (field(node, path, "objective", out.objective) && !(out.objective > 0 && out.objective < 100))
    error(node["objective"], join(path, "objective"), "expected a percentage between 0 and 100, e.g. 99.9");
  if (field(node, path, "window", out.window) && out.window < std::chrono::seconds(10))
    error(node["window"], join(path, "window"), "must be at least 10s");
  field(node, path, "min_events", out.min_events);
  if (YAML::Node alerting = node["alerting"]; alerting && mapping(alerting, join(path, "alerting"), {"page", "ticket"})) {
    if (alerting["page"]) burn_rules(alerting["page"], join(path, "alerting.page"), out.alerting.page);
    if (alerting["ticket"]) burn_rules(alerting["ticket"], join(path, "alerting.ticket"), out.alerting.ticket);
  }
  std::string circuit_path = join(path, "circuit");
  if (YAML::Node circuit = node["circuit"]; circuit && mapping(circuit, circuit_path, {"min_open", "close_after", "notify"})) {
    field(circuit, circuit_path, "min_open", out.circuit.min_open);
    field(circuit, circuit_path, "close_after", out.circuit.close_after);
    field(circuit, circuit_path, "notify", out.circuit.notify);
  }
}

void Parser::notifier(const YAML::Node& node, std::string_view path, NotifierConfig& out) {
  out.location = where(node);
  if (!mapping(node, path, {"type", "url", "secret_file", "timeout"})) {
    if (node.IsNull()) error(node, path, "empty notifier");
    return;
  }
  std::string type;
  if (!node["type"]) error(node, join(path, "type"), "missing (webhook or alertmanager)");
  field(node, path, "type", type);
  if (type == "webhook") out.type = NotifierConfig::Type::webhook;
  else if (type == "alertmanager") out.type = NotifierConfig::Type::alertmanager;
  else if (node["type"]) error(node["type"], join(path, "type"), fmt::format("expected webhook or alertmanager, got \"{}\"", type));
  if (!node["url"]) error(node, join(path, "url"), "missing");
  if (field(node, path, "url", out.url) && !out.url.starts_with("http://") && !out.url.starts_with("https://"))
    error(node["url"], join(path, "url"), "expected an http:// or https:// URL");
  field(node, path, "secret_file", out.secret_file);
  if (out.type == NotifierConfig::Type::webhook && !node["secret_file"])
    error(node, join(path, "secret_file"), "missing: webhooks are signed (Standard Webhooks), name a file holding whsec_<base64>");
  if (out.type == NotifierConfig::Type::alertmanager && node["secret_file"])
    error(node["secret_file"], join(path, "secret_file"), "only webhooks are signed");
  field(node, path, "timeout", out.timeout);
}

void Parser::cross_check(const YAML::Node& root, Config& config) {
  std::set<std::string> names;
  for (size_t i = 0; i < config.slos.size(); ++i) {
    const SloConfig& s = config.slos[i];
    YAML::Node node = root["slos"][i];
    std::string path = fmt::format("slos[{}]", i);
    if (!s.name.empty() && !names.insert(s.name).second)
      error(node["name"], path + ".name", fmt::format("duplicate SLO name \"{}\"", s.name));
    for (size_t n = 0; n < s.circuit.notify.size(); ++n) {
      if (!config.notifiers.contains(s.circuit.notify[n]))
        error(node["circuit"]["notify"][n], fmt::format("{}.circuit.notify[{}]", path, n),
              fmt::format("no notifier named \"{}\" in notifiers", s.circuit.notify[n]));
    }
    // The kernel counts run-queue waits per cgroup (bpf/sched.bpf.c): a
    // process selector would silently measure its whole cgroup instead.
    if (s.sli.kind == Sli::Kind::runq_latency && node["target"] && s.target.kind != TargetSelector::Kind::cgroup &&
        s.target.kind != TargetSelector::Kind::unit)
      error(node["target"], path + ".target",
            "runq_latency is counted per cgroup: use { cgroup: PATH } or { unit: NAME }");
    for (const BurnRateRule& rule : s.alerting.page) {
      if (rule.long_window > s.window)
        error(node["alerting"]["page"], path + ".alerting.page", "a burn-rate window is longer than the SLO window");
    }
  }
}

Config Parser::parse(const YAML::Node& root) {
  Config config;
  config.source = source_;
  if (!root || root.IsNull()) return config;  // an empty file: all defaults
  if (!mapping(root, "", {"listen", "state_dir", "log_level", "bpf_stats", "max_cgroups", "sched", "locks",
                          "golang", "cachelines", "slos", "notifiers", "outbox"}))
    return config;
  if (field(root, "", "listen", config.listen)) {
    if (auto addr = parse_listen_address(config.listen); !addr) error(root["listen"], "listen", addr.error().message());
  }
  if (field(root, "", "state_dir", config.state_dir) && !config.state_dir.starts_with('/'))
    error(root["state_dir"], "state_dir", "expected an absolute directory path");
  if (field(root, "", "log_level", config.log_level) && config.log_level != "debug" && config.log_level != "info" &&
      config.log_level != "warning" && config.log_level != "error")
    error(root["log_level"], "log_level", "expected debug, info, warning or error");
  field(root, "", "bpf_stats", config.bpf_stats);
  if (field(root, "", "max_cgroups", config.max_cgroups) && (config.max_cgroups == 0 || config.max_cgroups > 100000))
    error(root["max_cgroups"], "max_cgroups", "expected 1 to 100000");
  if (root["sched"]) sched(root["sched"], config.sched);
  if (root["locks"]) locks(root["locks"], config.locks);
  if (root["golang"]) golang(root["golang"], config.golang);
  if (root["cachelines"]) cachelines(root["cachelines"], config.cachelines);
  if (YAML::Node slos = root["slos"]; slos && !slos.IsNull()) {
    if (!slos.IsSequence()) {
      error(slos, "slos", "expected a list of SLOs");
    } else {
      for (size_t i = 0; i < slos.size(); ++i) {
        SloConfig s;
        slo(slos[i], fmt::format("slos[{}]", i), s);
        config.slos.push_back(std::move(s));
      }
    }
  }
  if (YAML::Node notifiers = root["notifiers"]; notifiers && !notifiers.IsNull()) {
    if (!notifiers.IsMap()) {
      error(notifiers, "notifiers", "expected a mapping of name → notifier");
    } else {
      for (const auto& entry : notifiers) {
        NotifierConfig n;
        n.name = entry.first.Scalar();
        notifier(entry.second, "notifiers." + n.name, n);
        config.notifiers.emplace(n.name, std::move(n));
      }
    }
  }
  if (YAML::Node outbox = root["outbox"]; outbox && mapping(outbox, "outbox", {"max_pending", "max_backoff"})) {
    field(outbox, "outbox", "max_pending", config.outbox.max_pending);
    field(outbox, "outbox", "max_backoff", config.outbox.max_backoff);
  }
  if (errors_.empty()) cross_check(root, config);
  return config;
}

}  // namespace

Result<Config> parse(std::string_view yaml_text, std::string_view source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    Location at{std::string(source_name), e.mark.line + 1, e.mark.column + 1};
    return fail(fmt::format("{}: invalid YAML: {}", e.mark.is_null() ? std::string(source_name) : at.describe(), e.msg));
  }
  Parser parser(source_name);
  Config config;
  try {
    config = parser.parse(root);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed structures (e.g. a duplicate-key lookup
    // on an invalid node); report rather than crash.
    return fail(fmt::format("{}: {}", source_name, e.what()));
  }
  if (!parser.errors().empty()) {
    std::string message;
    for (const std::string& e : parser.errors()) message += (message.empty() ? "" : "\n") + e;
    return fail(message);
  }
  return config;
}

Result<Config> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail_errno(fmt::format("{}: cannot read config", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse(buffer.str(), path);
}

// config/default.yaml, linked in by `ld -r -b binary` (see the Makefile).
extern "C" const char _binary_default_yaml_start[];
extern "C" const char _binary_default_yaml_end[];

std::string_view embedded_default_yaml() {
  return std::string_view(_binary_default_yaml_start,
                          static_cast<size_t>(_binary_default_yaml_end - _binary_default_yaml_start));
}

Result<Config> load_default() { return parse(embedded_default_yaml(), "<embedded default>"); }

}  // namespace syncscope::config
