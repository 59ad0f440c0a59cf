// What a futex record means: the lock kinds, and the pure classification of
// ring-buffer records (bpf/futex.h) into lock waits and wakes.
//
// A record says "thread T of process P slept N ns on futex word W (op, val)",
// and, when a glibc uprobe ran just before on the same word, which glibc
// function was about to block and who called it (a return address inside
// libc). From that:
//   __lll_lock_wait from pthread_mutex_lock & co.     → pthread_mutex, lock = the mutex
//   __lll_lock_wait from __pthread_mutex_cond_lock    → pthread_cond (a condvar waiter
//                                                        re-acquiring its mutex), lock = the mutex
//   __lll_lock_wait_private                           → glibc_internal (stdio, malloc, dl)
//   __futex_abstimed_wait64 from the rwlock functions → pthread_rwlock, lock = the rwlock
//   … from the timed/robust mutex paths               → pthread_mutex
//   __futex_abstimed_wait_cancelable64 from pthread_cond_*wait → cond_wait, lock = the condvar
//   … from sem_*wait / pthread_join                   → semaphore / thread_join
//   no uprobe: a lock by convention (val == 2, the glibc/Go/Rust "locked, with
//   waiters" value; the owner|waiters bit of musl and PI futexes; the PI lock
//   commands) → futex; any other sleep → futex_other.
// Condvar, semaphore and join waits wait for an event, not for a lock someone
// holds, and futex_other cannot be told apart from such waits: they are not
// contention and stay out of the lock metrics (the trace CLI shows them with
// --all).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bpf/futex.h"
#include "bpf/ulock.h"
#include "probes/libc.h"

namespace syncscope::collectors {

enum class LockKind : uint8_t {
  pthread_mutex,
  pthread_rwlock,
  pthread_cond,    // a condvar waiter re-acquiring its mutex after the wakeup
  glibc_internal,  // glibc's own lll locks
  futex,           // no glibc classification, but lock-shaped
  futex_other,     // a futex sleep that does not look like a lock
  cond_wait,       // waiting for a condvar signal
  semaphore,
  thread_join,
  go_mutex,    // a goroutine in sync.(*Mutex).lockSlow (bpf/golang.bpf.c), lock = the Mutex
  go_rwmutex,  // a goroutine waiting on an RWMutex's writer/reader semaphore, lock = the RWMutex
};
inline constexpr size_t kLockKinds = 11;

std::string_view to_string(LockKind kind);
std::optional<LockKind> lock_kind_from_string(std::string_view name);
// True for the kinds where a thread waited for something another thread
// held; false for event waits (condvar signal, semaphore, join) and futex_other.
bool is_contention(LockKind kind);

// What called a glibc wait function, from its return address (a libc file
// vaddr). An interface so unit tests need no real libc.
struct CallerClass {
  probes::WaitKind kind = probes::WaitKind::unknown;
  std::string_view function;  // e.g. "pthread_rwlock_wrlock"; empty when unknown
};
class CallerClassifier {
 public:
  virtual ~CallerClassifier() = default;
  virtual CallerClass classify(uint16_t libc_id, uint64_t ret_vaddr) const = 0;
};

// One contended wait, classified.
struct LockWait {
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
  uint64_t cgroup_id = 0;
  LockKind kind = LockKind::futex_other;
  uint64_t lock = 0;   // the lock object's address (the futex word for unclassified waits)
  uint64_t futex = 0;  // the futex word slept on
  uint64_t wait_ns = 0;
  int32_t stack_id = -1;
  bool timed_out = false;
  bool interrupted = false;
  uint64_t ts_ns = 0;
  std::string_view caller_function;  // glibc function that called the wait, if known
};

// One release that had to wake a waiter (the holder side).
struct LockWake {
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::string comm;
  uint64_t cgroup_id = 0;
  std::optional<LockKind> kind;  // set when a glibc uprobe named the unlock
  uint64_t lock = 0;             // from the uprobe, else the futex word
  uint64_t futex = 0;
  uint32_t woken = 0;
  int32_t stack_id = -1;
  uint64_t ts_ns = 0;
};

// `record.type` must be LOCK_RECORD_WAIT / LOCK_RECORD_WAKE. `callers` may be
// null (no uprobes): classification then relies on op and val alone.
LockWait classify_wait(const lock_record& record, const CallerClassifier* callers);
LockWake classify_wake(const lock_record& record);

// The futex word layouts of glibc ≥ 2.25 (the "new" condvar and rwlock;
// every 64-bit and 32-bit ABI lays these fields out the same way):
//   pthread_rwlock_t: __readers @0, __writers @4, __wrphase_futex @8,
//     __writers_futex @12. Writers sleep on __writers_futex or
//     __wrphase_futex; readers on __wrphase_futex (expected value 3:
//     1 | FUTEX_USED) or, for writer-preferring locks, on __readers with the
//     RWAITING bit (4) set in the expected value.
//   pthread_cond_t: __g_signals[2] @40 and @44; the object is 8-aligned.
uint64_t rwlock_address(uint64_t futex_word, bool writer, uint32_t expected);
uint64_t condvar_address(uint64_t futex_word);

// val == 2, the owner|waiters high bit, or a PI command. bpf/futex.bpf.c
// applies the same rule in the kernel (skip_non_lock_waits) so that the
// agent does not pay a stack walk and a record for waits it would drop.
bool looks_like_lock(uint32_t op, uint32_t val);

}  // namespace syncscope::collectors
