// What is attached, what is not, and why — the data behind /debug/probes and
// `syncscope probe`. Each collector owns its rows and replaces them whenever
// its attachments change (a process started or exited, a library was found).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "agent/metrics/metric.h"

namespace syncscope::loader {

struct ProbeStatus {
  std::string program;  // BPF program name, e.g. "tp_btf_sched_switch"
  std::string kind;     // tp_btf, raw_tp, tracepoint, uprobe, perf_event, …
  std::string target;   // "sched_switch", "/usr/lib/x86_64-linux-gnu/libc.so.6:__lll_lock_wait", …
  bool attached = false;
  std::string detail;   // why not, or which fallback was chosen
};

// Also a metric source, so attach status reaches Prometheus (the agent-health
// alerts and the dashboards' "attach status" panel):
//   syncscope_probes{collector,state="attached"|"not_attached"}  rows per state
//   syncscope_collector_up{collector}  1 when the collector has a probe attached,
//     0 when it has none (failed to start, or everything it tried failed);
//     absent for a collector disabled in the config, which is not a fault.
class ProbeReport final : public metrics::MetricSource {
 public:
  void set(const std::string& collector, std::vector<ProbeStatus> rows, std::string summary = "");
  void clear(const std::string& collector);
  nlohmann::json to_json() const;
  size_t attached_count() const;
  void collect(std::vector<metrics::Family>& out) const override;

  // The summary a pipeline gives a collector it did not start on purpose.
  static constexpr std::string_view kDisabledSummary = "disabled in config";

 private:
  struct CollectorRows {
    std::string summary;
    std::vector<ProbeStatus> rows;
  };
  mutable std::mutex mu_;
  std::map<std::string, CollectorRows> collectors_;
};

}  // namespace syncscope::loader
