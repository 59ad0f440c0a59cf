#include "agent/collectors/sched.h"

#include <bpf/bpf.h>
#include <linux/perf_event.h>

#include <cmath>

#include "agent/core/log.h"
#include "bpf/sched.skel.h"

namespace syncscope::collectors {

SlotBounds ll_slot_bounds(uint32_t slot, uint32_t min_shift) {
  if (slot == 0) return {0, std::ldexp(1.0, static_cast<int>(min_shift))};
  if (slot >= LL_SLOTS - 1) return {std::ldexp(1.0, static_cast<int>(min_shift + LL_OCTAVES)), INFINITY};
  int e = static_cast<int>(min_shift + (slot - 1) / LL_SUB_BUCKETS);
  double sub = (slot - 1) % LL_SUB_BUCKETS;
  double octave = std::ldexp(1.0, e);
  return {octave + sub * octave / LL_SUB_BUCKETS, octave + (sub + 1) * octave / LL_SUB_BUCKETS};
}

uint64_t RunqHistogram::count() const {
  uint64_t total = 0;
  for (uint64_t n : slots) total += n;
  return total;
}

void RunqHistogram::add(const RunqHistogram& other) {
  for (size_t i = 0; i < slots.size(); ++i) slots[i] += other.slots[i];
  sum_ns += other.sum_ns;
}

metrics::Histogram RunqHistogram::to_metric() const {
  metrics::Histogram h;
  uint64_t cumulative = 0;
  // The last slot is the overflow (>= ~4.3 s): it only shows in +Inf.
  for (uint32_t slot = 0; slot + 1 < LL_SLOTS; ++slot) {
    cumulative += slots[slot];
    h.buckets.emplace_back(ll_slot_bounds(slot, LL_MIN_SHIFT).upper / 1e9, cumulative);
  }
  h.count = cumulative + slots[LL_SLOTS - 1];
  h.sum = static_cast<double>(sum_ns) / 1e9;
  return h;
}

void CgroupSchedStats::add(const CgroupSchedStats& other) {
  runq.add(other.runq);
  switches_voluntary += other.switches_voluntary;
  switches_involuntary += other.switches_involuntary;
}

uint64_t RunqLengthHistogram::count() const {
  uint64_t total = 0;
  for (uint64_t n : slots) total += n;
  return total;
}

Result<std::unique_ptr<SchedCollector>> SchedCollector::start(const SchedOptions& options,
                                                              const loader::Features& features,
                                                              probes::CgroupResolver& cgroups,
                                                              loader::BpfSelfMetrics* self_metrics,
                                                              loader::ProbeReport* report) {
  auto collector = std::unique_ptr<SchedCollector>(new SchedCollector());
  collector->options_ = options;
  collector->cgroups_ = &cgroups;
  collector->skel_ = {sched_bpf__open(), sched_bpf__destroy};
  sched_bpf* skel = collector->skel_.get();
  if (!skel) return fail_errno("sched.bpf.o: open");

  skel->rodata->targ_tgid = options.filter_tgid;
  skel->rodata->hist_unit_ns = options.hist_unit_ns;
  skel->rodata->hist_min_shift = options.hist_min_shift;
  if (options.filter_cgroup) {
    skel->rodata->targ_cgroup_id = TRY(cgroups.id_of(*options.filter_cgroup));
    skel->rodata->targ_cgroup_level = probes::CgroupResolver::level_of(*options.filter_cgroup);
  }

  // tp_btf with task storage is the cheap path (no hash update/delete per
  // event); raw_tp with a tid-keyed hash works on kernels without either.
  bool use_tp_btf = features.tp_btf && features.task_storage && !options.force_raw_tp;
  collector->attach_mode_ = use_tp_btf ? "tp_btf" : "raw_tp";
  for (bpf_program* prog : {skel->progs.tp_btf_sched_wakeup, skel->progs.tp_btf_sched_wakeup_new,
                            skel->progs.tp_btf_sched_switch})
    bpf_program__set_autoload(prog, use_tp_btf);
  for (bpf_program* prog : {skel->progs.raw_tp_sched_wakeup, skel->progs.raw_tp_sched_wakeup_new,
                            skel->progs.raw_tp_sched_switch})
    bpf_program__set_autoload(prog, !use_tp_btf);
  bpf_map__set_autocreate(skel->maps.enqueued_at_storage, use_tp_btf);
  if (use_tp_btf) bpf_map__set_max_entries(skel->maps.enqueued_at_hash, 1);

  // Run-queue length: through the `runqueues` ksym where it resolves, else
  // through the running task's cfs_rq->rq.
  std::string runqlen_reason;
  bpf_program* runqlen_prog = nullptr;
  if (!options.runq_length) runqlen_reason = "disabled";
  else if (!features.perf_event_programs) runqlen_reason = "perf_event programs do not load here";
  else if (features.runqueues_ksym) runqlen_prog = skel->progs.sample_runq_length_ksym;
  else if (features.cfs_rq_has_rq) runqlen_prog = skel->progs.sample_runq_length_task;
  else runqlen_reason = "neither the runqueues ksym nor cfs_rq::rq is available";
  bool runqlen = runqlen_prog != nullptr;
  bpf_program__set_autoload(skel->progs.sample_runq_length_ksym, runqlen_prog == skel->progs.sample_runq_length_ksym);
  bpf_program__set_autoload(skel->progs.sample_runq_length_task, runqlen_prog == skel->progs.sample_runq_length_task);

  if (int err = sched_bpf__load(skel); err) return fail_libbpf("sched.bpf.o: load", err);

  // The "other" row must exist before any event: stats_of() falls back to it
  // when the cgroup map is full.
  sched_cgroup_stats zero{};
  uint64_t other_key = SCHED_OTHER_CGROUP_ID;
  if (bpf_map_update_elem(bpf_map__fd(skel->maps.cgroup_stats), &other_key, &zero, BPF_NOEXIST) != 0)
    return fail_errno("sched.bpf.o: insert the \"other\" cgroup row");

  std::vector<loader::ProbeStatus> rows;
  std::string other_twin = use_tp_btf ? "raw_tp twin not loaded: tp_btf and task storage available"
                                      : fmt::format("tp_btf twin not loaded: {}",
                                                    !features.tp_btf ? "tp_btf unavailable"
                                                    : options.force_raw_tp ? "raw_tp forced"
                                                                           : "task storage unavailable");
  for (bpf_program* prog : {skel->progs.tp_btf_sched_wakeup, skel->progs.tp_btf_sched_wakeup_new,
                            skel->progs.tp_btf_sched_switch, skel->progs.raw_tp_sched_wakeup,
                            skel->progs.raw_tp_sched_wakeup_new, skel->progs.raw_tp_sched_switch}) {
    std::string section = bpf_program__section_name(prog);
    std::string kind = section.substr(0, section.find('/'));
    std::string target = section.substr(section.find('/') + 1);
    if (!bpf_program__autoload(prog)) {
      rows.push_back({bpf_program__name(prog), kind, target, false, other_twin});
      continue;
    }
    collector->links_.push_back(TRY(loader::attach_program(prog)));
    rows.push_back({bpf_program__name(prog), kind, target, true, ""});
  }
  if (runqlen) {
    perf_event_attr attr{};
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.freq = 1;
    attr.sample_freq = options.runq_length_sample_hz;
    auto events = loader::PerCpuPerfEvents::open(runqlen_prog, attr, "cpu-clock");
    if (events) {
      collector->runqlen_events_ = std::move(*events);
      rows.push_back({bpf_program__name(runqlen_prog), "perf_event",
                      fmt::format("cpu-clock {} Hz on {} CPUs", options.runq_length_sample_hz,
                                  collector->runqlen_events_->size()),
                      true, ""});
    } else {
      rows.push_back({bpf_program__name(runqlen_prog), "perf_event", "cpu-clock", false, events.error().message()});
      log::warn("sched: run-queue length sampling off: {}", events.error().message());
    }
  } else {
    rows.push_back({"sample_runq_length_*", "perf_event", "cpu-clock", false, runqlen_reason});
  }

  if (self_metrics) {
    self_metrics->add_object(skel->obj);
    collector->self_metrics_ = self_metrics;
  }
  if (report) report->set("sched", std::move(rows), fmt::format("run-queue latency via {}", collector->attach_mode_));
  log::info("sched: attached ({}), run-queue length {}", collector->attach_mode_,
            collector->runqlen_events_ ? "sampled" : "off");
  return collector;
}

SchedCollector::~SchedCollector() {
  if (self_metrics_ && skel_) self_metrics_->remove_object(skel_->obj);
  runqlen_events_.reset();
  links_.clear();
}

std::map<uint64_t, CgroupSchedStats> SchedCollector::read_cgroups() const {
  std::map<uint64_t, CgroupSchedStats> out;
  int fd = bpf_map__fd(skel_->maps.cgroup_stats);
  uint64_t key = 0, next = 0;
  uint64_t* prev = nullptr;
  sched_cgroup_stats value{};
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, &value) != 0) continue;  // deleted meanwhile
    CgroupSchedStats& s = out[key];
    std::copy(std::begin(value.runq_slots), std::end(value.runq_slots), s.runq.slots.begin());
    s.runq.sum_ns = value.runq_sum_ns;
    s.switches_voluntary = value.switches_voluntary;
    s.switches_involuntary = value.switches_involuntary;
  }
  return out;
}

