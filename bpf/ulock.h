/* Shared between bpf/ulock.bpf.c, bpf/futex.bpf.c and agent/collectors/locks*.cpp.
 *
 * The glibc uprobes do not emit records: each remembers, per thread, what the
 * next futex call of that thread is about (which glibc function is about to
 * block or wake, its futex-word argument, and who called it). futex.bpf.c
 * reads that note when the syscall ends and attaches it to the record if the
 * futex word matches. A note is overwritten by the thread's next uprobe hit;
 * it is never deleted on the futex path because __lll_lock_wait may sleep
 * several times in one call, and a stale note is harmless: it only applies to
 * a later futex call on the very same word.
 */
#ifndef SYNCSCOPE_BPF_ULOCK_H
#define SYNCSCOPE_BPF_ULOCK_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Which glibc function left the note. */
#define ULOCK_SRC_NONE 0
#define ULOCK_SRC_LLL_WAIT 1               /* __lll_lock_wait(futex, private): a mutex */
#define ULOCK_SRC_LLL_WAKE 2               /* __lll_lock_wake(futex, private): its unlock */
#define ULOCK_SRC_LLL_WAIT_PRIVATE 3       /* __lll_lock_wait_private: glibc-internal locks */
#define ULOCK_SRC_LLL_WAKE_PRIVATE 4
#define ULOCK_SRC_FUTEX_WAIT 5             /* __futex_abstimed_wait64: rwlocks, timed mutexes */
#define ULOCK_SRC_FUTEX_WAIT_CANCELABLE 6  /* __futex_abstimed_wait_cancelable64: condvars, … */
#define ULOCK_SRC_MAX 7

/* The uprobe's bpf_cookie: the libc's index in user space's table (high 16
 * bits) and the probed function's vaddr in that file (low 48 bits), so the
 * program can turn a run-time return address into a file vaddr without
 * reading /proc/PID/maps: vaddr = ret - (ip - function_vaddr). */
#define ULOCK_COOKIE_VADDR_BITS 48
#define ULOCK_COOKIE_VADDR_MASK ((1ULL << ULOCK_COOKIE_VADDR_BITS) - 1)

struct ulock_note {
	__u64 addr;      /* argument 0: the futex word about to be waited on or woken */
	__u64 ret_vaddr; /* the caller's return address, as a vaddr of the libc file */
	__u16 libc_id;
	__u8 source;     /* ULOCK_SRC_* */
	__u8 pad[5];
};

#define LOCK_TARGETS_MAX 16384
#define ULOCK_NOTES_MAX 32768

#ifdef __bpf__
/* Both objects declare these two maps; user space creates them once (with
 * futex.bpf.o) and hands the fds to ulock.bpf.o with bpf_map__reuse_fd(). */

/* Processes to follow when filter_targets is set: tgid → LOCK_TARGET_* flags. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LOCK_TARGETS_MAX);
	__type(key, __u32);
	__type(value, __u32);
} lock_targets SEC(".maps");

/* tid → the last glibc note. LRU: threads that exit leave no garbage. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ULOCK_NOTES_MAX);
	__type(key, __u32);
	__type(value, struct ulock_note);
} ulock_notes SEC(".maps");
#endif

#endif /* SYNCSCOPE_BPF_ULOCK_H */
