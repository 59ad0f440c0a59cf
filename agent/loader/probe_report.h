// What is attached, what is not, and why — the data behind /debug/probes and
// `syncscope probe`. Each collector owns its rows and replaces them whenever
// its attachments change (a process started or exited, a library was found).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace syncscope::loader {

struct ProbeStatus {
  std::string program;  // BPF program name, e.g. "tp_btf_sched_switch"
  std::string kind;     // tp_btf, raw_tp, tracepoint, uprobe, perf_event, …
  std::string target;   // "sched_switch", "/usr/lib/x86_64-linux-gnu/libc.so.6:__lll_lock_wait", …
  bool attached = false;
  std::string detail;   // why not, or which fallback was chosen
};

class ProbeReport {
 public:
  void set(const std::string& collector, std::vector<ProbeStatus> rows, std::string summary = "");
  void clear(const std::string& collector);
  nlohmann::json to_json() const;
  size_t attached_count() const;

 private:
  struct CollectorRows {
    std::string summary;
    std::vector<ProbeStatus> rows;
  };
  mutable std::mutex mu_;
  std::map<std::string, CollectorRows> collectors_;
};

}  // namespace syncscope::loader
