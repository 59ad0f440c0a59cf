// The pure half of the cache-line detector: verdicts, line aggregation, the
// watch planner, sample aggregation, the duty cycle (fake clock) and the
// choice of the next line.
#include <gtest/gtest.h>

#include "agent/collectors/cacheline_model.h"

namespace syncscope::collectors {
namespace {

using namespace std::chrono_literals;

UnitThreads unit(uint8_t offset, uint8_t len, std::map<uint32_t, ThreadAccess> threads) {
  return UnitThreads{WatchUnit{offset, len}, std::move(threads)};
}
ThreadAccess writes(uint64_t n) { return ThreadAccess{n, 0, 0}; }
ThreadAccess reads(uint64_t n) { return ThreadAccess{0, n, 0}; }

// --- verdicts -------------------------------------------------------------------

TEST(CachelineVerdict, DifferentWordsWrittenByDifferentThreadsIsFalseSharing) {
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(50)}}), unit(8, 8, {{102, writes(40)}})};
  EXPECT_EQ(classify(units), Verdict::false_sharing);
}

TEST(CachelineVerdict, SameWordWrittenByTwoThreadsIsTrueSharing) {
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(50)}, {102, writes(45)}})};
  EXPECT_EQ(classify(units), Verdict::true_sharing);
}

TEST(CachelineVerdict, OneThreadAloneIsNone) {
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(50)}}), unit(8, 8, {{101, writes(50)}})};
  EXPECT_EQ(classify(units), Verdict::none);
  EXPECT_EQ(classify(std::vector<UnitThreads>{}), Verdict::none);
}

TEST(CachelineVerdict, ReadersOfDifferentWordsWithoutAWriterIsNone) {
  std::vector<UnitThreads> units = {unit(0, 8, {{101, reads(50)}}), unit(8, 8, {{102, reads(50)}})};
  EXPECT_EQ(classify(units), Verdict::none);
}

TEST(CachelineVerdict, AWriterAndAReaderOfAnotherWordIsFalseSharing) {
  // One writer is enough: the reader's copy of the line is invalidated by
  // every write to the other word.
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(50)}}), unit(16, 8, {{102, reads(30)}})};
  EXPECT_EQ(classify(units), Verdict::false_sharing);
}

TEST(CachelineVerdict, AWriterAndAReaderOfTheSameWordIsTrueSharing) {
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(50)}, {102, reads(30)}})};
  EXPECT_EQ(classify(units), Verdict::true_sharing);
}

TEST(CachelineVerdict, ThreadsUsingTheWholeStructTogetherIsTrueSharing) {
  // A mutex every thread locks: lock word and owner written by everyone.
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(20)}, {102, writes(20)}}),
                                    unit(8, 8, {{101, writes(20)}, {102, writes(20)}})};
  EXPECT_EQ(classify(units), Verdict::true_sharing);
}

TEST(CachelineVerdict, ASupersetThreadIsTrueSharingNotFalse) {
  // 101 writes both words, 102 only the second: they share real data.
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(20)}}),
                                    unit(8, 8, {{101, writes(20)}, {102, writes(20)}})};
  EXPECT_EQ(classify(units), Verdict::true_sharing);
}

TEST(CachelineVerdict, FalseSharingWinsWhenSomePairsOnlyCollideThroughTheLine) {
  // Two mutexes on one line, two threads each: each pair truly shares its
  // mutex, the pairs falsely share the line.
  std::vector<UnitThreads> units = {unit(0, 8, {{1, writes(9)}, {2, writes(9)}}),
                                    unit(40, 8, {{3, writes(9)}, {4, writes(9)}})};
  EXPECT_EQ(classify(units), Verdict::false_sharing);
}

TEST(CachelineVerdict, StrayHitsBelowTheBarDoNotCount) {
  // Thread 102 touched the other word once (initialisation): not sharing.
  std::vector<UnitThreads> units = {unit(0, 8, {{101, writes(50)}}), unit(8, 8, {{102, writes(1)}})};
  EXPECT_EQ(classify(units, {.min_hits = 2}), Verdict::none);
  EXPECT_EQ(classify(units, {.min_hits = 1}), Verdict::false_sharing);
}

// --- one line's observation and the planner --------------------------------------------

