// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* User-space lock contention from the futex syscalls: every language's locks
 * end in futex(2) when they have to sleep, so timing the wait commands per
 * thread (sys_enter → sys_exit) and keying them by the futex word measures
 * contention without touching any lock's fast path. An uncontended lock never
 * enters the kernel, so it costs nothing here.
 *
 * Waiter side: FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_LOCK_PI, FUTEX_LOCK_PI2,
 * FUTEX_WAIT_REQUEUE_PI and futex_waitv(2). A wait that returns
 * EAGAIN (the word changed before the thread slept) is not contention and is
 * only counted; one that times out or is interrupted did sleep and is kept,
 * flagged. Holder side: a FUTEX_WAKE (or WAKE_BITSET, WAKE_OP, the requeues)
 * that woke at least one thread, and FUTEX_UNLOCK_PI, which glibc only
 * issues when the word says there are waiters. The futex2 syscalls of 6.7
 * (futex_wait(2), futex_wake(2)) are not followed: nothing common uses them
 * yet, and every syscall tracepoint attached costs an RCU grace period to
 * detach (the agent's shutdown waits for each in turn).
 *
 * Tracepoint context: the per-syscall tracepoints (syscalls:sys_enter_futex …)
 * write the record the kernel describes as struct syscall_trace_enter /
 * syscall_trace_exit (kernel/trace/trace.h): the common header, the syscall
 * number, then each argument as an unsigned long (the tracefs format files
 * show size:8 for every field). That struct, not trace_event_raw_sys_enter
 * (the raw_syscalls:sys_enter record, whose `id` only happens to line up), is
 * the layout these programs read, and vmlinux.h marks it
 * preserve_access_index, so `args[]` and `ret` are CO-RE relocations against
 * the running kernel's BTF: a kernel that reshuffled the header would still
 * load correctly rather than silently read the wrong bytes. libbpf-tools
 * futexctn reads the same struct the same way.
 *
 * Targets: with filter_targets set, only processes in lock_targets are
 * followed; every other process costs one hash lookup at sys_enter and one
 * at sys_exit (two for a wake). Children of a target inherit it at fork
 * in the kernel (so nothing is missed while user space looks at them), and
 * user space re-decides at exec.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "futex.h"
#include "lib/events_lost.h"
#include "ulock.h"

#define EINTR 4
#define EAGAIN 11
#define ETIMEDOUT 110
#define ERESTARTSYS 512
#define ERESTART_RESTARTBLOCK 516

/* Follow only lock_targets (the agent with `locks.targets`, the CLI with -p). */
const volatile bool filter_targets = false;
/* Record user stacks (config locks.stacks). */
const volatile bool collect_stacks = true;
/* Report every exec/exit, not only targets': the agent needs them to find new
 * glibc copies, to re-evaluate selectors, and to drop per-process state. */
const volatile bool all_process_events = true;
/* Wake the consumer only once this much is waiting in the ring buffer. A
 * wakeup per record would cost the host more than the record under heavy
 * contention (a context switch of the agent per futex call); user space
 * drains the buffer on its own schedule anyway (every second). 0: wake as
 * usual (the trace CLI, which names stacks while the process still exists). */
const volatile __u64 wakeup_bytes = 1 << 20;
/* Read a wake's arguments from the task's saved user registers at sys_exit
 * (bpf_task_pt_regs, 5.15+) instead of storing them at sys_enter: a wake then
 * costs no hash update on the way in, which is on the lock hand-off path
 * (before the next owner is woken). User space clears it on older kernels;
 * the verifier prunes the unused branch. */
const volatile bool wake_args_from_regs = true;
/* Skip, at sys_enter, waits that no glibc uprobe classified and that do not
 * look like a lock (the same rule as user space's futex_other: neither the
 * value 2, nor an owner|waiters high bit, nor a PI command): idle thread
 * pools and runtime parking would otherwise cost a stack walk and a record
 * each, only to be dropped. The trace CLI's --all keeps them. */
const volatile bool skip_non_lock_waits = true;

/* A futex call in flight, per thread. */
struct futex_call {
	__u64 start_ns;
	__u64 uaddr;
	__u64 waiters; /* futex_waitv: the user array of struct futex_waitv */
	__u32 op;
	__u32 val;
	__u32 nr;      /* futex_waitv: its length */
	__u32 private_flag;
	__s32 stack_id; /* waits: taken at sys_enter */
	__u32 pad;
};

/* LRU, not a plain hash: an entry whose sys_exit never came (a thread torn
 * down mid-call) must not pin a slot forever. Sized far above the number of
 * threads that can block at once. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct futex_call);
} futex_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} lock_records SEC(".maps");

/* No BPF_F_REUSE_STACKID: a hash collision fails the new stack (-EEXIST)
 * rather than silently changing what an id already handed out means. User
 * space clears the map when it fills. */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 8192);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, LOCK_STACK_DEPTH * sizeof(__u64));
} lock_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOCK_SKIP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} futex_skipped SEC(".maps");

