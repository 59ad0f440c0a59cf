#include "probes/symbolizer.h"

#include <cxxabi.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>

#include "agent/core/fd.h"
#include "agent/core/format.h"

namespace syncscope::probes {
namespace {

// Where stacks legitimately end: thread and process entry points of glibc,
// the dynamic loader and the Go runtime.
constexpr std::string_view kThreadEntries[] = {
    "start_thread",         "__libc_start_main", "__libc_start_call_main", "_start",
    "_dl_start_user",       "clone",             "__clone",                "clone3",
    "__clone3",             "__clone_internal",  "runtime.goexit",         "runtime.goexit.abi0",
    "runtime.mstart",       "runtime.mstart0",   "runtime.rt0_go",         "runtime.rt0_go.abi0",
};

std::string_view basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The last two hex numbers of /proc/PID/task/TID/syscall are the stack
// pointer and the program counter ("running" while the thread is on a CPU).
std::optional<uint64_t> stack_pointer_from_syscall_line(std::string_view line) {
  std::vector<std::string_view> words;
  while (!line.empty()) {
    size_t sp = line.find_first_of(" \n");
    if (sp != 0) words.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  if (words.size() < 3 || words[0] == "running") return std::nullopt;
  std::string_view word = words[words.size() - 2];
  if (!word.starts_with("0x")) return std::nullopt;
  uint64_t value = 0;
  auto [p, ec] = std::from_chars(word.data() + 2, word.data() + word.size(), value, 16);
  if (ec != std::errc() || p != word.data() + word.size()) return std::nullopt;
  return value;
}

}  // namespace

std::string demangle(std::string_view name) {
  if (!name.starts_with("_Z")) return std::string(name);
  std::string mangled(name);
  int status = 0;
  CHandle<char, ::free> out(abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status));
  return status == 0 && out ? std::string(out.get()) : mangled;
}

std::string Frame::to_string() const {
  if (module.empty()) return fmt::format("[unknown] {:#x}", address);
  std::string_view mod = basename(module);
  if (symbol.empty()) return fmt::format("{}+{:#x}", mod, offset);
  return fmt::format("{}+{:#x}{} ({})", symbol, offset, is_guess ? " [guess]" : "", mod);
}

bool stack_looks_truncated(std::span<const Frame> frames) {
  if (frames.empty()) return true;
  const Frame& last = frames.back();
  std::string_view last_symbol = last.symbol;
  if (std::ranges::find(kThreadEntries, last_symbol) != std::end(kThreadEntries)) return false;
  if (frames.size() < 3) return true;
  return last.module.empty();
}

// --- procfs / filesystem sources ----------------------------------------------

Result<std::vector<Mapping>> ProcfsProcessSource::maps(int pid) { return read_maps(pid, proc_root_); }

std::vector<uint64_t> ProcfsProcessSource::thread_stack_pointers(int pid) {
  std::vector<uint64_t> out;
  std::string task_dir = fmt::format("{}/{}/task", proc_root_, pid);
  CHandle<DIR, closedir> dir(::opendir(task_dir.c_str()));
  if (!dir) return out;
  while (dirent* entry = ::readdir(dir.get())) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream in(fmt::format("{}/{}/syscall", task_dir, entry->d_name));
    std::string line;
    if (in && std::getline(in, line))
      if (auto sp = stack_pointer_from_syscall_line(line)) out.push_back(*sp);
  }
  return out;
}

Result<FileIdentity> FilesystemElfSource::identify(int pid, const Mapping& m) {
  std::string path = host_path(pid, m, proc_root_);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 && (m.deleted || ::stat(m.path.c_str(), &st) != 0))
    return fail_errno(fmt::format("stat {}", path));
  return FileIdentity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                      static_cast<uint64_t>(st.st_size)};
}

Result<std::unique_ptr<ElfFile>> FilesystemElfSource::open(int pid, const Mapping& m) {
  auto elf = ElfFile::open(host_path(pid, m, proc_root_));
  // Without permission on /proc/PID/root (not root, other user), the path as
  // mapped is right whenever the process shares our mount namespace.
  if (!elf && !m.deleted) {
    auto direct = ElfFile::open(m.path);
    if (direct) return direct;
  }
  return elf;
}

