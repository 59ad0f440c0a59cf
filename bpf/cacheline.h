/* Shared between bpf/cacheline.bpf.c and agent/collectors/cacheline*.cpp:
 * fixed-size types only, no C++.
 *
 * One ring buffer carries two record kinds: hardware-watchpoint hits and
 * memory-access samples (a PMU event with data addresses, or the page-fault
 * software event standing in for it). Atomic-call uprobes and the per-cgroup
 * cache counters aggregate in maps instead: their rate is the work's rate, not
 * contention's, so they must not cost a record each.
 */
#ifndef SYNCSCOPE_BPF_CACHELINE_H
#define SYNCSCOPE_BPF_CACHELINE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CACHELINE_BYTES 64

/* cacheline_event::kind */
#define CL_EVENT_WATCH 1  /* a hardware watchpoint fired */
#define CL_EVENT_SAMPLE 2 /* a sampled memory access (PMU, or the stand-in event) */

/* cacheline_event::access */
#define CL_ACCESS_UNKNOWN 0
#define CL_ACCESS_LOAD 1
#define CL_ACCESS_STORE 2
#define CL_ACCESS_READ_WRITE 3 /* a read-or-write watchpoint: either */

/* cacheline_event::flags */
#define CL_FLAG_HITM 0x1       /* data_src: the line was modified in another core's cache */
#define CL_FLAG_TYPE_FROM_EVENT 0x2 /* bp_type/bp_len were read from the perf event itself */

/* events_lost sources (index → name in user space). */
#define CL_LOST_WATCH 0
#define CL_LOST_SAMPLE 1
#define CL_LOST_ATOMIC 2 /* the atomic-call table was full */

/* Hardware breakpoint types (include/uapi/linux/hw_breakpoint.h), repeated
 * here because vmlinux.h carries enums only when the kernel's BTF has them. */
#define CL_BP_R 1
#define CL_BP_W 2
#define CL_BP_RW 3

struct cacheline_event {
	__u64 time_ns;
	__u64 addr;     /* watch: the watched address (bp_addr); sample: the data address */
	__u64 ip;       /* user instruction pointer (watch: the instruction after the access) */
	__u64 data_src; /* samples: union perf_mem_data_src; 0 when the event has none */
	__u64 cgroup_id;
	__u32 tgid;
	__u32 tid;
	__u32 cpu;
	__u32 generation; /* watch: user space's phase counter when the trap ran */
	__u8 kind;        /* CL_EVENT_* */
	__u8 access;      /* CL_ACCESS_* */
	__u8 bp_len;      /* watch: 1, 2, 4 or 8 (0 when unknown) */
	__u8 flags;       /* CL_FLAG_* */
	__u32 pad;
};

/* Atomic calls, counted per (thread, address, function) in the kernel. */
struct cacheline_atomic_key {
	__u64 addr;
	__u32 tgid;
	__u32 tid;
	__u32 function; /* user space's index of the probed function */
	__u32 pad;
};

struct cacheline_atomic_count {
	__u64 calls;
	__u64 cgroup_id;
};

/* Which register holds the address argument of a probed atomic function, in
 * the uprobe's bpf_cookie: low byte the calling convention, next byte the
 * argument index, upper 32 bits the function index. */
#define CL_ABI_SYSV 0 /* C: rdi, rsi, rdx, rcx, r8, r9 */
#define CL_ABI_GO 1   /* Go ABIInternal: rax, rbx, rcx, rdi, rsi, r8, r9, r10, r11 */
#define CL_COOKIE(fn, abi, arg) (((__u64)(fn) << 32) | ((__u64)(arg) << 8) | (__u64)(abi))

/* Per-cgroup cache counters: each overflow of a sampling counter adds its
 * period (libbpf-tools llcstat's method). */
#define CL_COUNTER_REFERENCES 0
#define CL_COUNTER_MISSES 1
struct cacheline_cgroup_counts {
	__u64 counts[2];
};

#define CL_TARGETS_MAX 4096

#endif /* SYNCSCOPE_BPF_CACHELINE_H */
