// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Tiny programs, one per program kind the agent may use. The feature probe
 * loads (and where it matters attaches) each one on its own: whether the
 * kernel accepts it is the answer, which no version number gives reliably on
 * distribution kernels. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} probe_task_storage SEC(".maps");

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_tp_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_task_storage_prog, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 *slot = bpf_task_storage_get(&probe_task_storage, next, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (slot)
		*slot = 1;
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(probe_raw_tp, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

SEC("fentry/do_nanosleep")
int BPF_PROG(probe_fentry)
{
	return 0;
}

SEC("kprobe/do_nanosleep")
int BPF_KPROBE(probe_kprobe)
{
	return 0;
}

SEC("perf_event")
int probe_perf_event(void *ctx)
{
	return 0;
}

extern const struct rq runqueues __ksym __weak;

SEC("perf_event")
int probe_runqueues_ksym(void *ctx)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);

	return rq->nr_running ? 1 : 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
