// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Go sync.Mutex / sync.RWMutex contention.
 *
 * Go parks a goroutine that waits for a mutex in the runtime scheduler, not
 * in futex(2), so the futex tracepoints never see it. The functions probed
 * here run only when a lock is contended:
 *   {internal/,}sync.(*Mutex).lockSlow    the Lock fast path (one CAS, inlined
 *                                         into the caller) failed
 *   sync.runtime_SemacquireRWMutex{,R}    an RWMutex writer waits for readers
 *                                         to drain / a reader for a writer
 *                                         (Go >= 1.20)
 *   sync.runtime_SemacquireMutex          the same on Go < 1.20, where RWMutex
 *                                         and lockSlow share it
 *   {internal/,}sync.(*Mutex).unlockSlow  the holder side: Unlock found waiters
 *   sync.(*RWMutex).rUnlockSlow           a reader's RUnlock found a writer waiting
 * An uncontended Lock or Unlock never calls them, so it never traps.
 *
 * Each lock function gets a uprobe at its entry and one at every RET instruction
 * (user space finds them with capstone); the pair measures the wait. Never a
 * uretprobe: the kernel replaces the return address on the goroutine's stack,
 * and when the runtime copies the stack to grow it the unwinder meets a
 * trampoline address it does not know and the program crashes.
 *
 * Go register ABI (amd64, Go >= 1.17): argument 0 in RAX, the current g in
 * R14. A goroutine can move to another thread while it waits (that is the
 * point of parking), so the in-flight state is keyed by (tgid, goid), goid
 * read from g at the offset user space passes in the cookie.
 *
 * At a RET the stack pointer points at the return address into the caller
 * and RBP has been restored to the caller's frame, so a frame-pointer walk
 * from there skips the immediate caller (typically the function where
 * Mutex.Lock was inlined: the one the user wants to see). The record carries
 * that word separately; user space splices it in as the second frame.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "golang.h"
#include "lib/events_lost.h"

/* Follow only lock_targets (shared with futex.bpf.o through reuse_fd). */
const volatile bool filter_targets = false;
/* Wake the consumer only once this much is waiting (0: every record). */
const volatile __u64 wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* LOCK_TARGETS_MAX: must match futex.bpf.o's */
	__type(key, __u32);
	__type(value, __u32);
} lock_targets SEC(".maps");

struct go_wait_key {
	__u64 goid;
	__u32 tgid;
	__u32 function;
};

struct go_wait_start {
	__u64 start_ns;
	__u64 addr;
};

/* LRU: a goroutine that never reaches a RET (a panic unwinding through the
 * slow path, a process killed mid-wait) cannot fill the map; user space also
 * sweeps entries older than its timeout and those of exited processes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GO_INFLIGHT_MAX);
	__type(key, struct go_wait_key);
	__type(value, struct go_wait_start);
} go_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} go_records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GO_HIT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} go_hits SEC(".maps");

static __always_inline void count_hit(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&go_hits, &what);

	if (n)
		*n += 1;
}

/* goid of the goroutine running this code, 0 when R14 holds no readable g. */
static __always_inline __u64 current_goid(struct pt_regs *ctx, __u64 cookie)
{
	__u64 g = ctx->r14, goid = 0;
	__u32 goid_offset = (cookie >> GO_COOKIE_GOID_SHIFT) & 0xffff;

	if (!g || bpf_probe_read_user(&goid, sizeof(goid), (void *)(g + goid_offset)))
		return 0;
	return goid;
}

SEC("uprobe")
int go_lock_entry(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cookie = bpf_get_attach_cookie(ctx);
	__u32 tgid = id >> 32;
	struct go_wait_key key = {};
	struct go_wait_start start = {};

	if (filter_targets && !bpf_map_lookup_elem(&lock_targets, &tgid))
		return 0;
	count_hit(GO_HIT_ENTRY);
	key.goid = current_goid(ctx, cookie);
	if (!key.goid) {
		count_hit(GO_HIT_NO_G);
		return 0;
	}
	key.tgid = tgid;
	key.function = cookie & 0xff;
	if (key.function == GO_FN_SEMACQUIRE_MUTEX) {
		/* Before Go 1.20 lockSlow parks through the same function: that wait
		 * is already being timed as the mutex's. */
		struct go_wait_key outer = key;

		outer.function = GO_FN_LOCK_SLOW;
		if (bpf_map_lookup_elem(&go_inflight, &outer))
			return 0;
	}
	start.start_ns = bpf_ktime_get_ns();
	start.addr = ctx->ax;
	bpf_map_update_elem(&go_inflight, &key, &start, BPF_ANY);
	return 0;
}

/* Fills and submits one record; `ts`, `wait_ns` and `addr` are the caller's. */
static __always_inline void submit_record(struct pt_regs *ctx, __u64 id, __u64 goid, __u32 function,
					  __u64 ts, __u64 wait_ns, __u64 addr)
{
	struct go_lock_record *rec = reserve_or_count(&go_records, sizeof(*rec), GO_LOST_WAIT);
	__u64 flags = 0;

	if (!rec)
		return;
	rec->ts_ns = ts;
	rec->wait_ns = wait_ns;
	rec->addr = addr;
	rec->goid = goid;
	rec->cgroup_id = bpf_get_current_cgroup_id();
	rec->caller_pc = 0;
	bpf_probe_read_user(&rec->caller_pc, sizeof(rec->caller_pc), (void *)PT_REGS_SP(ctx));
	rec->tgid = id >> 32;
	rec->tid = (__u32)id;
	rec->function = function;
	bpf_get_current_comm(rec->comm, sizeof(rec->comm));
	rec->stack_len = bpf_get_stack(ctx, rec->ips, sizeof(rec->ips), BPF_F_USER_STACK);
	if (wakeup_bytes && bpf_ringbuf_query(&go_records, BPF_RB_AVAIL_DATA) < wakeup_bytes)
		flags = BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(rec, flags);
}

SEC("uprobe")
int go_lock_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cookie = bpf_get_attach_cookie(ctx), now;
	__u32 tgid = id >> 32;
	struct go_wait_key key = {};
	struct go_wait_start *start;

	if (filter_targets && !bpf_map_lookup_elem(&lock_targets, &tgid))
		return 0;
	count_hit(GO_HIT_RET);
	key.goid = current_goid(ctx, cookie);
	if (!key.goid)
		return 0;
	key.tgid = tgid;
	key.function = cookie & 0xff;
	start = bpf_map_lookup_elem(&go_inflight, &key);
	if (!start) {
		count_hit(GO_HIT_RET_UNMATCHED);
		return 0;
	}
	now = bpf_ktime_get_ns();
	submit_record(ctx, id, key.goid, key.function, now, now - start->start_ns, start->addr);
	bpf_map_delete_elem(&go_inflight, &key);
	return 0;
}

/* The holder side: unlockSlow runs only when Unlock found waiters (or the
 * woken/starving flags) in the state word, rUnlockSlow only when a reader's
 * RUnlock finds a writer waiting. Either is a release somebody waits for;
 * the releasing goroutine's stack is the holder stack (what Go's own mutex
 * profile records). At the entry the stack pointer points at the return
 * address into the caller, as at a RET. */
SEC("uprobe")
int go_unlock_entry(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), cookie = bpf_get_attach_cookie(ctx);
	__u32 tgid = id >> 32;

	if (filter_targets && !bpf_map_lookup_elem(&lock_targets, &tgid))
		return 0;
	count_hit(GO_HIT_UNLOCK);
	submit_record(ctx, id, current_goid(ctx, cookie), cookie & 0xff, bpf_ktime_get_ns(), 0, ctx->ax);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
