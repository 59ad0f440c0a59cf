// The circuit breaker's state machine, lease renewals and restore.
#include <gtest/gtest.h>

#include "agent/slo/circuit.h"

namespace syncscope::slo {
namespace {

using namespace std::chrono_literals;

config::CircuitConfig issue_config() {
  config::CircuitConfig config;
  config.min_open = 5s;
  config.close_after = 10s;
  return config;
}

class CircuitBreakerTest : public ::testing::Test {
 protected:
  // Advances one evaluation (1 s) and updates the breaker.
  std::optional<CircuitEvent> tick(bool burning) {
    clock.advance(1s);
    return breaker.update(burning, clock.steady_now());
  }

  FakeClock clock;
  CircuitBreaker breaker{"crowded-runq/cgroup=/crowded", issue_config()};
};

TEST_F(CircuitBreakerTest, FullCycle) {
  EXPECT_EQ(breaker.state(), CircuitState::closed);
  EXPECT_FALSE(tick(false));

  auto opened = tick(true);
  ASSERT_TRUE(opened);
  EXPECT_EQ(opened->from, CircuitState::closed);
  EXPECT_EQ(opened->to, CircuitState::open);
  EXPECT_FALSE(opened->renewal);
  ASSERT_TRUE(opened->open_until);
  EXPECT_EQ(*opened->open_until, clock.steady_now() + 5s);  // lease = min_open
  const auto opened_at = clock.steady_now();

  // The burn stops at once, but the circuit stays open for min_open.
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(tick(false)) << i;
  EXPECT_EQ(breaker.state(), CircuitState::open);
  auto half = tick(false);
  ASSERT_TRUE(half);
  EXPECT_EQ(clock.steady_now() - opened_at, 5s);
  EXPECT_EQ(half->to, CircuitState::half_open);
  EXPECT_FALSE(half->open_until);
  EXPECT_FALSE(breaker.open_until());

  // No burn for close_after (10 s) since entering half-open → closed.
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(tick(false)) << i;
  auto closed = tick(false);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->from, CircuitState::half_open);
  EXPECT_EQ(closed->to, CircuitState::closed);
}

TEST_F(CircuitBreakerTest, StaysOpenWhileBurningAndRenewsLease) {
  ASSERT_TRUE(tick(true));
  EXPECT_EQ(breaker.renew_every(), 2500ms);  // min_open / 2
  std::vector<std::chrono::steady_clock::time_point> renewals;
  for (int i = 0; i < 20; ++i) {
    if (auto event = tick(true)) {
      EXPECT_TRUE(event->renewal);
      EXPECT_EQ(event->from, CircuitState::open);
      EXPECT_EQ(event->to, CircuitState::open);
      EXPECT_EQ(*event->open_until, clock.steady_now() + 5s);
      EXPECT_EQ(breaker.open_until(), event->open_until);
      renewals.push_back(clock.steady_now());
    }
  }
  // Renewals every 3 s (the first evaluation at or after 2.5 s), and the lease
  // never lapses between two of them.
  ASSERT_EQ(renewals.size(), 6u);
  for (size_t i = 1; i < renewals.size(); ++i) EXPECT_EQ(renewals[i] - renewals[i - 1], 3s);
  EXPECT_EQ(breaker.state(), CircuitState::open);
  // Long past min_open: the first calm evaluation goes half-open.
  auto half = tick(false);
  ASSERT_TRUE(half);
  EXPECT_EQ(half->to, CircuitState::half_open);
}

TEST_F(CircuitBreakerTest, BurnDuringHalfOpenReopens) {
  ASSERT_TRUE(tick(true));
  for (int i = 0; i < 5; ++i) tick(false);
  ASSERT_EQ(breaker.state(), CircuitState::half_open);
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(tick(false));
  auto reopened = tick(true);
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->from, CircuitState::half_open);
  EXPECT_EQ(reopened->to, CircuitState::open);
  EXPECT_EQ(reopened->reason, "burn resumed while half-open");
  // min_open counts again from the re-opening.
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(tick(false));
  EXPECT_TRUE(tick(false));
  EXPECT_EQ(breaker.state(), CircuitState::half_open);
}

TEST_F(CircuitBreakerTest, ShortMinOpenRenewsAtMostEverySecond) {
  config::CircuitConfig config;
  config.min_open = 0s;
  config.close_after = 0s;
  CircuitBreaker quick("q/t", config);
  EXPECT_EQ(quick.lease(), 1s);
  EXPECT_EQ(quick.renew_every(), 1s);
  ASSERT_TRUE(quick.update(true, clock.steady_now()));
  clock.advance(1s);
  auto half = quick.update(false, clock.steady_now());
  ASSERT_TRUE(half);
  EXPECT_EQ(half->to, CircuitState::half_open);
  auto closed = quick.update(false, clock.steady_now());
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->to, CircuitState::closed);
}

TEST_F(CircuitBreakerTest, SnapshotRestoreAcrossRestart) {
  ASSERT_TRUE(tick(true));  // opened at +1 s
  tick(true);
  tick(true);
  ASSERT_TRUE(tick(true));  // renewed at +4 s
  const CircuitBreaker::Snapshot snap = breaker.snapshot(clock);
  EXPECT_EQ(snap.state, CircuitState::open);
  EXPECT_EQ(snap.open_until, clock.wall_now() + 5s);

  // A new process 1 s later (wall), with another steady epoch.
  FakeClock later(clock.wall_now() + 1s);
  CircuitBreaker restored("crowded-runq/cgroup=/crowded", issue_config());
  restored.restore(snap, later);
  EXPECT_EQ(restored.state(), CircuitState::open);
  EXPECT_EQ(*restored.open_until(), later.steady_now() + 4s);
  // Opened 4 s ago, min_open 5 s: one more calm second to half-open.
  EXPECT_FALSE(restored.update(false, later.steady_now()));
  later.advance(1s);
  auto half = restored.update(false, later.steady_now());
  ASSERT_TRUE(half);
  EXPECT_EQ(half->to, CircuitState::half_open);
}

TEST(CircuitStateNames, RoundTrip) {
  for (CircuitState state : {CircuitState::closed, CircuitState::open, CircuitState::half_open})
    EXPECT_EQ(circuit_state_from_string(to_string(state)), state);
  EXPECT_EQ(to_string(CircuitState::half_open), "half_open");
  EXPECT_FALSE(circuit_state_from_string("ajar"));
}

}  // namespace
}  // namespace syncscope::slo
