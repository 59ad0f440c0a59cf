#include "agent/collectors/go_locks.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "agent/core/fd.h"
#include "agent/core/format.h"
#include "agent/core/log.h"
#include "agent/loader/bpf_stats.h"
#include "bpf/golang.skel.h"
#include "probes/disasm.h"
#include "probes/proc_maps.h"

namespace syncscope::collectors {
namespace {

// The probe catalog, as data: each contended-only function, spelled as Go
// versions name it (newest first), and when it is wanted.
struct GoLockSite {
  uint32_t function;  // GO_FN_*
  std::vector<std::string> names;
  // The holder side: a release is an instant, so the entry alone is probed
  // (go_unlock_entry); a wait needs the entry and every RET.
  bool release;
  // Probe only when the binary lacks this function: before Go 1.20 the
  // RWMutex waits went through runtime_SemacquireMutex, which from 1.20 on
  // only lockSlow calls (a nested wait already timed, so a wasted trap).
  std::string_view unless_present;
};
const std::vector<GoLockSite>& sites() {
  static const std::vector<GoLockSite> kSites{
      {GO_FN_LOCK_SLOW, {"internal/sync.(*Mutex).lockSlow", "sync.(*Mutex).lockSlow"}, false, ""},
      {GO_FN_SEMACQUIRE_RW, {"sync.runtime_SemacquireRWMutex"}, false, ""},
      {GO_FN_SEMACQUIRE_RW_R, {"sync.runtime_SemacquireRWMutexR"}, false, ""},
      {GO_FN_SEMACQUIRE_MUTEX, {"sync.runtime_SemacquireMutex"}, false, "sync.runtime_SemacquireRWMutex"},
      // Unlock calls unlockSlow only when the state word has waiters (or the
      // woken/starving flags), RUnlock calls rUnlockSlow only when a writer
      // waits: both are contended-only, like lockSlow.
      {GO_FN_UNLOCK_SLOW, {"internal/sync.(*Mutex).unlockSlow", "sync.(*Mutex).unlockSlow"}, true, ""},
      {GO_FN_RUNLOCK_SLOW, {"sync.(*RWMutex).rUnlockSlow"}, true, ""},
  };
  return kSites;
}

// Is the file a Go executable? The Go linker always writes a
// .note.go.buildid note (kept by strip) and .go.buildinfo / .gopclntab;
// reading section names costs a few page reads, so every exec on the host
// can afford it (GoBinary::open parses far more).
bool looks_like_go(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  if (elf_version(EV_CURRENT) == EV_NONE) return false;
  Elf* elf = elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr);
  if (!elf) return false;
  bool go = false;
  size_t shstrndx = 0;
  if (elf_kind(elf) == ELF_K_ELF && elf_getshdrstrndx(elf, &shstrndx) == 0) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn && !go; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr)) continue;
      const char* name = elf_strptr(elf, shstrndx, shdr.sh_name);
      if (!name) continue;
      std::string_view n(name);
      go = n == ".note.go.buildid" || n == ".go.buildinfo" || n == ".gopclntab";
    }
  }
  elf_end(elf);
  return go;
}

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns's clock
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::string describe_offsets(const probes::go::RuntimeOffsets& offsets) {
  return fmt::format("g.goid at +{} ({})", offsets.g_goid,
                     offsets.source == probes::go::OffsetSource::dwarf ? "DWARF" : offsets.origin);
}

}  // namespace

GoLockIdentity identify_go_lock(uint32_t function, uint64_t addr, std::string_view caller_function) {
  constexpr uint64_t kWriterSem = 8, kReaderSem = 12;  // sync.RWMutex{w Mutex; writerSem, readerSem uint32; …}
  switch (function) {
    case GO_FN_LOCK_SLOW:
    case GO_FN_UNLOCK_SLOW: return {LockKind::go_mutex, addr, addr};
    case GO_FN_SEMACQUIRE_RW: return {LockKind::go_rwmutex, addr - kWriterSem, addr};
    case GO_FN_SEMACQUIRE_RW_R: return {LockKind::go_rwmutex, addr - kReaderSem, addr};
    case GO_FN_SEMACQUIRE_MUTEX: {
      uint64_t lock = caller_function == "sync.(*RWMutex).Lock" ? addr - kWriterSem : addr - kReaderSem;
      return {LockKind::go_rwmutex, lock, addr};
    }
    // The last reader out releases the writer's semaphore.
    case GO_FN_RUNLOCK_SLOW: return {LockKind::go_rwmutex, addr, addr + kWriterSem};
    default: return {LockKind::go_mutex, addr, addr};
  }
}

