// One circuit breaker per (SLO, target).
//
//   closed ──page burn──► open ──min_open elapsed and no burn──► half_open
//     ▲                    ▲ │                                      │   │
//     │                    │ └─ burn continues: lease renewed        │   │
//     │                    └───────────── burn again ────────────────┘   │
//     └──────────── no burn for close_after since entering half_open ─────┘
//
// While open, the breaker holds a lease `open_until` = now + lease, renewed
// every `renew_every` while the burn continues; each renewal is an event too
// (the engine sends it as a circuit.open webhook with a higher sequence), so a
// receiver that stops hearing from a dead agent can close on its own when the
// lease lapses. The lease is min_open and renewals come every min_open / 2, so
// one lost renewal never lets a lease lapse while the burn goes on.
//
// Timing uses the steady clock; snapshot()/restore() convert to wall time so a
// breaker survives an agent restart.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "agent/config/config.h"
#include "agent/core/clock.h"

namespace syncscope::slo {

enum class CircuitState { closed, open, half_open };
std::string_view to_string(CircuitState state);
std::optional<CircuitState> circuit_state_from_string(std::string_view text);

struct CircuitEvent {
  using TimePoint = std::chrono::steady_clock::time_point;
  CircuitState from = CircuitState::closed;
  CircuitState to = CircuitState::closed;
  bool renewal = false;  // open → open: the lease was extended
  TimePoint at;
  std::optional<TimePoint> open_until;  // set while open
  std::string reason;
};

class CircuitBreaker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // `key` names the breaker in log lines ("api-runq/unit=api.service").
  CircuitBreaker(std::string key, const config::CircuitConfig& config);

  // Called once per evaluation with whether a page-level burn fires now.
  // Returns the transition or renewal that happened, if any (also logged).
  std::optional<CircuitEvent> update(bool burning, TimePoint now);

  CircuitState state() const { return state_; }
  TimePoint since() const { return since_; }  // time of the last transition
  std::optional<TimePoint> open_until() const;
  const std::string& key() const { return key_; }
  std::chrono::nanoseconds lease() const { return lease_; }
  std::chrono::nanoseconds renew_every() const { return renew_every_; }

  // Wall-clock form of the breaker's state, for the state file.
  struct Snapshot {
    using WallTime = std::chrono::system_clock::time_point;
    CircuitState state = CircuitState::closed;
    WallTime since{};
    WallTime opened_at{};
    WallTime renewed_at{};
    WallTime open_until{};
  };
  Snapshot snapshot(const Clock& clock) const;
  void restore(const Snapshot& snapshot, const Clock& clock);

 private:
  std::optional<CircuitEvent> transition(CircuitState to, TimePoint now, std::string reason);

  std::string key_;
  std::chrono::nanoseconds min_open_;
  std::chrono::nanoseconds close_after_;
  std::chrono::nanoseconds lease_;
  std::chrono::nanoseconds renew_every_;
  CircuitState state_ = CircuitState::closed;
  TimePoint since_{};
  TimePoint opened_at_{};
  TimePoint renewed_at_{};
  TimePoint open_until_{};
};

}  // namespace syncscope::slo
