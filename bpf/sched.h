/* Shared between bpf/sched.bpf.c and agent/collectors/sched.cpp: fixed-size
 * types only, no C++. */
#ifndef SYNCSCOPE_BPF_SCHED_H
#define SYNCSCOPE_BPF_SCHED_H

#include "lib/histogram.h"

/* Per cgroup v2 (key: cgroup id), updated with atomic adds. */
struct sched_cgroup_stats {
	__u64 runq_slots[LL_SLOTS]; /* run-queue latency, log-linear ns buckets */
	__u64 runq_sum_ns;
	__u64 switches_voluntary;   /* the task blocked (slept, waited) */
	__u64 switches_involuntary; /* preempted while still runnable */
};

/* Cgroup id under which counts land when the cgroup map is full: user space
 * inserts it before attaching and exports it as cgroup="other". */
#define SCHED_OTHER_CGROUP_ID 0

/* Run-queue length: tasks waiting on a CPU's run queue (its nr_running minus
 * the one running), sampled on a timer; linear slots, the last one catches >=. */
#define RUNQLEN_SLOTS 64
struct sched_runqlen_hist {
	__u64 slots[RUNQLEN_SLOTS];
	__u64 sum;
};

/* Exact SLO counting: for each configured (cgroup, threshold) pair, how many
 * wakeups waited at all and how many waited longer than the threshold. Counting
 * here, not from buckets, is what makes the SLI exact. */
#define SCHED_MAX_SLOS 64
struct sched_slo {
	__u64 cgroup_id; /* the target cgroup: the task's own cgroup or an ancestor */
	__u32 level;     /* the target cgroup's depth (root = 0) */
	__u32 pad;
	__u64 threshold_ns;
};
struct sched_slo_counts {
	__u64 total;
	__u64 over;
};
struct sched_slo_table {
	struct sched_slo_counts rows[SCHED_MAX_SLOS];
};

#endif /* SYNCSCOPE_BPF_SCHED_H */
