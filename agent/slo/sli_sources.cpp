#include "agent/slo/sli_sources.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>

#include "agent/collectors/goroutines.h"
#include "agent/collectors/locks.h"
#include "agent/collectors/locks_targets.h"
#include "agent/core/format.h"
#include "agent/core/log.h"
#include "probes/cgroup.h"

namespace syncscope::slo {
namespace {

namespace fs = std::filesystem;
using SteadyTime = std::chrono::steady_clock::time_point;

// exe and comm targets: how long a /proc walk's thread count is reused.
constexpr auto kProcessThreadsTtl = std::chrono::seconds(5);
// Evidence: how often the per-cgroup histogram baseline is taken.
constexpr auto kEvidenceBaselineEvery = std::chrono::seconds(10);

uint64_t count_lines(const fs::path& file) {
  std::ifstream in(file);
  uint64_t lines = 0;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) ++lines;
  return lines;
}

// Threads in a cgroup v2 group and every group below it (cgroup.threads
// lists a group's own threads only).
std::optional<uint64_t> cgroup_threads(const fs::path& directory) {
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) return std::nullopt;
  uint64_t threads = count_lines(directory / "cgroup.threads");
  for (fs::recursive_directory_iterator it(directory, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) threads += count_lines(it->path() / "cgroup.threads");
  }
  return threads;
}

std::optional<uint64_t> task_count(uint32_t pid) {
  std::error_code ec;
  fs::directory_iterator it(fmt::format("/proc/{}/task", pid), ec);
  if (ec) return std::nullopt;
  uint64_t n = 0;
  for (fs::directory_iterator end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

bool same_lock_row(const collectors::LockSloRow& a, const collectors::LockSloRow& b) {
  return a.target == b.target && a.threshold_ns == b.threshold_ns;
}
bool same_runq_row(const collectors::RunqSloRow& a, const collectors::RunqSloRow& b) {
  return a.cgroup_id == b.cgroup_id && a.level == b.level && a.threshold_ns == b.threshold_ns;
}
template <typename Row, typename Same>
bool same_rows(const std::vector<Row>& a, const std::vector<Row>& b, Same same) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), same);
}

}  // namespace

// --- CollectorSliHost --------------------------------------------------------

void CollectorSliHost::connect(collectors::SchedCollector* sched, collectors::LocksCollector* locks,
                               const collectors::GoroutinesCollector* goroutines) {
  sched_ = sched;
  locks_ = locks;
  goroutines_ = goroutines;
}

std::string CollectorSliHost::runq_unavailable() const {
  return sched_ ? "" : "the sched collector is not running (sched.enabled, or it failed: see /debug/probes)";
}
std::string CollectorSliHost::locks_unavailable() const {
  return locks_ ? "" : "the locks collector is not running (locks.enabled, or it failed: see /debug/probes)";
}
std::string CollectorSliHost::goroutines_unavailable() const {
  return goroutines_ ? "" : "the goroutines collector is not running (golang.enabled, or it failed: see /debug/probes)";
}

Result<void> CollectorSliHost::set_runq_rows(const std::vector<collectors::RunqSloRow>& rows) {
  if (!sched_) return fail("sched collector not running");
  return sched_->set_slo_rows(rows);
}
collectors::RunqSloCounts CollectorSliHost::runq_counts(size_t row) const {
  return sched_ ? sched_->slo_counts(row) : collectors::RunqSloCounts{};
}
void CollectorSliHost::set_lock_rows(const std::vector<collectors::LockSloRow>& rows) {
  if (locks_) locks_->set_slo_rows(rows);
}
collectors::LockSloCounts CollectorSliHost::lock_counts(size_t row) const {
  return locks_ ? locks_->slo_counts(row) : collectors::LockSloCounts{};
}
std::optional<uint64_t> CollectorSliHost::live_goroutines(const config::TargetSelector& target) const {
  return goroutines_ ? goroutines_->live_goroutines(target) : std::nullopt;
}

