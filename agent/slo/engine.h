// The SLO engine: once a second, for every configured SLO, read the SLI, add
// the second's good and bad events to the window counters, compute the burn
// rate over every window the alert rules use, drive the SLO's circuit
// breaker, and hand what changed to the notifier.
//
// Threading: evaluate() runs on the pipeline thread (it never sleeps; the
// caller paces it). status_json() and collect() may be called from HTTP
// threads at any time. The notifier is called from evaluate(), after the
// engine's lock is released.
//
// Per SLO per evaluation the cost is one SliSource::read, one counter update
// and two O(1) cumulative lookups per distinct window, so 1000 SLOs cost well
// under a millisecond of CPU per second.
//
// State in state_dir/slo/ (per SLO, file name = SLO name with unsafe bytes
// %-escaped):
//   NAME.counts  window counters (WindowCounter::save), written every
//                persist_interval, staggered across SLOs, and at shutdown;
//   NAME.json    circuit state and webhook sequence, written at every circuit
//                event before the notification leaves, so sequences stay
//                monotonic across restarts.
// A restart resumes the error budget where the last save left it; the time
// the agent was down counts as no events.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/config/config.h"
#include "agent/core/clock.h"
#include "agent/core/result.h"
#include "agent/metrics/metric.h"
#include "agent/notify/notifier.h"
#include "agent/slo/sli.h"

namespace syncscope::slo {

struct EngineOptions {
  Nanoseconds persist_interval = std::chrono::seconds(60);
};

class SloEngine final : public metrics::MetricSource {
 public:
  // `evidence` may be null. `state_dir` empty: nothing is persisted.
  SloEngine(const std::vector<config::SloConfig>& slos, const SliSource& sli, const Clock& clock,
            notify::Notifier& notifier, const EvidenceSource* evidence, std::string state_dir,
            EngineOptions options = {});
  ~SloEngine() override;  // saves the state
  SloEngine(const SloEngine&) = delete;
  SloEngine& operator=(const SloEngine&) = delete;

  // One evaluation at the clock's current time. Call once per second.
  void evaluate();

  // Writes every SLO's counters and circuit state now (shutdown, reload).
  Result<void> save_state();

  // For /debug/slo and `syncscope slo status`:
  //   {"evaluated_at": "...", "slos": [{"name", "target", "sli", "objective",
  //    "window", "min_events", "error_budget_remaining",
  //    "events": {"good", "bad"} (over the SLO window),
  //    "burn_rates": {"4s": 12.0, "20s": 5.4},
  //    "rules": [{"severity", "long", "short", "burn_rate", "firing"}],
  //    "alerts": {"page": bool, "ticket": bool},
  //    "circuit": {"key", "state", "since", "open_until", "sequence"}}]}
  std::string status_json() const;

  // syncscope_slo_burn_rate{slo,window}, syncscope_slo_error_budget_remaining_ratio{slo},
  // syncscope_slo_objective_ratio{slo},
  // syncscope_slo_events_total{slo,outcome}, syncscope_circuit_state{slo,target,state}.
  void collect(std::vector<metrics::Family>& out) const override;

  size_t size() const { return slos_.size(); }

 private:
  struct Slo;
  struct Pending;

  void evaluate_one(Slo& slo, int64_t second, std::chrono::steady_clock::time_point steady,
                    std::chrono::system_clock::time_point wall, std::vector<Pending>& pending);
  void load(Slo& slo);
  Result<void> save_counts(const Slo& slo) const;
  Result<void> save_circuit(const Slo& slo) const;

  const SliSource& sli_;
  const Clock& clock_;
  notify::Notifier& notifier_;
  const EvidenceSource* evidence_;
  std::string state_dir_;
  EngineOptions options_;

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Slo>> slos_;
  std::chrono::system_clock::time_point evaluated_at_{};
};

}  // namespace syncscope::slo
