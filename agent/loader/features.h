// What this kernel and machine can do, found by trying rather than by version.
//
// The agent probes once at start: BTF, ring buffers, tp_btf vs raw_tp, task
// storage, uprobes, kprobes, fentry, perf_event programs, a hardware PMU,
// hardware breakpoints, bpf_stats, and the capabilities it holds. Each
// collector then chooses its path from these answers and says which one it
// took; a missing feature is reported, never fatal on its own.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace syncscope::loader {

struct FeatureCheck {
  std::string name;
  bool available = false;
  std::string detail;  // why not, or what was found
};

struct Features {
  std::string kernel_release;
  bool btf = false;
  bool ringbuf = false;
  bool tp_btf = false;
  bool raw_tp = false;
  bool task_storage = false;
  bool fentry = false;
  bool kprobes = false;
  bool uprobes = false;
  bool perf_event_programs = false;
  bool pmu = false;
  bool hw_breakpoints = false;
  bool bpf_stats = false;
  bool runqueues_ksym = false;  // per-CPU `runqueues` resolves: the CPU's own nr_running
  bool cfs_rq_has_rq = false;   // cfs_rq::rq: the same rq reached through the running task
  bool tracefs = false;
  std::vector<FeatureCheck> checks;          // in probe order, for reports
  std::vector<std::string> missing_capabilities;  // e.g. "CAP_BPF"

  const FeatureCheck* find(std::string_view name) const;
  nlohmann::json to_json() const;
  std::string to_text() const;  // the `syncscope probe` table
};

// Mounts tracefs at /sys/kernel/tracing when it is not mounted (tracepoint
// attachment needs its event ids). Returns what happened, for the log.
std::string ensure_tracefs();

Features probe_features();

// Route libbpf's own messages to our log (debug level, warnings kept).
void install_libbpf_logging();

}  // namespace syncscope::loader
