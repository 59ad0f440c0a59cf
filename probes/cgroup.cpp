#include "probes/cgroup.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace syncscope::probes {

Result<std::string> find_cgroup2_mount(const std::string& mountinfo_path) {
  std::ifstream in(mountinfo_path);
  if (!in) return fail_errno(fmt::format("read {}", mountinfo_path));
  std::string line;
  // mountinfo: "36 35 0:30 / /sys/fs/cgroup/unified rw,… shared:9 - cgroup2 cgroup2 rw"
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream after(line.substr(dash + 3));
    std::string fstype;
    after >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream before(line.substr(0, dash));
    std::string id, parent, devno, root, mount_point;
    before >> id >> parent >> devno >> root >> mount_point;
    return mount_point;
  }
  return fail(fmt::format("{}: no cgroup2 mount; cgroup labels need the unified hierarchy", mountinfo_path));
}

Result<std::string> cgroup_path_of_pid(int pid) {
  std::string file = fmt::format("/proc/{}/cgroup", pid);
  std::ifstream in(file);
  if (!in) return fail_errno(fmt::format("read {}", file));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("0::")) return line.substr(3);
  }
  return fail(fmt::format("{}: no cgroup v2 entry", file));
}

Result<std::unique_ptr<CgroupResolver>> CgroupResolver::for_this_host() {
  std::string mount = TRY(find_cgroup2_mount());
  return std::make_unique<CgroupResolver>(std::move(mount));
}

Result<uint64_t> CgroupResolver::id_of(const std::string& path) const {
  std::string full = path == "/" ? mount_ : mount_ + path;
  struct stat st {};
  if (::stat(full.c_str(), &st) != 0) return fail_errno(fmt::format("cgroup {} ({})", path, full));
  if (!S_ISDIR(st.st_mode)) return fail(fmt::format("cgroup {}: {} is not a directory", path, full));
  return static_cast<uint64_t>(st.st_ino);
}

uint32_t CgroupResolver::level_of(const std::string& path) {
  uint32_t level = 0;
  for (size_t i = 0; i < path.size(); ++i)
    if (path[i] == '/' && i + 1 < path.size()) ++level;
  return level;
}

void CgroupResolver::rescan() {
  namespace fs = std::filesystem;
  std::unordered_map<uint64_t, std::string> found;
  std::error_code ec;
  struct stat st {};
  if (::stat(mount_.c_str(), &st) == 0) found[st.st_ino] = std::string(1, '/');
  for (fs::recursive_directory_iterator it(mount_, fs::directory_options::skip_permission_denied, ec), end;
       it != end; it.increment(ec)) {
    if (ec) break;
    if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
    if (::stat(it->path().c_str(), &st) != 0) continue;
    found[st.st_ino] = it->path().string().substr(mount_.size());
  }
  paths_ = std::move(found);
  last_scan_ = std::chrono::steady_clock::now();
}

std::optional<std::string> CgroupResolver::path_of(uint64_t id) {
  std::lock_guard lock(mu_);
  if (auto it = paths_.find(id); it != paths_.end()) {
    // Still there? A removed cgroup's inode number can be reused later.
    return it->second;
  }
  if (std::chrono::steady_clock::now() - last_scan_ >= rescan_interval) {
    rescan();
    if (auto it = paths_.find(id); it != paths_.end()) return it->second;
  }
  return std::nullopt;
}

Result<std::string> CgroupResolver::find_unit(const std::string& unit) {
  std::lock_guard lock(mu_);
  rescan();
  std::string best;
  std::string suffix = fmt::format("/{}", unit);
  for (const auto& [id, path] : paths_) {
    if (path.ends_with(suffix) && (best.empty() || path.size() < best.size())) best = path;
  }
  if (best.empty()) return fail(fmt::format("unit {}: no cgroup named {} under {}", unit, unit, mount_));
  return best;
}

}  // namespace syncscope::probes
