#include "agent/collectors/cachelines.h"

#include <bpf/bpf.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "agent/collectors/cacheline_watch.h"
#include "agent/core/log.h"
#include "bpf/cacheline.h"
#include "bpf/cacheline.skel.h"

namespace syncscope::collectors {
namespace {

constexpr size_t kPhasesPerWindow = 2;
constexpr auto kTargetScanEvery = std::chrono::seconds(2);
constexpr auto kSampleResetEvery = std::chrono::minutes(5);

std::string read_comm(uint32_t pid) {
  std::ifstream in(fmt::format("/proc/{}/comm", pid));
  std::string comm;
  std::getline(in, comm);
  return comm.empty() ? "?" : comm;
}

bool alive(uint32_t pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

std::string percent(double fraction) { return fmt::format("{:.1f}%", fraction * 100); }

}  // namespace

Result<std::unique_ptr<CachelinesCollector>> CachelinesCollector::start(const CachelinesOptions& options,
                                                                        const loader::Features& features,
                                                                        probes::CgroupResolver& cgroups,
                                                                        loader::BpfSelfMetrics* self_metrics,
                                                                        loader::ProbeReport* report) {
  if (options.window.count() <= 0) return fail("cachelines: the watch window must be longer than 0");
  if (!(options.duty_cycle > 0 && options.duty_cycle <= 1))
    return fail(fmt::format("cachelines: duty cycle {} is not a fraction in (0, 1]", options.duty_cycle));
  auto c = std::unique_ptr<CachelinesCollector>(new CachelinesCollector());
  c->options_ = options;
  c->features_ = features;
  c->cgroups_ = &cgroups;
  c->report_ = report;
  c->selectors_ = TargetSelectors(options.targets);
  LineQueue::Options queue_options;
  queue_options.recheck = options.recheck;
  queue_options.max_phases_per_window = kPhasesPerWindow;
  queue_options.verdict = options.verdict;
  c->queue_ = std::make_unique<LineQueue>(queue_options, SystemClock::instance());
  c->duty_ = std::make_unique<DutyCycle>(options.window, options.duty_cycle, SystemClock::instance());

  // Which paths this host allows.
  c->watchpoints_ = options.watchpoints && features.hw_breakpoints && features.perf_event_programs;
  if (!options.watchpoints) c->watch_reason_ = "disabled";
  else if (!features.hw_breakpoints)
    c->watch_reason_ = "no hardware breakpoints (perf_event_open PERF_TYPE_BREAKPOINT failed)";
  else if (!features.perf_event_programs) c->watch_reason_ = "perf_event BPF programs do not load here";

  using Pmu = config::CachelinesConfig::Pmu;
  if (options.sampling_event) {
    c->sampling_plan_.events.push_back(*options.sampling_event);
    c->sampling_plan_.reason = fmt::format("stand-in event {} (not a PMU)", options.sampling_event->name);
  } else if (options.pmu == Pmu::off) {
    c->sampling_plan_.reason = "disabled (cachelines.pmu: off)";
  } else if (!features.pmu) {
    c->sampling_plan_.reason = "no hardware PMU on this host";
    if (options.pmu == Pmu::on)
      log::warn("cachelines: pmu: on, but this host has no hardware PMU; using watchpoints alone");
  } else {
    c->sampling_plan_ = choose_memory_sampling();
  }
  if (!features.perf_event_programs) c->sampling_plan_.events.clear();
  bool counters = options.cache_references_event || (options.pmu != Pmu::off && features.pmu);
  if (!features.perf_event_programs) counters = false;
  c->counters_reason_ = counters                  ? ""
                        : options.pmu == Pmu::off ? "disabled (cachelines.pmu: off)"
                                                  : "no hardware PMU on this host";
  c->atomics_ = options.atomic_windows && features.uprobes;
  c->atomics_reason_ = !options.atomic_windows ? "disabled" : !features.uprobes ? "no uprobes on this kernel" : "";

  // Every watched thread holds up to eight fds for a window: make room
  // (the hard limit is the administrator's; only the soft one is raised).
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 65536) {
    nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, 65536);
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  c->skel_ = {cacheline_bpf__open(), cacheline_bpf__destroy};
  cacheline_bpf* skel = c->skel_.get();
  if (!skel) return fail_errno("cacheline.bpf.o: open");
  skel->rodata->filter_targets = options.pid.has_value() || !options.targets.empty();
  bpf_map__set_max_entries(skel->maps.cacheline_events, options.ringbuf_bytes);
  bpf_program__set_autoload(skel->progs.cacheline_watch_hit, c->watchpoints_);
  bpf_program__set_autoload(skel->progs.cacheline_mem_sample, c->sampling_plan_.available());
  bpf_program__set_autoload(skel->progs.cacheline_cache_references, counters);
  bpf_program__set_autoload(skel->progs.cacheline_cache_misses, counters);
  bpf_program__set_autoload(skel->progs.cacheline_atomic_call, c->atomics_);
  if (int err = cacheline_bpf__load(skel); err) return fail_libbpf("cacheline.bpf.o: load", err);

  c->ring_ = {
      ring_buffer__new(bpf_map__fd(skel->maps.cacheline_events), &CachelinesCollector::on_ring_event, c.get(), nullptr),
      ring_buffer__free};
  if (!c->ring_) return fail_errno("cacheline.bpf.o: ring buffer");

