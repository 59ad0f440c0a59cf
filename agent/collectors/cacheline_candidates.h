// Where candidate cache lines come from: a small interface so the pipeline
// can connect any collector that knows "hot" addresses to the cache-line
// detector without either depending on the other.
//
// A hint is (pid, address, origin): a lock some thread recently waited on
// (the locks collector's futex words and mutex addresses), a Go mutex (the
// golang collector, when it exists), an atomic the atomic-call probes saw
// hammered, a line the PMU sampler saw several threads touch. The detector
// watches the hint's whole 64-byte line with hardware watchpoints and decides
// whether it is falsely shared, truly shared, or not shared at all. Hints
// are suggestions: a wrong one costs one watch window, nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/collectors/locks_model.h"

namespace syncscope::collectors {

class LocksCollector;

enum class CandidateOrigin : uint8_t {
  lock,          // a contended pthread/glibc lock (its address)
  futex,         // a contended futex word that is not a known lock
  go_mutex,      // a contended Go sync.Mutex / runtime lock
  atomic,        // an address an out-of-line atomic function was called on
  pmu_sample,    // sampled memory accesses from several threads
  watch_symbol,  // a global the user named (--watch, cachelines.watch.symbols)
  global,        // a writable global or static (.data/.bss), in rotation
};
std::string_view to_string(CandidateOrigin origin);
// Lower is more urgent: explicit hints before the rotation through globals.
int origin_rank(CandidateOrigin origin);

struct CandidateHint {
  uint32_t pid = 0;
  uint64_t address = 0;
  CandidateOrigin origin = CandidateOrigin::lock;
  double weight = 0;  // larger is hotter: wait ns, calls, samples — compared within an origin only
  std::string label;  // optional: what the source calls it ("mutex", "sync/atomic.AddInt64")
};

class CandidateSource {
 public:
  virtual ~CandidateSource() = default;
  virtual std::string_view name() const = 0;
  // Hints about these processes, hottest first. Called from the pipeline
  // thread about once a second; must be cheap.
  virtual std::vector<CandidateHint> hints(std::span<const uint32_t> pids) = 0;
};

// How strong a hint a contended lock of this kind is.
CandidateOrigin candidate_origin(LockKind kind);

// The locks collector's recently contended locks: each lock address and each
// futex word its waits used (a rwlock has several) is a hint.
class LockCandidateSource final : public CandidateSource {
 public:
  explicit LockCandidateSource(const LocksCollector& locks,
                               std::chrono::steady_clock::duration window = std::chrono::seconds(30))
      : locks_(locks), window_(window) {}
  std::string_view name() const override { return "locks"; }
  std::vector<CandidateHint> hints(std::span<const uint32_t> pids) override;

 private:
  const LocksCollector& locks_;
  std::chrono::steady_clock::duration window_;
};

}  // namespace syncscope::collectors
