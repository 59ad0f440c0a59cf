#include "agent/collectors/locks.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <system_error>
#include <thread>

#include "agent/core/log.h"
#include "bpf/futex.skel.h"
#include "bpf/ulock.skel.h"

namespace syncscope::collectors {
namespace {

// The probe catalog, as data: which program of ulock.bpf.o goes on which
// glibc function (probes/libc.h resolves them and says how).
struct UlockProgram {
  std::string_view function;
  const char* program;
  bool wake;  // on the unlock side: attached only with LocksOptions::wake_uprobes
};
constexpr std::array kUlockPrograms{
    UlockProgram{"__lll_lock_wait", "ulock_lll_lock_wait", false},
    UlockProgram{"__lll_lock_wake", "ulock_lll_lock_wake", true},
    UlockProgram{"__lll_lock_wait_private", "ulock_lll_lock_wait_private", false},
    UlockProgram{"__lll_lock_wake_private", "ulock_lll_lock_wake_private", true},
    UlockProgram{"__futex_abstimed_wait64", "ulock_futex_abstimed_wait", false},
    UlockProgram{"__futex_abstimed_wait_cancelable64", "ulock_futex_abstimed_wait_cancelable", false},
};
constexpr std::string_view kWakeUprobesOff =
    "not attached: the FUTEX_WAKE tracepoint already records the releasing thread, its stack and the futex "
    "word (the mutex itself), and a trap here would delay every contended hand-off between the release and "
    "the wake of the next owner (enable with trace locks --wake-uprobes)";

// The tracepoints of futex.bpf.o. Optional ones are left unloaded on kernels
// that lack the syscall, and say so.
struct TracepointProgram {
  const char* program;
  const char* event;  // "category/name" under tracefs events/
  bool required;
  const char* missing;  // why it may be absent
};
constexpr std::array kTracepoints{
    TracepointProgram{"futex_enter", "syscalls/sys_enter_futex", true, ""},
    TracepointProgram{"futex_exit", "syscalls/sys_exit_futex", true, ""},
    TracepointProgram{"futex_waitv_enter", "syscalls/sys_enter_futex_waitv", false, "futex_waitv(2) needs Linux 5.16"},
    TracepointProgram{"futex_waitv_exit", "syscalls/sys_exit_futex_waitv", false, "futex_waitv(2) needs Linux 5.16"},
    TracepointProgram{"lock_process_fork", "sched/sched_process_fork", true, ""},
    TracepointProgram{"lock_process_exec", "sched/sched_process_exec", true, ""},
    TracepointProgram{"lock_process_exit", "sched/sched_process_exit", true, ""},
};

const std::vector<std::string> kLostSources{"lock_wait", "lock_wake", "lock_process"};

bool tracepoint_exists(std::string_view event) {
  for (const char* root : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"})
    // AT_EACCESS: check with the effective credentials. Plain access() uses the
    // real uid and drops capabilities, so a non-root agent holding
    // CAP_DAC_READ_SEARCH would not see into tracefs (mode 0700).
    if (::faccessat(AT_FDCWD, fmt::format("{}{}", root, event).c_str(), F_OK, AT_EACCESS) == 0) return true;
  return false;
}

std::string describe_resolution(const probes::ResolvedFunction& f) {
  switch (f.method) {
    case probes::ResolveMethod::symtab: return fmt::format("resolved via .symtab of {}", f.source);
    case probes::ResolveMethod::dynsym: return fmt::format("resolved via .dynsym of {}", f.source);
    case probes::ResolveMethod::debug_file: return fmt::format("resolved via debug file by build-id ({})", f.source);
    case probes::ResolveMethod::call_target:
      return fmt::format("resolved by decoding pthread_mutex_lock's call target in {}", f.source);
  }
  return "resolved";
}

}  // namespace

LocksCollector::LocksCollector() = default;

Result<std::unique_ptr<LocksCollector>> LocksCollector::start(const LocksOptions& options,
                                                              const loader::Features& features,
                                                              probes::CgroupResolver& cgroups,
                                                              loader::BpfSelfMetrics* self_metrics,
                                                              loader::ProbeReport* report) {
  if (!features.tracefs) return fail("locks: tracefs is not mounted; the futex syscall tracepoints need it");
  if (!features.ringbuf) return fail("locks: BPF ring buffers are unavailable (Linux < 5.8)");
  if (!tracepoint_exists("syscalls/sys_enter_futex"))
    return fail("locks: no syscalls:sys_enter_futex tracepoint (kernel built without CONFIG_FTRACE_SYSCALLS)");

  auto c = std::unique_ptr<LocksCollector>(new LocksCollector());
  c->options_ = options;
  c->features_ = features;
  c->cgroups_ = &cgroups;
  c->report_ = report;
  c->selectors_ = TargetSelectors(options.targets);
  c->processes_ = std::make_unique<ProcfsProcessSource>();
  c->libc_resolver_ = std::make_unique<probes::LibcResolver>(options.debug_root);
  c->matcher_ = std::make_unique<CachedProcessMatcher>(*c->processes_);
  LockAggregator::Options agg;
  agg.max_cgroups = options.max_cgroups;
  agg.keep_exited = options.keep_exited;
  if (options.pid) agg.max_stacks_per_lock = 64;  // the CLI prints them all
  probes::CgroupResolver* resolver = &cgroups;
  c->aggregator_ = std::make_unique<LockAggregator>(
      agg, [resolver](uint64_t id) { return resolver->path_of(id); });

  const bool filter = options.pid.has_value() || !options.targets.empty();
  // Reading wake arguments back from the task's registers needs
  // bpf_task_pt_regs (5.15); older kernels store them at sys_enter instead.
  int err = 0;
  for (bool from_regs : {true, false}) {
    c->futex_ = {futex_bpf__open(), futex_bpf__destroy};
    futex_bpf* skel = c->futex_.get();
    if (!skel) return fail_errno("futex.bpf.o: open");
    skel->rodata->filter_targets = filter;
    skel->rodata->collect_stacks = options.stacks;
    skel->rodata->all_process_events = !options.pid.has_value();
    skel->rodata->wakeup_bytes = options.lazy_wakeup ? options.ringbuf_bytes / 4 : 0;
    skel->rodata->wake_args_from_regs = from_regs;
    skel->rodata->skip_non_lock_waits = !options.keep_non_contention;
    if (!filter) bpf_map__set_max_entries(skel->maps.lock_targets, 1);
    if (!options.stacks) bpf_map__set_max_entries(skel->maps.lock_stacks, 1);
    bpf_map__set_max_entries(skel->maps.lock_records, options.ringbuf_bytes);
    for (const TracepointProgram& tp : kTracepoints) {
      bpf_program* prog = bpf_object__find_program_by_name(skel->obj, tp.program);
      bool present = std::string_view(tp.event).starts_with("sched/") || tracepoint_exists(tp.event);
      if (!present && tp.required) return fail(fmt::format("locks: tracepoint {} is missing", tp.event));
      bpf_program__set_autoload(prog, present);
    }
    err = futex_bpf__load(skel);
    if (!err) break;
    if (from_regs) log::info("locks: futex.bpf.o with wake arguments from registers did not load; storing them at sys_enter");
  }
  if (err) return fail_libbpf("futex.bpf.o: load", err);
  futex_bpf* skel = c->futex_.get();

  // Targets go in before anything attaches, so no event of theirs is missed.
  if (options.pid) c->set_target(*options.pid, 0);
  else if (!c->selectors_.empty()) c->follow_targets_from_proc();

  for (const TracepointProgram& tp : kTracepoints) {
    bpf_program* prog = bpf_object__find_program_by_name(skel->obj, tp.program);
    std::string kind = std::string_view(tp.event).starts_with("sched/") ? "raw_tp" : "tracepoint";
    std::string target = std::string(tp.event).substr(std::string_view(tp.event).find('/') + 1);
    if (!bpf_program__autoload(prog)) {
      c->tracepoint_rows_.push_back({tp.program, kind, target, false, tp.missing});
      continue;
    }
    c->links_.push_back(TRY(loader::attach_program(prog)));
    c->tracepoint_rows_.push_back({tp.program, kind, target, true, ""});
  }
  c->ring_ = {ring_buffer__new(bpf_map__fd(skel->maps.lock_records), &LocksCollector::on_record, c.get(), nullptr),
              ring_buffer__free};
  if (!c->ring_) return fail_errno("locks: ring_buffer__new");

  // Classification: the glibc uprobes, when allowed and possible; without
  // them every wait is still measured, as futex/futex_other.
  if (!options.glibc_uprobes) {
    c->ulock_status_ = "glibc uprobes disabled in config (locks.glibc_uprobes: false): futex source only";
  } else if (!features.uprobes) {
    const loader::FeatureCheck* check = features.find("uprobes");
    c->ulock_status_ = fmt::format("uprobes unavailable ({}): futex source only", check ? check->detail : "?");
  } else {
    c->ulock_ = {ulock_bpf__open(), ulock_bpf__destroy};
    ulock_bpf* u = c->ulock_.get();
    err = u ? 0 : -errno;
    if (u) {
      u->rodata->filter_targets = filter;
      if (!err) err = bpf_map__reuse_fd(u->maps.lock_targets, bpf_map__fd(skel->maps.lock_targets));
      if (!err) err = bpf_map__reuse_fd(u->maps.ulock_notes, bpf_map__fd(skel->maps.ulock_notes));
      if (!err) err = ulock_bpf__load(u);
    }
    if (err) {
      c->ulock_status_ = fmt::format("ulock.bpf.o did not load ({}): futex source only", std::strerror(-err));
      c->ulock_.reset();
      log::warn("locks: {}", c->ulock_status_);
    } else if (options.pid) {
      c->check_libc(*options.pid);
      if (c->libcs_.empty())
        c->ulock_status_ = fmt::format("process {} maps no glibc: futex source only", *options.pid);
    } else {
      // Every glibc copy a followed process maps (containers bring their
      // own), plus the host's, each probed once.
      for (uint32_t pid : c->processes_->all_pids()) {
        if (!c->selectors_.empty()) {
          auto id = c->processes_->identify(pid);
          if (!id || !c->selectors_.evaluate(*id)) continue;
        }
        c->check_libc(pid);
      }
      if (c->selectors_.empty())
        if (auto system = probes::system_libc_path()) {
          struct stat st {};
          if (::stat(system->c_str(), &st) == 0 && !c->known_libcs_.contains({st.st_dev, st.st_ino}))
            c->attach_libc(*system, st.st_dev, st.st_ino);
        }
    }
  }

  c->start_golang();

  if (self_metrics) {
    self_metrics->add_object(skel->obj, kLostSources);
    if (c->ulock_) self_metrics->add_object(c->ulock_->obj);
    if (c->go_) self_metrics->add_object(c->go_->object(), {"go_lock_wait"});
    c->self_metrics_ = self_metrics;
  }
  c->publish_report();
  log::info("locks: {}", c->sources());
  return c;
}

namespace {

// Detaching a syscall tracepoint or a uprobe waits for an RCU grace period
// in the kernel (tracepoint_synchronize_unregister, uprobe unregistration),
// some 60–90 ms each here; one after the other, a dozen of them would hold
// the agent's shutdown for a second. Closed from threads, the waits overlap.
void detach_in_parallel(std::vector<loader::Link> links) {
  std::vector<std::jthread> closers;
  closers.reserve(links.size());
  for (loader::Link& link : links) {
    try {
      closers.emplace_back([l = std::move(link)]() mutable { l.reset(); });
    } catch (const std::system_error&) {
      link.reset();  // no thread to spare: detach it here (the lambda, if built, already did)
    }
  }
}

}  // namespace

LocksCollector::~LocksCollector() {
  if (loop_ && ring_) loop_->unwatch(ring_buffer__epoll_fd(ring_.get()));
  if (loop_ && go_) loop_->unwatch(go_->ring_epoll_fd());
  if (self_metrics_) {
    if (futex_) self_metrics_->remove_object(futex_->obj);
    if (ulock_) self_metrics_->remove_object(ulock_->obj);
    if (go_) self_metrics_->remove_object(go_->object());
  }
  std::vector<loader::Link> links = std::move(links_);
  if (go_)
    for (loader::Link& link : go_->take_links()) links.push_back(std::move(link));
  for (auto& lib : libcs_)
    for (loader::Link& link : lib->links) links.push_back(std::move(link));
  detach_in_parallel(std::move(links));
  libcs_.clear();
  ring_.reset();
}

Result<void> LocksCollector::add_to(ingest::EventLoop& loop) {
  TRY(loop.watch(ring_buffer__epoll_fd(ring_.get()), [this] { ring_buffer__consume(ring_.get()); }));
  if (go_) TRY(loop.watch(go_->ring_epoll_fd(), [this] { go_->consume(); }));
  loop_ = &loop;
  return {};
}

void LocksCollector::poll(std::chrono::milliseconds timeout) {
  // Records are submitted without a wakeup until a quarter of the buffer is
  // used (futex.bpf.c: wakeup_bytes), so waiting alone would miss them:
  // always consume after the wait.
  ring_buffer__poll(ring_.get(), static_cast<int>(timeout.count()));
  ring_buffer__consume(ring_.get());
  if (go_) go_->consume();
}

int LocksCollector::on_record(void* ctx, void* data, size_t size) {
  if (size < sizeof(lock_record)) return 0;
  lock_record record;
  std::memcpy(&record, data, sizeof record);
  static_cast<LocksCollector*>(ctx)->handle(record);
  return 0;
}

CallerClass LocksCollector::classify(uint16_t libc_id, uint64_t ret_vaddr) const {
  if (libc_id >= libcs_.size() || !libcs_[libc_id]->info) return {};
  const std::vector<probes::WaitCaller>& callers = libcs_[libc_id]->info->wait_callers;
  auto it = std::ranges::upper_bound(callers, ret_vaddr, {}, &probes::WaitCaller::start);
  if (it == callers.begin()) return {};
  --it;
  if (ret_vaddr >= it->end) return {};
  return {it->kind, it->function};
}

void LocksCollector::handle(const lock_record& r) {
  ++records_;
  switch (r.type) {
    case LOCK_RECORD_WAIT: {
      LockWait wait = classify_wait(r, ulock_ ? this : nullptr);
      if (!options_.keep_non_contention && !is_contention(wait.kind)) {
        ++ignored_[static_cast<size_t>(wait.kind)];
        return;
      }
      StackKey stack = intern_stack(wait.pid, wait.stack_id);
      if (options_.symbolize_eagerly) {
        frames_of(wait.pid, stack);
        data_symbol_of(wait.pid, wait.lock);
      }
      std::lock_guard lock(mu_);
      aggregator_->add_wait(wait, stack);
      return;
    }
    case LOCK_RECORD_WAKE: {
      LockWake wake = classify_wake(r);
      StackKey stack = intern_stack(wake.pid, wake.stack_id);
      if (options_.symbolize_eagerly) frames_of(wake.pid, stack);
      std::lock_guard lock(mu_);
      aggregator_->add_wake(wake, stack);
      return;
    }
    case LOCK_RECORD_EXEC: on_exec(r.tgid); return;
    case LOCK_RECORD_EXIT: on_exit(r.tgid); return;
    default: return;
  }
}

void LocksCollector::on_exec(uint32_t pid) {
  {
    std::lock_guard lock(mu_);
    matcher_->forget(pid);
    aggregator_->process_changed(pid);
  }
  // The new image maps other files at other addresses; stacks and locks
  // already named keep the names they had.
  symbolizer_.forget(pid);
  bool followed = true;
  if (!options_.pid && !selectors_.empty()) {
    auto id = processes_->identify(pid);
    std::optional<uint32_t> flags = id ? selectors_.evaluate(*id) : std::nullopt;
    set_target(pid, flags);
    followed = flags.has_value();
  }
  // The dynamic loader maps libc after exec returns: look a little later.
  if (ulock_ && followed) libc_checks_.emplace_back(pid, std::chrono::steady_clock::now() + std::chrono::milliseconds(200));
  // The executable is known at exec (a Go binary needs no dynamic loader).
  if (go_ && followed && go_->check_process(pid)) publish_report();
}

void LocksCollector::on_exit(uint32_t pid) {
  if (options_.pid && pid == *options_.pid) target_exited_ = true;
  {
    std::lock_guard lock(mu_);
    matcher_->forget(pid);
    aggregator_->process_exited(pid);
  }
  std::erase_if(libc_checks_, [pid](const auto& check) { return check.first == pid; });
  if (go_) go_->process_exited(pid);
  // Its names are still needed for the ranking of the next refresh.
  if (!options_.keep_exited) exited_.push_back(pid);
}

StackKey LocksCollector::intern_stack(uint32_t, int32_t stack_id) {
  if (stack_id < 0) {
    if (options_.stacks) ++stacks_missing_;
    return 0;
  }
  if (auto it = kernel_stacks_.find(stack_id); it != kernel_stacks_.end()) return it->second;
  std::array<uint64_t, LOCK_STACK_DEPTH> ips{};
  if (bpf_map_lookup_elem(bpf_map__fd(futex_->maps.lock_stacks), &stack_id, ips.data()) != 0) {
    ++stacks_missing_;
    return 0;
  }
  size_t depth = 0;
  while (depth < ips.size() && ips[depth] != 0) ++depth;
  StackKey key = stack_table_.intern(std::span<const uint64_t>(ips.data(), depth));
  kernel_stacks_.emplace(stack_id, key);
  return key;
}

const std::vector<probes::Frame>& LocksCollector::frames_of(uint32_t pid, StackKey stack) {
  static const std::vector<probes::Frame> kNone;
  if (stack == 0) return kNone;
  auto [it, inserted] = frames_.try_emplace({pid, stack});
  if (!inserted) return it->second;
  std::span<const uint64_t> ips = stack_table_.ips(stack);
  auto frames = symbolizer_.symbolize(static_cast<int>(pid), ips);
  if (frames) {
    it->second = std::move(*frames);
  } else {
    for (uint64_t ip : ips) it->second.push_back(probes::Frame{.address = ip});
  }
  // Go code is named through the pclntab, which stripped binaries keep.
  if (go_) go_->name_frames(pid, it->second);
  return it->second;
}

const std::string& LocksCollector::data_symbol_of(uint32_t pid, uint64_t lock) {
  auto [it, inserted] = data_symbols_.try_emplace({pid, lock});
  if (inserted)
    if (auto name = symbolizer_.symbolize_data(static_cast<int>(pid), lock)) it->second = std::move(*name);
  return it->second;
}

void LocksCollector::set_target(uint32_t pid, std::optional<uint32_t> flags) {
  int fd = bpf_map__fd(futex_->maps.lock_targets);
  if (flags) bpf_map_update_elem(fd, &pid, &*flags, BPF_ANY);
  else bpf_map_delete_elem(fd, &pid);
}

void LocksCollector::follow_targets_from_proc() {
  for (uint32_t pid : processes_->all_pids()) {
    auto id = processes_->identify(pid);
    set_target(pid, id ? selectors_.evaluate(*id) : std::nullopt);
  }
}

void LocksCollector::check_libc(uint32_t pid) {
  auto where = probes::find_libc(static_cast<int>(pid));
  if (!where) return;  // static binary, musl, Go without cgo, or gone
  struct stat st {};
  if (::stat(where->open_path.c_str(), &st) != 0) return;
  if (known_libcs_.contains({st.st_dev, st.st_ino})) return;
  // Attach through the path as mapped when it is the same file in our mount
  // namespace: it outlives the process and reads better in /debug/probes.
  struct stat direct {};
  bool same = ::stat(where->mapped_path.c_str(), &direct) == 0 && direct.st_dev == st.st_dev && direct.st_ino == st.st_ino;
  attach_libc(same ? where->mapped_path : where->open_path, st.st_dev, st.st_ino);
}

void LocksCollector::attach_libc(const std::string& path, dev_t dev, ino_t inode) {
  known_libcs_.insert({dev, inode});
  if (libcs_.size() > 0xffff) return;  // the cookie holds a 16-bit id
  auto lib = std::make_unique<ProbedLibc>();
  lib->id = static_cast<uint16_t>(libcs_.size());
  lib->dev = dev;
  lib->inode = inode;
  lib->path = path;
  auto info = libc_resolver_->resolve(path);
  if (!info) {
    lib->error = info.error().message();
    lib->rows.push_back({"ulock_*", "uprobe", path, false, fmt::format("{}: futex source only", lib->error)});
    log::warn("locks: {}: futex source only", lib->error);
    libcs_.push_back(std::move(lib));
    publish_report();
    return;
  }
  const int pid = options_.pid ? static_cast<int>(*options_.pid) : -1;
  for (const probes::LibcFunction& fn : info->functions) {
    auto program = std::ranges::find(kUlockPrograms, fn.target->function, &UlockProgram::function);
    if (program == kUlockPrograms.end()) continue;
    bpf_program* prog = bpf_object__find_program_by_name(ulock_->obj, program->program);
    std::string target = fmt::format("{}:{}", path, fn.target->function);
    if (program->wake && !options_.wake_uprobes) {
      lib->rows.push_back({program->program, "uprobe", target, false, std::string(kWakeUprobesOff)});
      continue;
    }
    if (!fn.resolved) {
      bool mutex = fn.target->function == "__lll_lock_wait";
      lib->rows.push_back({program->program, "uprobe", target, false,
                           fmt::format("not found: {}{}", fn.resolved.error().message(),
                                       mutex ? "; mutex waits are measured but classified from the futex alone" : "")});
      continue;
    }
    LIBBPF_OPTS(bpf_uprobe_opts, opts);
    opts.bpf_cookie = (static_cast<uint64_t>(lib->id) << ULOCK_COOKIE_VADDR_BITS) |
                      (fn.resolved->vaddr & ULOCK_COOKIE_VADDR_MASK);
    loader::Link link(bpf_program__attach_uprobe_opts(prog, pid, path.c_str(), fn.resolved->file_offset, &opts));
    if (!link) {
      lib->rows.push_back({program->program, "uprobe", target, false,
                           fmt::format("attach failed: {}", std::strerror(errno))});
      continue;
    }
    lib->links.push_back(std::move(link));
    lib->rows.push_back({program->program, "uprobe", target, true,
                         fmt::format("{}, file offset {:#x}{}", describe_resolution(*fn.resolved),
                                     fn.resolved->file_offset, pid > 0 ? fmt::format(", pid {}", pid) : "")});
  }
  log::info("locks: glibc {} at {}: {} uprobes attached{}", info->version.empty() ? "?" : info->version, path,
            lib->links.size(), info->debug_file.empty() ? "" : fmt::format(" (symbols from {})", info->debug_file));
  lib->info = std::move(*info);
  libcs_.push_back(std::move(lib));
  publish_report();
}

std::string LocksCollector::sources() const {
  std::string who = options_.pid             ? fmt::format("process {}", *options_.pid)
                    : selectors_.empty()     ? std::string("every process")
                                             : fmt::format("{} target selector(s)", selectors_.selectors().size());
  std::string out = fmt::format("futex tracepoints ({})", who);
  if (go_) out += "; " + go_->summary();
  else if (!go_status_.empty()) out += "; " + go_status_;
  if (!ulock_) return out + "; " + ulock_status_;
  size_t attached = 0;
  std::string how;
  for (const auto& lib : libcs_) {
    if (!lib->links.empty()) ++attached;
    if (!lib->info || !how.empty()) continue;
    if (const probes::LibcFunction* f = lib->info->function("__lll_lock_wait"); f && f->resolved)
      how = fmt::format("__lll_lock_wait via {}", probes::to_string(f->resolved->method));
    else
      how = "__lll_lock_wait not found: mutexes classified from the futex alone";
  }
  if (attached == 0)
    return out + "; " + (ulock_status_.empty() ? std::string("no glibc probed: futex source only") : ulock_status_);
  return fmt::format("{} + glibc uprobes on {} libc file(s) ({})", out, attached, how);
}

void LocksCollector::publish_report() {
  if (!report_) return;
  std::vector<loader::ProbeStatus> rows = tracepoint_rows_;
  if (!ulock_) rows.push_back({"ulock_*", "uprobe", "glibc contended-lock functions", false, ulock_status_});
  for (const auto& lib : libcs_) rows.insert(rows.end(), lib->rows.begin(), lib->rows.end());
  if (go_) {
    std::vector<loader::ProbeStatus> go_rows = go_->rows();
    rows.insert(rows.end(), go_rows.begin(), go_rows.end());
  } else if (!go_status_.empty()) {
    rows.push_back({"go_lock_*", "uprobe", "Go sync.Mutex/RWMutex slow paths", false, go_status_});
  }
  report_->set("locks", std::move(rows), sources());
}

uint64_t LocksCollector::events_lost() const {
  uint64_t total = 0;
  for (uint32_t i = 0; i < kLostSources.size(); ++i) total += loader::BpfSelfMetrics::events_lost(futex_->obj, i);
  if (go_) total += go_->events_lost();
  return total;
}

std::array<uint64_t, LOCK_SKIP_MAX> LocksCollector::futex_skipped() const {
  std::array<uint64_t, LOCK_SKIP_MAX> out{};
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  for (uint32_t reason = 0; reason < LOCK_SKIP_MAX; ++reason) {
    if (bpf_map_lookup_elem(bpf_map__fd(futex_->maps.futex_skipped), &reason, per_cpu.data()) != 0) continue;
    for (uint64_t n : per_cpu) out[reason] += n;
  }
  return out;
}

void LocksCollector::maintain_stacks() {
  // The kernel map: cleared once half its buckets are in use, so collisions
  // (-EEXIST: a lost stack) stay rare. Interned copies stay valid.
  uint32_t kernel_capacity = bpf_map__max_entries(futex_->maps.lock_stacks);
  if (options_.stacks && kernel_stacks_.size() > kernel_capacity / 2) {
    poll(std::chrono::milliseconds(0));  // records naming old ids first
    int fd = bpf_map__fd(futex_->maps.lock_stacks);
    uint32_t key = 0, next = 0;
    while (bpf_map_get_next_key(fd, nullptr, &next) == 0) {
      key = next;
      if (bpf_map_delete_elem(fd, &key) != 0) break;
    }
    kernel_stacks_.clear();
    ++kernel_stack_clears_;
  }
  if (stack_table_.size() > stack_table_.capacity() * 3 / 4) {
    std::unordered_set<StackKey> live;
    {
      std::lock_guard lock(mu_);
      live = aggregator_->live_stacks();
    }
    stack_table_.retain_only(live);
    std::erase_if(frames_, [&](const auto& e) { return !live.contains(e.first.second); });
    std::erase_if(kernel_stacks_, [&](const auto& e) { return !live.contains(e.second); });
  }
  // Names of locks and stacks are only a cache: bounded, refilled on demand.
  constexpr size_t kMaxNames = 50000;
  if (data_symbols_.size() > kMaxNames) data_symbols_.clear();
  if (frames_.size() > kMaxNames) frames_.clear();
}

std::string LocksCollector::resolve_top_symbol(const LockKey& key) {
  StackKey heaviest = 0;
  std::string glibc_caller;
  {
    std::lock_guard lock(mu_);
    const LockEntry* entry = aggregator_->find(key);
    if (!entry) return "unknown";
    glibc_caller = entry->glibc_caller;
    uint64_t most = 0;
    for (const auto& [stack, stats] : entry->waiter_stacks)
      if (stack != 0 && stats.waits.total_ns >= most) most = stats.waits.total_ns, heaviest = stack;
  }
  if (std::string global = global_data_symbol(data_symbol_of(key.pid, key.lock)); !global.empty()) return global;
  std::string caller = caller_of(frames_of(key.pid, heaviest), glibc_caller);
  return caller.empty() ? "unknown" : caller;
}

void LocksCollector::refresh(std::chrono::steady_clock::time_point now) {
  poll(std::chrono::milliseconds(0));
  for (auto it = libc_checks_.begin(); it != libc_checks_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    if (ulock_) check_libc(it->first);
    it = libc_checks_.erase(it);
  }
  if (go_) go_->refresh(now);
  if (!options_.pid && !selectors_.empty() && now >= next_rescan_) {
    // Catches processes moved into a target cgroup after they started; exec
    // and fork are followed as they happen.
    if (next_rescan_ != std::chrono::steady_clock::time_point{}) follow_targets_from_proc();
    next_rescan_ = now + std::chrono::seconds(10);
  }
  maintain_stacks();

  TopLocks top;
  std::vector<LockKey> unnamed;
  {
    std::lock_guard lock(mu_);
    top = aggregator_->top_k(options_.top_k);
    for (const TopLock& row : top.rows)
      if (row.symbol.empty()) unnamed.push_back(row.key);
  }
  // Symbolization reads files: outside the lock, once per lock.
  std::map<LockKey, std::string> named;
  for (const LockKey& key : unnamed) named[key] = resolve_top_symbol(key);
  std::map<std::pair<std::string, LockKind>, WaitHistogram> by_kind;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, symbol] : named)
      if (LockEntry* entry = aggregator_->find(key)) entry->symbol = symbol;
    by_kind = aggregator_->by_cgroup_kind();
    aggregator_->trim();
  }
  for (uint32_t pid : exited_) {
    symbolizer_.forget(static_cast<int>(pid));
    std::erase_if(frames_, [pid](const auto& e) { return e.first.first == pid; });
    std::erase_if(data_symbols_, [pid](const auto& e) { return e.first.pid == pid; });
  }
  exited_.clear();
  for (TopLock& row : top.rows)
    if (auto it = named.find(row.key); it != named.end()) row.symbol = it->second;

  auto wait = metrics::histogram("syncscope_lock_wait_seconds",
                                 "Time threads slept waiting for a contended user-space lock, by the waiting "
                                 "thread's cgroup v2 and the lock kind.");
  auto contentions = metrics::counter("syncscope_lock_contentions_total",
                                      "Contended lock acquisitions that slept in the kernel, by cgroup and kind.");
  auto top_wait = metrics::counter("syncscope_lock_top_wait_seconds_total",
                                   "Wait on the most contended locks (top K by total wait); the rest under "
                                   "lock=\"other\".");
  for (const auto& [label, hist] : by_kind) {
    metrics::Labels labels{{"cgroup", label.first}, {"kind", std::string(to_string(label.second))}};
    contentions.add(labels, static_cast<double>(hist.count()));
    wait.add_histogram(std::move(labels), hist.to_metric());
  }
  for (const TopLock& row : top.rows)
    top_wait.add({{"cgroup", row.cgroup},
                  {"process", fmt::format("{}[{}]", row.comm, row.key.pid)},
                  {"lock", fmt::format("{:#x}", row.key.lock)},
                  {"symbol", row.symbol}},
                 static_cast<double>(row.own_ns) / 1e9);
  top_wait.add({{"cgroup", "other"}, {"process", "other"}, {"lock", "other"}, {"symbol", "other"}},
               static_cast<double>(top.other_ns) / 1e9);
  std::vector<metrics::Family> families;
  families.push_back(std::move(wait));
  families.push_back(std::move(contentions));
  families.push_back(std::move(top_wait));
  std::lock_guard lock(mu_);
  published_ = std::move(families);
}