  if (options.pid) {
    uint8_t one = 1;
    bpf_map_update_elem(bpf_map__fd(skel->maps.cacheline_targets), &*options.pid, &one, BPF_ANY);
  }
  // Memory sampling: one event per CPU per chosen event; a PMU that lists
  // the events but refuses them (a VM without PEBS passthrough) turns the
  // path off with the reason.
  for (const PerfEventChoice& event : c->sampling_plan_.events) {
    auto opened = loader::PerCpuPerfEvents::open(skel->progs.cacheline_mem_sample, event.attr, event.name);
    if (!opened) {
      c->sampling_reason_ = opened.error().message();
      c->sampling_events_.clear();
      break;
    }
    c->sampling_events_.push_back(std::move(*opened));
  }
  if (counters) {
    PerfEventChoice refs = options.cache_references_event.value_or(cache_references_event());
    PerfEventChoice misses = options.cache_misses_event.value_or(cache_misses_event());
    auto r = loader::PerCpuPerfEvents::open(skel->progs.cacheline_cache_references, refs.attr, refs.name);
    auto m = loader::PerCpuPerfEvents::open(skel->progs.cacheline_cache_misses, misses.attr, misses.name);
    if (r && m) {
      c->references_events_ = std::move(*r);
      c->misses_events_ = std::move(*m);
    } else {
      c->counters_reason_ = (r ? m.error() : r.error()).message();
    }
  }
  if (self_metrics) {
    self_metrics->add_object(skel->obj, {"cacheline_watch", "cacheline_sample", "cacheline_atomic"});
    c->self_metrics_ = self_metrics;
  }
  {
    CachelinesStatus& s = c->status_;
    s.pmu = features.pmu;
    s.memory_sampling = !c->sampling_events_.empty();
    s.watchpoints = c->watchpoints_;
    if (s.memory_sampling && s.watchpoints)
      s.path = fmt::format("memory sampling ({}) + hardware watchpoints", c->sampling_plan_.reason);
    else if (s.memory_sampling)
      s.path = fmt::format("memory sampling only ({}); no hardware watchpoints: {}", c->sampling_plan_.reason,
                           c->watch_reason_);
    else if (s.watchpoints && !features.pmu)
      s.path = "hardware watchpoints (no hardware PMU: memory sampling and cache counters off)";
    else if (s.watchpoints)
      s.path = fmt::format("hardware watchpoints (memory sampling off: {})",
                           c->sampling_reason_.empty() ? c->sampling_plan_.reason : c->sampling_reason_);
    else s.path = fmt::format("none: {}; memory sampling: {}", c->watch_reason_, c->sampling_plan_.reason);
  }
  c->update_probe_rows();
  log::info("cachelines: {}", c->status_.path);
  c->worker_ = std::thread([raw = c.get()] { raw->run(); });
  return c;
}

CachelinesCollector::~CachelinesCollector() {
  stop_ = true;
  if (worker_.joinable()) worker_.join();
  sampling_events_.clear();
  references_events_.reset();
  misses_events_.reset();
  if (self_metrics_ && skel_) self_metrics_->remove_object(skel_->obj);
  ring_.reset();
  skel_.reset();
  // The probe rows stay: a replacement (reload) has already written its own.
}

// --- hints ------------------------------------------------------------------------

void CachelinesCollector::add_source(CandidateSource* source) {
  std::lock_guard lock(mu_);
  sources_.push_back(source);
}

void CachelinesCollector::remove_source(CandidateSource* source) {
  std::lock_guard lock(mu_);
  std::erase(sources_, source);
}

void CachelinesCollector::hint(const CandidateHint& h) {
  std::lock_guard lock(mu_);
  if (inbox_.size() < 100000) inbox_.push_back(h);
}

void CachelinesCollector::take_inbox() {
  std::vector<CandidateHint> hints;
  {
    std::lock_guard lock(mu_);
    hints.swap(inbox_);
  }
  bool explicit_targets = options_.pid || !options_.targets.empty();
  for (const CandidateHint& h : hints) {
    if (h.pid == static_cast<uint32_t>(::getpid())) continue;  // never watch ourselves
    if (explicit_targets && !target_pids_.contains(h.pid)) continue;
    if (!options_.watch_symbols.empty() && !watch_ranges_.contains(h.pid)) {
      // Narrow this process to the named symbols (no match: nothing of it is watched).
      std::vector<std::pair<uint64_t, uint64_t>> ranges;
      if (auto objects = process_data_objects(static_cast<int>(h.pid)))
        for (const DataObject& o : *objects)
          for (const std::string& s : options_.watch_symbols)
            if (symbol_matches(o, s)) ranges.emplace_back(o.start, o.start + o.size);
      if (ranges.empty()) ranges.emplace_back(0, 0);
      queue_->set_filter(h.pid, ranges);
      watch_ranges_[h.pid] = std::move(ranges);
    }
    queue_->hint(h);
  }
}

// --- targets and the rotation through globals ----------------------------------------

void CachelinesCollector::maintain_targets(std::chrono::steady_clock::time_point now) {
  std::set<uint32_t> pids;
  uint32_t self = static_cast<uint32_t>(::getpid());
  if (options_.pid) {
    if (alive(*options_.pid)) pids.insert(*options_.pid);
    else target_exited_ = true;
  } else if (!selectors_.empty()) {
    for (uint32_t pid : processes_.all_pids()) {
      if (pid == self) continue;
      auto identity = processes_.identify(pid);
      if (identity && selectors_.evaluate(*identity)) pids.insert(pid);
    }
  }
  int targets_fd = bpf_map__fd(skel_->maps.cacheline_targets);
  for (uint32_t pid : target_pids_) {
    if (pids.contains(pid)) continue;
    forget_atomics_of(pid);
    queue_->forget_pid(pid);
    symbolizer_.forget(static_cast<int>(pid));
    rotation_built_.erase(pid);
    watch_ranges_.erase(pid);
    if (!options_.pid) {
      bpf_map_delete_elem(targets_fd, &pid);
      std::lock_guard lock(mu_);
      std::erase_if(results_, [pid](const auto& entry) { return entry.first.pid == pid; });
    }
  }
  // Hinted processes without explicit targets: forget the ones that exited.
  if (!options_.pid && selectors_.empty()) {
    std::set<uint32_t> hinted;
    for (const auto& [key, state] : queue_->lines()) hinted.insert(key.pid);
    for (uint32_t pid : atomic_pids()) hinted.insert(pid);
    for (uint32_t pid : hinted) {
      if (alive(pid)) continue;
      forget_atomics_of(pid);
      queue_->forget_pid(pid);
      symbolizer_.forget(static_cast<int>(pid));
      watch_ranges_.erase(pid);
      std::lock_guard lock(mu_);
      std::erase_if(results_, [pid](const auto& entry) { return entry.first.pid == pid; });
    }
  }
  for (uint32_t pid : pids) {
    if (!target_pids_.contains(pid)) {
      uint8_t one = 1;
      bpf_map_update_elem(targets_fd, &pid, &one, BPF_ANY);
    }
  }
  target_pids_ = pids;
  {
    std::lock_guard lock(mu_);
    known_pids_ = pids;
  }
  if (!options_.globals && options_.watch_symbols.empty()) return;
  for (uint32_t pid : target_pids_) {
    auto built = rotation_built_.find(pid);
    // A finished rotation is rebuilt soon (a fresh heat scan); named symbols
    // are hints, not a rotation, and only need the periodic rescan.
    bool due = built == rotation_built_.end() || now - built->second >= options_.globals_rescan ||
               (options_.watch_symbols.empty() && queue_->rotation_exhausted(pid) &&
                now - built->second >= std::chrono::seconds(5));
    if (due) rebuild_rotation(pid);
  }
}

void CachelinesCollector::rebuild_rotation(uint32_t pid) {
  rotation_built_[pid] = std::chrono::steady_clock::now();
  std::vector<std::string> skipped;
  auto objects = process_data_objects(static_cast<int>(pid), &skipped);
  if (!objects) {
    log::debug("cachelines: globals of {}: {}", pid, objects.error().message());
    return;
  }
  for (const std::string& module : skipped)
    log::debug("cachelines: process {}: {} not scanned (no load bias)", pid, module);
  if (!options_.watch_symbols.empty()) {
    std::vector<DataObject> named;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const DataObject& o : *objects)
      for (const std::string& s : options_.watch_symbols)
        if (symbol_matches(o, s)) {
          named.push_back(o);
          ranges.emplace_back(o.start, o.start + o.size);
        }
    if (ranges.empty()) ranges.emplace_back(0, 0);
    queue_->set_filter(pid, ranges);
    watch_ranges_[pid] = ranges;
    // Named objects are not a rotation: every line of them is a candidate
    // of its own, hottest first, and is watched again after each recheck.
    auto heat = line_heat(static_cast<pid_t>(pid), named, memory_, options_.heat,
                          [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); });
    for (const DataObject& o : named)
      for (uint64_t line = line_of(o.start); line < o.start + o.size; line += kLineBytes) {
        auto it = heat.find(line);
        queue_->hint({pid, line, CandidateOrigin::watch_symbol, it == heat.end() ? 0.0 : it->second, o.name});
      }
    log::debug("cachelines: process {}: {} object(s) named by watch symbols", pid, named.size());
    return;
  }
  auto heat = line_heat(static_cast<pid_t>(pid), *objects, memory_, options_.heat,
                        [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); });
  std::vector<uint64_t> order = rotation_order(*objects, heat, options_.heat.max_lines_per_object);
  log::debug("cachelines: process {}: {} data objects, {} lines in rotation ({} changed while scanned)", pid,
             objects->size(), order.size(), std::ranges::count_if(heat, [](const auto& e) { return e.second > 0; }));
  queue_->set_rotation(pid, std::move(order));
}

