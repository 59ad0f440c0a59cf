// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Run-queue latency, context switches and run-queue length, aggregated in the
 * kernel per cgroup v2.
 *
 * Run-queue latency is the time from the moment a task becomes runnable
 * (sched_wakeup, sched_wakeup_new, or switched out while still TASK_RUNNING) to
 * the moment it is switched in — libbpf-tools runqlat's definition. Unlike
 * runqlat's cgroup filter, which tests the *waker* (current) at wakeup time,
 * everything here is keyed by the task that waited.
 *
 * Two twins of each tracepoint program exist: tp_btf (typed arguments, task
 * local storage for the enqueue timestamp, no hash-map update/delete per
 * event, direct loads from the typed task pointers instead of
 * bpf_probe_read_kernel() calls) and raw_tp (a tid-keyed hash map and
 * BPF_CORE_READ, for kernels where tp_btf or task storage is unavailable).
 * User space autoloads exactly one family; `btf` below is a compile-time
 * constant in each, so each twin carries only its own code.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lib/task.h"
#include "sched.h"

#define TASK_RUNNING 0

/* Filters for `syncscope trace runqlat -p/-c`; the agent leaves them at 0. */
const volatile __u32 targ_tgid = 0;
const volatile __u64 targ_cgroup_id = 0;
const volatile __u32 targ_cgroup_level = 0;
/* Histogram unit: the agent bins nanoseconds from 2^10 ns up; the CLI bins
 * microseconds (or milliseconds, -m) from 1 up so its rows match runqlat's. */
const volatile __u64 hist_unit_ns = 1;
const volatile __u32 hist_min_shift = LL_MIN_SHIFT;

/* Exact SLO counting rows, written by user space through the mmap'ed .bss:
 * rows first, then nr_slos, so a reload never exposes a half-written row. A
 * global array rather than a map keeps the loop free of helper calls. */
__u32 nr_slos = 0;
struct sched_slo slo_rows[SCHED_MAX_SLOS];

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} enqueued_at_storage SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} enqueued_at_hash SEC(".maps");

/* A plain hash with atomic adds rather than a per-CPU hash: a per-CPU value of
 * ~750 bytes times thousands of cgroups times 100+ CPUs would cost hundreds of
 * megabytes of locked memory on a large host. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct sched_cgroup_stats);
} cgroup_stats SEC(".maps");

/* One zeroed value to insert new cgroups from: a 760-byte struct does not fit
 * on the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sched_cgroup_stats);
} zero_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sched_runqlen_hist);
} runqlen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sched_slo_table);
} slo_counts SEC(".maps");

/* Weak: kernels without per-CPU variables in BTF (before 5.10) still load the
 * object; user space then leaves sample_runq_length unloaded. */
extern const struct rq runqueues __ksym __weak;

static __always_inline bool filtered_out(struct task_struct *task)
{
	if (targ_tgid && BPF_CORE_READ(task, tgid) != targ_tgid)
		return true;
	if (targ_cgroup_id && task_cgroup_ancestor_id(task, targ_cgroup_level) != targ_cgroup_id)
		return true;
	return false;
}

static __always_inline struct sched_cgroup_stats *stats_of(__u64 cgroup_id)
{
	struct sched_cgroup_stats *stats;
	__u32 zero = 0;
	void *zeroes;

	stats = bpf_map_lookup_elem(&cgroup_stats, &cgroup_id);
	if (stats)
		return stats;
	zeroes = bpf_map_lookup_elem(&zero_stats, &zero);
	if (zeroes)
		bpf_map_update_elem(&cgroup_stats, &cgroup_id, zeroes, BPF_NOEXIST);
	stats = bpf_map_lookup_elem(&cgroup_stats, &cgroup_id);
	if (stats)
		return stats;
	/* Map full: count under "other" rather than lose the event. */
	cgroup_id = SCHED_OTHER_CGROUP_ID;
	return bpf_map_lookup_elem(&cgroup_stats, &cgroup_id);
}

