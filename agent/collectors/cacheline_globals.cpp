#include "agent/collectors/cacheline_globals.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "agent/collectors/cacheline_model.h"
#include "probes/elf_file.h"
#include "probes/symbolizer.h"

namespace syncscope::collectors {

Result<std::vector<DataObject>> process_data_objects(int pid, std::vector<std::string>* skipped) {
  std::vector<probes::Mapping> maps = TRY(probes::read_maps(pid));
  std::string exe;
  {
    char buf[4096];
    ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
    if (n > 0) exe.assign(buf, static_cast<size_t>(n));
    if (exe.ends_with(" (deleted)")) exe.resize(exe.size() - 10);
  }
  std::vector<DataObject> out;
  std::set<std::pair<uint64_t, uint64_t>> seen;  // (dev, inode) of modules done
  for (const probes::Mapping& m : maps) {
    if (!m.is_file() || m.inode == 0) continue;
    uint64_t dev = (static_cast<uint64_t>(m.dev_major) << 32) | m.dev_minor;
    if (!seen.insert({dev, m.inode}).second) continue;  // the module's first mapping gives the bias
    auto elf = probes::ElfFile::open(probes::host_path(pid, m));
    if (!elf) continue;  // not an ELF file (locale archive, fonts, …)
    auto bias = probes::load_bias(m, **elf);
    if (!bias) {
      if (skipped) skipped->push_back(m.path);
      continue;
    }
    // A stripped module's statics live in its debug file's .symtab (same vaddrs).
    std::unique_ptr<probes::ElfFile> debug;
    if (!(*elf)->has_symtab())
      if (auto d = (*elf)->open_debug_file()) debug = std::move(*d);
    const probes::ElfFile& symbols = debug ? *debug : **elf;
    bool main = m.path == exe;
    for (const probes::Symbol* s : symbols.data_objects()) {
      if (s->size == 0) continue;
      DataObject o;
      o.start = s->value + *bias;
      o.size = s->size;
      o.raw_name = s->name;
      o.name = probes::demangle(s->name);
      o.main_executable = main;
      out.push_back(std::move(o));
    }
  }
  std::ranges::sort(out, [](const DataObject& a, const DataObject& b) { return a.start < b.start; });
  return out;
}

bool symbol_matches(const DataObject& object, std::string_view symbol) {
  if (object.raw_name == symbol || object.name == symbol) return true;
  return object.name.size() > symbol.size() + 2 && object.name.ends_with(symbol) &&
         std::string_view(object.name).substr(object.name.size() - symbol.size() - 2, 2) == "::";
}

Result<void> ProcessVmReader::read(pid_t pid, uint64_t addr, std::span<uint8_t> out) {
  iovec local{out.data(), out.size()};
  iovec remote{reinterpret_cast<void*>(addr), out.size()};
  ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n < 0) return fail_errno(fmt::format("process {}: read {} bytes at {:#x}", pid, out.size(), addr));
  if (static_cast<size_t>(n) != out.size())
    return fail(fmt::format("process {}: short read at {:#x} ({} of {} bytes)", pid, addr, n, out.size()));
  return {};
}

namespace {

// The line ranges to scan: whole lines covering each object, at most
// max_lines_per_object per object, merged, within the byte budget.
std::vector<std::pair<uint64_t, uint64_t>> scan_ranges(std::span<const DataObject> objects,
                                                       const HeatOptions& options) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  // Main executable first, so a budget cut never drops the target's own data.
  std::vector<const DataObject*> order;
  for (const DataObject& o : objects) order.push_back(&o);
  std::ranges::stable_sort(
      order, [](const DataObject* a, const DataObject* b) { return a->main_executable > b->main_executable; });
  uint64_t bytes = 0;
  for (const DataObject* o : order) {
    uint64_t start = line_of(o->start);
    uint64_t end =
        std::min(line_of(o->start + o->size - 1) + kLineBytes, start + options.max_lines_per_object * kLineBytes);
    if (bytes + (end - start) > options.max_bytes) continue;
    bytes += end - start;
    ranges.emplace_back(start, end);
  }
  std::ranges::sort(ranges);
  std::vector<std::pair<uint64_t, uint64_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, r.second);
    else merged.push_back(r);
  }
  return merged;
}

}  // namespace

std::map<uint64_t, uint32_t> line_heat(pid_t pid, std::span<const DataObject> objects, MemoryReader& reader,
                                       const HeatOptions& options,
                                       const std::function<void(std::chrono::milliseconds)>& sleep) {
  std::map<uint64_t, uint32_t> heat;
  std::vector<std::pair<uint64_t, uint64_t>> ranges = scan_ranges(objects, options);
  for (const auto& [start, end] : ranges)
    for (uint64_t line = start; line < end; line += kLineBytes) heat[line] = 0;

  std::vector<std::vector<uint8_t>> previous(ranges.size()), current(ranges.size());
  std::vector<bool> readable(ranges.size(), true);
  for (uint32_t round = 0; round < options.snapshots; ++round) {
    if (round > 0) sleep(options.interval);
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (!readable[i]) continue;
      current[i].resize(ranges[i].second - ranges[i].first);
      if (!reader.read(pid, ranges[i].first, current[i])) {
        readable[i] = false;  // unmapped meanwhile, or a guard page: leave it out
        continue;
      }
      if (round > 0) {
        for (uint64_t off = 0; off < current[i].size(); off += kLineBytes)
          if (std::memcmp(current[i].data() + off, previous[i].data() + off, kLineBytes) != 0)
            ++heat[ranges[i].first + off];
      }
      std::swap(previous[i], current[i]);
    }
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    if (!readable[i])
      for (uint64_t line = ranges[i].first; line < ranges[i].second; line += kLineBytes) heat.erase(line);
  return heat;
}

std::vector<uint64_t> rotation_order(std::span<const DataObject> objects, const std::map<uint64_t, uint32_t>& heat,
                                     uint64_t max_lines_per_object) {
  std::vector<std::pair<uint32_t, uint64_t>> changed;
  for (const auto& [line, changes] : heat)
    if (changes > 0) changed.emplace_back(changes, line);
  std::ranges::sort(changed, [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<uint64_t> out;
  std::set<uint64_t> taken;
  for (const auto& [changes, line] : changed)
    if (taken.insert(line).second) out.push_back(line);
  for (const DataObject& o : objects) {
    if (!o.main_executable) continue;
    uint64_t start = line_of(o.start);
    uint64_t end = std::min(line_of(o.start + o.size - 1) + kLineBytes, start + max_lines_per_object * kLineBytes);
    for (uint64_t line = start; line < end; line += kLineBytes) {
      // A line the scan could not read (heat has no entry) is not watchable either.
      if (!heat.contains(line)) continue;
      if (taken.insert(line).second) out.push_back(line);
    }
  }
  return out;
}

}  // namespace syncscope::collectors