void LocksCollector::collect(std::vector<metrics::Family>& out) const {
  std::lock_guard lock(mu_);
  out.insert(out.end(), published_.begin(), published_.end());
}

std::vector<LockReport> LocksCollector::report(size_t top_n) {
  poll(std::chrono::milliseconds(0));
  struct Candidate {
    LockKey key;
    uint64_t total_ns;
  };
  std::vector<Candidate> candidates;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, entry] : aggregator_->locks()) {
      const WaitStats& total = options_.keep_non_contention ? entry.all : entry.contention;
      if (total.count > 0) candidates.push_back({key, total.total_ns});
    }
  }
  std::ranges::sort(candidates, [](const Candidate& a, const Candidate& b) {
    return a.total_ns != b.total_ns ? a.total_ns > b.total_ns : a.key < b.key;
  });
  if (candidates.size() > top_n) candidates.resize(top_n);

  std::vector<LockReport> out;
  for (const Candidate& c : candidates) {
    LockEntry entry;
    HolderEntry holders;
    {
      std::lock_guard lock(mu_);
      const LockEntry* found = aggregator_->find(c.key);
      if (!found) continue;
      entry = *found;
      holders = aggregator_->holders_of(c.key);
    }
    LockReport r;
    r.pid = c.key.pid;
    r.comm = entry.comm;
    r.lock = c.key.lock;
    uint64_t most = 0;
    for (size_t i = 0; i < kLockKinds; ++i) {
      auto kind = static_cast<LockKind>(i);
      const WaitStats& stats = entry.by_kind[i];
      if (stats.count == 0 || (!options_.keep_non_contention && !is_contention(kind))) continue;
      r.kinds.emplace_back(kind, stats);
      r.waits.merge(stats);
      if (stats.total_ns >= most) most = stats.total_ns, r.kind = kind;
    }
    r.futex_words = entry.futex_words;
    r.wakes = holders.wakes;
    std::vector<std::pair<StackKey, StackStats>> waiters(entry.waiter_stacks.begin(), entry.waiter_stacks.end());
    std::ranges::stable_sort(waiters, [](const auto& a, const auto& b) { return a.second.waits.total_ns > b.second.waits.total_ns; });
    for (const auto& [stack, stats] : waiters) {
      StackReport s{stats.waits.count, stats.waits.total_ns, stats.tids, frames_of(r.pid, stack), false, stack == 0};
      s.truncated = !s.missing && probes::stack_looks_truncated(s.frames);
      r.waiter_stacks.push_back(std::move(s));
    }
    std::vector<std::pair<StackKey, StackStats>> wakers(holders.stacks.begin(), holders.stacks.end());
    std::ranges::stable_sort(wakers, [](const auto& a, const auto& b) { return a.second.waits.count > b.second.waits.count; });
    for (const auto& [stack, stats] : wakers) {
      StackReport s{stats.waits.count, 0, stats.tids, frames_of(r.pid, stack), false, stack == 0};
      s.truncated = !s.missing && probes::stack_looks_truncated(s.frames);
      r.holder_stacks.push_back(std::move(s));
    }
    r.data_symbol = data_symbol_of(r.pid, r.lock);
    for (const StackReport& s : r.waiter_stacks)
      if (!s.missing) {
        r.caller = caller_of(s.frames, entry.glibc_caller);
        break;
      }
    if (r.caller.empty()) r.caller = entry.glibc_caller;
    r.symbol = global_data_symbol(r.data_symbol);
    if (r.symbol.empty()) r.symbol = r.caller;
    out.push_back(std::move(r));
  }
  return out;
}