std::map<int, RunqLengthHistogram> SchedCollector::read_runq_length() const {
  std::map<int, RunqLengthHistogram> out;
  if (!runqlen_events_) return out;
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return out;
  std::vector<sched_runqlen_hist> per_cpu(static_cast<size_t>(ncpus));
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.runqlen), &zero, per_cpu.data()) != 0) return out;
  for (int cpu : loader::online_cpus()) {
    if (cpu >= ncpus) continue;
    RunqLengthHistogram& h = out[cpu];
    std::copy(std::begin(per_cpu[static_cast<size_t>(cpu)].slots), std::end(per_cpu[static_cast<size_t>(cpu)].slots),
              h.slots.begin());
    h.sum = per_cpu[static_cast<size_t>(cpu)].sum;
  }
  return out;
}

std::string SchedCollector::label_for(uint64_t cgroup_id, bool& gone) {
  gone = false;
  if (cgroup_id == SCHED_OTHER_CGROUP_ID) return "other";
  std::optional<std::string> path = cgroups_->path_of(cgroup_id);
  if (!path) {
    gone = true;
    return "other";
  }
  if (auto it = labels_.find(cgroup_id); it != labels_.end() && (it->second == *path || it->second == "other"))
    return it->second;
  // Sticky assignment: a path keeps its own label once it has one; new paths
  // get one while there is room.
  std::string label = "other";
  if (own_labels_.contains(*path) || own_labels_.size() < options_.max_cgroups) {
    label = *path;
    ++own_labels_[label];
  }
  labels_[cgroup_id] = label;
  return label;
}

