// The pure parts of the Go lock probes: which lock and kind a record is
// about, waits and releases decoded from ring-buffer records, their holder
// side joining the waits in the aggregator, and that Go's lock machinery is
// skipped when naming the caller.
#include <gtest/gtest.h>

#include <cstring>

#include "agent/collectors/go_locks.h"
#include "agent/collectors/locks_aggregate.h"
#include "agent/collectors/locks_report.h"

namespace syncscope::collectors {
namespace {

TEST(GoLocks, LockSlowNamesTheMutexItself) {
  GoLockIdentity id = identify_go_lock(GO_FN_LOCK_SLOW, 0xc000012340, "");
  EXPECT_EQ(id.kind, LockKind::go_mutex);
  EXPECT_EQ(id.lock, 0xc000012340u);
}

TEST(GoLocks, RwMutexSemaphoresMapBackToTheRwMutex) {
  // sync.RWMutex{w Mutex (8 bytes); writerSem uint32 @8; readerSem uint32 @12; …}
  EXPECT_EQ(identify_go_lock(GO_FN_SEMACQUIRE_RW, 0x5000 + 8, "").lock, 0x5000u);
  EXPECT_EQ(identify_go_lock(GO_FN_SEMACQUIRE_RW_R, 0x5000 + 12, "").lock, 0x5000u);
  EXPECT_EQ(identify_go_lock(GO_FN_SEMACQUIRE_RW, 0x5008, "").kind, LockKind::go_rwmutex);
  // Before Go 1.20 both semaphores go through runtime_SemacquireMutex: the
  // writer is the one called from sync.(*RWMutex).Lock, readers come from
  // RLock inlined into user code.
  GoLockIdentity writer = identify_go_lock(GO_FN_SEMACQUIRE_MUTEX, 0x6008, "sync.(*RWMutex).Lock");
  EXPECT_EQ(writer.kind, LockKind::go_rwmutex);
  EXPECT_EQ(writer.lock, 0x6000u);
  GoLockIdentity reader = identify_go_lock(GO_FN_SEMACQUIRE_MUTEX, 0x600c, "main.rwReader");
  EXPECT_EQ(reader.kind, LockKind::go_rwmutex);
  EXPECT_EQ(reader.lock, 0x6000u);
}

go_lock_record record_of(uint32_t function, uint64_t addr, std::initializer_list<uint64_t> ips, uint64_t caller_pc) {
  go_lock_record r{};
  r.function = function;
  r.addr = addr;
  r.tgid = 700;
  r.tid = 701;
  r.goid = 42;
  r.cgroup_id = 9;
  r.wait_ns = function == GO_FN_UNLOCK_SLOW || function == GO_FN_RUNLOCK_SLOW ? 0 : 5000;
  r.caller_pc = caller_pc;
  std::memcpy(r.comm, "svc", 4);
  size_t i = 0;
  for (uint64_t ip : ips) r.ips[i++] = ip;
  r.stack_len = static_cast<int32_t>(i * sizeof(uint64_t));
  return r;
}

TEST(GoLocks, UnlockSlowIsAReleaseOfTheMutexWithTheCallerSplicedIn) {
  GoLockEvent e = decode_go_record(record_of(GO_FN_UNLOCK_SLOW, 0xc000012340, {0x467320, 0x401000}, 0x455555), "");
  ASSERT_TRUE(e.wake.has_value());
  EXPECT_EQ(e.wake->kind, LockKind::go_mutex);
  EXPECT_EQ(e.wake->lock, 0xc000012340u);
  EXPECT_EQ(e.wake->futex, 0xc000012340u);  // the word lockSlow's waits name
  EXPECT_EQ(e.wake->pid, 700u);
  EXPECT_EQ(e.wake->comm, "svc");
  // The walk from the entry skips the immediate caller: the word at RSP
  // goes in as the second frame.
  EXPECT_EQ(e.ips, (std::vector<uint64_t>{0x467320, 0x455555, 0x401000}));
}

TEST(GoLocks, RUnlockSlowReleasesTheWritersSemaphore) {
  GoLockIdentity id = identify_go_lock(GO_FN_RUNLOCK_SLOW, 0x5000, "");
  EXPECT_EQ(id.kind, LockKind::go_rwmutex);
  EXPECT_EQ(id.lock, 0x5000u);
  EXPECT_EQ(id.word, 0x5008u);  // where the writer sleeps (runtime_SemacquireRWMutex's arg)
  EXPECT_EQ(identify_go_lock(GO_FN_SEMACQUIRE_RW, 0x5008, "").word, id.word);
}

TEST(GoLocks, LockSlowRecordIsAWait) {
  GoLockEvent e = decode_go_record(record_of(GO_FN_LOCK_SLOW, 0xc000012340, {0x467020}, 0), "");
  EXPECT_FALSE(e.wake.has_value());
  EXPECT_EQ(e.wait.kind, LockKind::go_mutex);
  EXPECT_EQ(e.wait.lock, 0xc000012340u);
  EXPECT_EQ(e.wait.wait_ns, 5000u);
  EXPECT_EQ(e.ips, std::vector<uint64_t>{0x467020});  // no caller word, nothing spliced
}

TEST(GoLocks, ReleasesBecomeTheHolderStacksOfTheLockTheyRelease) {
  LockAggregator agg({}, nullptr);
  // A writer waited on an RWMutex's writer semaphore; the last reader out
  // released it (rUnlockSlow); a plain Mutex elsewhere had a release too.
  GoLockEvent wait = decode_go_record(record_of(GO_FN_SEMACQUIRE_RW, 0x6008, {0x1}, 0), "");
  agg.add_wait(wait.wait, 1);
  GoLockEvent release = decode_go_record(record_of(GO_FN_RUNLOCK_SLOW, 0x6000, {0x2}, 0), "");
  agg.add_wake(*release.wake, 2);
  agg.add_wake(*release.wake, 2);
  GoLockEvent other = decode_go_record(record_of(GO_FN_UNLOCK_SLOW, 0x7000, {0x3}, 0), "");
  agg.add_wake(*other.wake, 3);
  HolderEntry h = agg.holders_of({700, 0x6000});
  EXPECT_EQ(h.wakes, 2u);
  EXPECT_EQ(h.kind, LockKind::go_rwmutex);
  ASSERT_EQ(h.stacks.size(), 1u);
  EXPECT_EQ(h.stacks.begin()->first, 2u);
  EXPECT_EQ(h.stacks.begin()->second.tids, std::vector<uint32_t>{701});
}

TEST(GoLocks, GoKindsAreContentionAndRoundTrip) {
  EXPECT_TRUE(is_contention(LockKind::go_mutex));
  EXPECT_TRUE(is_contention(LockKind::go_rwmutex));
  EXPECT_EQ(to_string(LockKind::go_mutex), "go_mutex");
  EXPECT_EQ(lock_kind_from_string("go_rwmutex"), LockKind::go_rwmutex);
}

TEST(GoLocks, CallerSkipsGoLockMachinery) {
  auto frame = [](std::string symbol, uint64_t offset) {
    probes::Frame f;
    f.address = 0x400000 + offset;
    f.module = "/usr/bin/api";
    f.symbol = std::move(symbol);
    f.offset = offset;
    return f;
  };
  std::vector<probes::Frame> frames{frame("sync.(*Mutex).lockSlow", 0x1a5), frame("main.worker", 0x4e),
                                    frame("runtime.goexit", 0x1)};
  EXPECT_EQ(top_user_frame(frames), "main.worker+0x4e");
  std::vector<probes::Frame> rw{frame("sync.runtime_SemacquireMutex", 0x25), frame("sync.(*RWMutex).Lock", 0x7c),
                                frame("main.rwWriter", 0x3d)};
  EXPECT_EQ(caller_of(rw, ""), "main.rwWriter+0x3d");
  std::vector<probes::Frame> go124{frame("internal/sync.(*Mutex).lockSlow", 0x10), frame("sync.(*Mutex).Lock", 0x8),
                                   frame("main.handler", 0x22)};
  EXPECT_EQ(top_user_frame(go124), "main.handler+0x22");
}

}  // namespace
}  // namespace syncscope::collectors