Result<CgroupRef> CollectorSliHost::resolve_cgroup(const config::TargetSelector& target) {
  std::string path;
  if (target.kind == config::TargetSelector::Kind::cgroup) {
    path = target.value;
  } else if (target.kind == config::TargetSelector::Kind::unit) {
    auto found = cgroups_.find_unit(target.value);
    if (!found) return fail(fmt::format("no cgroup for unit {} (yet): {}", target.value, found.error().message()));
    path = *found;
  } else {
    return fail(fmt::format("{}: run-queue latency is counted per cgroup; use a cgroup or unit target",
                            target.describe()));
  }
  auto id = cgroups_.id_of(path);
  if (!id) return fail(fmt::format("cgroup {} does not exist (yet) under {}", path, cgroups_.mount()));
  return CgroupRef{*id, probes::CgroupResolver::level_of(path), path};
}

std::optional<uint64_t> CollectorSliHost::threads_of(const config::TargetSelector& target) {
  using Kind = config::TargetSelector::Kind;
  switch (target.kind) {
    case Kind::cgroup: return cgroup_threads(fs::path(cgroups_.mount() + target.value));
    case Kind::unit: {
      auto path = cgroups_.find_unit(target.value);
      if (!path) return std::nullopt;
      return cgroup_threads(fs::path(cgroups_.mount() + *path));
    }
    case Kind::pid: {
      uint32_t pid = 0;
      auto [end, ec] = std::from_chars(target.value.data(), target.value.data() + target.value.size(), pid);
      if (ec != std::errc{}) return std::nullopt;
      return task_count(pid);
    }
    case Kind::exe:
    case Kind::comm: break;
  }
  // exe and comm: walk /proc (cached, it costs a few reads per process).
  const std::string key = target.describe();
  const auto now = std::chrono::steady_clock::now();
  if (auto it = process_threads_.find(key); it != process_threads_.end() && now - it->second.at < kProcessThreadsTtl)
    return it->second.threads;
  config::TargetSelector selector = target;
  if (selector.kind == Kind::exe) {
    std::error_code ec;
    fs::path canonical = fs::canonical(selector.value, ec);
    if (!ec) selector.value = canonical.string();
  }
  collectors::ProcfsProcessSource proc;
  std::optional<uint64_t> threads;
  for (uint32_t pid : proc.all_pids()) {
    auto identity = proc.identify(pid);
    if (!identity || !collectors::matches(selector, *identity)) continue;
    if (auto n = task_count(pid)) threads = threads.value_or(0) + *n;
  }
  process_threads_[key] = CachedThreads{threads, now};
  return threads;
}

// --- CollectorSliSource ------------------------------------------------------

CollectorSliSource::CollectorSliSource(const std::vector<config::SloConfig>& slos, SliHost& host) : host_(host) {
  bindings_.reserve(slos.size());
  for (const config::SloConfig& slo : slos) {
    by_name_.emplace(slo.name, bindings_.size());
    bindings_.push_back(Binding{.slo = slo});
  }
}

void CollectorSliSource::snapshot() {
  // Each row is read once however many SLOs share it (a kernel row is one
  // per-CPU map lookup).
  std::vector<std::optional<collectors::RunqSloCounts>> runq(runq_rows_.size());
  std::vector<std::optional<collectors::LockSloCounts>> locks(lock_rows_.size());
  std::map<std::string, std::optional<uint64_t>> threads;  // per target, this refresh
  for (Binding& b : bindings_) {
    if (b.runq_row) {
      auto& cached = runq.at(*b.runq_row);
      if (!cached) cached = host_.runq_counts(*b.runq_row);
      const collectors::RunqSloCounts c = *cached;
      b.current = EventCounters{c.total >= c.over ? c.total - c.over : 0, c.over};
    } else if (b.lock_row) {
      auto& cached = locks.at(*b.lock_row);
      if (!cached) cached = host_.lock_counts(*b.lock_row);
      const collectors::LockSloCounts c = *cached;
      b.current = EventCounters{c.total >= c.over ? c.total - c.over : 0, c.over};
      b.wait_total_ns = c.wait_ns;
    }
    if (b.slo.sli.kind == config::Sli::Kind::goroutines && b.problem.empty())
      b.goroutines = host_.live_goroutines(b.slo.target);
    if (b.slo.sli.kind == config::Sli::Kind::lock_wait_ratio && b.problem.empty()) {
      const std::string key = b.slo.target.describe();
      auto it = threads.find(key);
      if (it == threads.end()) it = threads.emplace(key, host_.threads_of(b.slo.target)).first;
      b.threads = it->second;
    }
  }
}