void SchedCollector::refresh(std::chrono::steady_clock::time_point) {
  std::map<uint64_t, CgroupSchedStats> raw = read_cgroups();
  std::map<std::string, CgroupSchedStats> by_label;
  int fd = bpf_map__fd(skel_->maps.cgroup_stats);
  for (auto& [id, stats] : raw) {
    bool gone = false;
    std::string label = label_for(id, gone);
    if (gone) {
      // Fold a vanished cgroup into "other" and free its kernel row; a late
      // event for it starts a fresh row that is folded the same way.
      retired_.add(stats);
      bpf_map_delete_elem(fd, &id);
      if (auto it = labels_.find(id); it != labels_.end()) {
        if (auto own = own_labels_.find(it->second); own != own_labels_.end() && --own->second == 0)
          own_labels_.erase(own);
        labels_.erase(it);
      }
      continue;
    }
    by_label[label].add(stats);
  }
  by_label["other"].add(retired_);
  std::map<int, RunqLengthHistogram> runq_length = read_runq_length();

  std::lock_guard lock(mu_);
  by_label_ = std::move(by_label);
  runq_length_ = std::move(runq_length);
  cgroups_tracked_ = raw.size();
}

void SchedCollector::collect(std::vector<metrics::Family>& out) const {
  auto latency = metrics::histogram(
      "syncscope_runq_latency_seconds",
      "Time runnable tasks waited for a CPU (wakeup or preemption to switch-in), by the waiting task's cgroup v2.");
  auto switches = metrics::counter(
      "syncscope_context_switches_total",
      "Context switches by the cgroup v2 of the task switched out; involuntary = preempted while runnable.");
  auto length = metrics::histogram(
      "syncscope_runq_length",
      "Tasks waiting on each CPU's run queue (rq->nr_running minus the running task), sampled on a timer.");
  auto tracked = metrics::gauge("syncscope_sched_cgroups_tracked", "cgroup rows in the kernel's sched map.");

  std::lock_guard lock(mu_);
  for (const auto& [label, stats] : by_label_) {
    latency.add_histogram({{"cgroup", label}}, stats.runq.to_metric());
    switches.add({{"cgroup", label}, {"kind", "voluntary"}}, static_cast<double>(stats.switches_voluntary));
    switches.add({{"cgroup", label}, {"kind", "involuntary"}}, static_cast<double>(stats.switches_involuntary));
  }
  for (const auto& [cpu, hist] : runq_length_) {
    metrics::Histogram h;
    uint64_t cumulative = 0;
    for (uint32_t n = 0; n + 1 < RUNQLEN_SLOTS; ++n) {
      cumulative += hist.slots[n];
      // Every length up to 8, then a coarser ladder: the shape that matters is
      // "0, a few, many".
      if (n <= 8 || n == 12 || n == 16 || n == 24 || n == 32 || n == 48 || n == RUNQLEN_SLOTS - 2)
        h.buckets.emplace_back(static_cast<double>(n), cumulative);
    }
    h.count = hist.count();
    h.sum = static_cast<double>(hist.sum);
    length.add_histogram({{"cpu", std::to_string(cpu)}}, std::move(h));
  }
  tracked.add({}, static_cast<double>(cgroups_tracked_));
  out.push_back(std::move(latency));
  out.push_back(std::move(switches));
  out.push_back(std::move(length));
  out.push_back(std::move(tracked));
}