void CachelinesCollector::promote_sampled_lines() {
  std::vector<SampledLine> top;
  {
    std::lock_guard lock(mu_);
    top = samples_.top(32);
  }
  bool explicit_targets = options_.pid || !options_.targets.empty();
  for (const SampledLine& line : top) {
    if (line.samples() < options_.sampled_line_min_samples || line.threads.size() < 2) continue;
    if (explicit_targets && !target_pids_.contains(line.pid)) continue;
    queue_->hint({line.pid, line.line, CandidateOrigin::pmu_sample, static_cast<double>(line.samples()), "sampled"});
  }
}

// --- the worker --------------------------------------------------------------------

void CachelinesCollector::sleep_polling(std::chrono::steady_clock::duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  ring_buffer__poll(ring_.get(), static_cast<int>(std::clamp<int64_t>(ms, 0, 100)));
  // The programs wake us only when a lot is waiting (lazy wakeups): take
  // whatever is there on every turn.
  ring_buffer__consume(ring_.get());
}

void CachelinesCollector::run() {
  // Nothing in here may take the agent down: a failure is logged, the
  // window it happened in is lost, the worker goes on.
  while (!stop_) {
    try {
      run_loop();
    } catch (const std::exception& e) {
      log::error("cachelines: {}", e.what());
      window_key_.reset();
      generation_slots_.clear();
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
}

void CachelinesCollector::trim(std::chrono::steady_clock::time_point now) {
  queue_->expire();
  std::lock_guard lock(mu_);
  // Verdicts of lines the queue forgot (process gone, not hinted for long).
  std::erase_if(results_, [&](const auto& entry) { return !queue_->lines().contains(entry.first); });
  // Bounded like everything else: the coldest addresses go first.
  constexpr size_t kMaxAtomics = 4096;
  while (atomics_seen_.size() > kMaxAtomics) {
    auto coldest = std::ranges::min_element(atomics_seen_, {}, [](const auto& e) { return e.second.calls; });
    atomics_seen_.erase(coldest);
  }
  (void)now;
}

std::set<uint32_t> CachelinesCollector::atomic_pids() {
  std::set<uint32_t> out;
  std::lock_guard lock(mu_);
  for (const auto& key : atomic_members_) out.insert(key.first);
  return out;
}

void CachelinesCollector::forget_atomics_of(uint32_t pid) {
  std::lock_guard lock(mu_);
  // Counters stay monotonic: an exited process's estimates move to "other".
  for (auto it = atomic_members_.begin(); it != atomic_members_.end();) {
    if (it->first != pid) {
      ++it;
      continue;
    }
    atomic_other_ += atomic_estimates_[*it];
    atomic_estimates_.erase(*it);
    atomic_labels_.erase(*it);
    it = atomic_members_.erase(it);
  }
  if (!options_.pid) std::erase_if(atomics_seen_, [pid](const auto& e) { return e.first.first == pid; });
}

void CachelinesCollector::run_loop() {
  auto last_sample_reset = std::chrono::steady_clock::now();
  auto next_trim = last_sample_reset + std::chrono::seconds(10);
  while (!stop_) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_trim) {
      trim(now);
      next_trim = now + std::chrono::seconds(10);
    }
    if (now >= next_target_scan_) {
      maintain_targets(now);
      next_target_scan_ = now + kTargetScanEvery;
    }
    take_inbox();
    if (!sampling_events_.empty() && now >= next_promotion_) {
      promote_sampled_lines();
      next_promotion_ = now + std::chrono::seconds(1);
      // The agent keeps a recent picture; the CLI keeps everything it saw.
      if (!options_.pid && now - last_sample_reset >= kSampleResetEvery) {
        std::lock_guard lock(mu_);
        samples_.clear();
        last_sample_reset = now;
      }
    }
    if (duty_->may_start(now)) {
      if (atomics_ && now >= next_atomics_) {
        next_atomics_ = now + options_.atomics_every;
        run_atomic_window();
      } else if (watchpoints_) {
        if (auto pick = queue_->pick()) run_watch_window(*pick);
      }
      if (stop_) break;
    }
    now = std::chrono::steady_clock::now();
    auto until = duty_->next_start() > now ? duty_->next_start() - now : std::chrono::steady_clock::duration(0);
    sleep_polling(std::clamp<std::chrono::steady_clock::duration>(until, std::chrono::milliseconds(5),
                                                                  std::chrono::milliseconds(50)));
  }
}

