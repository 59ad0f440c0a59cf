// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Cache-line contention: hardware-watchpoint hits, sampled memory accesses,
 * atomic-call rates and per-cgroup cache counters.
 *
 * Watchpoints. User space opens PERF_TYPE_BREAKPOINT events per thread of a
 * target (pid = tid), at most four per thread (x86 DR0-3), on the words of a
 * candidate line, and attaches cacheline_watch_hit to each. Which breakpoint
 * fired: perf_bp_event() initialises the sample with the breakpoint's own
 * address (perf_sample_data_init(&sample, bp->attr.bp_addr, 0), since 2.6.33),
 * and the program reads it as ctx->addr (struct bpf_perf_event_data::addr,
 * 4.17). The type and length of the watch are read from the perf event itself
 * (ctx is a struct bpf_perf_event_data_kern; event->attr is what
 * PERF_EVENT_IOC_MODIFY_ATTRIBUTES last set), so a re-aimed watchpoint reports
 * its new shape without any table lookup. bpf_get_attach_cookie would also
 * work for perf_event links (5.15), but a cookie is fixed when the link is
 * created and cannot follow a re-aim; the generation counter below tells user
 * space which phase a hit belongs to on kernels where the event cannot be
 * read. x86 data breakpoints are traps: regs->ip is the instruction after the
 * access.
 *
 * Samples. cacheline_mem_sample runs on memory-access samples that carry a
 * data address (PERF_SAMPLE_ADDR | PERF_SAMPLE_DATA_SRC): Intel mem-loads /
 * mem-stores, AMD IBS op — or, on hosts without a PMU and in the tests, the
 * page-fault software event, whose address is the faulting one. The program
 * is the same for all of them; only the perf event differs. data_src (load or
 * store, HITM) is read from the sample data; the page-fault event has none.
 *
 * Atomics. cacheline_atomic_call is a uprobe on an out-of-line atomic
 * (libatomic's __atomic_*, a Go sync/atomic function that was not inlined, or
 * a user-named function); the bpf_cookie says which register holds the
 * address. Calls are counted per (thread, address, function) in a hash that
 * user space reads and clears: attached in bounded windows only, never
 * always-on.
 *
 * Cache counters. cacheline_cache_references / _misses run on the overflow
 * of hardware cache counters (one per CPU) and add the period to the current
 * task's cgroup, like libbpf-tools llcstat does per process.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "cacheline.h"
#include "lib/events_lost.h"

/* Follow only cacheline_targets in the sampler (the CLI with -p, the agent
 * with cachelines.targets). */
const volatile bool filter_targets = false;
/* Wake the consumer only when this much is waiting; user space drains the
 * buffer after every watch window anyway. */
const volatile __u64 wakeup_bytes = 256 << 10;

/* Bumped by user space (through the mmap'ed .bss) while every watchpoint is
 * disabled between two phases of a window: hits carry it. */
__u32 watch_generation = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 << 20);
} cacheline_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CL_TARGETS_MAX);
	__type(key, __u32);
	__type(value, __u8);
} cacheline_targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct cacheline_atomic_key);
	__type(value, struct cacheline_atomic_count);
} atomic_calls SEC(".maps");

/* Not per-CPU: a cgroup row is two counters, and a per-CPU value times
 * thousands of cgroups times 100+ CPUs would pin megabytes for nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct cacheline_cgroup_counts);
} cgroup_cache SEC(".maps");

static __always_inline __u64 lazy_wakeup(void)
{
	if (!wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&cacheline_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
											  : BPF_RB_NO_WAKEUP;
}

static __always_inline void fill_common(struct cacheline_event *e, struct bpf_perf_event_data *ctx, __u8 kind)
{
	__u64 id = bpf_get_current_pid_tgid();

	e->time_ns = bpf_ktime_get_ns();
	e->addr = ctx->addr;
	e->ip = PT_REGS_IP(&ctx->regs);
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	e->kind = kind;
	e->data_src = 0;
	e->access = CL_ACCESS_UNKNOWN;
	e->bp_len = 0;
	e->flags = 0;
	e->pad = 0;
}

SEC("perf_event")
int cacheline_watch_hit(struct bpf_perf_event_data *ctx)
{
	struct bpf_perf_event_data_kern *kctx = (void *)ctx;
	struct cacheline_event *e;
	struct perf_event *event;
	__u32 bp_type = 0;
	__u64 bp_len = 0;

	e = reserve_or_count(&cacheline_events, sizeof(*e), CL_LOST_WATCH);
	if (!e)
		return 0;
	fill_common(e, ctx, CL_EVENT_WATCH);
	e->generation = watch_generation;
	event = BPF_CORE_READ(kctx, event);
	if (event) {
		bp_type = BPF_CORE_READ(event, attr.bp_type);
		bp_len = BPF_CORE_READ(event, attr.bp_len);
		e->flags |= CL_FLAG_TYPE_FROM_EVENT;
	}
	e->access = bp_type == CL_BP_W ? CL_ACCESS_STORE : bp_type == CL_BP_RW ? CL_ACCESS_READ_WRITE : CL_ACCESS_UNKNOWN;
	e->bp_len = (__u8)bp_len;
	bpf_ringbuf_submit(e, lazy_wakeup());
	/* 0: no perf sample for the event's own buffer (there is none). */
	return 0;
}