Result<void> SchedCollector::set_slo_rows(const std::vector<RunqSloRow>& rows) {
  if (rows.size() > SCHED_MAX_SLOS)
    return fail(fmt::format("{} run-queue SLOs configured; the kernel side holds at most {}", rows.size(),
                            SCHED_MAX_SLOS));
  // Stop counting, rewrite the rows, clear the counters, then publish the new
  // count: the BPF side never reads a half-written row.
  __atomic_store_n(&skel_->bss->nr_slos, 0u, __ATOMIC_RELEASE);
  for (uint32_t i = 0; i < rows.size(); ++i) {
    skel_->bss->slo_rows[i].cgroup_id = rows[i].cgroup_id;
    skel_->bss->slo_rows[i].level = rows[i].level;
    skel_->bss->slo_rows[i].threshold_ns = rows[i].threshold_ns;
  }
  int ncpus = libbpf_num_possible_cpus();
  std::vector<sched_slo_table> zero(static_cast<size_t>(std::max(ncpus, 1)));
  uint32_t key = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.slo_counts), &key, zero.data(), BPF_ANY) != 0)
    return fail_errno("sched: reset SLO counters");
  __atomic_store_n(&skel_->bss->nr_slos, static_cast<uint32_t>(rows.size()), __ATOMIC_RELEASE);
  return {};
}

RunqSloCounts SchedCollector::slo_counts(size_t row) const {
  RunqSloCounts out;
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0 || row >= SCHED_MAX_SLOS) return out;
  std::vector<sched_slo_table> per_cpu(static_cast<size_t>(ncpus));
  uint32_t key = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.slo_counts), &key, per_cpu.data()) != 0) return out;
  for (const sched_slo_table& table : per_cpu) {
    out.total += table.rows[row].total;
    out.over += table.rows[row].over;
  }
  return out;
}

}  // namespace syncscope::collectors
