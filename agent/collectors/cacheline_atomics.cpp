#include "agent/collectors/cacheline_atomics.h"

#include <algorithm>
#include <set>

#include "agent/core/log.h"
#include "bpf/cacheline.h"
#include "probes/elf_file.h"
#include "probes/go/go_binary.h"
#include "probes/proc_maps.h"
#include "probes/symbolizer.h"

namespace syncscope::collectors {
namespace {

std::string_view basename_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool sized_suffix(std::string_view name) {
  for (std::string_view s : {"_1", "_2", "_4", "_8", "_16"})
    if (name.ends_with(s)) return true;
  return false;
}

}  // namespace

Result<std::vector<AtomicFunction>> libatomic_functions(const std::string& elf_path, const std::string& display_path) {
  auto elf = TRY(probes::ElfFile::open(elf_path));
  std::vector<AtomicFunction> out;
  std::set<std::string> names;
  for (const probes::Symbol& s : elf->symbols()) {
    if (s.type != probes::SymbolType::func || s.binding == probes::SymbolBinding::local || s.value == 0) continue;
    std::string_view name = s.name;
    uint8_t arg = 0;
    if (name.starts_with("__atomic_")) {
      // No address argument to speak of, or not an operation on memory.
      if (name == "__atomic_is_lock_free" || name == "__atomic_feraiseexcept") continue;
      // Generic (size-less) entry points take the size first.
      arg = sized_suffix(name) ? 0 : 1;
    } else if (name.starts_with("atomic_flag_test_and_set") || name.starts_with("atomic_flag_clear")) {
      arg = 0;
    } else {
      continue;
    }
    if (!names.insert(s.name).second) continue;
    auto offset = elf->vaddr_to_offset(s.value);
    if (!offset) continue;
    out.push_back(
        {elf_path, fmt::format("{}:{}", basename_of(display_path), s.name), s.name, *offset, CL_ABI_SYSV, arg});
  }
  return out;
}

std::vector<AtomicFunction> go_atomic_functions(const std::string& path, const std::string& display_path) {
  std::vector<AtomicFunction> out;
  auto bin = probes::go::GoBinary::open(path);
  if (!bin) return out;
  for (const probes::go::GoFunction& fn : bin->functions()) {
    std::string_view name = fn.name;
    if (!name.starts_with("sync/atomic.")) continue;
    // ABI0 assembly takes its arguments on the stack; "-fm" method values
    // carry the receiver in a closure; runtime_* are linknamed scheduler hooks.
    if (name.ends_with(".abi0") || name.ends_with("-fm") || name.find("runtime_") != std::string_view::npos) continue;
    auto offset = bin->file_offset(fn.entry);
    if (!offset) continue;
    out.push_back({path, fmt::format("{}:{}", basename_of(display_path), fn.name), fn.name, *offset, CL_ABI_GO, 0});
  }
  return out;
}

Result<AtomicFunction> user_atomic_function(const config::AtomicFunction& named) {
  // A Go binary's function is found through its own tables (pclntab survives
  // stripping) and takes Go's register ABI.
  if (auto bin = probes::go::GoBinary::open(named.exe)) {
    auto fn = bin->find_function(named.symbol);
    if (!fn) return fail(fmt::format("{}: no function {} (cachelines.atomics)", named.exe, named.symbol));
    uint64_t offset = TRY(bin->file_offset(fn->entry));
    return AtomicFunction{named.exe,    fmt::format("{}:{}", basename_of(named.exe), named.symbol),
                          named.symbol, offset,
                          CL_ABI_GO,    static_cast<uint8_t>(named.addr_arg)};
  }
  auto elf = TRY(probes::ElfFile::open(named.exe));
  const probes::Symbol* s = elf->find_symbol(named.symbol);
  if (!s) {
    for (const probes::Symbol& candidate : elf->symbols())
      if (candidate.type == probes::SymbolType::func && probes::demangle(candidate.name) == named.symbol)
        s = &candidate;
  }
  if (!s || s->value == 0) return fail(fmt::format("{}: no function {} (cachelines.atomics)", named.exe, named.symbol));
  if (s->type == probes::SymbolType::gnu_ifunc)
    return fail(fmt::format("{}: {} is an IFUNC resolver, not the code that runs", named.exe, named.symbol));
  uint64_t offset = TRY(elf->vaddr_to_offset(s->value));
  return AtomicFunction{named.exe,    fmt::format("{}:{}", basename_of(named.exe), named.symbol),
                        named.symbol, offset,
                        CL_ABI_SYSV,  static_cast<uint8_t>(named.addr_arg)};
}

std::vector<std::string> imported_atomic_names(const std::string& elf_path) {
  std::vector<std::string> out;
  auto elf = probes::ElfFile::open(elf_path);
  if (!elf) return out;
  const probes::Section* dynstr = (*elf)->section(".dynstr");
  if (!dynstr) return out;
  auto bytes = (*elf)->section_bytes(*dynstr);
  if (!bytes) return out;
  std::string_view table(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  for (size_t pos = 0; pos < table.size();) {
    size_t end = table.find('\0', pos);
    if (end == std::string_view::npos) end = table.size();
    std::string_view name = table.substr(pos, end - pos);
    if (name.starts_with("__atomic_") || name.starts_with("atomic_flag_")) out.emplace_back(name);
    pos = end + 1;
  }
  return out;
}

std::vector<AtomicFunction> process_atomic_functions(pid_t pid) {
  std::vector<AtomicFunction> out;
  auto maps = probes::read_maps(pid);
  if (!maps) return out;
  std::string exe_path;
  std::set<std::string> done;
  std::set<std::string> imported;
  const probes::Mapping* libatomic = nullptr;
  for (const probes::Mapping& m : *maps) {
    if (!m.is_file() || !m.executable || done.contains(m.path)) continue;
    done.insert(m.path);
    if (basename_of(m.path).starts_with("libatomic.so")) {
      libatomic = &m;
      continue;
    }
    for (std::string& name : imported_atomic_names(probes::host_path(pid, m))) imported.insert(std::move(name));
  }
  if (libatomic && !imported.empty()) {
    if (auto fns = libatomic_functions(probes::host_path(pid, *libatomic), libatomic->path)) {
      for (AtomicFunction& fn : *fns)
        if (imported.contains(fn.symbol)) out.push_back(std::move(fn));
    } else {
      log::debug("cachelines: {}: {}", libatomic->path, fns.error().message());
    }
  }
  // The executable itself, when it is Go.
  char buf[4096];
  ssize_t n = ::readlink(fmt::format("/proc/{}/exe", pid).c_str(), buf, sizeof buf - 1);
  if (n > 0) {
    exe_path.assign(buf, static_cast<size_t>(n));
    std::vector<AtomicFunction> go = go_atomic_functions(fmt::format("/proc/{}/exe", pid), exe_path);
    out.insert(out.end(), go.begin(), go.end());
  }
  return out;
}

AtomicProbes::~AtomicProbes() { detach(); }

void AtomicProbes::detach() { links_.clear(); }

std::unique_ptr<AtomicProbes> AtomicProbes::attach(bpf_program* program, const std::vector<AtomicFunction>& functions,
                                                   pid_t pid, uint32_t first_index) {
  auto probes = std::make_unique<AtomicProbes>();
  for (uint32_t i = 0; i < functions.size(); ++i) {
    const AtomicFunction& fn = functions[i];
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = CL_COOKIE(first_index + i, fn.abi, fn.addr_arg));
    bpf_link* link = bpf_program__attach_uprobe_opts(program, pid, fn.path.c_str(), fn.file_offset, &opts);
    if (!link) {
      int err = errno;
      // ENOTSUPP (524): the kernel cannot single-step the first instruction
      // (x86 refuses LOCK-prefixed ones, which a function made of one atomic
      // may start with).
      std::string why = err == 524 ? "the kernel cannot probe its first instruction (a LOCK-prefixed atomic?)"
                                   : std::string(std::strerror(err));
      probes->rows_.push_back({bpf_program__name(program), "uprobe", fn.display, false, "attach: " + why});
      continue;
    }
    probes->links_.emplace_back(link);
    probes->rows_.push_back(
        {bpf_program__name(program), "uprobe", fn.display, true,
         fmt::format("address in argument {} ({} ABI)", fn.addr_arg, fn.abi == CL_ABI_GO ? "Go" : "C")});
  }
  return probes;
}

}  // namespace syncscope::collectors