void LocksCollector::set_slo_rows(std::vector<LockSloRow> rows) {
  std::lock_guard lock(mu_);
  aggregator_->set_slo_rows(std::move(rows), matcher_.get());
}

LockSloCounts LocksCollector::slo_counts(size_t row) const {
  std::lock_guard lock(mu_);
  return aggregator_->slo_counts(row);
}

std::vector<RecentLock> LocksCollector::recent_contended(uint32_t pid,
                                                         std::chrono::steady_clock::duration window) const {
  std::lock_guard lock(mu_);
  return aggregator_->recent_contended(pid, window);
}

namespace {
template <typename Fn>
void for_each_loaded_program(std::initializer_list<bpf_object*> objects, Fn fn) {
  for (bpf_object* obj : objects) {
    if (!obj) continue;
    bpf_program* prog = nullptr;
    bpf_object__for_each_program(prog, obj) {
      int fd = bpf_program__fd(prog);
      if (fd < 0) continue;  // not loaded (autoload off)
      bpf_prog_info info{};
      uint32_t len = sizeof info;
      if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) fn(prog, info);
    }
  }
}
}  // namespace

std::map<uint32_t, std::vector<RecentLock>> LocksCollector::recent_contended(
    std::chrono::steady_clock::duration window) const {
  std::lock_guard lock(mu_);
  return aggregator_->recent_contended(window);
}