void CollectorSliSource::fold_into_offsets() {
  for (Binding& b : bindings_) {
    b.offset.good_total += b.current.good_total;
    b.offset.bad_total += b.current.bad_total;
    b.wait_offset_ns += b.wait_total_ns;
    b.current = {};
    b.wait_total_ns = 0;
  }
}

void CollectorSliSource::rebuild_rows(bool force) {
  const std::string runq_down = host_.runq_unavailable();
  const std::string locks_down = host_.locks_unavailable();
  const std::string goroutines_down = host_.goroutines_unavailable();

  std::vector<collectors::RunqSloRow> runq_rows;
  std::vector<collectors::LockSloRow> lock_rows;
  std::vector<std::optional<size_t>> runq_index(bindings_.size());
  std::vector<std::optional<size_t>> lock_index(bindings_.size());
  std::vector<std::string> problems(bindings_.size());
  std::vector<std::optional<CgroupRef>> cgroups(bindings_.size());
  std::map<std::string, Result<CgroupRef>> resolved;  // per target, this round
  // Equal rows are shared: 1000 SLOs over a few targets cost a few rows.
  std::map<std::tuple<uint64_t, uint32_t, uint64_t>, size_t> runq_row_of;
  std::map<std::pair<std::string, uint64_t>, size_t> lock_row_of;

  for (size_t i = 0; i < bindings_.size(); ++i) {
    const config::SloConfig& slo = bindings_[i].slo;
    switch (slo.sli.kind) {
      case config::Sli::Kind::runq_latency: {
        if (!runq_down.empty()) {
          problems[i] = runq_down;
          break;
        }
        const std::string key = slo.target.describe();
        auto it = resolved.find(key);
        if (it == resolved.end()) it = resolved.emplace(key, host_.resolve_cgroup(slo.target)).first;
        if (!it->second) {
          problems[i] = it->second.error().message();
          break;
        }
        cgroups[i] = *it->second;
        const collectors::RunqSloRow row{it->second->id, it->second->level,
                                         static_cast<uint64_t>(slo.sli.threshold.count())};
        const auto key_of_row = std::tuple{row.cgroup_id, row.level, row.threshold_ns};
        if (auto found = runq_row_of.find(key_of_row); found != runq_row_of.end()) {
          runq_index[i] = found->second;
        } else if (runq_rows.size() < SCHED_MAX_SLOS) {
          runq_index[i] = runq_rows.size();
          runq_row_of.emplace(key_of_row, runq_rows.size());
          runq_rows.push_back(row);
        } else {
          problems[i] = fmt::format("more than {} distinct (cgroup, threshold) pairs among the run-queue SLOs: the "
                                    "kernel side counts at most that many",
                                    SCHED_MAX_SLOS);
        }
        break;
      }
      case config::Sli::Kind::lock_wait:
      case config::Sli::Kind::lock_wait_ratio: {
        if (!locks_down.empty()) {
          problems[i] = locks_down;
          break;
        }
        const uint64_t threshold =
            slo.sli.kind == config::Sli::Kind::lock_wait ? static_cast<uint64_t>(slo.sli.threshold.count()) : 0;
        auto [found, inserted] = lock_row_of.try_emplace(std::pair{slo.target.describe(), threshold}, lock_rows.size());
        if (inserted) lock_rows.push_back(collectors::LockSloRow{slo.target, threshold});
        lock_index[i] = found->second;
        break;
      }
      case config::Sli::Kind::goroutines:
        problems[i] = goroutines_down;
        break;
    }
  }

  const bool runq_changed = force || !same_rows(runq_rows, runq_rows_, same_runq_row);
  const bool locks_changed = force || !same_rows(lock_rows, lock_rows_, same_lock_row);
  if (runq_changed || locks_changed) {
    // The collectors reset the counters of replaced rows: keep what they
    // counted so far in the offsets. (force: the collectors are new, and the
    // last snapshot is the most recent reading there is.)
    if (!force) snapshot();
    for (size_t i = 0; i < bindings_.size(); ++i) {
      Binding& b = bindings_[i];
      const bool replaced = (runq_changed && b.runq_row) || (locks_changed && b.lock_row) || force;
      if (!replaced) continue;
      b.offset.good_total += b.current.good_total;
      b.offset.bad_total += b.current.bad_total;
      b.wait_offset_ns += b.wait_total_ns;
      b.current = {};
      b.wait_total_ns = 0;
    }
  }
  if (runq_changed && runq_down.empty()) {
    if (auto set = host_.set_runq_rows(runq_rows); !set) {
      log::error("slo: installing {} run-queue SLO rows: {}", runq_rows.size(), set.error().message());
      for (size_t i = 0; i < bindings_.size(); ++i)
        if (runq_index[i]) {
          problems[i] = set.error().message();
          runq_index[i].reset();
        }
      runq_rows.clear();
    }
  }
  if (locks_changed && locks_down.empty()) host_.set_lock_rows(lock_rows);
  runq_rows_ = std::move(runq_rows);
  lock_rows_ = std::move(lock_rows);

  std::string problem_log;
  for (size_t i = 0; i < bindings_.size(); ++i) {
    Binding& b = bindings_[i];
    b.runq_row = runq_index[i];
    b.lock_row = lock_index[i];
    b.cgroup = cgroups[i];
    b.problem = problems[i];
    if (!b.problem.empty()) problem_log += b.slo.name + ": " + b.problem + "\n";
  }
  if (problem_log != logged_problems_) {
    for (const Binding& b : bindings_)
      if (!b.problem.empty()) log::warn("slo {}: not measured: {}", b.slo.name, b.problem);
    if (problem_log.empty() && !logged_problems_.empty()) log::info("slo: every SLO is measured");
    logged_problems_ = std::move(problem_log);
  }
}

