// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Classification of futex waits from glibc's contended-only functions.
 *
 * A uprobe costs microseconds (an int3 trap), so these go only on functions
 * glibc calls when a thread is about to sleep on a lock or to wake a sleeper:
 * __lll_lock_wait (a pthread mutex, its argument the mutex's futex word, which
 * is the mutex's address), __lll_lock_wake (its unlock with waiters), their
 * _private twins (glibc's internal locks: stdio, malloc arenas, the dynamic
 * loader), and the two generic futex waits the rwlock, timed-mutex, condvar
 * and semaphore slow paths block through. Never pthread_mutex_lock or any
 * other fast path: an uncontended lock must not trap.
 *
 * Each program leaves a note for its thread (bpf/ulock.h) that
 * bpf/futex.bpf.c attaches to the futex record that follows. The caller's
 * return address, read from the top of the stack at function entry, tells
 * user space which pthread primitive called (rwlock read/write, condvar,
 * timed mutex, condvar re-acquiring its mutex …); it is stored as a libc file
 * vaddr using the function's own vaddr from the bpf_cookie.
 *
 * One attachment per glibc file (pid -1, or the one traced process for
 * `trace locks -p`), not per process: the kernel installs the breakpoint in
 * every process that maps the file.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "futex.h"
#include "ulock.h"

/* As in futex.bpf.c: follow only lock_targets. */
const volatile bool filter_targets = false;

static __always_inline int leave_note(struct pt_regs *ctx, __u8 source, __u64 addr)
{
	__u64 id = bpf_get_current_pid_tgid(), cookie, ret = 0;
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct ulock_note note = {};

	if (filter_targets && !bpf_map_lookup_elem(&lock_targets, &tgid))
		return 0;
	cookie = bpf_get_attach_cookie(ctx);
	/* At the first instruction of a called function the return address is
	 * the word at the stack pointer; the probed ip is the function's own
	 * run-time address. */
	bpf_probe_read_user(&ret, sizeof(ret), (void *)PT_REGS_SP(ctx));
	note.addr = addr;
	note.source = source;
	note.libc_id = cookie >> ULOCK_COOKIE_VADDR_BITS;
	if (ret)
		note.ret_vaddr = ret - PT_REGS_IP(ctx) + (cookie & ULOCK_COOKIE_VADDR_MASK);
	bpf_map_update_elem(&ulock_notes, &tid, &note, BPF_ANY);
	return 0;
}

/* BPF_KPROBE gives pt_regs arguments; it is the uprobe macro too (libbpf 1.1
 * has no BPF_UPROBE alias). */
SEC("uprobe")
int BPF_KPROBE(ulock_lll_lock_wait, void *futex)
{
	return leave_note(ctx, ULOCK_SRC_LLL_WAIT, (__u64)futex);
}

SEC("uprobe")
int BPF_KPROBE(ulock_lll_lock_wake, void *futex)
{
	return leave_note(ctx, ULOCK_SRC_LLL_WAKE, (__u64)futex);
}

SEC("uprobe")
int BPF_KPROBE(ulock_lll_lock_wait_private, void *futex)
{
	return leave_note(ctx, ULOCK_SRC_LLL_WAIT_PRIVATE, (__u64)futex);
}

SEC("uprobe")
int BPF_KPROBE(ulock_lll_lock_wake_private, void *futex)
{
	return leave_note(ctx, ULOCK_SRC_LLL_WAKE_PRIVATE, (__u64)futex);
}

SEC("uprobe")
int BPF_KPROBE(ulock_futex_abstimed_wait, void *futex)
{
	return leave_note(ctx, ULOCK_SRC_FUTEX_WAIT, (__u64)futex);
}

SEC("uprobe")
int BPF_KPROBE(ulock_futex_abstimed_wait_cancelable, void *futex)
{
	return leave_note(ctx, ULOCK_SRC_FUTEX_WAIT_CANCELABLE, (__u64)futex);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
