#include "agent/collectors/cacheline_model.h"

#include <algorithm>
#include <cmath>

namespace syncscope::collectors {

std::string_view to_string(CandidateOrigin origin) {
  switch (origin) {
    case CandidateOrigin::lock:
      return "lock";
    case CandidateOrigin::futex:
      return "futex";
    case CandidateOrigin::go_mutex:
      return "go_mutex";
    case CandidateOrigin::atomic:
      return "atomic";
    case CandidateOrigin::pmu_sample:
      return "pmu_sample";
    case CandidateOrigin::watch_symbol:
      return "watch_symbol";
    case CandidateOrigin::global:
      return "global";
  }
  return "unknown";
}

int origin_rank(CandidateOrigin origin) {
  switch (origin) {
    case CandidateOrigin::pmu_sample:
      return 0;  // several threads already seen on the line
    case CandidateOrigin::lock:
      return 1;
    case CandidateOrigin::go_mutex:
      return 1;
    case CandidateOrigin::atomic:
      return 2;
    case CandidateOrigin::futex:
      return 3;
    case CandidateOrigin::watch_symbol:
      return 4;
    case CandidateOrigin::global:
      return 5;
  }
  return 9;
}

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::none:
      return "none";
    case Verdict::true_sharing:
      return "true_sharing";
    case Verdict::false_sharing:
      return "false_sharing";
  }
  return "none";
}

std::string_view fix_for(Verdict verdict) {
  switch (verdict) {
    case Verdict::false_sharing:
      return "pad to 64 bytes / alignas(64): give each thread's field its own cache line";
    case Verdict::true_sharing:
      return "the threads write the same data: shard it per thread (or per CPU) and combine on read";
    case Verdict::none:
      return "";
  }
  return "";
}

// --- the verdict ----------------------------------------------------------------

Verdict classify(std::span<const UnitThreads> units, const VerdictOptions& options) {
  struct Touch {
    std::set<WatchUnit> touched;
    std::set<WatchUnit> wrote;
  };
  std::map<uint32_t, Touch> by_thread;
  for (const UnitThreads& u : units) {
    for (const auto& [tid, access] : u.threads) {
      if (access.total() < options.min_hits) continue;
      Touch& t = by_thread[tid];
      t.touched.insert(u.unit);
      if (access.writes > 0) t.wrote.insert(u.unit);
    }
  }
  bool any_true = false;
  for (auto a = by_thread.begin(); a != by_thread.end(); ++a) {
    for (auto b = std::next(a); b != by_thread.end(); ++b) {
      const Touch& ta = a->second;
      const Touch& tb = b->second;
      bool a_only_written = false, b_only_written = false, a_only = false, b_only = false;
      for (const WatchUnit& u : ta.touched) {
        if (tb.touched.contains(u)) {
          if (ta.wrote.contains(u) || tb.wrote.contains(u)) any_true = true;
        } else {
          a_only = true;
          a_only_written |= ta.wrote.contains(u);
        }
      }
      for (const WatchUnit& u : tb.touched) {
        if (!ta.touched.contains(u)) {
          b_only = true;
          b_only_written |= tb.wrote.contains(u);
        }
      }
      // Each thread has a unit of its own and one of those is written: the
      // two would stop colliding if those units lived on different lines.
      if (a_only && b_only && (a_only_written || b_only_written)) return Verdict::false_sharing;
    }
  }
  return any_true ? Verdict::true_sharing : Verdict::none;
}

// --- one line's watchpoint hits ---------------------------------------------------

LineObservation::LineObservation() {
  for (uint8_t offset = 0; offset < kLineBytes; offset += 8) units_[WatchUnit{offset, 8}];
}

void LineObservation::add_phase(std::span<const WatchSlot> slots, Nanoseconds duration, size_t threads) {
  (void)threads;
  for (const WatchSlot& slot : slots) {
    UnitState& u = units_[slot.unit];
    (slot.type == WatchType::write ? u.watched_w : u.watched_rw) += duration;
  }
  watched_ += duration;
  ++phases_;
}

void LineObservation::add_hit(const WatchSlot& slot, uint32_t tid, uint32_t cpu, uint64_t ip) {
  UnitState& u = units_[slot.unit];
  ThreadAccess& access = u.threads[tid];
  if (slot.type == WatchType::write) {
    ++access.writes;
    ++u.hits_w;
  } else {
    ++access.accesses;
    ++u.hits_rw;
  }
  ++hits_;
  threads_.insert(tid);
  cpus_.insert(cpu);
  // Bounded: a tight loop hits from one or two ips; past the bound only
  // already-known sites are counted.
  if (auto it = sites_.find(ip); it != sites_.end()) ++it->second;
  else if (sites_.size() < 4 * kMaxSites) sites_[ip] = 1;
}

