/* Ring-buffer reservation that counts what it drops.
 *
 * When bpf_ringbuf_reserve fails (the consumer fell behind and the buffer is
 * full) the event is lost; the loss is counted right there, per CPU and per
 * source, so user space can export syncscope_events_lost_total{source} instead
 * of silently under-reporting. Each BPF object that includes this header gets
 * its own `events_lost` map; user space names the sources.
 */
#ifndef SYNCSCOPE_BPF_LIB_EVENTS_LOST_H
#define SYNCSCOPE_BPF_LIB_EVENTS_LOST_H

#define EVENTS_LOST_MAX_SOURCES 8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENTS_LOST_MAX_SOURCES);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

static __always_inline void count_event_lost(__u32 source)
{
	__u64 *lost = bpf_map_lookup_elem(&events_lost, &source);

	if (lost)
		*lost += 1; /* per-CPU slot: no atomic needed */
}

static __always_inline void *reserve_or_count(void *ringbuf, __u64 size, __u32 source)
{
	void *event = bpf_ringbuf_reserve(ringbuf, size, 0);

	if (!event)
		count_event_lost(source);
	return event;
}

#endif /* SYNCSCOPE_BPF_LIB_EVENTS_LOST_H */