// Runs every phase the planner asks for; `hits(slot)` says which threads hit
// a slot how often in one phase.
LineObservation observe(const std::function<std::map<uint32_t, uint64_t>(const WatchSlot&)>& hits,
                        size_t* phases_run = nullptr) {
  LineObservation obs;
  size_t phases = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<WatchPhase> plan = plan_phases(obs, 2);
    if (plan.empty()) break;
    for (const WatchPhase& phase : plan) {
      EXPECT_LE(phase.slots.size(), kWatchpointsPerThread);
      obs.add_phase(phase.slots, 10ms, 3);
      ++phases;
      for (const WatchSlot& slot : phase.slots)
        for (const auto& [tid, n] : hits(slot))
          for (uint64_t i = 0; i < n; ++i) obs.add_hit(slot, tid, tid % 2, 0x401000 + tid);
    }
  }
  if (phases_run) *phases_run = phases;
  return obs;
}

TEST(CachelinePlanner, WatchesEveryWordForWritesThenReadersWhereThereIsAWriter) {
  LineObservation obs;
  std::vector<WatchPhase> first = plan_phases(obs, 2);
  ASSERT_EQ(first.size(), 2u);
  std::set<uint8_t> offsets;
  for (const WatchPhase& p : first)
    for (const WatchSlot& s : p.slots) {
      EXPECT_EQ(s.type, WatchType::write);
      EXPECT_EQ(s.unit.len, 8);
      offsets.insert(s.unit.offset);
    }
  EXPECT_EQ(offsets, (std::set<uint8_t>{0, 8, 16, 24, 32, 40, 48, 56}));
  // Nobody wrote: the round ends without read-write phases.
  for (const WatchPhase& p : first) obs.add_phase(p.slots, 10ms, 2);
  EXPECT_TRUE(plan_phases(obs, 2).empty());
  EXPECT_EQ(obs.verdict(), Verdict::none);
}

TEST(CachelinePlanner, FalseSharingOfTwoLongs) {
  size_t phases = 0;
  LineObservation obs = observe(
      [](const WatchSlot& s) -> std::map<uint32_t, uint64_t> {
        if (s.unit.offset == 0 && s.unit.len == 8) return {{11, 100}};
        if (s.unit.offset == 8 && s.unit.len == 8) return {{12, 90}};
        return {};
      },
      &phases);
  EXPECT_EQ(obs.verdict(), Verdict::false_sharing);
  EXPECT_EQ(phases, 4u);  // 2 write phases, 2 read-write phases; nothing to split
  EXPECT_EQ(obs.threads(), (std::set<uint32_t>{11, 12}));
  // 100 + 90 hits per 10 ms phase, counted once per unit (the larger of W and RW).
  EXPECT_NEAR(obs.accesses_per_second(), 19000, 1);
}

TEST(CachelinePlanner, TwoIntsInOneWordAreToldApartBySplitting) {
  // Threads 21 and 22 write the two 4-byte halves of word 0: at 8 bytes the
  // word looks truly shared, at 4 bytes it is not.
  LineObservation obs = observe([](const WatchSlot& s) -> std::map<uint32_t, uint64_t> {
    if (s.unit.offset == 0 && s.unit.len == 8) return {{21, 50}, {22, 50}};
    if (s.unit.offset == 0 && s.unit.len == 4) return {{21, 50}};
    if (s.unit.offset == 4 && s.unit.len == 4) return {{22, 50}};
    if (s.unit.offset == 0 && s.unit.len < 4) return {{21, 25}};
    if (s.unit.offset == 4 && s.unit.len < 4) return {{22, 25}};
    return {};
  });
  EXPECT_TRUE(obs.is_split(WatchUnit{0, 8}));
  EXPECT_EQ(obs.verdict(), Verdict::false_sharing);
}

TEST(CachelinePlanner, AWideCounterIsNotSplitForever) {
  // An 8-byte counter: every write hits both halves, so the halves show the
  // same threads and are not split again.
  size_t phases = 0;
  LineObservation obs = observe(
      [](const WatchSlot& s) -> std::map<uint32_t, uint64_t> {
        if (s.unit.offset < 8) return {{31, 40}, {32, 40}};
        return {};
      },
      &phases);
  EXPECT_EQ(obs.verdict(), Verdict::true_sharing);
  EXPECT_TRUE(obs.is_split(WatchUnit{0, 8}));
  EXPECT_FALSE(obs.is_split(WatchUnit{0, 4}));
  EXPECT_FALSE(obs.may_split(WatchUnit{0, 4}));
  // W: 2 phases, halves: 1, RW on 9 leaves: 3 (2 per window) — bounded.
  EXPECT_LE(phases, 7u);
}