Result<std::unique_ptr<GoLocks>> GoLocks::start(const GoLocksOptions& options, GoLockSink& sink) {
  auto g = std::unique_ptr<GoLocks>(new GoLocks());
  g->options_ = options;
  g->sink_ = &sink;
  g->skel_ = {golang_bpf__open(), golang_bpf__destroy};
  golang_bpf* skel = g->skel_.get();
  if (!skel) return fail_errno("golang.bpf.o: open");
  skel->rodata->filter_targets = options.lock_targets_fd >= 0;
  skel->rodata->wakeup_bytes = options.lazy_wakeup ? options.ringbuf_bytes / 4 : 0;
  bpf_map__set_max_entries(skel->maps.go_records, options.ringbuf_bytes);
  if (options.lock_targets_fd >= 0) {
    if (int err = bpf_map__reuse_fd(skel->maps.lock_targets, options.lock_targets_fd))
      return fail_libbpf("golang.bpf.o: share lock_targets", err);
  } else {
    bpf_map__set_max_entries(skel->maps.lock_targets, 1);
  }
  if (int err = golang_bpf__load(skel)) return fail_libbpf("golang.bpf.o: load", err);
  g->ring_ = {ring_buffer__new(bpf_map__fd(skel->maps.go_records), &GoLocks::on_record, g.get(), nullptr),
              ring_buffer__free};
  if (!g->ring_) return fail_errno("golang: ring_buffer__new");
  return g;
}

GoLocks::~GoLocks() {
  take_links();  // destroyed here, one by one, unless the owner took them
  ring_.reset();
}

std::vector<loader::Link> GoLocks::take_links() {
  std::vector<loader::Link> out;
  for (auto& [id, bin] : binaries_)
    for (loader::Link& link : bin->links) out.push_back(std::move(link));
  for (auto& [id, bin] : binaries_) bin->links.clear();
  return out;
}

int GoLocks::ring_epoll_fd() const { return ring_buffer__epoll_fd(ring_.get()); }

void GoLocks::consume() { ring_buffer__consume(ring_.get()); }

const bpf_object* GoLocks::object() const { return skel_->obj; }

bool GoLocks::check_process(uint32_t pid) {
  std::string exe_link = fmt::format("/proc/{}/exe", pid);
  struct stat st {};
  if (::stat(exe_link.c_str(), &st) != 0) return false;  // gone, or a kernel thread
  bool probed_now = false;
  auto key = std::make_pair(st.st_dev, st.st_ino);
  ProbedGoBinary* bin = nullptr;
  if (auto it = binaries_.find(key); it != binaries_.end()) {
    bin = it->second.get();
  } else {
    // Attach through the path the process was started from when it is the
    // same file in our mount namespace: it outlives the process and reads
    // better in /debug/probes.
    std::string path = exe_link;
    std::array<char, 4096> buf{};
    ssize_t n = ::readlink(exe_link.c_str(), buf.data(), buf.size() - 1);
    if (n > 0) {
      std::string target(buf.data(), static_cast<size_t>(n));
      struct stat direct {};
      if (::stat(target.c_str(), &direct) == 0 && direct.st_dev == st.st_dev && direct.st_ino == st.st_ino)
        path = target;
    }
    bin = probe_binary(pid, path, st.st_dev, st.st_ino);
    probed_now = bin && bin->is_go;
  }
  if (!bin || !bin->is_go || !bin->binary) return probed_now;
  Process process{bin, 0};
  if (bin->elf && bin->elf->position_independent()) {
    // A PIE Go binary (-buildmode=pie): the bias of this process's mapping.
    if (auto maps = probes::read_maps(static_cast<int>(pid)))
      for (const probes::Mapping& m : *maps)
        if (m.executable && m.inode == bin->inode)
          if (auto bias = probes::load_bias(m, *bin->elf)) {
            process.bias = *bias;
            break;
          }
  }
  processes_[pid] = process;
  return probed_now;
}

