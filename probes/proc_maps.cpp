#include "probes/proc_maps.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "agent/core/fd.h"
#include "agent/core/format.h"

namespace syncscope::probes {
namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

// A cursor over one maps line: "start-end perms offset major:minor inode   path".
struct LineReader {
  std::string_view rest;

  template <typename T>
  bool hex(T* out) {
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), *out, 16);
    if (ec != std::errc() || ptr == rest.data()) return false;
    rest.remove_prefix(static_cast<size_t>(ptr - rest.data()));
    return true;
  }
  bool dec(uint64_t* out) {
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), *out, 10);
    if (ec != std::errc() || ptr == rest.data()) return false;
    rest.remove_prefix(static_cast<size_t>(ptr - rest.data()));
    return true;
  }
  bool literal(char c) {
    if (rest.empty() || rest.front() != c) return false;
    rest.remove_prefix(1);
    return true;
  }
  void spaces() {
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  }
};

MappingKind kind_of(std::string_view path) {
  if (path.empty()) return MappingKind::anonymous;
  if (path.front() != '[') return MappingKind::file;
  if (path == "[heap]") return MappingKind::heap;
  if (path == "[stack]" || path.starts_with("[stack:")) return MappingKind::stack;
  if (path == "[vdso]") return MappingKind::vdso;
  if (path == "[vvar]") return MappingKind::vvar;
  if (path == "[vsyscall]") return MappingKind::vsyscall;
  return MappingKind::special;
}

std::optional<Mapping> parse_line(std::string_view line) {
  LineReader r{line};
  Mapping m;
  if (!r.hex(&m.start) || !r.literal('-') || !r.hex(&m.end) || m.end < m.start) return std::nullopt;
  r.spaces();
  if (r.rest.size() < 4) return std::nullopt;
  std::string_view perms = r.rest.substr(0, 4);
  m.readable = perms[0] == 'r';
  m.writable = perms[1] == 'w';
  m.executable = perms[2] == 'x';
  m.shared = perms[3] == 's';
  r.rest.remove_prefix(4);
  r.spaces();
  if (!r.hex(&m.offset)) return std::nullopt;
  r.spaces();
  if (!r.hex(&m.dev_major) || !r.literal(':') || !r.hex(&m.dev_minor)) return std::nullopt;
  r.spaces();
  if (!r.dec(&m.inode)) return std::nullopt;
  r.spaces();
  std::string_view path = r.rest;
  // The kernel escapes '\n' in names, so a path ends at the line's end; it may
  // contain spaces.
  while (!path.empty() && (path.back() == ' ' || path.back() == '\r')) path.remove_suffix(1);
  if (path.ends_with(kDeletedSuffix) && path.front() == '/') {
    m.deleted = true;
    path.remove_suffix(kDeletedSuffix.size());
  }
  m.path = std::string(path);
  m.kind = kind_of(path);
  return m;
}

}  // namespace

Result<std::vector<Mapping>> parse_maps(std::string_view text, std::string_view origin) {
  std::vector<Mapping> maps;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty()) continue;
    auto m = parse_line(line);
    if (!m) return fail(fmt::format("{}:{}: cannot parse mapping \"{}\"", origin, line_no, line));
    maps.push_back(std::move(*m));
  }
  // The kernel lists mappings in address order; keep that invariant for
  // find_mapping() even for hand-written input.
  if (!std::ranges::is_sorted(maps, {}, &Mapping::start)) std::ranges::sort(maps, {}, &Mapping::start);
  return maps;
}

Result<std::vector<Mapping>> read_maps(int pid, std::string_view proc_root) {
  std::string file = fmt::format("{}/{}/maps", proc_root, pid);
  Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ESRCH) return fail(fmt::format("process {} exited (no {})", pid, file), ESRCH);
    return fail_errno(fmt::format("open {}", file));
  }
  std::string text;
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ESRCH) return fail(fmt::format("process {} exited while reading {}", pid, file), ESRCH);
      return fail_errno(fmt::format("read {}", file));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  // A zombie (or a process between exit and reaping) has an empty maps file.
  if (text.empty()) return fail(fmt::format("process {} exited ({} is empty)", pid, file), ESRCH);
  return parse_maps(text, file);
}

const Mapping* find_mapping(std::span<const Mapping> maps, uint64_t addr) {
  auto it = std::ranges::upper_bound(maps, addr, {}, &Mapping::start);
  if (it == maps.begin()) return nullptr;
  --it;
  return it->contains(addr) ? &*it : nullptr;
}

std::vector<Mapping> executable_file_mappings(std::span<const Mapping> maps) {
  std::vector<Mapping> out;
  for (const Mapping& m : maps)
    if (m.executable && m.is_file()) out.push_back(m);
  return out;
}

Result<uint64_t> load_bias(const Mapping& m, const ElfFile& elf) {
  const LoadSegment* seg = elf.segment_for_map_offset(m.offset);
  if (!seg)
    return fail(fmt::format("{}: mapping {:#x}-{:#x} at file offset {:#x} matches no PT_LOAD segment", elf.path(),
                            m.start, m.end, m.offset));
  // Unsigned wrap-around is intended: a mapping may start a little before the
  // segment's file offset (page rounding), and the bias of ET_EXEC is 0.
  return m.start - (seg->vaddr - seg->offset + m.offset);
}

Result<uint64_t> file_vaddr(const Mapping& m, uint64_t addr, const ElfFile& elf) {
  if (!m.contains(addr)) return fail(fmt::format("address {:#x} is outside mapping {:#x}-{:#x}", addr, m.start, m.end));
  uint64_t bias = TRY(load_bias(m, elf));
  uint64_t vaddr = addr - bias;
  for (const LoadSegment& seg : elf.load_segments())
    if (vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.mem_size) return vaddr;
  return fail(fmt::format("{}: address {:#x} (vaddr {:#x}) is in no PT_LOAD segment", elf.path(), addr, vaddr));
}

std::string host_path(int pid, const Mapping& m, std::string_view proc_root) {
  // map_files reaches a deleted file's inode (root only); root/ resolves the
  // path in the process's own mount namespace (containers).
  if (m.deleted) return fmt::format("{}/{}/map_files/{:x}-{:x}", proc_root, pid, m.start, m.end);
  return fmt::format("{}/{}/root{}", proc_root, pid, m.path);
}

}  // namespace syncscope::probes