/* union perf_mem_data_src bits (include/uapi/linux/perf_event.h). */
#define E2BIG 7

#define MEM_OP_LOAD 0x02
#define MEM_OP_STORE 0x04
#define MEM_SNOOP_HITM 0x10
#define MEM_SNOOPX_PEER 0x02

SEC("perf_event")
int cacheline_mem_sample(struct bpf_perf_event_data *ctx)
{
	struct bpf_perf_event_data_kern *kctx = (void *)ctx;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	union perf_mem_data_src src = {};
	struct cacheline_event *e;

	if (filter_targets && !bpf_map_lookup_elem(&cacheline_targets, &tgid))
		return 0;
	if (!ctx->addr)
		return 0; /* no data address (a kernel-only access, or IBS without a valid address) */
	e = reserve_or_count(&cacheline_events, sizeof(*e), CL_LOST_SAMPLE);
	if (!e)
		return 0;
	fill_common(e, ctx, CL_EVENT_SAMPLE);
	e->generation = 0;
	src.val = BPF_CORE_READ(kctx, data, data_src.val);
	e->data_src = src.val;
	if (src.mem_op & MEM_OP_STORE)
		e->access = CL_ACCESS_STORE;
	else if (src.mem_op & MEM_OP_LOAD)
		e->access = CL_ACCESS_LOAD;
	if ((src.mem_snoop & MEM_SNOOP_HITM) || (src.mem_snoopx & MEM_SNOOPX_PEER))
		e->flags |= CL_FLAG_HITM;
	bpf_ringbuf_submit(e, lazy_wakeup());
	return 0;
}

static __always_inline __u64 arg_register(struct pt_regs *regs, __u32 abi, __u32 arg)
{
	if (abi == CL_ABI_GO) {
		switch (arg) {
		case 0: return BPF_CORE_READ(regs, ax);
		case 1: return BPF_CORE_READ(regs, bx);
		case 2: return BPF_CORE_READ(regs, cx);
		case 3: return BPF_CORE_READ(regs, di);
		case 4: return BPF_CORE_READ(regs, si);
		case 5: return BPF_CORE_READ(regs, r8);
		default: return 0;
		}
	}
	switch (arg) {
	case 0: return PT_REGS_PARM1_CORE(regs);
	case 1: return PT_REGS_PARM2_CORE(regs);
	case 2: return PT_REGS_PARM3_CORE(regs);
	case 3: return PT_REGS_PARM4_CORE(regs);
	case 4: return PT_REGS_PARM5_CORE(regs);
	case 5: return BPF_CORE_READ(regs, r9);
	default: return 0;
	}
}

SEC("uprobe")
int cacheline_atomic_call(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), id = bpf_get_current_pid_tgid();
	struct cacheline_atomic_key key = {};
	struct cacheline_atomic_count *count, fresh = {};

	key.addr = arg_register(ctx, cookie & 0xff, (cookie >> 8) & 0xff);
	if (!key.addr)
		return 0;
	key.tgid = id >> 32;
	key.tid = (__u32)id;
	key.function = cookie >> 32;
	count = bpf_map_lookup_elem(&atomic_calls, &key);
	if (count) {
		__sync_fetch_and_add(&count->calls, 1);
		return 0;
	}
	fresh.calls = 1;
	fresh.cgroup_id = bpf_get_current_cgroup_id();
	if (bpf_map_update_elem(&atomic_calls, &key, &fresh, BPF_NOEXIST) == -E2BIG)
		count_event_lost(CL_LOST_ATOMIC);
	/* -EEXIST: another CPU inserted the row first; one call lost, harmless. */
	return 0;
}

static __always_inline int add_cache_count(struct bpf_perf_event_data *ctx, __u32 counter)
{
	__u64 cgroup = bpf_get_current_cgroup_id();
	struct cacheline_cgroup_counts *row, fresh = {};

	row = bpf_map_lookup_elem(&cgroup_cache, &cgroup);
	if (!row) {
		bpf_map_update_elem(&cgroup_cache, &cgroup, &fresh, BPF_NOEXIST);
		row = bpf_map_lookup_elem(&cgroup_cache, &cgroup);
		if (!row)
			return 0;
	}
	if (counter < 2)
		__sync_fetch_and_add(&row->counts[counter], ctx->sample_period);
	return 0;
}

SEC("perf_event")
int cacheline_cache_references(struct bpf_perf_event_data *ctx)
{
	return add_cache_count(ctx, CL_COUNTER_REFERENCES);
}

SEC("perf_event")
int cacheline_cache_misses(struct bpf_perf_event_data *ctx)
{
	return add_cache_count(ctx, CL_COUNTER_MISSES);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
