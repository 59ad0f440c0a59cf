#include "probes/libc.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <filesystem>

#include "agent/core/format.h"
#include "probes/disasm.h"
#include "probes/proc_maps.h"

namespace syncscope::probes {
namespace {

// What the agent attaches to. Measured on Debian 12 glibc 2.36 (libc6-dbg):
// __lll_lock_wait/__lll_lock_wake are LOCAL (debug file only);
// __lll_lock_wait_private/__lll_lock_wake_private are exported as
// GLIBC_PRIVATE; both __futex_abstimed_wait* helpers are LOCAL.
constexpr std::array kTargets{
    LibcProbeTarget{"__lll_lock_wait", WaitKind::mutex, false, true,
                    "arg0 = futex word = mutex address, arg1 = LLL_PRIVATE(0)/LLL_SHARED(128)"},
    LibcProbeTarget{"__lll_lock_wake", WaitKind::mutex, true, false, "arg0 = mutex address, arg1 = private flag"},
    LibcProbeTarget{"__lll_lock_wait_private", WaitKind::internal_lock, false, false, "arg0 = lock word address"},
    LibcProbeTarget{"__lll_lock_wake_private", WaitKind::internal_lock, true, false, "arg0 = lock word address"},
    LibcProbeTarget{"__futex_abstimed_wait64", WaitKind::unknown, false, false,
                    "arg0 = futex word, arg1 = expected, arg2 = clockid, arg3 = abstime, arg4 = private; "
                    "rwlocks and timed/robust/PI mutexes: classify by return address"},
    LibcProbeTarget{"__futex_abstimed_wait_cancelable64", WaitKind::unknown, false, false,
                    "arg0 = futex word, arg1 = expected, arg2 = clockid, arg3 = abstime, arg4 = private; "
                    "condvars, semaphores, pthread_join: classify by return address"},
};

// The functions whose calls into the generic futex waits (or into
// __lll_lock_wait) identify the primitive. Compiler clones
// ("__new_sem_wait_slow64.constprop.0") count as their base function.
struct CallerRow {
  std::string_view function;
  WaitKind kind;
};
constexpr std::array kCallers{
    CallerRow{"pthread_rwlock_rdlock", WaitKind::rwlock_read},
    CallerRow{"pthread_rwlock_timedrdlock", WaitKind::rwlock_read},
    CallerRow{"pthread_rwlock_clockrdlock", WaitKind::rwlock_read},
    CallerRow{"pthread_rwlock_wrlock", WaitKind::rwlock_write},
    CallerRow{"pthread_rwlock_timedwrlock", WaitKind::rwlock_write},
    CallerRow{"pthread_rwlock_clockwrlock", WaitKind::rwlock_write},
    CallerRow{"pthread_cond_wait", WaitKind::condvar},
    CallerRow{"pthread_cond_timedwait", WaitKind::condvar},
    CallerRow{"pthread_cond_clockwait", WaitKind::condvar},
    CallerRow{"pthread_mutex_lock", WaitKind::mutex},
    CallerRow{"__pthread_mutex_lock_full", WaitKind::mutex},
    CallerRow{"__pthread_mutex_cond_lock", WaitKind::mutex},
    CallerRow{"__pthread_mutex_cond_lock_full", WaitKind::mutex},
    CallerRow{"__pthread_mutex_clocklock_common", WaitKind::mutex},
    CallerRow{"__lll_lock_elision", WaitKind::mutex},
    CallerRow{"__lll_clocklock_elision", WaitKind::mutex},
    CallerRow{"__new_sem_wait_slow64", WaitKind::semaphore},
    CallerRow{"__pthread_clockjoin_ex", WaitKind::thread_join},
};

constexpr uint64_t kMaxCallTargetBytes = 1024;

bool is_code(const Symbol& s) { return s.type == SymbolType::func || s.type == SymbolType::gnu_ifunc; }

// "GNU C Library (Debian GLIBC 2.36-9+deb12u14) stable release version 2.36."
std::string banner_version(const ElfFile& lib) {
  const Section* rodata = lib.section(".rodata");
  if (!rodata) return {};
  auto bytes = lib.section_bytes(*rodata);
  if (!bytes) return {};
  std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  constexpr std::string_view kMarker = "release version ";
  size_t at = text.find(kMarker);
  if (at == std::string_view::npos) return {};
  size_t begin = at + kMarker.size(), end = begin;
  while (end < text.size() && end - begin < 16 && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.'))
    ++end;
  while (end > begin && text[end - 1] == '.') --end;
  return std::string(text.substr(begin, end - begin));
}

// major * 1000 + minor, or -1.
int version_number(std::string_view version) {
  int major = 0, minor = 0;
  auto [p, ec] = std::from_chars(version.data(), version.data() + version.size(), major);
  if (ec != std::errc() || p == version.data() + version.size() || *p != '.') return -1;
  auto [q, ec2] = std::from_chars(p + 1, version.data() + version.size(), minor);
  if (ec2 != std::errc() || q == p + 1) return -1;
  return major * 1000 + minor;
}

// The heuristic for a stripped libc without a debug file: pthread_mutex_lock
// calls exactly one local function, __lll_lock_wait (it also calls
// __assert_fail, which is exported, and tail-jumps to its slow variants, which
// are jumps, not calls). The candidate must issue a syscall (the futex wait)
// before its first RET.
Result<ResolvedFunction> lll_lock_wait_by_call_target(const ElfFile& lib) {
  const Symbol* lock = lib.find_symbol("pthread_mutex_lock");
  if (!lock) return fail(fmt::format("{}: no pthread_mutex_lock to decode", lib.path()));
  std::vector<uint64_t> targets = TRY(direct_call_targets(lib, *lock));
  std::vector<uint64_t> candidates;
  for (uint64_t target : targets) {
    const Section* sec = nullptr;
    for (const Section& s : lib.sections())
      if (s.vaddr != 0 && target >= s.vaddr && target - s.vaddr < s.size) sec = &s;
    if (sec && sec->name.starts_with(".plt")) continue;
    auto named = lib.function_at(target);
    if (named && named->exact && named->offset == 0 && named->symbol->binding != SymbolBinding::local) continue;
    bool in_code = std::ranges::any_of(lib.load_segments(), [&](const LoadSegment& seg) {
      return seg.executable() && target >= seg.vaddr && target - seg.vaddr < seg.file_size;
    });
    if (in_code) candidates.push_back(target);
  }
  if (candidates.size() != 1) {
    std::string list;
    for (uint64_t c : candidates) list += fmt::format("{}{:#x}", list.empty() ? "" : ", ", c);
    return fail(fmt::format("{}: pthread_mutex_lock has {} local call targets ({}); expected exactly one",
                            lib.path(), candidates.size(), list.empty() ? "none" : list));
  }
  auto body = TRY(decode_until_ret(lib, candidates[0], kMaxCallTargetBytes));
  if (std::ranges::none_of(body, [](const Instruction& i) { return i.kind == InstructionKind::syscall; }))
    return fail(fmt::format("{}: call target {:#x} of pthread_mutex_lock makes no syscall before returning; "
                            "not __lll_lock_wait",
                            lib.path(), candidates[0]));
  ResolvedFunction out;
  out.name = "__lll_lock_wait";
  out.vaddr = candidates[0];
  out.method = ResolveMethod::call_target;
  out.source = lib.path();
  return out;
}

Result<ResolvedFunction> resolve_one(const LibcProbeTarget& target, const ElfFile& lib, const ElfFile* debug,
                                     const std::string& debug_error) {
  ResolvedFunction out;
  out.name = std::string(target.function);
  if (const Symbol* s = lib.find_symbol(target.function); s && is_code(*s)) {
    out.vaddr = s->value;
    out.size = s->size;
    out.method = s->table == SymbolTable::symtab ? ResolveMethod::symtab : ResolveMethod::dynsym;
    out.source = lib.path();
  } else if (const Symbol* d = debug ? debug->find_symbol(target.function) : nullptr; d && is_code(*d)) {
    out.vaddr = d->value;
    out.size = d->size;
    out.method = ResolveMethod::debug_file;
    out.source = debug->path();
  } else if (target.call_target_fallback) {
    auto found = lll_lock_wait_by_call_target(lib);
    if (!found)
      return fail(fmt::format("{}: not in {}'s symbols, {}, and the call-target heuristic failed: {}", target.function,
                              lib.path(), debug ? "not in the debug file" : debug_error, found.error().message()));
    out = std::move(*found);
  } else {
    return fail(fmt::format("{}: not in {}'s symbols and {}", target.function, lib.path(),
                            debug ? "not in its debug file " + debug->path() : debug_error));
  }
  auto offset = lib.vaddr_to_offset(out.vaddr);
  if (!offset) return std::unexpected(offset.error().wrap(target.function));
  out.file_offset = *offset;
  return out;
}

std::vector<WaitCaller> wait_callers(const ElfFile& symbols) {
  std::vector<WaitCaller> out;
  for (const Symbol& s : symbols.symbols()) {
    if (!is_code(s) || s.size == 0) continue;
    std::string_view base = s.name;
    if (size_t dot = base.find('.'); dot != std::string_view::npos) base = base.substr(0, dot);
    // "___pthread_rwlock_rdlock" and "__pthread_rwlock_rdlock" alias the
    // public name at the same address; the public one is enough.
    for (const CallerRow& row : kCallers)
      if (base == row.function) out.push_back({s.value, s.value + s.size, std::string(row.function), row.kind});
  }
  std::ranges::sort(out, {}, &WaitCaller::start);
  auto dup = std::ranges::unique(out, [](const WaitCaller& a, const WaitCaller& b) { return a.start == b.start; });
  out.erase(dup.begin(), dup.end());
  return out;
}

}  // namespace

std::string_view to_string(ResolveMethod method) {
  switch (method) {
    case ResolveMethod::symtab: return "symtab";
    case ResolveMethod::dynsym: return "dynsym";
    case ResolveMethod::debug_file: return "debug file";
    case ResolveMethod::call_target: return "call-target";
  }
  return "?";
}

std::string_view to_string(WaitKind kind) {
  switch (kind) {
    case WaitKind::unknown: return "unknown";
    case WaitKind::mutex: return "mutex";
    case WaitKind::internal_lock: return "internal_lock";
    case WaitKind::rwlock_read: return "rwlock_read";
    case WaitKind::rwlock_write: return "rwlock_write";
    case WaitKind::condvar: return "condvar";
    case WaitKind::semaphore: return "semaphore";
    case WaitKind::thread_join: return "thread_join";
  }
  return "?";
}

std::span<const LibcProbeTarget> libc_probe_targets() { return kTargets; }

const LibcFunction* LibcInfo::function(std::string_view name) const {
  for (const LibcFunction& f : functions)
    if (f.target && f.target->function == name) return &f;
  return nullptr;
}

WaitKind LibcInfo::classify_return_address(uint64_t vaddr) const {
  auto it = std::ranges::upper_bound(wait_callers, vaddr, {}, &WaitCaller::start);
  if (it == wait_callers.begin()) return WaitKind::unknown;
  --it;
  return vaddr < it->end ? it->kind : WaitKind::unknown;
}

bool is_libc_path(std::string_view path) {
  std::string_view base = path.substr(path.rfind('/') == std::string_view::npos ? 0 : path.rfind('/') + 1);
  if (base == "libc.so.6") return true;
  // Before 2.34 the real file was libc-2.NN.so (libc.so.6 a symlink to it).
  if (!base.starts_with("libc-") || !base.ends_with(".so")) return false;
  std::string_view middle = base.substr(5, base.size() - 8);
  return !middle.empty() &&
         std::ranges::all_of(middle, [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; });
}

Result<LibcLocation> find_libc(int pid, std::string_view proc_root) {
  auto maps = TRY(read_maps(pid, proc_root));
  for (const Mapping& m : maps)
    if (m.is_file() && is_libc_path(m.path)) return LibcLocation{m.path, host_path(pid, m, proc_root), m.inode};
  return fail(fmt::format("process {} maps no glibc (static binary, musl, or Go without cgo)", pid));
}

Result<std::string> system_libc_path() {
  std::error_code ec;
  for (const char* candidate : {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                                "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6", "/lib64/libc.so.6"})
    if (std::filesystem::is_regular_file(candidate, ec)) return std::string(candidate);
  return fail("no system libc.so.6 found in the usual directories");
}

LibcResolver::LibcResolver(std::string debug_root) : debug_root_(std::move(debug_root)) {}

size_t LibcResolver::cache_size() const {
  std::lock_guard lock(mu_);
  return by_build_id_.size();
}

Result<LibcInfo> LibcResolver::resolve_pid(int pid) {
  LibcLocation where = TRY(find_libc(pid));
  return resolve(where.open_path);
}

Result<LibcInfo> LibcResolver::resolve_system() { return resolve(TRY(system_libc_path())); }

Result<LibcInfo> LibcResolver::resolve(const std::string& path) {
  auto lib = TRY(ElfFile::open(path));
  std::string key = lib->build_id();
  if (key.empty()) {
    // No build-id (a custom build): the file's identity has to do.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return fail_errno(fmt::format("stat {}", path));
    key = fmt::format("{}:{}:{}:{}", st.st_dev, st.st_ino, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  }
  {
    std::lock_guard lock(mu_);
    if (auto it = by_build_id_.find(key); it != by_build_id_.end()) {
      LibcInfo info = it->second;
      info.path = path;
      return info;
    }
  }
  LibcInfo info = TRY(resolve_uncached(*lib));
  std::lock_guard lock(mu_);
  by_build_id_.emplace(key, info);
  return info;
}

Result<LibcInfo> LibcResolver::resolve_uncached(const ElfFile& lib) {
  if (!lib.find_symbol("__libc_start_main"))
    return fail(fmt::format("{}: not glibc (no __libc_start_main)", lib.path()));
  LibcInfo info;
  info.path = lib.path();
  info.build_id = lib.build_id();
  info.version = banner_version(lib);
  if (int v = version_number(info.version); v >= 0 && v < 2034)
    return fail(fmt::format("{}: glibc {} keeps its pthread functions in libpthread.so.0; glibc >= 2.34 is supported",
                            lib.path(), info.version));

  std::unique_ptr<ElfFile> debug;
  if (!lib.has_symtab()) {
    auto opened = lib.open_debug_file(debug_root_);
    if (opened) {
      debug = std::move(*opened);
      info.debug_file = debug->path();
    } else {
      info.debug_error = opened.error().message();
    }
  }
  for (const LibcProbeTarget& target : kTargets)
    info.functions.push_back({&target, resolve_one(target, lib, debug.get(), info.debug_error)});
  info.wait_callers = wait_callers(debug ? *debug : lib);
  return info;
}

}  // namespace syncscope::probes