bool CachelinesCollector::run_watch_window(const LinePick& pick) {
  const LineKey key = pick.key;
  auto targets_of = [&](const WatchPhase& phase) {
    std::vector<WatchTarget> targets;
    for (const WatchSlot& slot : phase.slots)
      targets.push_back({key.line + slot.unit.offset, slot.unit.len, slot.type});
    return targets;
  };
  auto publish_generation = [&](const WatchPhase& phase) {
    ++generation_;
    generation_slots_[generation_] = phase.slots;
    __atomic_store_n(&skel_->bss->watch_generation, generation_, __ATOMIC_RELEASE);
  };

  std::vector<WatchTarget> first = targets_of(pick.phases.front());
  auto session = WatchSession::open(skel_->progs.cacheline_watch_hit, static_cast<pid_t>(key.pid), first);
  if (!session) {
    {
      std::lock_guard lock(mu_);
      status_.last_error = session.error().message();
      if (session.error().sys_errno() == ENOSPC) ++status_.threads_busy;
    }
    if (!alive(key.pid)) {
      queue_->forget_pid(key.pid);
      if (options_.pid && key.pid == *options_.pid) target_exited_ = true;
    } else {
      queue_->abandon(key);
    }
    log::debug("cachelines: line {:#x} of {}: {}", key.line, key.pid, session.error().message());
    return false;
  }

  window_key_ = key;
  generation_slots_.clear();
  publish_generation(pick.phases.front());
  auto phase_len = std::chrono::duration_cast<std::chrono::steady_clock::duration>(options_.window) / kPhasesPerWindow;
  auto start = std::chrono::steady_clock::now();
  (*session)->start();
  for (size_t i = 0; i < pick.phases.size(); ++i) {
    const WatchPhase& phase = pick.phases[i];
    if (i > 0)
      (*session)->reaim(targets_of(phase), [&] {
        ring_buffer__consume(ring_.get());  // the previous phase's hits, under its generation
        publish_generation(phase);
      });
    auto phase_start = std::chrono::steady_clock::now();
    auto deadline = phase_start + phase_len;
    for (auto now = phase_start; now < deadline; now = std::chrono::steady_clock::now()) {
      // Threads created meanwhile are watched too; the ring is drained so a
      // storm of hits cannot fill it.
      (*session)->cover_new_threads();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
      ring_buffer__poll(ring_.get(), static_cast<int>(std::clamp<int64_t>(left, 1, 5)));
    }
    auto phase_end = std::chrono::steady_clock::now();
    if (LineObservation* obs = queue_->round_of(key))
      obs->add_phase(phase.slots, std::chrono::duration_cast<Nanoseconds>(phase_end - phase_start),
                     (*session)->armed_threads());
  }
  (*session)->disable_all();
  auto end = std::chrono::steady_clock::now();
  WatchSession::Stats stats = (*session)->stats();
  session->reset();  // every breakpoint closed: the debug registers are free again
  ring_buffer__consume(ring_.get());
  window_key_.reset();
  generation_slots_.clear();
  duty_->record(start, end);
  {
    std::lock_guard lock(mu_);
    ++status_.windows;
    status_.watched_seconds = std::chrono::duration<double>(duty_->watched()).count();
    status_.watched_fraction = duty_->cycle_fraction();
    status_.threads_armed += stats.threads_armed;
    status_.threads_busy += stats.threads_busy;
    status_.threads_gone += stats.threads_gone;
    status_.threads_failed += stats.threads_failed;
    status_.threads_capped += stats.threads_capped;
    if (!stats.last_error.empty()) status_.last_error = stats.last_error;
  }
  const LineObservation* obs = queue_->round_of(key);
  log::debug("cachelines: process {} line {:#x}: {} phase(s), {} thread(s) armed, {} busy, {} hits so far", key.pid,
             key.line, pick.phases.size(), stats.threads_armed, stats.threads_busy, obs ? obs->hits() : 0);
  if (auto result = queue_->finish_if_done(key)) {
    log::debug("cachelines: process {} line {:#x}: {} ({:.0f} accesses/s)", key.pid, key.line,
               to_string(result->verdict), result->accesses_per_second);
    auto it = queue_->lines().find(key);
    if (it != queue_->lines().end()) publish_line(key, it->second);
  }
  return true;
}

void CachelinesCollector::on_event(const cacheline_event& e) {
  if (e.kind == CL_EVENT_SAMPLE) {
    MemorySample s;
    s.pid = e.tgid;
    s.tid = e.tid;
    s.cpu = e.cpu;
    s.addr = e.addr;
    s.ip = e.ip;
    s.cgroup_id = e.cgroup_id;
    s.access = e.access == CL_ACCESS_LOAD    ? SampleAccess::load
               : e.access == CL_ACCESS_STORE ? SampleAccess::store
                                             : SampleAccess::unknown;
    s.hitm = e.flags & CL_FLAG_HITM;
    std::lock_guard lock(mu_);
    samples_.add(s);
    return;
  }
  if (e.kind != CL_EVENT_WATCH || !window_key_ || e.tgid != window_key_->pid) return;
  auto slots = generation_slots_.find(e.generation);
  if (slots == generation_slots_.end()) return;
  for (const WatchSlot& slot : slots->second) {
    if (window_key_->line + slot.unit.offset != e.addr) continue;
    if ((e.flags & CL_FLAG_TYPE_FROM_EVENT) && e.bp_len != slot.unit.len) continue;
    if (LineObservation* obs = queue_->round_of(*window_key_)) obs->add_hit(slot, e.tid, e.cpu, e.ip);
    return;
  }
}

