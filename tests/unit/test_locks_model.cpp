// Classification of futex records into lock waits and wakes, with synthetic
// records and a fake return-address classifier (no kernel, no libc).
#include "agent/collectors/locks_model.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace syncscope::collectors {
namespace {

// Return addresses by hand: 0x1000 is in pthread_mutex_lock, 0x2000 in
// __pthread_mutex_cond_lock, 0x3000 in the rwlock write path, 0x3100 in the
// read path, 0x4000 in pthread_cond_wait, 0x5000 in sem_wait's slow path,
// 0x6000 in pthread_join, 0x7000 in a mutex clocklock.
class FakeCallers final : public CallerClassifier {
 public:
  CallerClass classify(uint16_t libc_id, uint64_t ret_vaddr) const override {
    last_libc = libc_id;
    auto it = table_.find(ret_vaddr);
    return it == table_.end() ? CallerClass{} : it->second;
  }
  mutable uint16_t last_libc = 0xffff;

 private:
  std::map<uint64_t, CallerClass> table_{
      {0x1000, {probes::WaitKind::mutex, "pthread_mutex_lock"}},
      {0x2000, {probes::WaitKind::mutex, "__pthread_mutex_cond_lock"}},
      {0x3000, {probes::WaitKind::rwlock_write, "pthread_rwlock_wrlock"}},
      {0x3100, {probes::WaitKind::rwlock_read, "pthread_rwlock_rdlock"}},
      {0x4000, {probes::WaitKind::condvar, "pthread_cond_wait"}},
      {0x5000, {probes::WaitKind::semaphore, "__new_sem_wait_slow64"}},
      {0x6000, {probes::WaitKind::thread_join, "__pthread_clockjoin_ex"}},
      {0x7000, {probes::WaitKind::mutex, "__pthread_mutex_clocklock_common"}},
  };
};

lock_record wait_record(uint64_t uaddr, uint32_t op, uint32_t val, uint8_t source = ULOCK_SRC_NONE,
                        uint64_t ret_vaddr = 0) {
  lock_record r{};
  r.type = LOCK_RECORD_WAIT;
  r.tgid = 100;
  r.tid = 101;
  r.cgroup_id = 7;
  r.uaddr = uaddr;
  r.op = op;
  r.val = val;
  r.wait_ns = 5000;
  r.stack_id = 3;
  r.ts_ns = 123;
  r.ulock_source = source;
  r.ulock_addr = source ? uaddr : 0;
  r.ret_vaddr = ret_vaddr;
  r.libc_id = 2;
  std::memcpy(r.comm, "worker", 6);
  return r;
}

TEST(LocksModel, KindNamesRoundTrip) {
  for (size_t i = 0; i < kLockKinds; ++i) {
    auto kind = static_cast<LockKind>(i);
    EXPECT_EQ(lock_kind_from_string(to_string(kind)), kind);
  }
  EXPECT_EQ(lock_kind_from_string("spinlock"), std::nullopt);
  EXPECT_EQ(to_string(LockKind::pthread_mutex), "pthread_mutex");
}

TEST(LocksModel, ContentionKindsExcludeEventWaits) {
  EXPECT_TRUE(is_contention(LockKind::pthread_mutex));
  EXPECT_TRUE(is_contention(LockKind::pthread_rwlock));
  EXPECT_TRUE(is_contention(LockKind::pthread_cond));
  EXPECT_TRUE(is_contention(LockKind::glibc_internal));
  EXPECT_TRUE(is_contention(LockKind::futex));
  EXPECT_FALSE(is_contention(LockKind::futex_other));
  EXPECT_FALSE(is_contention(LockKind::cond_wait));
  EXPECT_FALSE(is_contention(LockKind::semaphore));
  EXPECT_FALSE(is_contention(LockKind::thread_join));
}

TEST(LocksModel, LllLockWaitIsAMutexAtItsArgument) {
  FakeCallers callers;
  LockWait w = classify_wait(wait_record(0x5000'1000, FUTEX_WAIT, 2, ULOCK_SRC_LLL_WAIT, 0x1000), &callers);
  EXPECT_EQ(w.kind, LockKind::pthread_mutex);
  EXPECT_EQ(w.lock, 0x5000'1000u);
  EXPECT_EQ(w.futex, 0x5000'1000u);
  EXPECT_EQ(w.caller_function, "pthread_mutex_lock");
  EXPECT_EQ(callers.last_libc, 2);
  EXPECT_EQ(w.pid, 100u);
  EXPECT_EQ(w.tid, 101u);
  EXPECT_EQ(w.comm, "worker");
  EXPECT_EQ(w.cgroup_id, 7u);
  EXPECT_EQ(w.wait_ns, 5000u);
  EXPECT_EQ(w.stack_id, 3);
}

TEST(LocksModel, CondvarMutexReacquireIsPthreadCond) {
  FakeCallers callers;
  LockWait w = classify_wait(wait_record(0x5000'2000, FUTEX_WAIT, 2, ULOCK_SRC_LLL_WAIT, 0x2000), &callers);
  EXPECT_EQ(w.kind, LockKind::pthread_cond);
  EXPECT_EQ(w.lock, 0x5000'2000u);
}

TEST(LocksModel, WithoutCallersTheSourceStillClassifies) {
  LockWait w = classify_wait(wait_record(0x5000'1000, FUTEX_WAIT, 2, ULOCK_SRC_LLL_WAIT, 0x1000), nullptr);
  EXPECT_EQ(w.kind, LockKind::pthread_mutex);
  LockWait internal = classify_wait(wait_record(0x6000, FUTEX_WAIT, 2, ULOCK_SRC_LLL_WAIT_PRIVATE, 0x1), nullptr);
  EXPECT_EQ(internal.kind, LockKind::glibc_internal);
}

TEST(LocksModel, RwlockWaitsNormaliseToTheRwlock) {
  FakeCallers callers;
  const uint64_t rwlock = 0x7f00'0000'1000;
  // Writers: __writers_futex (+12) and __wrphase_futex (+8).
  LockWait w1 = classify_wait(wait_record(rwlock + 12, FUTEX_WAIT_BITSET, 3, ULOCK_SRC_FUTEX_WAIT, 0x3000), &callers);
  LockWait w2 = classify_wait(wait_record(rwlock + 8, FUTEX_WAIT_BITSET, 2, ULOCK_SRC_FUTEX_WAIT, 0x3000), &callers);
  // Readers: __wrphase_futex (expected 1 | FUTEX_USED) and __readers with RWAITING.
  LockWait r1 = classify_wait(wait_record(rwlock + 8, FUTEX_WAIT_BITSET, 3, ULOCK_SRC_FUTEX_WAIT, 0x3100), &callers);
  LockWait r2 = classify_wait(wait_record(rwlock, FUTEX_WAIT_BITSET, (2 << 3) | 4 | 2, ULOCK_SRC_FUTEX_WAIT, 0x3100),
                              &callers);
  for (const LockWait& w : {w1, w2, r1, r2}) {
    EXPECT_EQ(w.kind, LockKind::pthread_rwlock);
    EXPECT_EQ(w.lock, rwlock);
  }
  EXPECT_EQ(w1.futex, rwlock + 12);
  EXPECT_EQ(rwlock_address(rwlock + 12, false, 3), rwlock);
}

TEST(LocksModel, CondvarSignalWaitIsCondWaitAtTheCondvar) {
  FakeCallers callers;
  const uint64_t cond = 0x7f00'0000'2000;
  for (uint64_t word : {cond + 40, cond + 44}) {
    LockWait w = classify_wait(wait_record(word, FUTEX_WAIT_BITSET, 0, ULOCK_SRC_FUTEX_WAIT_CANCELABLE, 0x4000), &callers);
    EXPECT_EQ(w.kind, LockKind::cond_wait);
    EXPECT_EQ(w.lock, cond);
    EXPECT_FALSE(is_contention(w.kind));
  }
}

TEST(LocksModel, SemaphoreJoinAndTimedMutex) {
  FakeCallers callers;
  EXPECT_EQ(classify_wait(wait_record(0x10, FUTEX_WAIT_BITSET, 0, ULOCK_SRC_FUTEX_WAIT_CANCELABLE, 0x5000), &callers).kind,
            LockKind::semaphore);
  EXPECT_EQ(classify_wait(wait_record(0x10, FUTEX_WAIT_BITSET, 7, ULOCK_SRC_FUTEX_WAIT_CANCELABLE, 0x6000), &callers).kind,
            LockKind::thread_join);
  LockWait timed = classify_wait(wait_record(0x20, FUTEX_WAIT_BITSET, 2, ULOCK_SRC_FUTEX_WAIT, 0x7000), &callers);
  EXPECT_EQ(timed.kind, LockKind::pthread_mutex);
  EXPECT_EQ(timed.lock, 0x20u);
}

TEST(LocksModel, UnclassifiedWaitsAreJudgedByOpAndValue) {
  EXPECT_EQ(classify_wait(wait_record(0x30, FUTEX_WAIT, 2), nullptr).kind, LockKind::futex);
  EXPECT_EQ(classify_wait(wait_record(0x30, FUTEX_WAIT, 0), nullptr).kind, LockKind::futex_other);
  EXPECT_EQ(classify_wait(wait_record(0x30, FUTEX_WAIT, 0x8000'1234), nullptr).kind, LockKind::futex);
  EXPECT_EQ(classify_wait(wait_record(0x30, FUTEX_LOCK_PI, 0), nullptr).kind, LockKind::futex);
  EXPECT_EQ(classify_wait(wait_record(0x30, FUTEX_LOCK_PI2, 0), nullptr).kind, LockKind::futex);
  EXPECT_EQ(classify_wait(wait_record(0x30, LOCK_OP_WAITV, 1), nullptr).kind, LockKind::futex_other);
  // A uprobe note whose caller is unknown keeps the op/val verdict.
  FakeCallers callers;
  EXPECT_EQ(classify_wait(wait_record(0x30, FUTEX_WAIT_BITSET, 2, ULOCK_SRC_FUTEX_WAIT, 0x9999), &callers).kind,
            LockKind::futex);
}

TEST(LocksModel, FlagsSurvive) {
  lock_record r = wait_record(0x40, FUTEX_WAIT, 2);
  r.flags = LOCK_FLAG_TIMED_OUT;
  EXPECT_TRUE(classify_wait(r, nullptr).timed_out);
  r.flags = LOCK_FLAG_INTERRUPTED;
  LockWait w = classify_wait(r, nullptr);
  EXPECT_TRUE(w.interrupted);
  EXPECT_FALSE(w.timed_out);
}

TEST(LocksModel, CommIsNotReadPastItsEnd) {
  lock_record r = wait_record(0x40, FUTEX_WAIT, 2);
  std::memset(r.comm, 'x', sizeof r.comm);  // 16 characters, no terminator
  EXPECT_EQ(classify_wait(r, nullptr).comm, std::string(16, 'x'));
}

TEST(LocksModel, WakesNameTheLockWhenAUprobeDid) {
  lock_record r{};
  r.type = LOCK_RECORD_WAKE;
  r.tgid = 5;
  r.tid = 6;
  r.uaddr = 0x50;
  r.op = FUTEX_WAKE;
  r.ret = 1;
  r.ulock_source = ULOCK_SRC_LLL_WAKE;
  r.ulock_addr = 0x50;
  LockWake w = classify_wake(r);
  EXPECT_EQ(w.kind, LockKind::pthread_mutex);
  EXPECT_EQ(w.lock, 0x50u);
  EXPECT_EQ(w.woken, 1u);

  r.ulock_source = ULOCK_SRC_NONE;
  r.op = FUTEX_UNLOCK_PI;
  r.ret = 0;
  w = classify_wake(r);
  EXPECT_EQ(w.kind, std::nullopt);
  EXPECT_EQ(w.woken, 1u);  // UNLOCK_PI only enters the kernel when there are waiters

  r.ulock_source = ULOCK_SRC_LLL_WAKE_PRIVATE;
  r.op = FUTEX_WAKE;
  r.ret = 3;
  w = classify_wake(r);
  EXPECT_EQ(w.kind, LockKind::glibc_internal);
  EXPECT_EQ(w.woken, 3u);
}

}  // namespace
}  // namespace syncscope::collectors