TEST(CachelineObservation, SitesAreBoundedAndSorted) {
  LineObservation obs;
  WatchSlot slot{WatchUnit{0, 8}, WatchType::write};
  obs.add_phase(std::vector<WatchSlot>{slot}, 1ms, 1);
  for (uint64_t ip = 0; ip < 500; ++ip) obs.add_hit(slot, 1, 0, ip);
  for (int i = 0; i < 10; ++i) obs.add_hit(slot, 1, 0, 7);
  auto sites = obs.sites();
  ASSERT_LE(sites.size(), LineObservation::kMaxSites);
  EXPECT_EQ(sites.front().first, 7u);
  EXPECT_EQ(sites.front().second, 11u);
  EXPECT_EQ(obs.hits(), 510u);
}

// --- samples ------------------------------------------------------------------------

TEST(CachelineSamples, AggregatesPerLineWithOffsetsThreadsAndKinds) {
  SampleAggregator agg;
  auto sample = [](uint32_t tid, uint32_t cpu, uint64_t addr, SampleAccess access, bool hitm) {
    MemorySample s;
    s.pid = 7;
    s.tid = tid;
    s.cpu = cpu;
    s.addr = addr;
    s.access = access;
    s.hitm = hitm;
    return s;
  };
  agg.add(sample(70, 0, 0x1000, SampleAccess::store, false));
  agg.add(sample(70, 0, 0x1000, SampleAccess::store, true));
  agg.add(sample(71, 1, 0x1008, SampleAccess::store, true));
  agg.add(sample(71, 1, 0x1008, SampleAccess::load, false));
  agg.add(sample(72, 1, 0x1040, SampleAccess::unknown, false));  // the next line
  ASSERT_EQ(agg.size(), 2u);
  const SampledLine* line = agg.find(7, 0x1000);
  ASSERT_NE(line, nullptr);
  EXPECT_EQ(line->samples(), 4u);
  EXPECT_EQ(line->stores, 3u);
  EXPECT_EQ(line->loads, 1u);
  EXPECT_EQ(line->hitm, 2u);
  EXPECT_EQ(line->threads, (std::set<uint32_t>{70, 71}));
  EXPECT_EQ(line->cpus, (std::set<uint32_t>{0, 1}));
  ASSERT_EQ(line->offsets.size(), 2u);
  EXPECT_EQ(line->offsets.at(8).threads.size(), 1u);
  EXPECT_EQ(line->verdict(), Verdict::false_sharing);
  const SampledLine* next = agg.find(7, 0x1040);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->unknown, 1u);
  EXPECT_EQ(agg.top(1).front().line, 0x1000u);
}

TEST(CachelineSamples, BoundedByDroppingTheColdestLine) {
  SampleAggregator agg(2);
  MemorySample s;
  s.pid = 1;
  for (uint64_t addr : {0x0, 0x0, 0x40, 0x80}) {
    s.addr = addr;
    agg.add(s);
  }
  EXPECT_EQ(agg.size(), 2u);
  EXPECT_EQ(agg.dropped(), 1u);
  EXPECT_NE(agg.find(1, 0x0), nullptr);
  EXPECT_NE(agg.find(1, 0x80), nullptr);
}

// --- duty cycle (fake clock) ------------------------------------------------------------

TEST(CachelineDutyCycle, PausesSoWatchedTimeStaysUnderTheFraction) {
  FakeClock clock;
  DutyCycle duty(20ms, 0.02, clock);
  EXPECT_TRUE(duty.may_start(clock.steady_now()));
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(duty.may_start(clock.steady_now()));
    auto start = clock.steady_now();
    // Windows overrun a little (opening watchpoints takes time): the pause
    // follows what really happened, not the plan.
    clock.advance(20ms + std::chrono::milliseconds(i % 3));
    duty.record(start, clock.steady_now());
    EXPECT_FALSE(duty.may_start(clock.steady_now()));
    clock.advance(duty.next_start() - clock.steady_now());
    EXPECT_LE(duty.cycle_fraction(), 0.02 + 1e-9);
    EXPECT_LE(duty.fraction(clock.steady_now()), 0.02 + 1e-9);
  }
  EXPECT_EQ(duty.windows(), 50u);
  EXPECT_NEAR(duty.cycle_fraction(), 0.02, 1e-6);
}

