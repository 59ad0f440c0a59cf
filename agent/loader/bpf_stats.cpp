#include "agent/loader/bpf_stats.h"

#include <bpf/bpf.h>

#include <map>

#include "agent/core/log.h"

namespace syncscope::loader {

bool BpfSelfMetrics::enable_run_time_stats() {
  if (stats_fd_.valid()) return true;
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) {
    log::warn("bpf_stats: BPF_ENABLE_STATS failed ({}); syncscope_bpf_program_run*_total stay 0",
              std::strerror(errno));
    return false;
  }
  stats_fd_.reset(fd);
  return true;
}

void BpfSelfMetrics::add_object(const bpf_object* object, std::vector<std::string> lost_sources) {
  std::lock_guard lock(mu_);
  objects_.push_back(Registered{object, std::move(lost_sources)});
}

void BpfSelfMetrics::remove_object(const bpf_object* object) {
  std::lock_guard lock(mu_);
  std::erase_if(objects_, [object](const Registered& r) { return r.object == object; });
}

uint64_t BpfSelfMetrics::events_lost(const bpf_object* object, uint32_t index) {
  const bpf_map* map = bpf_object__find_map_by_name(object, "events_lost");
  if (!map || bpf_map__fd(map) < 0) return 0;
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return 0;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  if (bpf_map_lookup_elem(bpf_map__fd(map), &index, per_cpu.data()) != 0) return 0;
  uint64_t total = 0;
  for (uint64_t v : per_cpu) total += v;
  return total;
}

void BpfSelfMetrics::collect(std::vector<metrics::Family>& out) const {
  auto runs = metrics::counter("syncscope_bpf_program_runs_total",
                               "Times each loaded BPF program ran (kernel bpf_stats; 0 when stats are off).");
  auto run_seconds = metrics::counter("syncscope_bpf_program_run_seconds_total",
                                      "CPU time spent in each loaded BPF program (kernel bpf_stats).");
  auto lost = metrics::counter("syncscope_events_lost_total",
                               "Events dropped in the kernel because a ring buffer was full, by source.");
  std::lock_guard lock(mu_);
  std::map<std::string, uint64_t> lost_by_source;
  for (const Registered& r : objects_) {
    bpf_program* prog = nullptr;
    // libbpf's iterator takes a non-const object; nothing here modifies it.
    bpf_object__for_each_program(prog, const_cast<bpf_object*>(r.object)) {
      int fd = bpf_program__fd(prog);
      if (fd < 0) continue;  // not loaded (autoload off)
      bpf_prog_info info{};
      uint32_t len = sizeof info;
      if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) continue;
      runs.add({{"program", bpf_program__name(prog)}}, static_cast<double>(info.run_cnt));
      run_seconds.add({{"program", bpf_program__name(prog)}}, static_cast<double>(info.run_time_ns) / 1e9);
    }
    for (uint32_t i = 0; i < r.lost_sources.size(); ++i) lost_by_source[r.lost_sources[i]] += events_lost(r.object, i);
  }
  for (const auto& [source, count] : lost_by_source) lost.add({{"source", source}}, static_cast<double>(count));
  out.push_back(std::move(runs));
  out.push_back(std::move(run_seconds));
  out.push_back(std::move(lost));
}

}  // namespace syncscope::loader