int CachelinesCollector::on_ring_event(void* ctx, void* data, size_t size) {
  if (size < sizeof(cacheline_event)) return 0;
  static_cast<CachelinesCollector*>(ctx)->on_event(*static_cast<const cacheline_event*>(data));
  return 0;
}

// --- atomics -------------------------------------------------------------------------

void CachelinesCollector::run_atomic_window() {
  // Which functions, for which processes: explicit targets get libatomic and
  // their Go sync/atomic functions; user-named functions are probed in the
  // targets, or in every process running that executable when there are none.
  struct Attach {
    std::vector<AtomicFunction> functions;
    pid_t pid;
  };
  std::vector<Attach> plan;
  std::vector<AtomicFunction> user;
  for (const config::AtomicFunction& named : options_.atomics) {
    if (auto fn = user_atomic_function(named)) user.push_back(*fn);
    else log::debug("cachelines: {}", fn.error().message());
  }
  bool explicit_targets = options_.pid || !options_.targets.empty();
  if (explicit_targets) {
    for (uint32_t pid : target_pids_) {
      std::vector<AtomicFunction> fns = process_atomic_functions(static_cast<pid_t>(pid));
      fns.insert(fns.end(), user.begin(), user.end());
      if (!fns.empty()) plan.push_back({std::move(fns), static_cast<pid_t>(pid)});
    }
  } else if (!user.empty()) {
    plan.push_back({user, -1});
  }
  if (plan.empty()) return;

  atomic_functions_.clear();
  std::vector<std::unique_ptr<AtomicProbes>> probes;
  auto start = std::chrono::steady_clock::now();
  size_t attached = 0;
  for (const Attach& a : plan) {
    auto first = static_cast<uint32_t>(atomic_functions_.size());
    atomic_functions_.insert(atomic_functions_.end(), a.functions.begin(), a.functions.end());
    probes.push_back(AtomicProbes::attach(skel_->progs.cacheline_atomic_call, a.functions, a.pid, first));
    attached += probes.back()->attached();
    for (const loader::ProbeStatus& row : probes.back()->rows())
      if (!row.attached) log::debug("cachelines: uprobe {}: {}", row.target, row.detail);
  }
  if (attached > 0) {
    auto deadline = std::chrono::steady_clock::now() + options_.window;
    while (std::chrono::steady_clock::now() < deadline && !stop_) ring_buffer__poll(ring_.get(), 5);
  }
  // The breakpoints leave the target's code as soon as unregistering
  // starts; the grace-period wait that follows (~0.1 s per uprobe here) is
  // the agent's, not the target's, so the window ends when it starts. The
  // counts are read once every probe is gone.
  auto end = std::chrono::steady_clock::now();
  duty_->record(start, end);
  probes.clear();
  log::debug("cachelines: atomic window: {} functions attached in {} process(es), {:.1f} ms", attached, plan.size(),
             std::chrono::duration<double, std::milli>(end - start).count());

  // Read and clear the counts.
  int fd = bpf_map__fd(skel_->maps.atomic_calls);
  std::vector<cacheline_atomic_key> keys;
  cacheline_atomic_key key{}, next{};
  cacheline_atomic_key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  struct Sum {
    uint64_t calls = 0;
    std::set<uint32_t> threads;
    std::set<std::string> functions;
  };
  std::map<std::pair<uint32_t, uint64_t>, Sum> sums;
  for (const cacheline_atomic_key& k : keys) {
    cacheline_atomic_count count{};
    if (bpf_map_lookup_elem(fd, &k, &count) == 0) {
      Sum& s = sums[{k.tgid, k.addr}];
      s.calls += count.calls;
      s.threads.insert(k.tid);
      if (k.function < atomic_functions_.size()) s.functions.insert(atomic_functions_[k.function].symbol);
    }
    bpf_map_delete_elem(fd, &k);
  }
  double window_s = std::max(std::chrono::duration<double>(end - start).count(), 1e-6);
  // Calls outside the windows are estimated from the ones inside: scale by
  // the wall time this window stands for.
  double stands_for = last_atomics_end_ == std::chrono::steady_clock::time_point{}
                          ? std::chrono::duration<double>(options_.atomics_every).count()
                          : std::chrono::duration<double>(end - last_atomics_end_).count();
  double scale = std::max(1.0, stands_for / window_s);
  last_atomics_end_ = end;

  std::vector<std::pair<uint64_t, std::pair<uint32_t, uint64_t>>> hottest;
  for (const auto& [k, s] : sums) {
    std::string symbol = "?";
    if (auto name = symbolizer_.symbolize_data(static_cast<int>(k.first), k.second)) symbol = *name;
    std::string functions;
    for (const std::string& f : s.functions) functions += (functions.empty() ? "" : ", ") + f;
    std::string cgroup = cgroup_label(k.first);
    std::string process = fmt::format("{}[{}]", comm_of(k.first), k.first);
    std::lock_guard lock(mu_);
    AtomicReport& r = atomics_seen_[k];
    r.pid = k.first;
    r.address = k.second;
    r.symbol = symbol;
    r.functions = functions;
    r.calls += s.calls;
    r.calls_per_second = static_cast<double>(s.calls) / window_s;
    r.threads.assign(s.threads.begin(), s.threads.end());
    double estimate = static_cast<double>(s.calls) * scale;
    if (atomic_members_.contains(k) || atomic_members_.size() < options_.top_k) {
      atomic_members_.insert(k);
      atomic_estimates_[k] += estimate;
      atomic_labels_[k] = {cgroup, process};
    } else {
      atomic_other_ += estimate;
    }
    hottest.emplace_back(s.calls, k);
  }
  {
    std::lock_guard lock(mu_);
    ++status_.atomic_windows;
    status_.watched_seconds = std::chrono::duration<double>(duty_->watched()).count();
    status_.watched_fraction = duty_->cycle_fraction();
  }
  std::ranges::sort(hottest, std::greater<>());
  for (size_t i = 0; i < hottest.size() && i < 16; ++i)
    queue_->hint({hottest[i].second.first, hottest[i].second.second, CandidateOrigin::atomic,
                  static_cast<double>(hottest[i].first), "atomic"});
}