TEST(CachelineDutyCycle, IdleTimeBuysNoBurst) {
  FakeClock clock;
  DutyCycle duty(20ms, 0.1, clock);
  auto start = clock.steady_now();
  clock.advance(20ms);
  duty.record(start, clock.steady_now());
  clock.advance(1h);  // nothing to watch for an hour
  start = clock.steady_now();
  ASSERT_TRUE(duty.may_start(start));
  clock.advance(20ms);
  duty.record(start, clock.steady_now());
  // The second window still buys its full pause.
  EXPECT_EQ(duty.next_start() - clock.steady_now(), std::chrono::nanoseconds(180ms));
}

// --- which line next ------------------------------------------------------------------------

LineQueue::Options queue_options() {
  LineQueue::Options o;
  o.recheck = 60s;
  o.forget_after = 10min;
  o.max_lines = 16;
  return o;
}

// Plays a whole round on the picked line with no hits (each pick is one window).
void play_round(LineQueue& q, const LinePick& pick) {
  LineKey key = pick.key;
  std::optional<LinePick> p = pick;
  while (p && p->key == key) {
    for (const WatchPhase& phase : p->phases) q.round_of(key)->add_phase(phase.slots, 10ms, 1);
    if (q.finish_if_done(key)) return;
    p = q.pick();
  }
}

TEST(CachelineQueue, HintsBeforeRotationMostUrgentOriginFirst) {
  FakeClock clock;
  LineQueue q(queue_options(), clock);
  q.set_rotation(5, {0x5000, 0x5040});
  q.hint({5, 0x7008, CandidateOrigin::futex, 10, ""});
  q.hint({5, 0x6010, CandidateOrigin::lock, 1, "pthread_mutex"});
  auto first = q.pick();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->key.line, 0x6000u);  // a lock outranks a bare futex
  play_round(q, *first);
  auto second = q.pick();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->key.line, 0x7000u);
  play_round(q, *second);
  auto third = q.pick();
  ASSERT_TRUE(third);
  EXPECT_EQ(third->key.line, 0x5000u);  // then the rotation
}

TEST(CachelineQueue, ARoundInProgressIsFinishedFirst) {
  FakeClock clock;
  LineQueue q(queue_options(), clock);
  q.set_rotation(5, {0x5000});
  auto pick = q.pick();
  ASSERT_TRUE(pick);
  // A write on word 0 by one thread: the round continues with read-write phases.
  WatchSlot w0{WatchUnit{0, 8}, WatchType::write};
  for (const WatchPhase& phase : pick->phases) q.round_of(pick->key)->add_phase(phase.slots, 10ms, 1);
  q.round_of(pick->key)->add_hit(w0, 1, 0, 0x400000);
  q.round_of(pick->key)->add_hit(w0, 1, 0, 0x400000);
  EXPECT_FALSE(q.finish_if_done(pick->key));
  q.hint({5, 0x9000, CandidateOrigin::lock, 1, ""});
  auto next = q.pick();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->key.line, 0x5000u);
  EXPECT_EQ(next->phases.front().slots.front().type, WatchType::read_write);
}

TEST(CachelineQueue, RotationVisitsEachLineOnceUntilRechecksAreDue) {
  FakeClock clock;
  LineQueue q(queue_options(), clock);
  q.set_rotation(5, {0x5000, 0x5040, 0x5080});
  std::vector<uint64_t> seen;
  while (auto p = q.pick()) {
    seen.push_back(p->key.line);
    play_round(q, *p);
  }
  EXPECT_EQ(seen, (std::vector<uint64_t>{0x5000, 0x5040, 0x5080}));
  EXPECT_TRUE(q.rotation_exhausted(5));
  // A new pass only picks lines whose verdict is old.
  q.set_rotation(5, {0x5000, 0x5040});
  EXPECT_FALSE(q.pick());
  clock.advance(61s);
  q.set_rotation(5, {0x5000, 0x5040});
  auto again = q.pick();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->key.line, 0x5000u);
}

