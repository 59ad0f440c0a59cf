// The agent's configuration as typed structs.
//
// A YAML file (or the embedded default) is parsed once into Config and validated
// there: unknown keys, wrong types, bad durations or addresses are refused with
// "FILE:LINE:COL: key.path: reason", and nothing is attached. Every field has a
// default, so an empty file is a valid config. README's "Configuration" section
// documents every key; keep the two in step.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/duration.h"
#include "agent/core/result.h"

namespace syncscope::config {

// Where a value came from, for messages about it later (e.g. a SLO whose
// target matches nothing).
struct Location {
  std::string file;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
  std::string describe() const;  // "FILE:LINE:COL"
  friend bool operator==(const Location&, const Location&) = default;
};

// Selects processes or cgroups. Exactly one field is set.
//   { unit: api.service }        systemd unit (cgroup v2 path ending in the unit)
//   { cgroup: /crowded }         cgroup v2 path, relative to the v2 mount
//   { exe: /usr/bin/foo }        executable path
//   { comm: foo }                task comm (15 characters at most)
//   { pid: 1234 }                one process
struct TargetSelector {
  enum class Kind { unit, cgroup, exe, comm, pid };
  Kind kind = Kind::cgroup;
  std::string value;  // the unit, path, exe or comm; the pid in decimal for Kind::pid
  std::string describe() const;  // "unit=api.service"
  friend bool operator==(const TargetSelector&, const TargetSelector&) = default;
};

struct SchedConfig {
  bool enabled = true;
  // How often each CPU's run-queue length is sampled (perf cpu-clock event).
  uint32_t runq_length_sample_hz = 99;
  friend bool operator==(const SchedConfig&, const SchedConfig&) = default;
};

struct LocksConfig {
  bool enabled = true;
  std::vector<TargetSelector> targets;  // empty: every process
  uint32_t top_k = 50;
  bool stacks = true;
  // glibc classification uprobes on contended-only paths (__lll_lock_wait, …).
  bool glibc_uprobes = true;
  friend bool operator==(const LocksConfig&, const LocksConfig&) = default;
};

struct GolangConfig {
  bool enabled = true;
  std::vector<TargetSelector> targets;  // empty: every Go process found
  uint32_t top_k = 20;
  Nanoseconds scan_interval = std::chrono::seconds(5);
  friend bool operator==(const GolangConfig&, const GolangConfig&) = default;
};

struct AtomicFunction {
  std::string exe;
  std::string symbol;
  uint32_t addr_arg = 0;  // which argument (0-based) holds the address
  friend bool operator==(const AtomicFunction&, const AtomicFunction&) = default;
};

struct CachelinesConfig {
  bool enabled = true;
  enum class Pmu { auto_detect, on, off };
  Pmu pmu = Pmu::auto_detect;
  std::vector<TargetSelector> targets;
  uint32_t window_ms = 20;    // one watchpoint window
  double duty_cycle = 0.02;   // fraction of wall time a target may be watched
  std::vector<std::string> watch_symbols;  // hints: only these globals are candidates
  std::vector<AtomicFunction> atomics;
  uint32_t top_k = 20;
  friend bool operator==(const CachelinesConfig&, const CachelinesConfig&) = default;
};

// One burn-rate alert: fires when the burn rate over both `long` and `short`
// exceeds `burn_rate` (the Google SRE workbook's multi-window rule).
struct BurnRateRule {
  Nanoseconds long_window{};
  Nanoseconds short_window{};
  double burn_rate = 0;
  friend bool operator==(const BurnRateRule&, const BurnRateRule&) = default;
};

struct AlertingPolicy {
  // Empty vectors mean: the SRE workbook's 30-day table, scaled to the SLO window.
  std::vector<BurnRateRule> page;
  std::vector<BurnRateRule> ticket;
  friend bool operator==(const AlertingPolicy&, const AlertingPolicy&) = default;
};

struct Sli {
  enum class Kind { runq_latency, lock_wait, lock_wait_ratio, goroutines };
  Kind kind = Kind::runq_latency;
  Nanoseconds threshold{};          // runq_latency, lock_wait
  double max_ratio = 0;             // lock_wait_ratio: waiting time / wall time
  std::optional<uint64_t> max_goroutines;          // goroutines
  std::optional<double> max_growth_per_min;        // goroutines
  friend bool operator==(const Sli&, const Sli&) = default;
};

struct CircuitConfig {
  Nanoseconds min_open = std::chrono::seconds(60);
  Nanoseconds close_after = std::chrono::seconds(300);
  std::vector<std::string> notify;  // names in Config::notifiers
  friend bool operator==(const CircuitConfig&, const CircuitConfig&) = default;
};

struct SloConfig {
  std::string name;
  TargetSelector target;
  Sli sli;
  double objective = 99.0;  // percent of good events
  Nanoseconds window = std::chrono::hours(24 * 30);
  AlertingPolicy alerting;
  uint64_t min_events = 100;  // fewer events in a long window → no alert
  CircuitConfig circuit;
  Location location;
  friend bool operator==(const SloConfig&, const SloConfig&) = default;
};

struct NotifierConfig {
  enum class Type { webhook, alertmanager };
  std::string name;
  Type type = Type::webhook;
  std::string url;
  std::string secret_file;  // webhook: file holding "whsec_<base64>"
  Nanoseconds timeout = std::chrono::seconds(5);
  Location location;
  friend bool operator==(const NotifierConfig&, const NotifierConfig&) = default;
};

struct OutboxConfig {
  uint32_t max_pending = 10000;
  Nanoseconds max_backoff = std::chrono::minutes(5);
  friend bool operator==(const OutboxConfig&, const OutboxConfig&) = default;
};

struct Config {
  std::string source;  // file path, or "<embedded default>"
  std::string listen = "127.0.0.1:9479";
  std::string state_dir = "/var/lib/syncscope";
  std::string log_level = "info";
  // Turn on run-time statistics for BPF programs (BPF_ENABLE_STATS, held while
  // the agent runs) to export syncscope_bpf_program_run{s,_seconds}_total.
  bool bpf_stats = true;
  uint32_t max_cgroups = 200;  // label cap per metric; the rest is "other"
  SchedConfig sched;
  LocksConfig locks;
  GolangConfig golang;
  CachelinesConfig cachelines;
  std::vector<SloConfig> slos;
  std::map<std::string, NotifierConfig> notifiers;
  OutboxConfig outbox;
};

// Parses and validates. `source_name` is used in messages.
Result<Config> parse(std::string_view yaml_text, std::string_view source_name);
Result<Config> load_file(const std::string& path);
// The config compiled into the binary (config/default.yaml).
std::string_view embedded_default_yaml();
Result<Config> load_default();

// "127.0.0.1:9479" → host and port; refuses anything else with a reason.
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};
Result<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace syncscope::config