// --- results -------------------------------------------------------------------------

std::string CachelinesCollector::comm_of(uint32_t pid) { return read_comm(pid); }

const DataFields* CachelinesCollector::fields_for(uint32_t pid, const probes::Mapping& module) {
  std::string key = fmt::format("{}:{}:{}", module.dev_major, module.dev_minor, module.inode);
  auto [it, inserted] = fields_.try_emplace(key);
  if (inserted) {
    // Parsed once per file; a file without DWARF is remembered as such.
    if (auto opened = DataFields::open(probes::host_path(static_cast<int>(pid), module)))
      it->second = std::move(*opened);
    if (fields_.size() > 64) fields_.erase(fields_.begin() == it ? std::next(fields_.begin()) : fields_.begin());
  }
  return it->second.get();
}

std::string CachelinesCollector::cgroup_label(uint32_t pid) {
  auto path = probes::cgroup_path_of_pid(static_cast<int>(pid));
  if (!path) return "other";
  std::lock_guard lock(mu_);
  // Bounded like every cgroup label: the first max_cgroups paths keep theirs.
  if (line_cgroups_.contains(*path) || line_cgroups_.size() < options_.max_cgroups) {
    line_cgroups_.insert(*path);
    return *path;
  }
  return "other";
}

void CachelinesCollector::publish_line(const LineKey& key, const LineState& state) {
  if (!state.result) return;
  const LineResult& result = *state.result;
  LineReport r;
  r.pid = key.pid;
  r.comm = comm_of(key.pid);
  r.cgroup = cgroup_label(key.pid);
  r.line = key.line;
  r.origin = std::string(to_string(state.origin));
  r.verdict = result.verdict;
  r.accesses_per_second = result.accesses_per_second;
  r.hits = result.hits;
  r.watched_ms = std::chrono::duration<double, std::milli>(result.watched).count();
  r.threads.assign(result.threads.begin(), result.threads.end());
  r.cpus.assign(result.cpus.begin(), result.cpus.end());
  // The module the line lives in (.bss past the file's last page is the
  // anonymous mapping right after it): for padding names and DWARF fields.
  const probes::Mapping* module = nullptr;
  auto maps = probes::read_maps(static_cast<int>(key.pid));
  if (maps)
    if ((module = probes::find_mapping(*maps, key.line)))
      if (!module->is_file() && module != maps->data() && (module - 1)->is_file() && (module - 1)->end == module->start)
        module = module - 1;
  const DataFields* fields = module && module->is_file() ? fields_for(key.pid, *module) : nullptr;
  for (const UnitThreads& u : result.units) {
    OffsetReport o;
    o.offset = u.unit.offset;
    o.len = u.unit.len;
    for (const auto& [tid, access] : u.threads) {
      if (access.total() < options_.verdict.min_hits) continue;  // the same bar the verdict used
      o.threads.push_back(tid);
      o.writes += access.writes;
      o.accesses += access.accesses + access.loads;
    }
    if (o.threads.empty()) continue;
    auto name = symbolizer_.symbolize_data(static_cast<int>(key.pid), key.line + u.unit.offset);
    o.symbol = name ? *name : "?";
    // "g_stats+0x48" → "g_stats.slots[4].hits" where DWARF says so.
    if (size_t plus = o.symbol.rfind("+0x"); fields && plus != std::string::npos && plus > 0) {
      std::string variable = o.symbol.substr(0, plus);
      if (size_t colons = variable.rfind("::"); colons != std::string::npos) variable = variable.substr(colons + 2);
      uint64_t within = std::strtoull(o.symbol.c_str() + plus + 1, nullptr, 16);
      if (auto path = fields->field_at(variable, within)) o.field = o.symbol.substr(0, plus) + *path;
    }
    r.offsets.push_back(std::move(o));
  }
  for (size_t i = 0; i < result.sites.size() && i < 4; ++i) {
    const auto& [ip, hits] = result.sites[i];
    // The trap reports the instruction after the access: look up ip - 1.
    const uint64_t lookup[] = {ip - 1};
    std::string where = fmt::format("{:#x}", ip);
    if (auto frames = symbolizer_.symbolize(static_cast<int>(key.pid), lookup); frames && !frames->empty())
      where = (*frames)[0].to_string();
    r.sites.push_back({ip, hits, where});
  }
  if (r.offsets.empty()) {
    auto name = symbolizer_.symbolize_data(static_cast<int>(key.pid), key.line);
    OffsetReport start;
    start.symbol = name ? *name : "?";
    r.symbol = line_symbol(std::span<const OffsetReport>(&start, 1));
  } else {
    // Bytes outside every object (padding, alignment) are named after the
    // module ("falseshare+0x6218"); the line is named after its objects.
    std::vector<OffsetReport> named;
    if (module && module->is_file()) {
      std::string fallback = module->path.substr(module->path.rfind('/') + 1) + "+0x";
      for (const OffsetReport& o : r.offsets)
        if (!o.symbol.starts_with(fallback)) named.push_back(o);
    }
    r.symbol = line_symbol(named.empty() ? r.offsets : named);
  }
  std::lock_guard lock(mu_);
  results_[key] = std::move(r);
  ++status_.lines_confirmed;
}

std::vector<LineReport> CachelinesCollector::report(size_t top_n, bool include_unshared) {
  std::vector<LineReport> out;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  for (const auto& [key, r] : results_) {
    if (!include_unshared && r.verdict == Verdict::none) continue;
    out.push_back(r);
    (void)now;
  }
  std::ranges::sort(out, [](const LineReport& a, const LineReport& b) {
    if (a.verdict != b.verdict) return a.verdict > b.verdict;  // false sharing first
    return a.accesses_per_second > b.accesses_per_second;
  });
  if (out.size() > top_n) out.resize(top_n);
  return out;
}