TEST(CachelineQueue, RotationAlternatesBetweenProcesses) {
  FakeClock clock;
  LineQueue q(queue_options(), clock);
  q.set_rotation(5, {0x5000, 0x5040});
  q.set_rotation(6, {0x6000, 0x6040});
  std::vector<uint32_t> pids;
  while (auto p = q.pick()) {
    pids.push_back(p->key.pid);
    play_round(q, *p);
  }
  EXPECT_EQ(pids, (std::vector<uint32_t>{5, 6, 5, 6}));
}

TEST(CachelineQueue, SharedLinesAreRecheckedAndForgottenWithTheirProcess) {
  FakeClock clock;
  LineQueue q(queue_options(), clock);
  q.hint({5, 0x5000, CandidateOrigin::lock, 1, ""});
  auto p = q.pick();
  ASSERT_TRUE(p);
  // Two threads on two words: false sharing.
  for (const WatchPhase& phase : p->phases) {
    q.round_of(p->key)->add_phase(phase.slots, 10ms, 2);
    for (const WatchSlot& s : phase.slots) {
      if (s.unit.offset == 0) q.round_of(p->key)->add_hit(s, 1, 0, 1), q.round_of(p->key)->add_hit(s, 1, 0, 1);
      if (s.unit.offset == 8) q.round_of(p->key)->add_hit(s, 2, 1, 1), q.round_of(p->key)->add_hit(s, 2, 1, 1);
    }
  }
  while (!q.finish_if_done(p->key)) {
    auto more = q.pick();
    ASSERT_TRUE(more);
    for (const WatchPhase& phase : more->phases) q.round_of(more->key)->add_phase(phase.slots, 10ms, 2);
  }
  EXPECT_EQ(q.lines().at(p->key).result->verdict, Verdict::false_sharing);
  EXPECT_FALSE(q.pick());
  clock.advance(61s);
  auto recheck = q.pick();
  ASSERT_TRUE(recheck);
  EXPECT_EQ(recheck->key, p->key);
  q.forget_pid(5);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.pick());
}

TEST(CachelineQueue, LinesTheUserNamedAreWatchedAgainEvenWhenUnshared) {
  FakeClock clock;
  LineQueue q(queue_options(), clock);
  q.hint({5, 0x5000, CandidateOrigin::watch_symbol, 0, "g_stats"});
  q.set_rotation(5, {0x6000});
  auto p = q.pick();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->key.line, 0x5000u);
  play_round(q, *p);
  auto rotation = q.pick();
  ASSERT_TRUE(rotation);
  play_round(q, *rotation);
  EXPECT_FALSE(q.pick());
  clock.advance(61s);
  // Both were judged unshared; only the named one comes back.
  auto again = q.pick();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->key.line, 0x5000u);
  play_round(q, *again);
  EXPECT_FALSE(q.pick());
}

TEST(CachelineQueue, WatchSymbolFilterDropsOtherHints) {
  FakeClock clock;
  LineQueue q(queue_options(), clock);
  q.set_filter(5, {{0x5010, 0x5030}});
  q.hint({5, 0x9000, CandidateOrigin::lock, 1, ""});
  q.hint({5, 0x5000, CandidateOrigin::lock, 1, ""});  // its line overlaps the symbol
  q.hint({6, 0x9000, CandidateOrigin::lock, 1, ""});  // another process: no filter
  EXPECT_EQ(q.size(), 2u);
  EXPECT_TRUE(q.lines().contains(LineKey{5, 0x5000}));
  EXPECT_TRUE(q.lines().contains(LineKey{6, 0x9000}));
}

TEST(CachelineQueue, BoundedTableMakesRoomFromUnsharedLines) {
  FakeClock clock;
  LineQueue::Options o = queue_options();
  o.max_lines = 2;
  LineQueue q(o, clock);
  q.hint({5, 0x1000, CandidateOrigin::lock, 1, ""});
  auto p = q.pick();
  ASSERT_TRUE(p);
  play_round(q, *p);  // judged: none
  q.hint({5, 0x2000, CandidateOrigin::lock, 1, ""});
  q.hint({5, 0x3000, CandidateOrigin::lock, 1, ""});  // full: the unshared line goes
  EXPECT_EQ(q.size(), 2u);
  EXPECT_FALSE(q.lines().contains(LineKey{5, 0x1000}));
  EXPECT_TRUE(q.lines().contains(LineKey{5, 0x3000}));
}

}  // namespace
}  // namespace syncscope::collectors
