// Which processes the locks collector follows: `locks.targets` selectors
// (unit, cgroup, exe, comm, pid) evaluated against what /proc says about a
// process. Evaluated for every process at start, at each exec (the kernel
// reports it; children forked by a target inherit it in the kernel until
// they exec), and in a slow periodic rescan that catches processes moved
// into a target cgroup after they started.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/collectors/locks_aggregate.h"
#include "agent/config/config.h"

namespace syncscope::collectors {

struct ProcessIdentity {
  uint32_t pid = 0;
  std::string comm;
  std::string exe;     // /proc/PID/exe target, without " (deleted)"
  std::string cgroup;  // cgroup v2 path ("/" for the root)
};

// Pure: does `process` match `selector`? unit: a component of the cgroup
// path equals the unit name; cgroup: the path or a path below it; exe: the
// executable's path (compared after resolving symlinks in the selector, as
// /proc/PID/exe is resolved); comm: exact; pid: exact.
bool matches(const config::TargetSelector& selector, const ProcessIdentity& process);

// The selectors of `locks.targets`, with exe paths resolved once.
class TargetSelectors {
 public:
  explicit TargetSelectors(std::vector<config::TargetSelector> selectors);
  bool empty() const { return selectors_.empty(); }
  const std::vector<config::TargetSelector>& selectors() const { return selectors_; }
  // nullopt: not a target. Otherwise LOCK_TARGET_* flags: children inherit a
  // target unless it was selected by pid alone.
  std::optional<uint32_t> evaluate(const ProcessIdentity& process) const;

 private:
  std::vector<config::TargetSelector> selectors_;
};

// /proc access behind an interface (unit tests fake it).
class ProcessSource {
 public:
  virtual ~ProcessSource() = default;
  virtual std::optional<ProcessIdentity> identify(uint32_t pid) = 0;
  virtual std::vector<uint32_t> all_pids() = 0;
  virtual bool alive(uint32_t pid) = 0;  // exists and is not a zombie
};

class ProcfsProcessSource final : public ProcessSource {
 public:
  explicit ProcfsProcessSource(std::string proc_root = "/proc") : proc_root_(std::move(proc_root)) {}
  std::optional<ProcessIdentity> identify(uint32_t pid) override;
  std::vector<uint32_t> all_pids() override;
  bool alive(uint32_t pid) override;

 private:
  std::string proc_root_;
};

// ProcessMatcher for the SLO rows, with a per-pid identity cache that the
// collector invalidates at exec and exit.
class CachedProcessMatcher final : public ProcessMatcher {
 public:
  explicit CachedProcessMatcher(ProcessSource& source) : source_(source) {}
  bool matches(const config::TargetSelector& selector, uint32_t pid, uint64_t cgroup_id,
               std::string_view comm) override;
  void forget(uint32_t pid) { cache_.erase(pid); }

 private:
  ProcessSource& source_;
  std::unordered_map<uint32_t, std::optional<ProcessIdentity>> cache_;
};

}  // namespace syncscope::collectors
