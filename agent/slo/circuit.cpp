#include "agent/slo/circuit.h"

#include <algorithm>
#include <utility>

#include "agent/core/duration.h"
#include "agent/core/log.h"

namespace syncscope::slo {

std::string_view to_string(CircuitState state) {
  switch (state) {
    case CircuitState::closed: return "closed";
    case CircuitState::open: return "open";
    case CircuitState::half_open: return "half_open";
  }
  return "closed";
}

std::optional<CircuitState> circuit_state_from_string(std::string_view text) {
  for (CircuitState state : {CircuitState::closed, CircuitState::open, CircuitState::half_open})
    if (to_string(state) == text) return state;
  return std::nullopt;
}

CircuitBreaker::CircuitBreaker(std::string key, const config::CircuitConfig& config)
    : key_(std::move(key)),
      min_open_(std::max(config.min_open, std::chrono::nanoseconds(0))),
      close_after_(std::max(config.close_after, std::chrono::nanoseconds(0))),
      lease_(std::max(min_open_, std::chrono::nanoseconds(std::chrono::seconds(1)))),
      // Half the lease, but not more often than once a second (one evaluation).
      renew_every_(std::max(lease_ / 2, std::chrono::nanoseconds(std::chrono::seconds(1)))) {}

std::optional<CircuitBreaker::TimePoint> CircuitBreaker::open_until() const {
  if (state_ != CircuitState::open) return std::nullopt;
  return open_until_;
}

std::optional<CircuitEvent> CircuitBreaker::transition(CircuitState to, TimePoint now, std::string reason) {
  CircuitEvent event{state_, to, false, now, std::nullopt, std::move(reason)};
  state_ = to;
  since_ = now;
  if (to == CircuitState::open) {
    opened_at_ = now;
    renewed_at_ = now;
    open_until_ = now + lease_;
    event.open_until = open_until_;
  }
  log::warn("circuit {}: {} -> {} ({})", key_, to_string(event.from), to_string(event.to), event.reason);
  return event;
}

std::optional<CircuitEvent> CircuitBreaker::update(bool burning, TimePoint now) {
  switch (state_) {
    case CircuitState::closed:
      if (burning) return transition(CircuitState::open, now, "page-level burn rate exceeded");
      return std::nullopt;

    case CircuitState::open:
      if (burning) {
        if (now - renewed_at_ < renew_every_) return std::nullopt;
        renewed_at_ = now;
        open_until_ = now + lease_;
        log::info("circuit {}: burn continues, lease renewed for {}", key_, format_duration(lease_));
        return CircuitEvent{CircuitState::open, CircuitState::open, true, now, open_until_, "burn continues"};
      }
      if (now - opened_at_ >= min_open_)
        return transition(CircuitState::half_open, now,
                          fmt::format("burn stopped, open for at least {}", format_duration(min_open_)));
      return std::nullopt;

    case CircuitState::half_open:
      if (burning) return transition(CircuitState::open, now, "burn resumed while half-open");
      if (now - since_ >= close_after_)
        return transition(CircuitState::closed, now,
                          fmt::format("no burn for {}", format_duration(close_after_)));
      return std::nullopt;
  }
  return std::nullopt;
}

CircuitBreaker::Snapshot CircuitBreaker::snapshot(const Clock& clock) const {
  const auto steady_now = clock.steady_now();
  const auto wall_now = clock.wall_now();
  auto to_wall = [&](TimePoint t) {
    return wall_now - std::chrono::duration_cast<std::chrono::system_clock::duration>(steady_now - t);
  };
  return Snapshot{state_, to_wall(since_), to_wall(opened_at_), to_wall(renewed_at_), to_wall(open_until_)};
}

void CircuitBreaker::restore(const Snapshot& snapshot, const Clock& clock) {
  const auto steady_now = clock.steady_now();
  const auto wall_now = clock.wall_now();
  auto to_steady = [&](Snapshot::WallTime t) {
    return steady_now - std::chrono::duration_cast<std::chrono::steady_clock::duration>(wall_now - t);
  };
  state_ = snapshot.state;
  since_ = to_steady(snapshot.since);
  opened_at_ = to_steady(snapshot.opened_at);
  renewed_at_ = to_steady(snapshot.renewed_at);
  open_until_ = to_steady(snapshot.open_until);
}

}  // namespace syncscope::slo
