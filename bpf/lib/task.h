/* CO-RE accessors for task_struct fields whose names or types changed across
 * kernel versions. */
#ifndef SYNCSCOPE_BPF_LIB_TASK_H
#define SYNCSCOPE_BPF_LIB_TASK_H

#include <bpf/bpf_core_read.h>

/* task_struct::state was renamed __state in 5.14 (commit 2f064a59a11f,
 * "sched: Change task_struct::state"). */
struct task_struct___pre_5_14 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return BPF_CORE_READ(task, __state);
	return BPF_CORE_READ((struct task_struct___pre_5_14 *)task, state);
}

/* The *_btf twins are for pointers the verifier knows as typed kernel
 * memory (tp_btf and fentry arguments, bpf_get_current_task_btf()): they load
 * the fields directly, one instruction each, where BPF_CORE_READ costs a
 * bpf_probe_read_kernel() call per pointer hop. On the scheduler's hottest
 * tracepoint that difference is most of our cost per event. raw_tp and
 * kprobe arguments are plain integers to the verifier and need the helpers. */
static __always_inline long task_state_btf(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return task->__state;
	return ((struct task_struct___pre_5_14 *)task)->state;
}

/* The cgroup v2 id of a task: the kernfs node id of its default-hierarchy
 * cgroup, the same number bpf_get_current_cgroup_id() returns and the inode
 * number of the group's directory under the cgroup2 mount. kernfs_node::id is a
 * u64 since 5.5 (commit 67c0496e87d1, "kernfs: convert kernfs_node->id from
 * union kernfs_node_id to u64"). */
static __always_inline __u64 task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline __u64 task_cgroup_id_btf(struct task_struct *task)
{
	return task->cgroups->dfl_cgrp->kn->id;
}

/* cgroup::ancestor_ids[] became cgroup::ancestors[] in 6.1 (commit 7f203bc89eb6,
 * "cgroup: Replace cgroup->ancestor_ids[] with ->ancestors[]"). */
struct cgroup___pre_6_1 {
	int level;
	__u64 ancestor_ids[];
} __attribute__((preserve_access_index));

/* Id of the ancestor of `task`'s cgroup at `level` (0 = root), or 0 when the
 * task's cgroup is shallower than that. */
static __always_inline __u64 task_cgroup_ancestor_id(struct task_struct *task, int level)
{
	struct cgroup *cgrp = BPF_CORE_READ(task, cgroups, dfl_cgrp);
	struct cgroup *ancestor;

	if (!cgrp || BPF_CORE_READ(cgrp, level) < level)
		return 0;
	if (bpf_core_field_exists(cgrp->ancestors)) {
		ancestor = BPF_CORE_READ(cgrp, ancestors[level]);
		return ancestor ? BPF_CORE_READ(ancestor, kn, id) : 0;
	}
	return BPF_CORE_READ((struct cgroup___pre_6_1 *)cgrp, ancestor_ids[level]);
}

#endif /* SYNCSCOPE_BPF_LIB_TASK_H */
