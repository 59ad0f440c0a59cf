#include "agent/collectors/cacheline_watch.h"

#include <dirent.h>
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "agent/core/log.h"

namespace syncscope::collectors {
namespace {

uint32_t bp_type_of(WatchType type) { return type == WatchType::write ? HW_BREAKPOINT_W : HW_BREAKPOINT_RW; }

perf_event_attr breakpoint_attr(const WatchTarget& target) {
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_BREAKPOINT;
  attr.bp_type = bp_type_of(target.type);
  attr.bp_addr = target.addr;
  attr.bp_len = target.len;
  // Every hit overflows: the BPF program sees each access.
  attr.sample_period = 1;
  // Kernel accesses to the word (futex(2) reading a lock word, copy_from_user)
  // are not the threads' own traffic.
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  attr.disabled = 1;
  return attr;
}

}  // namespace

std::vector<pid_t> list_threads(pid_t pid) {
  std::vector<pid_t> out;
  std::string path = fmt::format("/proc/{}/task", pid);
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return out;
  while (dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    long tid = std::strtol(entry->d_name, &end, 10);
    if (end != entry->d_name && *end == '\0' && tid > 0) out.push_back(static_cast<pid_t>(tid));
  }
  ::closedir(dir);
  std::ranges::sort(out);
  return out;
}

Result<std::unique_ptr<ThreadWatch>> ThreadWatch::open(bpf_program* program, pid_t tid,
                                                       std::span<const WatchTarget> targets) {
  if (targets.size() > kWatchpointsPerThread)
    return fail(
        fmt::format("{} watchpoints asked for thread {}: x86 has {}", targets.size(), tid, kWatchpointsPerThread));
  auto watch = std::unique_ptr<ThreadWatch>(new ThreadWatch());
  watch->tid_ = tid;
  for (const WatchTarget& target : targets) {
    Slot slot;
    slot.attr = breakpoint_attr(target);
    int fd = static_cast<int>(::syscall(SYS_perf_event_open, &slot.attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC));
    // The destructor of `watch` closes what was opened so far.
    if (fd < 0) {
      int saved = errno;
      return fail_errno(fmt::format("perf_event_open breakpoint {:#x}/{} on thread {}", target.addr, target.len, tid),
                        saved);
    }
    bpf_link* link = bpf_program__attach_perf_event(program, fd);
    if (!link) {
      int saved = errno;
      ::close(fd);
      return fail_errno(fmt::format("attach {} to a breakpoint on thread {}", bpf_program__name(program), tid), saved);
    }
    slot.fd = fd;
    slot.link.reset(link);
    watch->slots_.push_back(std::move(slot));
  }
  return watch;
}

ThreadWatch::~ThreadWatch() {
  // Disable first so no hit lands between unlinking and closing; the link's
  // destruction closes the perf event and frees the debug register.
  disable();
  slots_.clear();
}

Result<void> ThreadWatch::enable() {
  for (Slot& slot : slots_) {
    if (::ioctl(slot.fd, PERF_EVENT_IOC_ENABLE, 0) != 0) {
      int saved = errno;
      return fail_errno(fmt::format("enable breakpoint on thread {}", tid_), saved);
    }
  }
  return {};
}

void ThreadWatch::disable() {
  for (Slot& slot : slots_)
    if (slot.fd >= 0) ::ioctl(slot.fd, PERF_EVENT_IOC_DISABLE, 0);
}

Result<void> ThreadWatch::reaim(std::span<const WatchTarget> targets) {
  // Fewer targets than slots: the extra slots stay disabled (and keep their
  // registers until the window ends).
  if (targets.size() > slots_.size())
    return fail(fmt::format("re-aim thread {}: {} targets for {} watchpoints", tid_, targets.size(), slots_.size()));
  for (size_t i = 0; i < targets.size(); ++i) {
    perf_event_attr next = slots_[i].attr;
    next.bp_addr = targets[i].addr;
    next.bp_len = targets[i].len;
    next.bp_type = bp_type_of(targets[i].type);
    next.disabled = 0;  // enabled by the modification itself
    if (::ioctl(slots_[i].fd, PERF_EVENT_IOC_MODIFY_ATTRIBUTES, &next) != 0) {
      int saved = errno;
      return fail_errno(fmt::format("PERF_EVENT_IOC_MODIFY_ATTRIBUTES on thread {} ({:#x}/{})", tid_, targets[i].addr,
                                    targets[i].len),
                        saved);
    }
    // What the kernel now holds, for the next comparison.
    slots_[i].attr.bp_addr = next.bp_addr;
    slots_[i].attr.bp_len = next.bp_len;
    slots_[i].attr.bp_type = next.bp_type;
    slots_[i].attr.disabled = 0;
  }
  return {};
}

Result<std::unique_ptr<WatchSession>> WatchSession::open(bpf_program* program, pid_t pid,
                                                         std::span<const WatchTarget> targets, ThreadLister lister) {
  if (targets.empty() || targets.size() > kWatchpointsPerThread)
    return fail(fmt::format("a watch phase needs 1 to {} targets, got {}", kWatchpointsPerThread, targets.size()));
  auto session = std::unique_ptr<WatchSession>(new WatchSession());
  session->program_ = program;
  session->pid_ = pid;
  session->lister_ = std::move(lister);
  session->targets_.assign(targets.begin(), targets.end());
  std::vector<pid_t> tids = session->lister_(pid);
  if (tids.empty()) return fail(fmt::format("process {} has no threads (exited?)", pid), ESRCH);
  for (pid_t tid : tids) session->arm(tid, false);
  if (session->threads_.empty())
    return fail(fmt::format("process {}: no thread could be watched ({} busy, {} gone, {} failed{}{})", pid,
                            session->stats_.threads_busy, session->stats_.threads_gone, session->stats_.threads_failed,
                            session->stats_.last_error.empty() ? "" : ": ", session->stats_.last_error),
                session->stats_.threads_busy ? ENOSPC : 0);
  return session;
}

WatchSession::~WatchSession() {
  disable_all();
  threads_.clear();
}

void WatchSession::arm(pid_t tid, bool enable_now) {
  seen_.insert(tid);
  if (threads_.size() >= kMaxThreads) {
    ++stats_.threads_capped;
    return;
  }
  auto watch = ThreadWatch::open(program_, tid, targets_);
  if (!watch) {
    switch (watch.error().sys_errno()) {
      case ENOSPC:
        ++stats_.threads_busy;
        break;  // a debugger holds the debug registers
      case ESRCH:
        ++stats_.threads_gone;
        break;  // exited meanwhile
      default:
        ++stats_.threads_failed;
        stats_.last_error = watch.error().message();
    }
    if (watch.error().sys_errno() == ENOSPC)
      log::debug("cachelines: thread {} of {} skipped: {}", tid, pid_, watch.error().message());
    return;
  }
  if (enable_now) {
    if (auto enabled = (*watch)->enable(); !enabled) {
      ++stats_.threads_failed;
      stats_.last_error = enabled.error().message();
      return;
    }
  }
  threads_.push_back(std::move(*watch));
  ++stats_.threads_armed;
}

void WatchSession::start() {
  std::erase_if(threads_, [this](const std::unique_ptr<ThreadWatch>& t) {
    if (t->enable()) return false;
    ++stats_.threads_gone;
    return true;
  });
}

void WatchSession::cover_new_threads() {
  for (pid_t tid : lister_(pid_))
    if (!seen_.contains(tid)) arm(tid, true);
}

void WatchSession::reaim(std::span<const WatchTarget> targets, const std::function<void()>& between) {
  disable_all();
  if (between) between();
  size_t open_slots = kWatchpointsPerThread;
  for (const auto& t : threads_) open_slots = std::min(open_slots, t->size());
  if (targets.size() > open_slots) {
    // More watchpoints than the threads hold: reopen rather than re-aim.
    targets_.assign(targets.begin(), targets.end());
    threads_.clear();
    seen_.clear();
    for (pid_t tid : lister_(pid_)) arm(tid, true);
    return;
  }
  targets_.assign(targets.begin(), targets.end());
  std::erase_if(threads_, [&](const std::unique_ptr<ThreadWatch>& t) {
    auto done = t->reaim(targets_);
    if (done) return false;
    // The thread exited (ESRCH from the event) or refused the new shape.
    if (done.error().sys_errno() == ESRCH) ++stats_.threads_gone;
    else ++stats_.threads_failed, stats_.last_error = done.error().message();
    return true;
  });
}

void WatchSession::disable_all() {
  for (auto& t : threads_) t->disable();
}

size_t WatchSession::open_events() const {
  size_t n = 0;
  for (const auto& t : threads_) n += t->size();
  return n;
}

}  // namespace syncscope::collectors
