// Attachments are objects: whoever holds one keeps the probe attached, and the
// destructor detaches it (bpf_link__destroy closes the link and, for perf
// events, the event fd).
#pragma once

#include <bpf/libbpf.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/core/fd.h"
#include "agent/core/result.h"

namespace syncscope::loader {

using Link = CHandle<bpf_link, bpf_link__destroy>;

// Attaches a tracepoint-family program (tp_btf, raw_tp, tracepoint) by its
// section name.
Result<Link> attach_program(bpf_program* program);

// One perf event per online CPU with `program` attached to each: used for
// timer sampling (run-queue length) and PMU sampling.
class PerCpuPerfEvents {
 public:
  // `attr` is copied; `cpu` is set per event.
  static Result<std::unique_ptr<PerCpuPerfEvents>> open(bpf_program* program, const struct perf_event_attr& attr,
                                                        std::string what);
  size_t size() const { return links_.size(); }

 private:
  std::vector<Link> links_;  // each link owns its perf event fd
};

std::vector<int> online_cpus();

}  // namespace syncscope::loader