ProbedGoBinary* GoLocks::probe_binary(uint32_t pid, const std::string& path, dev_t dev, ino_t inode) {
  // Not-Go entries are kept so each file is looked at once; a host with more
  // distinct executables than this starts over (costs a re-read, nothing else).
  constexpr size_t kMaxBinaries = 8192;
  if (binaries_.size() >= kMaxBinaries)
    std::erase_if(binaries_, [](const auto& e) { return !e.second->is_go; });
  auto bin = std::make_unique<ProbedGoBinary>();
  bin->dev = dev;
  bin->inode = inode;
  bin->path = path;
  bin->is_go = looks_like_go(path);
  ProbedGoBinary* raw = bin.get();
  binaries_.emplace(std::make_pair(dev, inode), std::move(bin));
  if (!raw->is_go) return raw;
  auto go = probes::go::GoBinary::open(path);
  if (!go) {
    raw->error = fmt::format("not probed: {}", go.error().message());
  } else {
    raw->binary = std::make_shared<const probes::go::GoBinary>(std::move(*go));
    attach(*raw);
  }
  if (!raw->error.empty()) {
    raw->rows.push_back({"go_lock_*", "uprobe", path, false, raw->error});
    log::warn("locks: Go binary {} (pid {}): {}", path, pid, raw->error);
  }
  return raw;
}

void GoLocks::attach(ProbedGoBinary& bin) {
  const probes::go::GoBinary& go = *bin.binary;
  std::string version = go.version() ? go.version()->raw : std::string("unknown Go version");
  auto elf = probes::ElfFile::open(bin.path);
  if (!elf) {
    bin.error = fmt::format("not probed: {}", elf.error().message());
    return;
  }
  bin.elf = std::move(*elf);
#if !defined(__x86_64__)
  bin.error = "not probed: Go lock probes read the register ABI of amd64 only (this agent is not x86-64)";
  return;
#endif
  if (bin.elf->machine() != EM_X86_64) {
    bin.error = fmt::format("not probed: {} is not an x86-64 binary; Go lock probes read the amd64 register ABI",
                            version);
    return;
  }
  if (go.version() && !go.version()->at_least(1, 17)) {
    bin.error = fmt::format("not probed: {} predates the register ABI (Go 1.17): the mutex is not in RAX, g not in R14",
                            version);
    return;
  }
  auto offsets = go.runtime_offsets();
  if (!offsets) {
    bin.error = fmt::format("not probed: no runtime.g layout for {}: {}", version, offsets.error().message());
    return;
  }
  const std::string how = go.function_source() == probes::go::FunctionSource::symtab ? ".symtab" : ".gopclntab";
  const uint64_t goid_cookie = static_cast<uint64_t>(offsets->g_goid) << GO_COOKIE_GOID_SHIFT;
  const int pid = options_.pid ? static_cast<int>(*options_.pid) : -1;
  golang_bpf* skel = skel_.get();
  size_t attached_functions = 0;
  for (const GoLockSite& site : sites()) {
    if (!site.unless_present.empty() && go.find_function(site.unless_present)) continue;
    if (site.release && !options_.holder_stacks) continue;
    auto fn = go.resolve_first_of(site.names);
    std::string target = fmt::format("{}:{}", bin.path, site.names.back());
    if (!fn) {
      // Absent is normal for the functions of other Go versions.
      bin.rows.push_back({"go_lock_entry", "uprobe", target, false,
                          fmt::format("not found in {} ({})", version, fn.error().message())});
      continue;
    }
    target = fmt::format("{}:{}", bin.path, fn->name);
    const char* programs = site.release ? "go_unlock_entry" : "go_lock_entry+go_lock_ret";
    std::vector<std::pair<uint64_t, uint64_t>> points;  // (vaddr, cookie)
    points.emplace_back(fn->entry, goid_cookie | site.function);
    if (!site.release) {
      probes::Symbol symbol;
      symbol.name = fn->name;
      symbol.value = fn->entry;
      symbol.size = fn->end - fn->entry;
      auto rets = probes::ret_offsets(*bin.elf, symbol);
      if (!rets || rets->empty()) {
        // Without every RET a wait would never end: no entry probe either.
        bin.rows.push_back({"go_lock_entry", "uprobe", target, false,
                            fmt::format("not attached: {}", rets ? fmt::format("no RET instruction in [{:#x}, {:#x})", fn->entry, fn->end) : rets.error().message())});
        continue;
      }
      for (uint64_t ret : *rets) points.emplace_back(ret, goid_cookie | GO_COOKIE_RET | site.function);
    }
    std::vector<loader::Link> links;
    std::string failure;
    for (const auto& [vaddr, cookie] : points) {
      auto offset = go.file_offset(vaddr);
      if (!offset) {
        failure = offset.error().message();
        break;
      }
      LIBBPF_OPTS(bpf_uprobe_opts, opts);
      opts.bpf_cookie = cookie;
      bpf_program* prog = site.release            ? skel->progs.go_unlock_entry
                          : (cookie & GO_COOKIE_RET) ? skel->progs.go_lock_ret
                                                     : skel->progs.go_lock_entry;
      loader::Link link(bpf_program__attach_uprobe_opts(prog, pid, bin.path.c_str(), *offset, &opts));
      if (!link) {
        failure = fmt::format("attach at {:#x} failed: {}", vaddr, std::strerror(errno));
        break;
      }
      links.push_back(std::move(link));
    }
    if (!failure.empty()) {
      // All or nothing per function: an entry without its RETs leaks waits,
      // RETs without the entry measure nothing.
      bin.rows.push_back({programs, "uprobe", target, false, failure});
      continue;
    }
    ++attached_functions;
    for (loader::Link& link : links) bin.links.push_back(std::move(link));
    std::string where = site.release ? std::string("entry only (holder side)")
                                     : fmt::format("entry + {} RET(s) decoded with capstone", points.size() - 1);
    bin.rows.push_back({programs, "uprobe", target, true,
                        fmt::format("{}, resolved via {}, {}, {}{}", version, how, where, describe_offsets(*offsets),
                                    pid > 0 ? fmt::format(", pid {}", pid) : "")});
  }
  if (attached_functions == 0 && bin.error.empty())
    bin.error = fmt::format("no Go lock function could be probed in {}", version);
  log::info("locks: Go binary {} ({}): {} uprobes on {} function(s)", bin.path, version, bin.links.size(),
            attached_functions);
}

