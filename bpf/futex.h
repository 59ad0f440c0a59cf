/* Shared between bpf/futex.bpf.c and agent/collectors/locks*.cpp: fixed-size
 * types only, no C++.
 *
 * One ring-buffer record per futex wait that slept (the waiter side), per
 * wake that woke somebody (the holder side), and per exec/exit of a process
 * the collector follows. Lock identity and kind are decided in user space
 * from `uaddr`, `op`, `val` and, when a glibc uprobe (bpf/ulock.bpf.c) ran
 * just before the syscall on the same thread and the same futex word, its
 * source, argument and return address.
 */
#ifndef SYNCSCOPE_BPF_FUTEX_H
#define SYNCSCOPE_BPF_FUTEX_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* futex(2) commands and flags (include/uapi/linux/futex.h; vmlinux.h carries
 * no #defines). Guarded: user space may include <linux/futex.h> too. */
#ifndef FUTEX_WAIT
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_LOCK_PI 6
#define FUTEX_UNLOCK_PI 7
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_WAIT_REQUEUE_PI 11
#define FUTEX_CMP_REQUEUE_PI 12
#define FUTEX_LOCK_PI2 13
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#endif
#define LOCK_FUTEX_CMD_MASK 127

/* `op` of futex_waitv(2) (5.16+) records, outside futex(2)'s command space. */
#define LOCK_OP_WAITV 100

/* The most futexes one futex_waitv(2) call may name (FUTEX_WAITV_MAX). */
#define LOCK_WAITV_MAX 128

/* Record types. */
#define LOCK_RECORD_WAIT 1
#define LOCK_RECORD_WAKE 2
#define LOCK_RECORD_EXEC 3
#define LOCK_RECORD_EXIT 4

/* Record flags. */
#define LOCK_FLAG_TIMED_OUT 1    /* the wait ended with ETIMEDOUT: it slept, nobody woke it */
#define LOCK_FLAG_INTERRUPTED 2  /* EINTR / ERESTART*: a signal ended the sleep */
#define LOCK_FLAG_PRIVATE 4      /* FUTEX_PRIVATE_FLAG (process-private futex) */

/* Frames kept per user stack: deep enough for C++ call chains, small enough
 * that 8192 distinct stacks cost 4 MiB of locked memory. */
#define LOCK_STACK_DEPTH 64

struct lock_record {
	__u64 ts_ns;      /* bpf_ktime_get_ns() at syscall exit (or exec/exit) */
	__u64 wait_ns;    /* WAIT: time from sys_enter to sys_exit */
	__u64 uaddr;      /* the futex word (for futex_waitv, the one that woke us) */
	__u64 cgroup_id;  /* cgroup v2 id of the thread */
	__u64 ulock_addr; /* glibc uprobe argument 0, when `ulock_source` is set */
	__u64 ret_vaddr;  /* its caller's return address as a libc file vaddr (0: unknown) */
	__u32 tgid;
	__u32 tid;
	__s32 stack_id;   /* user stack in lock_stacks, or a negative errno */
	__s32 ret;        /* the syscall's return value (woken count for wakes) */
	__u32 op;         /* futex(2) command, or LOCK_OP_* */
	__u32 val;        /* WAIT: the expected value; WAKE: how many to wake */
	__u16 libc_id;    /* which probed libc `ret_vaddr` belongs to */
	__u8 type;        /* LOCK_RECORD_* */
	__u8 ulock_source; /* ULOCK_SRC_* (bpf/ulock.h), 0 when no uprobe classified it */
	__u8 flags;       /* LOCK_FLAG_* */
	__u8 pad[3];
	char comm[16];
};

/* Per-CPU counters of futex calls that produced no record, by reason. */
#define LOCK_SKIP_VALUE_CHANGED 0  /* WAIT returned EAGAIN: the word changed, it never slept */
#define LOCK_SKIP_ERROR 1          /* WAIT failed otherwise (EINVAL, EFAULT, EDEADLK, …) */
#define LOCK_SKIP_NOBODY_WOKEN 2   /* WAKE found no waiter */
#define LOCK_SKIP_MAX 3

/* lock_targets values (bpf/ulock.h holds the map itself). */
#define LOCK_TARGET_INHERIT 1  /* children forked by this process are targets too */

/* events_lost sources of futex.bpf.o (bpf/lib/events_lost.h). */
#define LOCK_LOST_WAIT 0
#define LOCK_LOST_WAKE 1
#define LOCK_LOST_PROCESS 2

#endif /* SYNCSCOPE_BPF_FUTEX_H */