void CollectorSliSource::refresh(std::chrono::steady_clock::time_point now) {
  now_ = now;
  rebuild_rows(false);
  snapshot();
  nlohmann::json status = nlohmann::json::object();
  for (const Binding& b : bindings_) {
    std::string source;
    if (b.runq_row)
      source = fmt::format("sched: kernel row {} (cgroup {} id {})", *b.runq_row, b.cgroup ? b.cgroup->path : "?",
                           b.cgroup ? b.cgroup->id : 0);
    else if (b.lock_row)
      source = fmt::format("locks: row {}", *b.lock_row);
    else if (b.slo.sli.kind == config::Sli::Kind::goroutines)
      source = "goroutines: last scan";
    std::string problem = b.problem;
    if (problem.empty() && b.slo.sli.kind == config::Sli::Kind::goroutines && !b.goroutines)
      problem = fmt::format("no Go process matching {} in the last goroutine scan", b.slo.target.describe());
    nlohmann::json entry = {{"measured", problem.empty()}, {"source", source}};
    if (!problem.empty()) entry["problem"] = problem;
    if (b.slo.sli.kind == config::Sli::Kind::lock_wait_ratio)
      entry["threads"] = b.threads ? nlohmann::json(*b.threads) : nlohmann::json(nullptr);
    status[b.slo.name] = std::move(entry);
  }
  std::lock_guard lock(status_mu_);
  status_ = std::move(status);
}

void CollectorSliSource::collectors_changed() {
  fold_into_offsets();
  rebuild_rows(true);
}

std::optional<SliReading> CollectorSliSource::read(const config::SloConfig& slo) const {
  auto it = by_name_.find(slo.name);
  if (it == by_name_.end()) return std::nullopt;
  Binding& b = bindings_[it->second];
  if (!b.problem.empty()) return std::nullopt;
  switch (b.slo.sli.kind) {
    case config::Sli::Kind::runq_latency:
    case config::Sli::Kind::lock_wait:
      return EventCounters{b.offset.good_total + b.current.good_total, b.offset.bad_total + b.current.bad_total};
    case config::Sli::Kind::lock_wait_ratio: {
      const uint64_t total = b.wait_offset_ns + b.wait_total_ns;
      WaitRatio ratio;
      if (b.last_read_at && b.last_wait_ns && b.threads && *b.threads > 0 && now_ > *b.last_read_at) {
        const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now_ - *b.last_read_at).count();
        ratio.waiting_ns = total >= *b.last_wait_ns ? total - *b.last_wait_ns : total;
        ratio.wall_ns = static_cast<uint64_t>(elapsed) * *b.threads;
      }
      b.last_read_at = now_;
      b.last_wait_ns = total;
      return ratio;
    }
    case config::Sli::Kind::goroutines:
      if (!b.goroutines) return std::nullopt;
      return GoroutineCount{*b.goroutines};
  }
  return std::nullopt;
}

nlohmann::json CollectorSliSource::status() const {
  std::lock_guard lock(status_mu_);
  return status_;
}