void GoLocks::process_exited(uint32_t pid) {
  if (!processes_.contains(pid)) return;
  exited_.push_back(pid);
  delete_inflight({pid}, 0);
}

void GoLocks::delete_inflight(const std::set<uint32_t>& tgids, uint64_t older_than_ns) {
  int fd = bpf_map__fd(skel_->maps.go_inflight);
  struct Key {
    uint64_t goid;
    uint32_t tgid;
    uint32_t function;
  };
  struct Start {
    uint64_t start_ns;
    uint64_t addr;
  };
  std::vector<Key> doomed;
  Key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    Start start{};
    if (bpf_map_lookup_elem(fd, &key, &start) != 0) continue;
    if (tgids.contains(key.tgid) || (older_than_ns && start.start_ns < older_than_ns)) doomed.push_back(key);
  }
  for (const Key& k : doomed) bpf_map_delete_elem(fd, &k);
}

void GoLocks::refresh(std::chrono::steady_clock::time_point now) {
  consume();
  if (now >= next_sweep_) {
    next_sweep_ = now + std::chrono::seconds(10);
    uint64_t stale = static_cast<uint64_t>(std::chrono::nanoseconds(options_.stale_after).count());
    uint64_t mono = monotonic_ns();
    if (mono > stale) delete_inflight({}, mono - stale);
  }
  for (uint32_t pid : exited_) processes_.erase(pid);
  exited_.clear();
}

int GoLocks::on_record(void* ctx, void* data, size_t size) {
  if (size < sizeof(go_lock_record)) return 0;
  go_lock_record record;
  std::memcpy(&record, data, sizeof record);
  static_cast<GoLocks*>(ctx)->handle(record);
  return 0;
}

void GoLocks::handle(const go_lock_record& r) {
  ++records_;
  std::string caller;
  if (r.function == GO_FN_SEMACQUIRE_MUTEX && r.caller_pc) {
    std::vector<probes::Frame> frames{probes::Frame{.address = r.caller_pc}, probes::Frame{.address = r.caller_pc}};
    name_frames(r.tgid, frames);  // the second is looked up as a return address
    caller = frames[1].symbol;
  }
  GoLockEvent event = decode_go_record(r, caller);
  if (event.wake) sink_->add_go_wake(*event.wake, event.ips);
  else sink_->add_go_wait(event.wait, event.ips);
}

