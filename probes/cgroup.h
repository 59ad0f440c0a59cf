// cgroup v2 paths and ids.
//
// BPF sees a task's cgroup as the kernfs node id of its v2 (default
// hierarchy) cgroup, which is the inode number of the group's directory under
// the cgroup2 mount. This maps ids to paths ("/system.slice/api.service", "/"
// for the root) by walking that mount, and resolves selectors (unit, path) to
// ids. The mount is found through /proc/self/mountinfo: /sys/fs/cgroup on
// pure-v2 hosts, /sys/fs/cgroup/unified on hybrid ones like these machines.
#pragma once

#include <chrono>
#include <memory>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/core/result.h"

namespace syncscope::probes {

Result<std::string> find_cgroup2_mount(const std::string& mountinfo_path = "/proc/self/mountinfo");

// The v2 path of a process ("/" when in the root), from /proc/PID/cgroup.
Result<std::string> cgroup_path_of_pid(int pid);

class CgroupResolver {
 public:
  explicit CgroupResolver(std::string mount) : mount_(std::move(mount)) {}
  static Result<std::unique_ptr<CgroupResolver>> for_this_host();

  const std::string& mount() const { return mount_; }

  // "/a/b" → id (the directory's inode number).
  Result<uint64_t> id_of(const std::string& path) const;
  // Depth of a path: "/" is 0, "/a" is 1, "/a/b" is 2.
  static uint32_t level_of(const std::string& path);
  // id → path; rescans the hierarchy (at most once per `rescan_interval`) when
  // the id is unknown. nullopt when the cgroup is gone or was never seen.
  std::optional<std::string> path_of(uint64_t id);
  // A systemd unit's cgroup: the first directory named `unit` found in the
  // hierarchy (e.g. /system.slice/api.service).
  Result<std::string> find_unit(const std::string& unit);

  std::chrono::milliseconds rescan_interval{1000};

 private:
  void rescan();

  std::string mount_;
  std::mutex mu_;
  std::unordered_map<uint64_t, std::string> paths_;
  std::chrono::steady_clock::time_point last_scan_{};
};

}  // namespace syncscope::probes