void LineObservation::split(const WatchUnit& unit) {
  if (unit.len <= 1) return;
  split_.insert(unit);
  uint8_t half = unit.len / 2;
  units_[WatchUnit{unit.offset, half}];
  units_[WatchUnit{static_cast<uint8_t>(unit.offset + half), half}];
}

std::vector<WatchUnit> LineObservation::leaves() const {
  std::vector<WatchUnit> out;
  std::vector<WatchUnit> todo;
  for (uint8_t offset = kLineBytes; offset > 0; offset -= 8) todo.push_back({static_cast<uint8_t>(offset - 8), 8});
  while (!todo.empty()) {
    WatchUnit u = todo.back();
    todo.pop_back();
    if (split_.contains(u)) {
      uint8_t half = u.len / 2;
      todo.push_back({static_cast<uint8_t>(u.offset + half), half});
      todo.push_back({u.offset, half});
    } else {
      out.push_back(u);
    }
  }
  return out;
}

std::vector<UnitThreads> LineObservation::unit_threads() const {
  std::vector<UnitThreads> out;
  for (const WatchUnit& leaf : leaves()) {
    auto it = units_.find(leaf);
    if (it == units_.end() || it->second.threads.empty()) continue;
    out.push_back({leaf, it->second.threads});
  }
  return out;
}

Verdict LineObservation::verdict(const VerdictOptions& options) const {
  std::vector<UnitThreads> units = unit_threads();
  return classify(units, options);
}

double LineObservation::accesses_per_second() const {
  double total = 0;
  for (const WatchUnit& leaf : leaves()) {
    auto it = units_.find(leaf);
    if (it == units_.end()) continue;
    const UnitState& u = it->second;
    double w =
        u.watched_w.count() > 0 ? static_cast<double>(u.hits_w) * 1e9 / static_cast<double>(u.watched_w.count()) : 0;
    double rw =
        u.watched_rw.count() > 0 ? static_cast<double>(u.hits_rw) * 1e9 / static_cast<double>(u.watched_rw.count()) : 0;
    total += std::max(w, rw);
  }
  return total;
}

uint64_t LineObservation::write_hits() const {
  uint64_t total = 0;
  for (const auto& [unit, state] : units_) total += state.hits_w;
  return total;
}