Result<std::unique_ptr<ElfFile>> FilesystemElfSource::open_debug(const ElfFile& binary) {
  return binary.open_debug_file(debug_root_);
}

// --- Symbolizer ---------------------------------------------------------------

Symbolizer::Symbolizer()
    : Symbolizer(std::make_shared<ProcfsProcessSource>(), std::make_shared<FilesystemElfSource>(), Options{}) {}

Symbolizer::Symbolizer(std::shared_ptr<ProcessSource> processes, std::shared_ptr<ElfSource> files, Options options,
                       const Clock& clock)
    : processes_(std::move(processes)), files_(std::move(files)), options_(options), clock_(clock) {}

void Symbolizer::forget(int pid) {
  std::lock_guard lock(mu_);
  process_maps_.erase(pid);
}

size_t Symbolizer::module_count() const {
  std::lock_guard lock(mu_);
  std::vector<const Module*> distinct;
  for (const auto& [id, module] : by_identity_)
    if (module && std::ranges::find(distinct, module.get()) == distinct.end()) distinct.push_back(module.get());
  return distinct.size();
}

Result<const std::vector<Mapping>*> Symbolizer::maps_for(int pid, std::span<const uint64_t> addrs) {
  const auto now = clock_.steady_now();
  auto it = process_maps_.find(pid);
  bool refresh = it == process_maps_.end() || now - it->second.read_at > options_.maps_max_age;
  if (!refresh)
    refresh = std::ranges::any_of(addrs, [&](uint64_t a) { return !find_mapping(it->second.maps, a); });
  if (refresh) {
    auto fresh = processes_->maps(pid);
    if (fresh) {
      if (it == process_maps_.end()) {
        if (!process_maps_.empty() && process_maps_.size() >= options_.max_processes) {
          int oldest = process_maps_.begin()->first;
          uint64_t oldest_use = UINT64_MAX;
          for (const auto& [other, entry] : process_maps_)
            if (entry.last_use < oldest_use) oldest = other, oldest_use = entry.last_use;
          process_maps_.erase(oldest);
        }
        it = process_maps_.emplace(pid, ProcessMaps{}).first;
      }
      it->second.maps = std::move(*fresh);
      it->second.read_at = now;
    } else if (it == process_maps_.end()) {
      return std::unexpected(fresh.error());
    }
    // else: the process is gone but its last maps still describe its events.
  }
  it->second.last_use = ++use_counter_;
  return &it->second.maps;
}

std::shared_ptr<const Symbolizer::Module> Symbolizer::module_for(int pid, const Mapping& m) {
  auto identity = files_->identify(pid, m);
  // Without a stat (process gone, no permission) the maps line still names
  // the inode; mtime/size stay 0 so such keys never collide with real ones.
  FileIdentity key = identity ? *identity
                              : FileIdentity{static_cast<uint64_t>(makedev(m.dev_major, m.dev_minor)), m.inode, 0, 0};
  if (auto it = by_identity_.find(key); it != by_identity_.end()) return it->second;

  auto elf = files_->open(pid, m);
  if (!elf) {
    // Remember files that are not ELF at all; retry ones that merely vanished.
    if (identity) by_identity_.emplace(key, nullptr);
    return nullptr;
  }
  std::shared_ptr<const ElfFile> binary = std::move(*elf);
  if (!binary->build_id().empty()) {
    if (auto it = by_build_id_.find(binary->build_id()); it != by_build_id_.end()) {
      by_identity_.emplace(key, it->second);
      return it->second;
    }
  }
  auto module = std::make_shared<Module>();
  module->binary = binary;
  if (!binary->has_symtab())
    if (auto debug = files_->open_debug(*binary)) module->debug = std::move(*debug);
  if (!binary->build_id().empty()) by_build_id_.emplace(binary->build_id(), module);
  by_identity_.emplace(key, module);
  return module;
}

std::optional<SymbolMatch> Symbolizer::function_in(const Module& module, uint64_t vaddr) const {
  if (module.debug)
    if (auto match = module.debug->function_at(vaddr)) return match;
  return module.binary->function_at(vaddr);
}

std::optional<SymbolMatch> Symbolizer::object_in(const Module& module, uint64_t vaddr) const {
  if (module.debug)
    if (auto match = module.debug->object_at(vaddr)) return match;
  return module.binary->object_at(vaddr);
}