std::vector<SampledLineReport> CachelinesCollector::sampled_report(size_t top_n) {
  std::vector<SampledLine> top;
  {
    std::lock_guard lock(mu_);
    top = samples_.top(top_n);
  }
  std::vector<SampledLineReport> out;
  for (const SampledLine& line : top) {
    SampledLineReport r;
    r.pid = line.pid;
    r.line = line.line;
    r.verdict = line.verdict();
    r.samples = line.samples();
    r.loads = line.loads;
    r.stores = line.stores;
    r.hitm = line.hitm;
    r.threads.assign(line.threads.begin(), line.threads.end());
    r.cpus.assign(line.cpus.begin(), line.cpus.end());
    for (const auto& [offset, o] : line.offsets) {
      OffsetReport report;
      report.offset = offset;
      report.len = 1;
      for (const auto& [tid, access] : o.threads) report.threads.push_back(tid);
      report.writes = o.stores;
      report.accesses = o.loads + o.unknown;
      auto name = symbolizer_.symbolize_data(static_cast<int>(line.pid), line.line + offset);
      report.symbol = name ? *name : "?";
      r.offsets.push_back(std::move(report));
    }
    r.symbol = line_symbol(r.offsets);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<AtomicReport> CachelinesCollector::atomic_report(size_t top_n) {
  std::vector<AtomicReport> out;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, r] : atomics_seen_) out.push_back(r);
  }
  std::ranges::sort(out, [](const AtomicReport& a, const AtomicReport& b) { return a.calls > b.calls; });
  if (out.size() > top_n) out.resize(top_n);
  return out;
}

CachelinesStatus CachelinesCollector::status() const {
  std::lock_guard lock(mu_);
  CachelinesStatus s = status_;
  s.samples = samples_.samples();
  if (skel_) {
    for (uint32_t i = CL_LOST_WATCH; i <= CL_LOST_ATOMIC; ++i)
      s.events_lost += loader::BpfSelfMetrics::events_lost(skel_->obj, i);
  }
  return s;
}

void CachelinesCollector::update_probe_rows() {
  if (!report_) return;
  CachelinesStatus s = status();
  std::vector<loader::ProbeStatus> rows;
  rows.push_back(
      {"cacheline_watch_hit", "perf_event",
       "hardware breakpoints (PERF_TYPE_BREAKPOINT), per thread of the watched line, in windows", watchpoints_,
       watchpoints_ ? fmt::format("window {} ms, duty cycle {}: {} windows, watched {} of the time, {} lines "
                                  "judged, {} thread-windows skipped (debug registers busy)",
                                  std::chrono::duration<double, std::milli>(options_.window).count(),
                                  percent(options_.duty_cycle), s.windows, percent(s.watched_fraction),
                                  s.lines_confirmed, s.threads_busy)
                    : watch_reason_});
  std::string sampling_target;
  for (const PerfEventChoice& e : sampling_plan_.events)
    sampling_target += (sampling_target.empty() ? "" : ", ") + e.name;
  rows.push_back({"cacheline_mem_sample", "perf_event",
                  sampling_target.empty() ? "memory-access samples" : sampling_target, !sampling_events_.empty(),
                  !sampling_events_.empty()  ? fmt::format("{}: {} samples", sampling_plan_.reason, s.samples)
                  : sampling_reason_.empty() ? sampling_plan_.reason
                                             : sampling_reason_});
  bool counters = references_events_ && misses_events_;
  rows.push_back({"cacheline_cache_references", "perf_event", "cache-references per CPU", counters,
                  counters ? "per-cgroup syncscope_cache_references_total" : counters_reason_});
  rows.push_back({"cacheline_cache_misses", "perf_event", "cache-misses per CPU", counters,
                  counters ? "per-cgroup syncscope_cache_misses_total" : counters_reason_});
  rows.push_back({"cacheline_atomic_call", "uprobe", "libatomic __atomic_*, Go sync/atomic, cachelines.atomics",
                  atomics_ && s.atomic_windows > 0,
                  atomics_
                      ? fmt::format("attached only inside windows of {} ms, at most every {} s: {} windows so far",
                                    std::chrono::duration<double, std::milli>(options_.window).count(),
                                    std::chrono::duration<double>(options_.atomics_every).count(), s.atomic_windows)
                      : atomics_reason_});
  report_->set("cachelines", std::move(rows), "active path: " + s.path);
}

