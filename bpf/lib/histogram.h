/* Log-linear histogram bucket math, shared by the BPF programs and user space.
 *
 * Run-queue latency needs buckets fine enough to count "wakeups slower than
 * 5 ms" usefully, which a power-of-two histogram (runqlat's) cannot: its bucket
 * around 5 ms spans 4.2–8.4 ms. Each power of two is therefore split into
 * 2^LL_SUB_BITS = 4 linear sub-buckets: a value v with floor(log2(v)) = e lands in
 * sub-bucket (v >> (e - 2)) & 3, i.e. the two bits below the leading one. The
 * relative width of a bucket is at most 25 %, and the cost is the same handful of
 * shifts and compares as a plain log2.
 *
 * The agent feeds nanoseconds with min_shift = LL_MIN_SHIFT: slot 0 holds
 * v < 2^10 ns (under ~1 µs), the last slot v >= 2^32 ns (over ~4.3 s). The
 * trace CLI feeds microseconds (or milliseconds) with min_shift = 0, so merging
 * each run of four sub-buckets gives exactly runqlat's power-of-two rows.
 * Below 2^LL_SUB_BITS there are fewer distinct integers than sub-buckets; the
 * left shift spreads them over the octave's sub-buckets instead.
 */
#ifndef SYNCSCOPE_BPF_LIB_HISTOGRAM_H
#define SYNCSCOPE_BPF_LIB_HISTOGRAM_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define LL_SUB_BITS 2
#define LL_SUB_BUCKETS (1 << LL_SUB_BITS)
#define LL_MIN_SHIFT 10 /* 1024 ns */
#define LL_OCTAVES 22   /* up to 2^32 ns ≈ 4.29 s */
#define LL_SLOTS (1 + LL_OCTAVES * LL_SUB_BUCKETS + 1)

static inline __attribute__((always_inline)) __u32 ll_log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4;
	v >>= r;
	shift = (v > 0xFF) << 3;
	v >>= shift;
	r |= shift;
	shift = (v > 0xF) << 2;
	v >>= shift;
	r |= shift;
	shift = (v > 0x3) << 1;
	v >>= shift;
	r |= shift;
	r |= (v >> 1);
	return r;
}

static inline __attribute__((always_inline)) __u32 ll_log2_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? ll_log2_u32(hi) + 32 : ll_log2_u32((__u32)v);
}

static inline __attribute__((always_inline)) __u32 ll_slot(__u64 v, __u32 min_shift)
{
	__u32 e, sub;

	if (v < (1ULL << min_shift))
		return 0;
	e = ll_log2_u64(v);
	if (e >= min_shift + LL_OCTAVES)
		return LL_SLOTS - 1;
	if (e >= LL_SUB_BITS)
		sub = (v >> (e - LL_SUB_BITS)) & (LL_SUB_BUCKETS - 1);
	else
		sub = (v << (LL_SUB_BITS - e)) & (LL_SUB_BUCKETS - 1);
	return 1 + (e - min_shift) * LL_SUB_BUCKETS + sub;
}

/* Slot bounds live in user space (agent/collectors/sched.h: ll_slot_bounds):
 * sub-bucket s of octave e covers the real interval
 * [2^e + s * 2^e / 4, 2^e + (s + 1) * 2^e / 4). */

#endif /* SYNCSCOPE_BPF_LIB_HISTOGRAM_H */