Result<std::vector<Frame>> Symbolizer::symbolize(int pid, std::span<const uint64_t> user_ips) {
  std::lock_guard lock(mu_);
  const std::vector<Mapping>* maps = TRY(maps_for(pid, user_ips));
  std::vector<Frame> frames;
  frames.reserve(user_ips.size());
  for (size_t i = 0; i < user_ips.size(); ++i) {
    Frame f;
    f.address = user_ips[i];
    const uint64_t back = options_.return_addresses && i > 0 && f.address > 0 ? 1 : 0;
    const uint64_t lookup_addr = f.address - back;
    const Mapping* m = find_mapping(*maps, lookup_addr);
    if (!m) {
      frames.push_back(std::move(f));
      continue;
    }
    f.module = m->path.empty() ? "[anon]" : m->path;
    f.offset = lookup_addr - m->start + back;
    if (m->is_file()) {
      f.offset = m->file_offset(lookup_addr) + back;
      if (auto module = module_for(pid, *m)) {
        if (auto vaddr = file_vaddr(*m, lookup_addr, *module->binary)) {
          f.offset = *vaddr + back;
          if (auto match = function_in(*module, *vaddr)) {
            f.symbol = demangle(match->symbol->name);
            f.offset = match->offset + back;
            f.is_guess = !match->exact;
          }
        }
      }
    }
    frames.push_back(std::move(f));
  }
  return frames;
}

bool Symbolizer::is_thread_stack(int pid, const std::vector<Mapping>& maps, const Mapping& m) {
  // glibc (and most runtimes) put a PROT_NONE guard right below a thread
  // stack; Go's heap holds g0 stacks too but has no guard below it.
  auto it = std::ranges::find_if(maps, [&](const Mapping& x) { return x.start == m.start; });
  if (it == maps.begin()) return false;
  const Mapping& below = *(it - 1);
  if (below.end != m.start || below.readable || below.writable || below.executable || below.is_file()) return false;
  auto sps = processes_->thread_stack_pointers(pid);
  return std::ranges::any_of(sps, [&](uint64_t sp) { return m.contains(sp); });
}

Result<std::string> Symbolizer::symbolize_data(int pid, uint64_t addr) {
  std::lock_guard lock(mu_);
  const uint64_t addrs[] = {addr};
  const std::vector<Mapping>* maps = TRY(maps_for(pid, addrs));
  const Mapping* m = find_mapping(*maps, addr);
  if (!m) return fail(fmt::format("process {}: address {:#x} is not mapped", pid, addr));

  auto name_in = [&](const Module& module, uint64_t vaddr, std::string_view module_path) {
    if (auto match = object_in(module, vaddr))
      return fmt::format("{}+{:#x}", demangle(match->symbol->name), match->offset);
    return fmt::format("{}+{:#x}", basename(module_path), vaddr);
  };

  switch (m->kind) {
    case MappingKind::stack: return std::string("stack");
    case MappingKind::heap: return std::string("heap");
    case MappingKind::file: {
      auto module = module_for(pid, *m);
      if (!module) return fmt::format("{}+{:#x}", basename(m->path), m->file_offset(addr));
      uint64_t vaddr = TRY(file_vaddr(*m, addr, *module->binary));
      return name_in(*module, vaddr, m->path);
    }
    case MappingKind::anonymous: {
      // .bss past the file's last page: an anonymous mapping right after the
      // module's last file mapping, still inside its PT_LOAD memory size.
      auto it = std::ranges::find_if(*maps, [&](const Mapping& x) { return x.start == m->start; });
      if (it != maps->begin()) {
        const Mapping& prev = *(it - 1);
        if (prev.is_file() && prev.end == m->start)
          if (auto module = module_for(pid, prev))
            if (auto bias = load_bias(prev, *module->binary)) {
              uint64_t vaddr = addr - *bias;
              for (const LoadSegment& seg : module->binary->load_segments())
                if (vaddr >= seg.vaddr && vaddr - seg.vaddr < seg.mem_size) return name_in(*module, vaddr, prev.path);
            }
      }
      if (is_thread_stack(pid, *maps, *m)) return std::string("stack");
      return std::string("heap");
    }
    default: return m->path;
  }
}

}  // namespace syncscope::probes