void CachelinesCollector::refresh(std::chrono::steady_clock::time_point now) {
  (void)now;
  // Hints from the other collectors, for the processes we may watch.
  std::vector<CandidateSource*> sources;
  std::vector<uint32_t> pids;
  {
    std::lock_guard lock(mu_);
    sources = sources_;
    pids.assign(known_pids_.begin(), known_pids_.end());
  }
  if (!sources.empty()) {
    if (!options_.pid && options_.targets.empty()) pids = ProcfsProcessSource().all_pids();
    std::vector<CandidateHint> hints;
    for (CandidateSource* source : sources) {
      std::vector<CandidateHint> more = source->hints(pids);
      hints.insert(hints.end(), more.begin(), more.end());
    }
    std::lock_guard lock(mu_);
    for (CandidateHint& h : hints)
      if (inbox_.size() < 100000) inbox_.push_back(std::move(h));
  }

  // Cache counters per cgroup (PMU hosts).
  std::map<std::string, std::array<double, 2>> counts;
  if (references_events_ && misses_events_) {
    int fd = bpf_map__fd(skel_->maps.cgroup_cache);
    uint64_t key = 0, next = 0;
    uint64_t* prev = nullptr;
    std::vector<uint64_t> gone;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      key = next;
      prev = &key;
      cacheline_cgroup_counts value{};
      if (bpf_map_lookup_elem(fd, &key, &value) != 0) continue;
      std::optional<std::string> path = cgroups_->path_of(key);
      if (!path) {
        // A vanished cgroup: its counts move to "other" for good.
        retired_counts_[0] += static_cast<double>(value.counts[0]);
        retired_counts_[1] += static_cast<double>(value.counts[1]);
        gone.push_back(key);
        continue;
      }
      std::string label = "other";
      if (auto it = cgroup_labels_.find(key); it != cgroup_labels_.end()) {
        label = it->second;
      } else if (own_cgroup_labels_.size() < options_.max_cgroups || own_cgroup_labels_.contains(*path)) {
        label = *path;
        cgroup_labels_[key] = label;
        ++own_cgroup_labels_[label];
      } else {
        cgroup_labels_[key] = label;
      }
      counts[label][0] += static_cast<double>(value.counts[0]);
      counts[label][1] += static_cast<double>(value.counts[1]);
    }
    for (uint64_t id : gone) {
      bpf_map_delete_elem(fd, &id);
      cgroup_labels_.erase(id);
    }
    counts["other"][0] += retired_counts_[0];
    counts["other"][1] += retired_counts_[1];
  }

  // Families.
  auto contention = metrics::gauge(
      "syncscope_cacheline_contention",
      "Accesses per second to a shared cache line while it was watched (hardware watchpoints), top-K lines + other; "
      "verdict = false_sharing | true_sharing.");
  auto false_lines = metrics::gauge("syncscope_false_sharing_lines", "Cache lines currently judged falsely shared.");
  auto atomic_ops = metrics::counter(
      "syncscope_atomic_ops_total",
      "Out-of-line atomic calls per address, estimated from bounded uprobe windows (calls counted in a window times "
      "the wall time it stands for), top-K addresses + other.");
  auto pmu = metrics::gauge("syncscope_pmu_available",
                            "1 when the host has a hardware PMU (cache counters, memory sampling).");
  auto windows = metrics::counter("syncscope_cacheline_watch_windows_total", "Hardware-watchpoint windows run.");
  auto watched = metrics::counter("syncscope_cacheline_watched_seconds_total",
                                  "Seconds during which watchpoints were armed (duty cycle = rate of this).");
  auto skipped = metrics::counter("syncscope_cacheline_threads_skipped_total",
                                  "Thread-windows without watchpoints: busy = debug registers taken (ENOSPC), gone = "
                                  "exited, failed = other errors, capped = beyond 1024 threads.");
  auto refs = metrics::counter("syncscope_cache_references_total", "Hardware cache references by cgroup v2 (sampled).");
  auto misses = metrics::counter("syncscope_cache_misses_total", "Hardware cache misses by cgroup v2 (sampled).");

  std::vector<metrics::Family> families;
  {
    std::lock_guard lock(mu_);
    std::vector<const LineReport*> shared;
    std::map<std::string, double> false_by_cgroup;
    for (const auto& [key, r] : results_) {
      if (r.verdict == Verdict::none) continue;
      shared.push_back(&r);
      if (r.verdict == Verdict::false_sharing) false_by_cgroup[r.cgroup] += 1;
    }
    std::ranges::sort(shared, [](const LineReport* a, const LineReport* b) {
      return a->accesses_per_second > b->accesses_per_second;
    });
    double other = 0;
    for (size_t i = 0; i < shared.size(); ++i) {
      const LineReport& r = *shared[i];
      if (i >= options_.top_k) {
        other += r.accesses_per_second;
        continue;
      }
      std::string symbol = r.symbol;
      if ((symbol == "heap" || symbol == "stack") && !r.sites.empty()) {
        std::string where = r.sites.front().where;
        if (size_t plus = where.find('+'); plus != std::string::npos) where.resize(plus);
        symbol += ": " + where;
      }
      contention.add({{"cgroup", r.cgroup},
                      {"process", fmt::format("{}[{}]", r.comm, r.pid)},
                      {"line", hex_address(r.line)},
                      {"symbol", symbol},
                      {"verdict", std::string(to_string(r.verdict))}},
                     r.accesses_per_second);
    }
    if (shared.size() > options_.top_k)
      contention.add(
          {{"cgroup", "other"}, {"process", "other"}, {"line", "other"}, {"symbol", "other"}, {"verdict", "other"}},
          other);
    for (const auto& [cgroup, n] : false_by_cgroup) false_lines.add({{"cgroup", cgroup}}, n);
    for (const auto& key : atomic_members_) {
      auto labels = atomic_labels_[key];
      std::string symbol = atomics_seen_.contains(key) ? atomics_seen_[key].symbol : "?";
      atomic_ops.add({{"cgroup", labels.first},
                      {"process", labels.second},
                      {"address", hex_address(key.second)},
                      {"symbol", symbol}},
                     std::floor(atomic_estimates_[key]));
    }
    if (!atomic_members_.empty() || atomic_other_ > 0)
      atomic_ops.add({{"cgroup", "other"}, {"process", "other"}, {"address", "other"}, {"symbol", "other"}},
                     std::floor(atomic_other_));
    windows.add({}, static_cast<double>(status_.windows));
    watched.add({}, status_.watched_seconds);
    skipped.add({{"reason", "busy"}}, static_cast<double>(status_.threads_busy));
    skipped.add({{"reason", "gone"}}, static_cast<double>(status_.threads_gone));
    skipped.add({{"reason", "failed"}}, static_cast<double>(status_.threads_failed));
    skipped.add({{"reason", "capped"}}, static_cast<double>(status_.threads_capped));
  }
  pmu.add({}, features_.pmu ? 1 : 0);
  families.push_back(std::move(contention));
  families.push_back(std::move(false_lines));
  families.push_back(std::move(atomic_ops));
  families.push_back(std::move(pmu));
  families.push_back(std::move(windows));
  families.push_back(std::move(watched));
  families.push_back(std::move(skipped));
  if (references_events_ && misses_events_) {
    for (const auto& [label, c] : counts) {
      refs.add({{"cgroup", label}}, c[0]);
      misses.add({{"cgroup", label}}, c[1]);
    }
    families.push_back(std::move(refs));
    families.push_back(std::move(misses));
  }
  update_probe_rows();
  std::lock_guard lock(mu_);
  published_ = std::move(families);
}

void CachelinesCollector::collect(std::vector<metrics::Family>& out) const {
  std::lock_guard lock(mu_);
  out.insert(out.end(), published_.begin(), published_.end());
}

}  // namespace syncscope::collectors
