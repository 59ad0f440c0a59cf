// The pure parts of the Go lock probes: which lock and kind a record is
// about, and that Go's lock machinery is skipped when naming the caller.
#include <gtest/gtest.h>

#include "agent/collectors/go_locks.h"
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
