/* Shared between bpf/golang.bpf.c and agent/collectors/go_locks.cpp:
 * fixed-size types only, no C++.
 *
 * Go sync.Mutex / sync.RWMutex contention, measured on the contended-only
 * slow paths of the Go runtime and library: a uprobe at the entry of the
 * function and one on each of its RET instructions (never a uretprobe: Go
 * moves goroutine stacks, and the return trampoline would then be lost or
 * crash the program). The time between the entry and a RET of the same
 * goroutine is the wait. One ring-buffer record per wait. The holder side:
 * a uprobe at the entry of the contended-only unlock paths, one record (with
 * the releasing goroutine's stack) per release that had waiters.
 */
#ifndef SYNCSCOPE_BPF_GOLANG_H
#define SYNCSCOPE_BPF_GOLANG_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Which function a uprobe sits on: the low byte of its bpf_cookie. */
#define GO_FN_LOCK_SLOW 0         /* {internal/,}sync.(*Mutex).lockSlow(m): RAX = m */
#define GO_FN_SEMACQUIRE_MUTEX 1  /* sync.runtime_SemacquireMutex(addr, …), Go < 1.20: RAX = sema */
#define GO_FN_SEMACQUIRE_RW 2     /* sync.runtime_SemacquireRWMutex (writer), Go >= 1.20 */
#define GO_FN_SEMACQUIRE_RW_R 3   /* sync.runtime_SemacquireRWMutexR (reader), Go >= 1.20 */
/* The holder side, entry only (a release is an instant, not a wait): */
#define GO_FN_UNLOCK_SLOW 4       /* {internal/,}sync.(*Mutex).unlockSlow(m, new): RAX = m */
#define GO_FN_RUNLOCK_SLOW 5      /* sync.(*RWMutex).rUnlockSlow(rw, r): RAX = rw */
#define GO_FN_MAX 6
/* Bit 8 of the cookie: the probe is on a RET instruction, not the entry. */
#define GO_COOKIE_RET 0x100
/* Bits 16..31: the goid offset in runtime.g (per binary, from DWARF or the
 * version table), so one program serves binaries of different Go versions. */
#define GO_COOKIE_GOID_SHIFT 16

/* Frames kept per goroutine stack. */
#define GO_STACK_DEPTH 48

/* In-flight waits at most (goroutines inside a slow path at once, host-wide). */
#define GO_INFLIGHT_MAX 16384

/* One wait (a lock function's entry → RET), or one contended release (the
 * entry of an unlock function, wait_ns 0). */
struct go_lock_record {
	__u64 ts_ns;      /* at the RET (the entry for a release) */
	__u64 wait_ns;    /* entry → RET; 0 for a release */
	__u64 addr;       /* RAX at entry: the mutex (lockSlow, unlockSlow), the RWMutex
	                   * (rUnlockSlow) or the semaphore word */
	__u64 goid;
	__u64 cgroup_id;
	__u64 caller_pc;  /* the word at RSP at the RET (or entry): the return address into the caller */
	__u32 tgid;
	__u32 tid;
	__u32 function;   /* GO_FN_* */
	__s32 stack_len;  /* bytes bpf_get_stack wrote into ips, or a negative errno */
	char comm[16];
	__u64 ips[GO_STACK_DEPTH];
};

/* events_lost sources of golang.bpf.o. */
#define GO_LOST_WAIT 0

/* Per-CPU hit counters (go_hits map), so tests and /debug/probes can show that
 * an uncontended mutex never traps. */
#define GO_HIT_ENTRY 0
#define GO_HIT_RET 1
#define GO_HIT_RET_UNMATCHED 2  /* a RET with no entry: attached mid-wait, or the
                                 * nested semacquire of lockSlow */
#define GO_HIT_NO_G 3           /* R14 did not hold a readable g */
#define GO_HIT_UNLOCK 4         /* entries of unlockSlow / rUnlockSlow */
#define GO_HIT_MAX 5

#endif /* SYNCSCOPE_BPF_GOLANG_H */
