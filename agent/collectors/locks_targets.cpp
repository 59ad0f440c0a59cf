#include "agent/collectors/locks_targets.h"

#include <dirent.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>

#include "agent/core/fd.h"
#include "agent/core/format.h"
#include "bpf/futex.h"
#include "probes/cgroup.h"

namespace syncscope::collectors {
namespace {

std::optional<uint32_t> parse_pid(std::string_view text) {
  uint32_t pid = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (ec != std::errc() || p != text.data() + text.size() || pid == 0) return std::nullopt;
  return pid;
}

bool has_component(std::string_view path, std::string_view name) {
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (part == name) return true;
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return false;
}

}  // namespace

bool matches(const config::TargetSelector& selector, const ProcessIdentity& process) {
  using Kind = config::TargetSelector::Kind;
  switch (selector.kind) {
    case Kind::unit: return !process.cgroup.empty() && has_component(process.cgroup, selector.value);
    case Kind::cgroup: {
      std::string_view want = selector.value;
      while (want.size() > 1 && want.ends_with('/')) want.remove_suffix(1);
      if (want == "/") return !process.cgroup.empty();
      return process.cgroup == want || (process.cgroup.starts_with(want) && process.cgroup.size() > want.size() &&
                                        process.cgroup[want.size()] == '/');
    }
    case Kind::exe: return !process.exe.empty() && process.exe == selector.value;
    case Kind::comm: return process.comm == selector.value;
    case Kind::pid: return parse_pid(selector.value) == process.pid;
  }
  return false;
}

TargetSelectors::TargetSelectors(std::vector<config::TargetSelector> selectors) : selectors_(std::move(selectors)) {
  for (config::TargetSelector& s : selectors_) {
    if (s.kind != config::TargetSelector::Kind::exe) continue;
    std::error_code ec;
    auto resolved = std::filesystem::canonical(s.value, ec);
    if (!ec) s.value = resolved.string();
  }
}

std::optional<uint32_t> TargetSelectors::evaluate(const ProcessIdentity& process) const {
  std::optional<uint32_t> flags;
  for (const config::TargetSelector& s : selectors_) {
    if (!matches(s, process)) continue;
    uint32_t f = s.kind == config::TargetSelector::Kind::pid ? 0 : LOCK_TARGET_INHERIT;
    flags = flags.value_or(0) | f;
  }
  return flags;
}

std::optional<ProcessIdentity> ProcfsProcessSource::identify(uint32_t pid) {
  ProcessIdentity out;
  out.pid = pid;
  std::ifstream comm(fmt::format("{}/{}/comm", proc_root_, pid));
  if (!comm || !std::getline(comm, out.comm)) return std::nullopt;
  char exe[4096];
  ssize_t n = ::readlink(fmt::format("{}/{}/exe", proc_root_, pid).c_str(), exe, sizeof exe - 1);
  if (n > 0) {
    out.exe.assign(exe, static_cast<size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (out.exe.ends_with(kDeleted)) out.exe.resize(out.exe.size() - kDeleted.size());
  }
  if (auto path = probes::cgroup_path_of_pid(static_cast<int>(pid))) out.cgroup = *path;
  return out;
}

std::vector<uint32_t> ProcfsProcessSource::all_pids() {
  std::vector<uint32_t> out;
  CHandle<DIR, closedir> dir(::opendir(proc_root_.c_str()));
  if (!dir) return out;
  while (dirent* entry = ::readdir(dir.get()))
    if (auto pid = parse_pid(entry->d_name)) out.push_back(*pid);
  return out;
}

bool ProcfsProcessSource::alive(uint32_t pid) {
  std::ifstream stat(fmt::format("{}/{}/stat", proc_root_, pid));
  std::string content;
  if (!stat || !std::getline(stat, content)) return false;
  size_t close = content.rfind(')');
  if (close == std::string::npos || close + 2 >= content.size()) return false;
  char state = content[close + 2];
  return state != 'Z' && state != 'X';
}

bool CachedProcessMatcher::matches(const config::TargetSelector& selector, uint32_t pid, uint64_t,
                                   std::string_view comm) {
  if (selector.kind == config::TargetSelector::Kind::comm) return comm == selector.value;
  if (selector.kind == config::TargetSelector::Kind::pid) return collectors::matches(selector, ProcessIdentity{pid, {}, {}, {}});
  auto it = cache_.find(pid);
  if (it == cache_.end()) it = cache_.emplace(pid, source_.identify(pid)).first;
  if (!it->second) return false;
  config::TargetSelector resolved = selector;
  if (selector.kind == config::TargetSelector::Kind::exe) {
    std::error_code ec;
    auto canonical = std::filesystem::canonical(selector.value, ec);
    if (!ec) resolved.value = canonical.string();
  }
  return collectors::matches(resolved, *it->second);
}

}  // namespace syncscope::collectors