static __always_inline __u64 lazy_wakeup(void)
{
	if (!wakeup_bytes)
		return 0; /* the default: wake the consumer when it has caught up */
	return bpf_ringbuf_query(&lock_records, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										    : BPF_RB_NO_WAKEUP;
}

static __always_inline bool is_wait_op(__u32 op)
{
	switch (op) {
	case FUTEX_WAIT:
	case FUTEX_WAIT_BITSET:
	case FUTEX_LOCK_PI:
	case FUTEX_LOCK_PI2:
	case FUTEX_WAIT_REQUEUE_PI:
	case LOCK_OP_WAITV:
		return true;
	}
	return false;
}

static __always_inline bool is_wake_op(__u32 op)
{
	switch (op) {
	case FUTEX_WAKE:
	case FUTEX_WAKE_BITSET:
	case FUTEX_WAKE_OP:
	case FUTEX_REQUEUE:
	case FUTEX_CMP_REQUEUE:
	case FUTEX_CMP_REQUEUE_PI:
	case FUTEX_UNLOCK_PI:
		return true;
	}
	return false;
}

static __always_inline void count_skipped(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&futex_skipped, &reason);

	if (n)
		*n += 1; /* per-CPU slot */
}

static __always_inline bool targeted(__u32 tgid)
{
	return !filter_targets || bpf_map_lookup_elem(&lock_targets, &tgid);
}

static __always_inline int remember_call(void *ctx, __u64 uaddr, __u32 op, __u32 val, __u64 waiters, __u32 nr,
					 __u32 private_flag)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct futex_call call = {};

	if (!targeted(id >> 32))
		return 0;
	if (skip_non_lock_waits && is_wait_op(op) && op != FUTEX_LOCK_PI && op != FUTEX_LOCK_PI2 && val != 2 &&
	    !(val & 0x80000000)) {
		struct ulock_note *note = bpf_map_lookup_elem(&ulock_notes, &tid);

		if (!note || note->addr != uaddr)
			return 0;
	}
	/* A waiter's stack is the same before and after it sleeps; walking it
	 * now keeps the walk off the hand-off path (after the wake, before the
	 * new owner gets back to user space to take the lock). */
	call.stack_id = collect_stacks && is_wait_op(op) ? bpf_get_stackid(ctx, &lock_stacks, BPF_F_USER_STACK) : -1;
	call.start_ns = bpf_ktime_get_ns();
	call.uaddr = uaddr;
	call.op = op;
	call.val = val;
	call.waiters = waiters;
	call.nr = nr;
	call.private_flag = private_flag;
	bpf_map_update_elem(&futex_calls, &tid, &call, BPF_ANY);
	return 0;
}