GoLockEvent decode_go_record(const go_lock_record& r, std::string_view caller_function) {
  GoLockEvent event;
  // The stack as the kernel walked it from the RET (or the entry), with the
  // return address into the immediate caller (the word at RSP) spliced in
  // after the first frame: RBP points at the caller's frame there, so the
  // walk starts one level too high.
  size_t depth = r.stack_len > 0 ? static_cast<size_t>(r.stack_len) / sizeof(uint64_t) : 0;
  depth = std::min<size_t>(depth, GO_STACK_DEPTH);
  event.ips.reserve(depth + 1);
  for (size_t i = 0; i < depth && r.ips[i] != 0; ++i) {
    event.ips.push_back(r.ips[i]);
    if (i == 0 && r.caller_pc) event.ips.push_back(r.caller_pc);
  }
  GoLockIdentity id = identify_go_lock(r.function, r.addr, caller_function);
  // LockWait and LockWake share these fields: who, where, which lock, and
  // the word waited on or released (the Mutex, or the RWMutex's semaphore).
  auto describe = [&](auto& e) {
    e.pid = r.tgid;
    e.tid = r.tid;
    e.comm = std::string(r.comm, ::strnlen(r.comm, sizeof r.comm));
    e.cgroup_id = r.cgroup_id;
    e.kind = id.kind;
    e.lock = id.lock;
    e.futex = id.word;
    e.ts_ns = r.ts_ns;
  };
  if (r.function == GO_FN_UNLOCK_SLOW || r.function == GO_FN_RUNLOCK_SLOW) {
    describe(event.wake.emplace());
    event.wake->woken = 0;  // the runtime decides whom to ready; the probe does not see it
  } else {
    describe(event.wait);
    event.wait.wait_ns = r.wait_ns;
  }
  return event;
}

void GoLocks::name_frames(uint32_t pid, std::vector<probes::Frame>& frames) const {
  auto it = processes_.find(pid);
  if (it == processes_.end() || !it->second.binary->binary) return;
  const Process& process = it->second;
  const probes::go::GoBinary& go = *process.binary->binary;
  for (size_t i = 0; i < frames.size(); ++i) {
    probes::Frame& f = frames[i];
    if (f.address < process.bias) continue;
    uint64_t vaddr = f.address - process.bias;
    // A return address points after the call, possibly into the next function.
    uint64_t lookup = i > 0 && vaddr > 0 ? vaddr - 1 : vaddr;
    const probes::go::GoFunction* fn = go.pclntab().function_for_pc(lookup);
    if (!fn) continue;  // not Go code (cgo, libc, vdso): keep the ELF name
    f.symbol = fn->name;
    f.offset = vaddr - fn->entry;
    f.module = process.binary->path;
    f.is_guess = false;
  }
}

std::vector<loader::ProbeStatus> GoLocks::rows() const {
  std::vector<loader::ProbeStatus> out;
  for (const auto& [id, bin] : binaries_)
    if (bin->is_go) out.insert(out.end(), bin->rows.begin(), bin->rows.end());
  return out;
}

std::string GoLocks::summary() const {
  size_t go = 0, probed = 0;
  for (const auto& [id, bin] : binaries_) {
    if (!bin->is_go) continue;
    ++go;
    if (!bin->links.empty()) ++probed;
  }
  if (go == 0) return "Go mutex uprobes: no Go binary among the targets yet";
  return fmt::format("Go mutex uprobes (lockSlow / RWMutex semaphores at entry + RETs, unlockSlow / rUnlockSlow at entry) on {} of {} Go binar{}", probed,
                     go, go == 1 ? "y" : "ies");
}

uint64_t GoLocks::hits(uint32_t what) const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return 0;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.go_hits), &what, per_cpu.data()) != 0) return 0;
  uint64_t total = 0;
  for (uint64_t n : per_cpu) total += n;
  return total;
}

size_t GoLocks::uprobe_link_count() const {
  size_t n = 0;
  for (const auto& [id, bin] : binaries_) n += bin->links.size();
  return n;
}

uint64_t GoLocks::events_lost() const { return loader::BpfSelfMetrics::events_lost(skel_->obj, GO_LOST_WAIT); }

}  // namespace syncscope::collectors
