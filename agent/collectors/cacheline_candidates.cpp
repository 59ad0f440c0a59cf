#include "agent/collectors/cacheline_candidates.h"

#include <algorithm>

#include "agent/collectors/locks.h"

namespace syncscope::collectors {

CandidateOrigin candidate_origin(LockKind kind) {
  switch (kind) {
    // A lock-shaped futex with no glibc classification may still be a lock
    // (another language's); a futex that is not lock-shaped is weaker.
    case LockKind::futex_other: return CandidateOrigin::futex;
    // Go mutexes come through the same collector (its Go uprobes).
    case LockKind::go_mutex:
    case LockKind::go_rwmutex: return CandidateOrigin::go_mutex;
    default: return CandidateOrigin::lock;
  }
}

std::vector<CandidateHint> LockCandidateSource::hints(std::span<const uint32_t> pids) {
  std::vector<CandidateHint> out;
  for (uint32_t pid : pids) {
    for (const RecentLock& lock : locks_.recent_contended(pid, window_)) {
      CandidateOrigin origin = candidate_origin(lock.kind);
      auto weight = static_cast<double>(lock.wait_ns);
      std::string label(to_string(lock.kind));
      out.push_back({pid, lock.lock, origin, weight, label});
      for (uint64_t word : lock.futex_words)
        if (word != lock.lock) out.push_back({pid, word, origin, weight, label});
    }
  }
  return out;
}

}  // namespace syncscope::collectors