static __always_inline void fill_common(struct lock_record *r, void *ctx, __u64 id, __u64 now, __u32 tid,
					bool wait, __s32 wait_stack_id)
{
	struct ulock_note *note;

	r->ts_ns = now;
	r->tgid = id >> 32;
	r->tid = tid;
	r->cgroup_id = bpf_get_current_cgroup_id();
	if (wait)
		r->stack_id = wait_stack_id;
	else
		r->stack_id = collect_stacks ? bpf_get_stackid(ctx, &lock_stacks, BPF_F_USER_STACK) : -1;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	/* The glibc note applies only to a call on the very word it named. */
	note = bpf_map_lookup_elem(&ulock_notes, &tid);
	if (note && note->addr == r->uaddr) {
		r->ulock_addr = note->addr;
		r->ret_vaddr = note->ret_vaddr;
		r->libc_id = note->libc_id;
		r->ulock_source = note->source;
	}
}

/* Emits the record for a finished call, or counts why not. */
static __always_inline int emit(void *ctx, struct futex_call *call_ptr, long ret, __u64 id, __u64 now)
{
	struct futex_call call = *call_ptr;
	__u32 tid = (__u32)id, flags = 0;
	struct lock_record *r;
	bool wait;

	if (call.private_flag)
		flags |= LOCK_FLAG_PRIVATE;
	wait = is_wait_op(call.op);
	if (wait) {
		if (ret == -EAGAIN) {
			count_skipped(LOCK_SKIP_VALUE_CHANGED);
			return 0;
		}
		if (ret == -ETIMEDOUT) {
			flags |= LOCK_FLAG_TIMED_OUT;
		} else if (ret == -EINTR || (ret <= -ERESTARTSYS && ret >= -ERESTART_RESTARTBLOCK)) {
			flags |= LOCK_FLAG_INTERRUPTED;
		} else if (ret < 0) {
			count_skipped(LOCK_SKIP_ERROR);
			return 0;
		}
		if (call.op == LOCK_OP_WAITV) {
			/* The word that woke us: waiters[ret].uaddr; the first one
			 * when it timed out or was interrupted. */
			__u64 index = ret >= 0 && ret < call.nr && ret < LOCK_WAITV_MAX ? ret : 0;
			__u64 uaddr = 0;

			bpf_probe_read_user(&uaddr, sizeof(uaddr),
					    (void *)(call.waiters + index * sizeof(struct futex_waitv) +
						     __builtin_offsetof(struct futex_waitv, uaddr)));
			call.uaddr = uaddr;
		}
	} else if (call.op == FUTEX_UNLOCK_PI ? ret != 0 : ret <= 0) {
		count_skipped(LOCK_SKIP_NOBODY_WOKEN);
		return 0;
	}

	r = reserve_or_count(&lock_records, sizeof(*r), wait ? LOCK_LOST_WAIT : LOCK_LOST_WAKE);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->type = wait ? LOCK_RECORD_WAIT : LOCK_RECORD_WAKE;
	r->wait_ns = wait ? now - call.start_ns : 0;
	r->uaddr = call.uaddr;
	r->ret = ret;
	r->op = call.op;
	r->val = call.val;
	r->flags = flags;
	fill_common(r, ctx, id, now, tid, wait, call.stack_id);
	bpf_ringbuf_submit(r, lazy_wakeup());
	return 0;
}

/* Finishes a call stored at sys_enter; returns 1 when there was one. */
static __always_inline int finish_call(void *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns();
	__u32 tid = (__u32)id;
	struct futex_call *in_flight, call;

	in_flight = bpf_map_lookup_elem(&futex_calls, &tid);
	if (!in_flight)
		return 0;
	call = *in_flight;
	bpf_map_delete_elem(&futex_calls, &tid);
	emit(ctx, &call, ret, id, now);
	return 1;
}

SEC("tracepoint/syscalls/sys_enter_futex")
int futex_enter(struct syscall_trace_enter *ctx)
{
	__u32 op = (__u32)ctx->args[1];
	__u32 cmd = op & LOCK_FUTEX_CMD_MASK;

	if (!is_wait_op(cmd) && !(is_wake_op(cmd) && !wake_args_from_regs))
		return 0;
	return remember_call(ctx, ctx->args[0], cmd, (__u32)ctx->args[2], 0, 0, op & FUTEX_PRIVATE_FLAG);
}