std::map<std::string, uint64_t> LocksCollector::program_run_counts() const {
  std::map<std::string, uint64_t> out;
  for_each_loaded_program({futex_ ? futex_->obj : nullptr, ulock_ ? ulock_->obj : nullptr, go_object()},
                          [&](bpf_program* prog, const bpf_prog_info& info) { out[bpf_program__name(prog)] = info.run_cnt; });
  return out;
}

std::vector<uint32_t> LocksCollector::program_ids() const {
  std::vector<uint32_t> out;
  for_each_loaded_program({futex_ ? futex_->obj : nullptr, ulock_ ? ulock_->obj : nullptr, go_object()},
                          [&](bpf_program*, const bpf_prog_info& info) { out.push_back(info.id); });
  return out;
}

size_t LocksCollector::uprobe_link_count() const {
  size_t n = 0;
  for (const auto& lib : libcs_) n += lib->links.size();
  if (go_) n += go_->uprobe_link_count();
  return n;
}

bpf_object* LocksCollector::go_object() const { return go_ ? const_cast<bpf_object*>(go_->object()) : nullptr; }

void LocksCollector::start_golang() {
  if (!options_.golang) {
    go_status_ = "Go lock probes disabled (golang.enabled: false)";
    return;
  }
  if (!features_.uprobes) {
    go_status_ = "Go lock probes need uprobes, which this kernel lacks";
    return;
  }
  GoLocksOptions go;
  go.pid = options_.pid;
  if (options_.pid || !selectors_.empty()) go.lock_targets_fd = bpf_map__fd(futex_->maps.lock_targets);
  // Lazy even for the CLI: its poll() drains the Go ring every 100 ms
  // without waiting on it, so a wakeup per record would be pure cost (an
  // irq_work per contended Lock).
  go.lazy_wakeup = true;
  // The unlock-side probes exist for holder stacks: without stacks they
  // would only count releases, not worth a trap each.
  go.holder_stacks = options_.go_holder_stacks && options_.stacks;
  auto started = GoLocks::start(go, *this);
  if (!started) {
    go_status_ = fmt::format("Go lock probes unavailable: {}", started.error().message());
    log::warn("locks: {}", go_status_);
    return;
  }
  go_ = std::move(*started);
  if (options_.pid) {
    go_->check_process(*options_.pid);
    return;
  }
  for (uint32_t pid : processes_->all_pids()) {
    if (!selectors_.empty()) {
      auto id = processes_->identify(pid);
      if (!id || !selectors_.evaluate(*id)) continue;
    }
    go_->check_process(pid);
  }
}

void LocksCollector::add_go_wait(const LockWait& wait, std::span<const uint64_t> ips) {
  StackKey stack = intern_go_stack(wait.pid, ips);
  std::lock_guard lock(mu_);
  aggregator_->add_wait(wait, stack);
}

void LocksCollector::add_go_wake(const LockWake& wake, std::span<const uint64_t> ips) {
  StackKey stack = intern_go_stack(wake.pid, ips);
  std::lock_guard lock(mu_);
  aggregator_->add_wake(wake, stack);
}

StackKey LocksCollector::intern_go_stack(uint32_t pid, std::span<const uint64_t> ips) {
  ++records_;
  StackKey stack = options_.stacks ? stack_table_.intern(ips) : 0;
  if (options_.symbolize_eagerly) frames_of(pid, stack);
  return stack;
}

}  // namespace syncscope::collectors
