#include "agent/collectors/locks_model.h"

#include <cstring>

namespace syncscope::collectors {
namespace {

constexpr std::array<std::string_view, kLockKinds> kKindNames{
    "pthread_mutex", "pthread_rwlock", "pthread_cond", "glibc_internal", "futex",
    "futex_other",   "cond_wait",      "semaphore",    "thread_join",   "go_mutex",
    "go_rwmutex",
};

// glibc's condvar mutex re-acquire (pthread_mutex_cond_lock.c) is
// pthread_mutex_lock compiled a second time; its clones keep the prefix.
bool is_cond_relock(std::string_view function) { return function.starts_with("__pthread_mutex_cond_lock"); }

std::string comm_of(const lock_record& r) { return std::string(r.comm, ::strnlen(r.comm, sizeof r.comm)); }

}  // namespace

std::string_view to_string(LockKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

std::optional<LockKind> lock_kind_from_string(std::string_view name) {
  for (size_t i = 0; i < kKindNames.size(); ++i)
    if (kKindNames[i] == name) return static_cast<LockKind>(i);
  return std::nullopt;
}

bool is_contention(LockKind kind) {
  switch (kind) {
    case LockKind::pthread_mutex:
    case LockKind::pthread_rwlock:
    case LockKind::pthread_cond:
    case LockKind::glibc_internal:
    case LockKind::futex:
    case LockKind::go_mutex:
    case LockKind::go_rwmutex:
      return true;
    case LockKind::futex_other:
    case LockKind::cond_wait:
    case LockKind::semaphore:
    case LockKind::thread_join:
      return false;
  }
  return false;
}

bool looks_like_lock(uint32_t op, uint32_t val) {
  if (op == FUTEX_LOCK_PI || op == FUTEX_LOCK_PI2) return true;
  return val == 2 || (val & 0x80000000u) != 0;
}

uint64_t rwlock_address(uint64_t futex_word, bool writer, uint32_t expected) {
  constexpr uint32_t kReadersWaiting = 4;  // PTHREAD_RWLOCK_RWAITING
  if (futex_word % 8 == 4) return futex_word - 12;  // __writers_futex: the only word at 4 mod 8
  if (!writer && (expected & kReadersWaiting)) return futex_word;  // __readers
  return futex_word - 8;                                          // __wrphase_futex
}

uint64_t condvar_address(uint64_t futex_word) {
  return futex_word % 8 == 4 ? futex_word - 44 : futex_word - 40;  // __g_signals[1] / [0]
}

LockWait classify_wait(const lock_record& r, const CallerClassifier* callers) {
  LockWait w;
  w.pid = r.tgid;
  w.tid = r.tid;
  w.comm = comm_of(r);
  w.cgroup_id = r.cgroup_id;
  w.futex = r.uaddr;
  w.lock = r.uaddr;
  w.wait_ns = r.wait_ns;
  w.stack_id = r.stack_id;
  w.timed_out = r.flags & LOCK_FLAG_TIMED_OUT;
  w.interrupted = r.flags & LOCK_FLAG_INTERRUPTED;
  w.ts_ns = r.ts_ns;
  w.kind = looks_like_lock(r.op, r.val) ? LockKind::futex : LockKind::futex_other;

  CallerClass caller;
  if (callers && r.ulock_source != ULOCK_SRC_NONE && r.ret_vaddr) caller = callers->classify(r.libc_id, r.ret_vaddr);
  w.caller_function = caller.function;
  switch (r.ulock_source) {
    case ULOCK_SRC_LLL_WAIT:
      w.kind = is_cond_relock(caller.function) ? LockKind::pthread_cond : LockKind::pthread_mutex;
      w.lock = r.ulock_addr;
      break;
    case ULOCK_SRC_LLL_WAIT_PRIVATE:
      w.kind = LockKind::glibc_internal;
      w.lock = r.ulock_addr;
      break;
    case ULOCK_SRC_FUTEX_WAIT:
    case ULOCK_SRC_FUTEX_WAIT_CANCELABLE:
      switch (caller.kind) {
        case probes::WaitKind::mutex:
          w.kind = is_cond_relock(caller.function) ? LockKind::pthread_cond : LockKind::pthread_mutex;
          break;
        case probes::WaitKind::internal_lock: w.kind = LockKind::glibc_internal; break;
        case probes::WaitKind::rwlock_read:
          w.kind = LockKind::pthread_rwlock;
          w.lock = rwlock_address(r.uaddr, false, r.val);
          break;
        case probes::WaitKind::rwlock_write:
          w.kind = LockKind::pthread_rwlock;
          w.lock = rwlock_address(r.uaddr, true, r.val);
          break;
        case probes::WaitKind::condvar:
          w.kind = LockKind::cond_wait;
          w.lock = condvar_address(r.uaddr);
          break;
        case probes::WaitKind::semaphore: w.kind = LockKind::semaphore; break;
        case probes::WaitKind::thread_join: w.kind = LockKind::thread_join; break;
        case probes::WaitKind::unknown: break;  // keep the op/val verdict
      }
      break;
    default: break;
  }
  return w;
}

LockWake classify_wake(const lock_record& r) {
  LockWake w;
  w.pid = r.tgid;
  w.tid = r.tid;
  w.comm = comm_of(r);
  w.cgroup_id = r.cgroup_id;
  w.futex = r.uaddr;
  w.lock = r.uaddr;
  w.woken = r.op == FUTEX_UNLOCK_PI ? 1 : static_cast<uint32_t>(r.ret);
  w.stack_id = r.stack_id;
  w.ts_ns = r.ts_ns;
  if (r.ulock_source == ULOCK_SRC_LLL_WAKE) {
    w.kind = LockKind::pthread_mutex;
    w.lock = r.ulock_addr;
  } else if (r.ulock_source == ULOCK_SRC_LLL_WAKE_PRIVATE) {
    w.kind = LockKind::glibc_internal;
    w.lock = r.ulock_addr;
  }
  return w;
}

}  // namespace syncscope::collectors