/* A wake whose arguments were not stored: read them back from the saved user
 * registers (the kernel returns in ax and leaves the argument registers as
 * the caller set them; the _SYSCALL accessors know each architecture's
 * syscall convention): futex(uaddr, op, count, …). */
static __always_inline int finish_wake_from_regs(void *ctx, long ret)
{
	struct pt_regs *regs;
	struct futex_call call = {};
	__u64 id = bpf_get_current_pid_tgid();
	__u32 op;

	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	op = (__u32)PT_REGS_PARM2_CORE_SYSCALL(regs);
	call.private_flag = op & FUTEX_PRIVATE_FLAG;
	op &= LOCK_FUTEX_CMD_MASK;
	if (!is_wake_op(op))
		return 0;
	call.val = (__u32)PT_REGS_PARM3_CORE_SYSCALL(regs);
	if (!targeted(id >> 32))
		return 0;
	call.op = op;
	call.uaddr = PT_REGS_PARM1_CORE_SYSCALL(regs);
	return emit(ctx, &call, ret, id, bpf_ktime_get_ns());
}

SEC("tracepoint/syscalls/sys_exit_futex")
int futex_exit(struct syscall_trace_exit *ctx)
{
	long ret = ctx->ret;

	/* Waits were stored at sys_enter (and, without wake_args_from_regs,
	 * wakes too); anything else may be a wake. */
	if (finish_call(ctx, ret) || !wake_args_from_regs)
		return 0;
	return finish_wake_from_regs(ctx, ret);
}

/* futex_waitv(waiters, nr_futexes, flags, timeout, clockid), 5.16+. */
SEC("tracepoint/syscalls/sys_enter_futex_waitv")
int futex_waitv_enter(struct syscall_trace_enter *ctx)
{
	return remember_call(ctx, 0, LOCK_OP_WAITV, 0, ctx->args[0], (__u32)ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_exit_futex_waitv")
int futex_waitv_exit(struct syscall_trace_exit *ctx)
{
	finish_call(ctx, ctx->ret);
	return 0;
}

/* --- following processes ------------------------------------------------------
 * raw_tp: the arguments are the tracepoint's TP_PROTO (task pointers), stable
 * since 4.17 and read through CO-RE; these fire once per fork/exec/exit. */

static __always_inline void emit_process_record(__u8 type, __u32 tgid)
{
	struct lock_record *r = reserve_or_count(&lock_records, sizeof(*r), LOCK_LOST_PROCESS);

	if (!r)
		return;
	__builtin_memset(r, 0, sizeof(*r));
	r->type = type;
	r->ts_ns = bpf_ktime_get_ns();
	r->tgid = tgid;
	r->tid = tgid;
	r->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	/* Rare, and user space acts on them (selectors, glibc discovery): now. */
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(lock_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 child_tgid, parent_tgid, *flags;

	if (!filter_targets)
		return 0;
	child_tgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) != child_tgid)
		return 0; /* a new thread: its process is followed or not already */
	parent_tgid = BPF_CORE_READ(parent, tgid);
	flags = bpf_map_lookup_elem(&lock_targets, &parent_tgid);
	if (flags && (*flags & LOCK_TARGET_INHERIT))
		bpf_map_update_elem(&lock_targets, &child_tgid, flags, BPF_NOEXIST);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(lock_process_exec, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);

	if (all_process_events || targeted(tgid))
		emit_process_record(LOCK_RECORD_EXEC, tgid);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(lock_process_exit, struct task_struct *p)
{
	__u32 tgid;

	/* do_exit() decrements signal->live before this tracepoint: 0 means the
	 * last thread of the process is leaving. */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	tgid = BPF_CORE_READ(p, tgid);
	if (filter_targets) {
		if (!bpf_map_lookup_elem(&lock_targets, &tgid))
			return 0;
		/* A reused pid must not inherit the dead process's target. */
		bpf_map_delete_elem(&lock_targets, &tgid);
	} else if (!all_process_events) {
		return 0;
	}
	emit_process_record(LOCK_RECORD_EXIT, tgid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