static __always_inline void mark_enqueued(struct task_struct *task, bool btf)
{
	__u32 pid = btf ? task->pid : BPF_CORE_READ(task, pid);
	__u64 now, *slot;

	if (!pid || filtered_out(task))
		return;
	now = bpf_ktime_get_ns();
	if (btf) {
		slot = bpf_task_storage_get(&enqueued_at_storage, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (slot)
			*slot = now;
	} else {
		bpf_map_update_elem(&enqueued_at_hash, &pid, &now, BPF_ANY);
	}
}

static __always_inline void count_slos(struct task_struct *task, __u64 cgroup_id, __u64 delta_ns)
{
	struct sched_slo_table *table;
	__u32 zero = 0, n = nr_slos;

	table = bpf_map_lookup_elem(&slo_counts, &zero);
	if (!table)
		return;
	for (__u32 i = 0; i < SCHED_MAX_SLOS && i < n; i++) {
		struct sched_slo *slo = &slo_rows[i];

		if (slo->cgroup_id != cgroup_id &&
		    task_cgroup_ancestor_id(task, slo->level) != slo->cgroup_id)
			continue;
		table->rows[i].total++;
		if (delta_ns > slo->threshold_ns)
			table->rows[i].over++;
	}
}

static __always_inline void on_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
				      bool btf)
{
	struct sched_cgroup_stats *stats, *prev_stats = NULL;
	__u64 enqueued_ns = 0, delta_ns, cgroup_id, prev_cgroup_id = 0, *slot;
	__u32 next_pid;

	if (btf ? prev->pid : BPF_CORE_READ(prev, pid)) {
		/* The kernel's own rule (__schedule): a switch is voluntary when the
		 * task was not preempted and had left TASK_RUNNING. prev is still
		 * `current` here, so the cheap helper gives its cgroup. */
		bool still_runnable = (btf ? task_state_btf(prev) : task_state(prev)) == TASK_RUNNING;

		prev_cgroup_id = bpf_get_current_cgroup_id();
		prev_stats = stats_of(prev_cgroup_id);
		if (prev_stats) {
			if (preempt || still_runnable)
				__sync_fetch_and_add(&prev_stats->switches_involuntary, 1);
			else
				__sync_fetch_and_add(&prev_stats->switches_voluntary, 1);
		}
		if (still_runnable)
			mark_enqueued(prev, btf);
	}

	next_pid = btf ? next->pid : BPF_CORE_READ(next, pid);
	if (!next_pid)
		return;
	if (btf) {
		slot = bpf_task_storage_get(&enqueued_at_storage, next, 0, 0);
		if (!slot || !*slot)
			return;
		enqueued_ns = *slot;
		*slot = 0;
	} else {
		slot = bpf_map_lookup_elem(&enqueued_at_hash, &next_pid);
		if (!slot)
			return;
		enqueued_ns = *slot;
		bpf_map_delete_elem(&enqueued_at_hash, &next_pid);
	}
	delta_ns = bpf_ktime_get_ns() - enqueued_ns;
	if ((__s64)delta_ns < 0)
		return;

	cgroup_id = btf ? task_cgroup_id_btf(next) : task_cgroup_id(next);
	/* Threads of one service hand the CPU to each other: reuse prev's row
	 * rather than look the same cgroup up twice. */
	stats = prev_stats && cgroup_id == prev_cgroup_id ? prev_stats : stats_of(cgroup_id);
	if (stats) {
		__u32 bucket = ll_slot(hist_unit_ns > 1 ? delta_ns / hist_unit_ns : delta_ns, hist_min_shift);

		if (bucket < LL_SLOTS)
			__sync_fetch_and_add(&stats->runq_slots[bucket], 1);
		__sync_fetch_and_add(&stats->runq_sum_ns, delta_ns);
	}
	if (nr_slos)
		count_slos(next, cgroup_id, delta_ns);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(tp_btf_sched_wakeup, struct task_struct *p)
{
	mark_enqueued(p, true);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(tp_btf_sched_wakeup_new, struct task_struct *p)
{
	mark_enqueued(p, true);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(tp_btf_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(preempt, prev, next, true);
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(raw_tp_sched_wakeup, struct task_struct *p)
{
	mark_enqueued(p, false);
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(raw_tp_sched_wakeup_new, struct task_struct *p)
{
	mark_enqueued(p, false);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(raw_tp_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(preempt, prev, next, false);
	return 0;
}

static __always_inline void record_runq_length(__u32 nr_running)
{
	struct sched_runqlen_hist *hist;
	__u32 zero = 0, waiting = nr_running ? nr_running - 1 : 0;

	hist = bpf_map_lookup_elem(&runqlen, &zero);
	if (!hist)
		return;
	hist->slots[waiting < RUNQLEN_SLOTS ? waiting : RUNQLEN_SLOTS - 1]++;
	hist->sum += waiting;
}

/* Both run on a per-CPU cpu-clock perf event (runq_length_sample_hz) and read
 * the CPU's own rq->nr_running, which counts every runnable task of every
 * scheduling class, unlike a cgroup's cfs_rq; the running task itself is not
 * waiting. User space loads one of the two. */

/* Through the per-CPU `runqueues` variable: needs its address in kallsyms
 * (CONFIG_KALLSYMS_ALL), which many kernels, these VMs' included, lack. */
SEC("perf_event")
int sample_runq_length_ksym(void *ctx)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);

	record_runq_length(BPF_CORE_READ(rq, nr_running));
	return 0;
}

/* Through the running task: its sched_entity's cfs_rq points back at the
 * CPU's rq (cfs_rq::rq exists with CONFIG_FAIR_GROUP_SCHED, which every
 * systemd distribution enables). set_task_rq() sets se.cfs_rq for tasks of
 * every class, the idle task included. */
SEC("perf_event")
int sample_runq_length_task(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();

	record_runq_length(BPF_CORE_READ(task, se.cfs_rq, rq, nr_running));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
