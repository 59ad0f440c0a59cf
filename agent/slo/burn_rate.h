// Windowed good/bad event counts, burn rates and error budgets.
//
// WindowCounter keeps, per SLO, the cumulative good and bad counts at the end
// of each time bucket, in a few rings of increasing bucket width. The number
// of events in any window (now - length, now] is the difference of two
// cumulative values, so a window costs O(1) to read whatever its length, and
// 1000 SLOs × 6 windows per second stays cheap. Time is wall-clock seconds
// (unix), because the counts are persisted and must line up across restarts;
// seconds during which nothing was added (agent down, no events) count as no
// events.
//
// Burn rate over a window = (bad / total) / (1 - objective): 1.0 spends the
// error budget exactly over the SLO window. Alert rules follow the Google SRE
// workbook's multi-window, multi-burn-rate table.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/config.h"
#include "agent/core/result.h"

namespace syncscope::slo {

struct EventCounts {
  uint64_t good = 0;
  uint64_t bad = 0;
  uint64_t total() const { return good + bad; }
  friend bool operator==(const EventCounts&, const EventCounts&) = default;
};

class WindowCounter {
 public:
  // `lookback`: the longest window that will be read (the SLO window, or a
  // longer alert window). `now_second`: unix seconds; the history before it is
  // empty.
  WindowCounter(std::chrono::seconds lookback, int64_t now_second);

  // Records events at `second` (unix). Moving forward fills the skipped
  // seconds with "no events"; a second earlier than the latest one (a wall
  // clock stepped back) is booked into the latest second.
  void add(int64_t second, uint64_t good, uint64_t bad);
  void advance(int64_t second) { add(second, 0, 0); }

  // Events recorded in (now - length, now]: exact to the second for windows
  // up to 5 min, within one bucket width (10 s, 1 min, 1 h) beyond, with the
  // oldest bucket interpolated linearly.
  EventCounts window(int64_t now_second, std::chrono::seconds length) const;
  // Everything recorded since the history began (including loaded history).
  EventCounts cumulative() const;
  int64_t latest_second() const { return latest_; }

  // Atomic: writes path.tmp, fsyncs it, renames it over path, fsyncs the
  // directory. A crash leaves either the old file or the new one.
  Result<void> save(const std::string& path) const;
  // Replaces the history with the file's. The file may have a different
  // layout (the SLO window changed): it is resampled into this one. The time
  // between the file's last second and now counts as no events.
  Result<void> load(const std::string& path);

  std::string serialize() const;
  Result<void> deserialize(std::string_view bytes);

  size_t memory_bytes() const;

 private:
  struct Tier {
    int64_t step = 1;    // seconds per bucket
    int64_t head = 0;    // index of the newest bucket (second / step)
    std::vector<EventCounts> ends;  // cumulative at the end of bucket k, at k % size
  };

  EventCounts cumulative_at(int64_t second) const;  // events with time <= second
  static std::vector<Tier> layout(std::chrono::seconds lookback, int64_t now_second);
  void resample_from(const WindowCounter& other, int64_t now_second);

  std::chrono::seconds lookback_;
  int64_t latest_ = 0;
  EventCounts total_;
  std::vector<Tier> tiers_;
};

// Burn rate of `counts` against `objective_percent` (e.g. 99.9). No events: 0.
double burn_rate(const EventCounts& counts, double objective_percent);
// 1 - burn rate over the SLO window: 1 = untouched, 0 = spent, < 0 = overspent.
double error_budget_remaining(const EventCounts& slo_window_counts, double objective_percent);

enum class Severity { page, ticket };
std::string_view to_string(Severity severity);

// One resolved rule: fires when the burn rate over both windows exceeds
// `burn_rate` and the long window holds at least the SLO's min_events.
struct AlertRule {
  Severity severity = Severity::page;
  std::chrono::seconds long_window{};
  std::chrono::seconds short_window{};
  double burn_rate = 0;
  friend bool operator==(const AlertRule&, const AlertRule&) = default;
};

// The SLO's rules. When the config gives neither page nor ticket rules, the
// SRE workbook's 30-day table, with every window scaled by window / 30d and
// rounded to whole seconds (at least 1 s, one evaluation):
//   page   14.4× over 1h and 5m,  6× over 6h and 30m
//   ticket    1× over 3d and 6h
// When either list is given, the config's rules replace the table entirely
// (a user who wrote only page rules asked for only page alerts).
std::vector<AlertRule> alert_rules(const config::SloConfig& slo);

// How far back the SLO's counter must reach: its window or its longest rule.
std::chrono::seconds lookback(const config::SloConfig& slo, const std::vector<AlertRule>& rules);

}  // namespace syncscope::slo