std::vector<std::pair<uint64_t, uint64_t>> LineObservation::sites() const {
  std::vector<std::pair<uint64_t, uint64_t>> out(sites_.begin(), sites_.end());
  std::ranges::sort(
      out, [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  if (out.size() > kMaxSites) out.resize(kMaxSites);
  return out;
}

namespace {

std::set<uint32_t> touching(const LineObservation::UnitState& u, uint64_t min_hits) {
  std::set<uint32_t> out;
  for (const auto& [tid, access] : u.threads)
    if (access.total() >= min_hits) out.insert(tid);
  return out;
}

bool has_writer(const LineObservation::UnitState& u) {
  for (const auto& [tid, access] : u.threads)
    if (access.writes > 0) return true;
  return false;
}

std::vector<WatchPhase> group(const std::vector<WatchSlot>& slots, size_t max_phases) {
  std::vector<WatchPhase> phases;
  for (size_t i = 0; i < slots.size() && phases.size() < max_phases; i += kWatchpointsPerThread) {
    WatchPhase phase;
    for (size_t j = i; j < std::min(slots.size(), i + kWatchpointsPerThread); ++j) phase.slots.push_back(slots[j]);
    phases.push_back(std::move(phase));
  }
  return phases;
}

}  // namespace

std::vector<WatchPhase> plan_phases(LineObservation& obs, size_t max_phases, const VerdictOptions& options) {
  auto state = [&](const WatchUnit& u) -> const LineObservation::UnitState* {
    auto it = obs.units().find(u);
    return it == obs.units().end() ? nullptr : &it->second;
  };
  // 1. Every leaf watched for writes once.
  std::vector<WatchSlot> pending;
  for (const WatchUnit& leaf : obs.leaves()) {
    const auto* s = state(leaf);
    if (!s || s->watched_w.count() == 0) pending.push_back({leaf, WatchType::write});
  }
  if (!pending.empty()) return group(pending, max_phases);

  // 2. Halves of units several threads hit, one of them writing: two fields
  // narrower than the watched unit may be what the threads really touch. A
  // pair of halves that show the very same threads is one wider field: it is
  // not split again.
  for (const WatchUnit& leaf : obs.leaves()) {
    if (leaf.len >= 8) continue;
    uint8_t parent_len = static_cast<uint8_t>(leaf.len * 2);
    WatchUnit parent{static_cast<uint8_t>(leaf.offset - leaf.offset % parent_len), parent_len};
    uint8_t half = leaf.len;
    WatchUnit lo{parent.offset, half}, hi{static_cast<uint8_t>(parent.offset + half), half};
    const auto* a = state(lo);
    const auto* b = state(hi);
    if (a && b && touching(*a, options.min_hits) == touching(*b, options.min_hits)) {
      obs.forbid_split(lo);
      obs.forbid_split(hi);
    }
  }
  bool split_any = false;
  for (const WatchUnit& leaf : obs.leaves()) {
    const auto* s = state(leaf);
    if (!s || !obs.may_split(leaf) || !has_writer(*s) || touching(*s, options.min_hits).size() < 2) continue;
    obs.split(leaf);
    split_any = true;
  }
  if (split_any) {
    for (const WatchUnit& leaf : obs.leaves()) {
      const auto* s = state(leaf);
      if (!s || s->watched_w.count() == 0) pending.push_back({leaf, WatchType::write});
    }
    return group(pending, max_phases);
  }

  // 3. Readers: only where the line has a writer (read-only sharing costs
  // nothing), on every leaf not yet watched for reads and writes.
  if (!obs.has_writes()) return {};
  for (const WatchUnit& leaf : obs.leaves()) {
    const auto* s = state(leaf);
    if (!s || s->watched_rw.count() == 0) pending.push_back({leaf, WatchType::read_write});
  }
  return group(pending, max_phases);
}

// --- samples --------------------------------------------------------------------

std::vector<UnitThreads> SampledLine::unit_threads() const {
  std::vector<UnitThreads> out;
  for (const auto& [offset, o] : offsets) out.push_back({WatchUnit{offset, 1}, o.threads});
  return out;
}

Verdict SampledLine::verdict(const VerdictOptions& options) const {
  std::vector<UnitThreads> units = unit_threads();
  return classify(units, options);
}

void SampleAggregator::add(const MemorySample& sample) {
  ++samples_;
  std::pair<uint32_t, uint64_t> key{sample.pid, line_of(sample.addr)};
  auto it = lines_.find(key);
  if (it == lines_.end()) {
    if (lines_.size() >= max_lines_) {
      // Make room: the coldest line goes, and its samples are counted lost.
      auto coldest = std::ranges::min_element(lines_, {}, [](const auto& entry) { return entry.second.samples(); });
      dropped_ += coldest->second.samples();
      lines_.erase(coldest);
    }
    it = lines_.emplace(key, SampledLine{}).first;
    it->second.pid = sample.pid;
    it->second.line = key.second;
    it->second.cgroup_id = sample.cgroup_id;
  }
  SampledLine& line = it->second;
  auto offset = static_cast<uint8_t>(sample.addr - key.second);
  SampledOffset& o = line.offsets[offset];
  ThreadAccess& t = o.threads[sample.tid];
  switch (sample.access) {
    case SampleAccess::load:
      ++o.loads, ++line.loads, ++t.loads;
      break;
    case SampleAccess::store:
      ++o.stores, ++line.stores, ++t.writes;
      break;
    case SampleAccess::unknown:
      ++o.unknown, ++line.unknown, ++t.accesses;
      break;
  }
  if (sample.hitm) ++o.hitm, ++line.hitm;
  line.threads.insert(sample.tid);
  line.cpus.insert(sample.cpu);
  if (auto site = line.sites.find(sample.ip); site != line.sites.end()) ++site->second;
  else if (line.sites.size() < 64) line.sites[sample.ip] = 1;
}

std::vector<SampledLine> SampleAggregator::top(size_t n) const {
  std::vector<const SampledLine*> all;
  for (const auto& [key, line] : lines_) all.push_back(&line);
  std::ranges::sort(all, [](const SampledLine* a, const SampledLine* b) {
    return a->samples() != b->samples() ? a->samples() > b->samples()
                                        : std::tie(a->pid, a->line) < std::tie(b->pid, b->line);
  });
  std::vector<SampledLine> out;
  for (size_t i = 0; i < all.size() && i < n; ++i) out.push_back(*all[i]);
  return out;
}

const SampledLine* SampleAggregator::find(uint32_t pid, uint64_t line) const {
  auto it = lines_.find({pid, line});
  return it == lines_.end() ? nullptr : &it->second;
}

void SampleAggregator::clear() { lines_.clear(); }

// --- duty cycle -------------------------------------------------------------------

DutyCycle::DutyCycle(Nanoseconds window, double duty, const Clock& clock)
    : window_(window), duty_(std::clamp(duty, 1e-6, 1.0)), clock_(clock) {
  next_start_ = clock_.steady_now();
}

void DutyCycle::record(std::chrono::steady_clock::time_point start, std::chrono::steady_clock::time_point end) {
  if (end < start) end = start;
  if (windows_ == 0) first_start_ = start;
  auto lasted = std::chrono::duration_cast<Nanoseconds>(end - start);
  watched_ += lasted;
  ++windows_;
  auto pause = Nanoseconds(static_cast<int64_t>(std::ceil(static_cast<double>(lasted.count()) * (1 - duty_) / duty_)));
  next_start_ = end + pause;
}

double DutyCycle::fraction(std::chrono::steady_clock::time_point now) const {
  if (windows_ == 0 || now <= first_start_) return 0;
  return static_cast<double>(watched_.count()) / static_cast<double>((now - first_start_).count());
}

double DutyCycle::cycle_fraction() const {
  if (windows_ == 0 || next_start_ <= first_start_) return 0;
  return static_cast<double>(watched_.count()) / static_cast<double>((next_start_ - first_start_).count());
}

// --- which line next ----------------------------------------------------------------

LineQueue::LineQueue(Options options, const Clock& clock) : options_(options), clock_(clock) {}

bool LineQueue::filtered_out(uint32_t pid, uint64_t addr) const {
  auto it = filters_.find(pid);
  if (it == filters_.end()) return false;
  for (const auto& [start, end] : it->second)
    if (line_of(addr) + kLineBytes > start && line_of(addr) < end) return false;
  return true;
}

LineState& LineQueue::state_for(const LineKey& key) {
  auto [it, inserted] = lines_.try_emplace(key);
  if (inserted) it->second.key = key;
  return it->second;
}

void LineQueue::hint(const CandidateHint& hint) {
  if (hint.address == 0 || filtered_out(hint.pid, hint.address)) return;
  LineKey key{hint.pid, line_of(hint.address)};
  if (!lines_.contains(key) && lines_.size() >= options_.max_lines) {
    expire();
    if (lines_.size() >= options_.max_lines) return;
  }
  bool fresh = !lines_.contains(key);
  LineState& s = state_for(key);
  if (fresh || origin_rank(hint.origin) < origin_rank(s.origin)) {
    s.origin = hint.origin;
    s.weight = hint.weight;
    s.label = hint.label;
  } else if (hint.origin == s.origin) {
    s.weight = std::max(s.weight, hint.weight);
  }
  s.last_hint = clock_.steady_now();
}

void LineQueue::set_rotation(uint32_t pid, std::vector<uint64_t> lines) {
  rotations_[pid] = Rotation{std::move(lines), 0};
}

void LineQueue::set_filter(uint32_t pid, std::vector<std::pair<uint64_t, uint64_t>> ranges) {
  if (ranges.empty()) filters_.erase(pid);
  else filters_[pid] = std::move(ranges);
}

bool LineQueue::rotation_exhausted(uint32_t pid) const {
  auto it = rotations_.find(pid);
  return it == rotations_.end() || it->second.next >= it->second.lines.size();
}

std::optional<LinePick> LineQueue::pick() {
  auto now = clock_.steady_now();
  auto start_round = [&](LineState& s) -> std::optional<LinePick> {
    if (!s.round) s.round.emplace();
    std::vector<WatchPhase> phases = plan_phases(*s.round, options_.max_phases_per_window, options_.verdict);
    if (phases.empty()) {
      finish_if_done(s.key);
      return std::nullopt;
    }
    return LinePick{s.key, std::move(phases)};
  };

  // 1. Rounds already under way: finish what was started.
  for (auto& [key, s] : lines_)
    if (s.round)
      if (auto p = start_round(s)) return p;

  // 2. Hinted lines without a verdict yet, most urgent origin and hottest first.
  LineState* best = nullptr;
  for (auto& [key, s] : lines_) {
    if (s.origin == CandidateOrigin::global || s.result) continue;
    if (!best || origin_rank(s.origin) < origin_rank(best->origin) ||
        (s.origin == best->origin && s.weight > best->weight))
      best = &s;
  }
  if (best)
    if (auto p = start_round(*best)) return p;

  // 3. Old verdicts of lines that are still hinted, or were found shared.
  LineState* stale = nullptr;
  for (auto& [key, s] : lines_) {
    if (!s.result || now - s.result->at < options_.recheck) continue;
    // Shared lines stay interesting; so do lines the user named, and lines
    // something still hints at.
    bool still_relevant = s.result->verdict != Verdict::none || s.origin == CandidateOrigin::watch_symbol ||
                          (s.origin != CandidateOrigin::global && now - s.last_hint < options_.recheck);
    if (!still_relevant) continue;
    if (!stale || s.result->at < stale->result->at) stale = &s;
  }
  if (stale)
    if (auto p = start_round(*stale)) return p;

  // 4. The rotation through globals, one process after another.
  if (rotations_.empty()) return std::nullopt;
  auto it = rotations_.upper_bound(last_rotation_pid_);
  for (size_t visited = 0; visited < rotations_.size(); ++visited, ++it) {
    if (it == rotations_.end()) it = rotations_.begin();
    Rotation& r = it->second;
    while (r.next < r.lines.size()) {
      LineKey key{it->first, r.lines[r.next++]};
      auto existing = lines_.find(key);
      if (existing != lines_.end() && existing->second.result && now - existing->second.result->at < options_.recheck)
        continue;  // seen recently, through a hint or an earlier pass
      if (existing == lines_.end() && lines_.size() >= options_.max_lines) expire();
      if (existing == lines_.end() && lines_.size() >= options_.max_lines) return std::nullopt;
      last_rotation_pid_ = it->first;
      LineState& s = state_for(key);
      if (auto p = start_round(s)) return p;
    }
  }
  return std::nullopt;
}

LineObservation* LineQueue::round_of(const LineKey& key) {
  auto it = lines_.find(key);
  if (it == lines_.end() || !it->second.round) return nullptr;
  it->second.last_watched = clock_.steady_now();
  return &*it->second.round;
}

std::optional<LineResult> LineQueue::finish_if_done(const LineKey& key) {
  auto it = lines_.find(key);
  if (it == lines_.end() || !it->second.round) return std::nullopt;
  LineState& s = it->second;
  if (!plan_phases(*s.round, options_.max_phases_per_window, options_.verdict).empty()) return std::nullopt;
  LineResult r;
  r.verdict = s.round->verdict(options_.verdict);
  r.accesses_per_second = s.round->accesses_per_second();
  r.units = s.round->unit_threads();
  r.threads = s.round->threads();
  r.cpus = s.round->cpus();
  r.sites = s.round->sites();
  r.hits = s.round->hits();
  r.watched = s.round->watched();
  r.at = clock_.steady_now();
  s.result = r;
  s.round.reset();
  ++s.rounds;
  s.last_watched = r.at;
  return r;
}

void LineQueue::abandon(const LineKey& key) {
  auto it = lines_.find(key);
  if (it == lines_.end()) return;
  it->second.round.reset();
  it->second.last_watched = clock_.steady_now();
  // Without a result, an abandoned hinted line would be picked again at
  // once; an empty result parks it until the recheck.
  if (!it->second.result) {
    LineResult empty;
    empty.at = it->second.last_watched;
    it->second.result = empty;
  }
}

void LineQueue::forget_pid(uint32_t pid) {
  std::erase_if(lines_, [pid](const auto& entry) { return entry.first.pid == pid; });
  rotations_.erase(pid);
  filters_.erase(pid);
}

void LineQueue::expire() {
  auto now = clock_.steady_now();
  std::erase_if(lines_, [&](const auto& entry) {
    const LineState& s = entry.second;
    if (s.round) return false;
    auto last = std::max(s.last_hint, s.last_watched);
    return now - last >= options_.forget_after;
  });
  if (lines_.size() < options_.max_lines) return;
  // Still full: lines that were watched and found unshared go first, oldest first.
  std::vector<std::pair<std::chrono::steady_clock::time_point, LineKey>> idle;
  for (const auto& [key, s] : lines_)
    if (!s.round && s.result && s.result->verdict == Verdict::none) idle.emplace_back(s.result->at, key);
  std::ranges::sort(idle);
  for (size_t i = 0; i < idle.size() && lines_.size() >= options_.max_lines; ++i) lines_.erase(idle[i].second);
}

}  // namespace syncscope::collectors