// --- evidence ----------------------------------------------------------------

std::vector<SlowCgroup> slowest_cgroups(const std::map<uint64_t, collectors::CgroupSchedStats>& before,
                                        const std::map<uint64_t, collectors::CgroupSchedStats>& after, size_t top_n,
                                        uint64_t min_wakeups) {
  std::vector<SlowCgroup> out;
  for (const auto& [id, stats] : after) {
    collectors::RunqHistogram diff = stats.runq;
    if (auto it = before.find(id); it != before.end() && it->second.runq.count() <= stats.runq.count()) {
      for (size_t i = 0; i < diff.slots.size(); ++i)
        diff.slots[i] -= std::min(diff.slots[i], it->second.runq.slots[i]);
      diff.sum_ns -= std::min(diff.sum_ns, it->second.runq.sum_ns);
    }
    const uint64_t wakeups = diff.count();
    if (wakeups < min_wakeups || wakeups == 0) continue;
    // The bucket where the cumulative count first reaches 99%.
    const double target = 0.99 * static_cast<double>(wakeups);
    uint64_t cumulative = 0;
    double p99_ns = 0;
    for (uint32_t slot = 0; slot < diff.slots.size(); ++slot) {
      cumulative += diff.slots[slot];
      if (static_cast<double>(cumulative) >= target) {
        const collectors::SlotBounds bounds = collectors::ll_slot_bounds(slot, LL_MIN_SHIFT);
        p99_ns = std::isfinite(bounds.upper) ? bounds.upper : bounds.lower;
        break;
      }
    }
    out.push_back(SlowCgroup{id, wakeups, p99_ns / 1e3,
                             static_cast<double>(diff.sum_ns) / static_cast<double>(wakeups) / 1e3});
  }
  std::sort(out.begin(), out.end(), [](const SlowCgroup& a, const SlowCgroup& b) {
    if (a.p99_us != b.p99_us) return a.p99_us > b.p99_us;
    if (a.mean_us != b.mean_us) return a.mean_us > b.mean_us;
    return a.cgroup_id < b.cgroup_id;
  });
  if (out.size() > top_n) out.resize(top_n);
  return out;
}

void CollectorEvidence::connect(collectors::SchedCollector* sched, collectors::LocksCollector* locks) {
  if (sched != sched_) {
    older_.clear();
    newer_.clear();
    next_baseline_ = {};
  }
  sched_ = sched;
  locks_ = locks;
}

void CollectorEvidence::refresh(std::chrono::steady_clock::time_point now) {
  if (!sched_ || now < next_baseline_) return;
  older_ = std::move(newer_);
  newer_ = sched_->read_cgroups();
  next_baseline_ = now + kEvidenceBaselineEvery;
}

nlohmann::json CollectorEvidence::evidence(const config::SloConfig& slo) const {
  (void)slo;  // the evidence is host-wide: what else was slow, not only the target
  nlohmann::json out = nlohmann::json::object();
  if (sched_) {
    const auto& before = older_.empty() ? newer_ : older_;
    nlohmann::json rows = nlohmann::json::array();
    for (const SlowCgroup& c : slowest_cgroups(before, sched_->read_cgroups(), kTopCgroups)) {
      std::optional<std::string> path = cgroups_.path_of(c.cgroup_id);
      rows.push_back({{"cgroup", path.value_or(fmt::format("id:{}", c.cgroup_id))},
                      {"wakeups", c.wakeups},
                      {"p99_us", std::round(c.p99_us * 10) / 10},
                      {"mean_us", std::round(c.mean_us * 10) / 10}});
    }
    out["slowest_cgroups"] = std::move(rows);
  }
  if (locks_) {
    nlohmann::json rows = nlohmann::json::array();
    for (const collectors::LockReport& r : locks_->report(kTopLocks)) {
      rows.push_back({{"pid", r.pid},
                      {"comm", r.comm},
                      {"lock", fmt::format("{:#x}", r.lock)},
                      {"symbol", r.symbol},
                      {"kind", std::string(collectors::to_string(r.kind))},
                      {"contentions", r.waits.count},
                      {"wait_ns", r.waits.total_ns},
                      {"max_wait_ns", r.waits.max_ns}});
    }
    out["top_locks"] = std::move(rows);
  }
  return out;
}

}  // namespace syncscope::slo
