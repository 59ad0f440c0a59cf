#include "agent/slo/burn_rate.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "agent/notify/outbox.h"  // durable_write

namespace syncscope::slo {
namespace {

// Bucket widths, finest first. Memory is what bounds the layout: a 30-day
// window at one bucket per second would be 2.6 M buckets (41 MB per SLO).
// Instead each ring covers only the ages where its width is small next to
// the windows read there:
//   1 s  up to 5 min   the page short window (5m) is exact to the second
//   10 s up to 1 h     30m and 1h windows: ≤ 0.6 % of the window at the edge
//   1 min up to 1 d    6h window: ≤ 0.3 %
//   1 h  beyond        3d window ≤ 1.4 %, 30d budget ≤ 0.14 %
// For a 30-day SLO that is 302 + 362 + 1442 + 722 buckets × 16 bytes ≈ 45 KB,
// so 1000 such SLOs hold ≈ 45 MB; an SLO with a 1-hour window needs ≈ 10 KB
// and one whose windows fit in 5 minutes ≈ 5 KB. The error above is a bound
// for events bunched in the oldest bucket; at a steady rate the linear
// interpolation of that bucket is exact.
struct TierSpec {
  int64_t step;
  int64_t span;  // 0: unbounded (sized to the lookback)
};
constexpr std::array<TierSpec, 4> kTiers{{
    {1, 5 * 60},
    {10, 60 * 60},
    {60, 24 * 60 * 60},
    {60 * 60, 0},
}};

constexpr char kMagic[8] = {'S', 'S', 'W', 'C', '0', '0', '0', '1'};

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

uint64_t fnv1a(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// The state file is host-local (state_dir), so native byte order is fine;
// the magic's version changes if the layout of the file ever does.
template <typename T>
void put(std::string& out, T value) {
  char raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.append(raw, sizeof(T));
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  bool get(T& value) {
    if (bytes_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  size_t remaining() const { return bytes_.size() - pos_; }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

uint64_t interpolate(uint64_t from, uint64_t to, double fraction) {
  if (to <= from) return from;
  return from + static_cast<uint64_t>(std::llround(static_cast<double>(to - from) * fraction));
}

}  // namespace

WindowCounter::WindowCounter(std::chrono::seconds lookback, int64_t now_second)
    : lookback_(std::max(lookback, std::chrono::seconds(1))),
      latest_(now_second),
      tiers_(layout(lookback_, now_second)) {}

std::vector<WindowCounter::Tier> WindowCounter::layout(std::chrono::seconds lookback,
                                                       int64_t now_second) {
  std::vector<Tier> tiers;
  const int64_t want = lookback.count();
  for (const TierSpec& spec : kTiers) {
    const bool last = spec.span == 0 || spec.span >= want;
    const int64_t covers = last ? want : spec.span;
    // +2: the partly filled newest bucket, and the bucket before the oldest
    // age so that the oldest one can be interpolated.
    const auto size = static_cast<size_t>(ceil_div(covers, spec.step) + 2);
    tiers.push_back(Tier{spec.step, floor_div(now_second, spec.step), std::vector<EventCounts>(size)});
    if (last) break;
  }
  return tiers;
}

void WindowCounter::add(int64_t second, uint64_t good, uint64_t bad) {
  second = std::max(second, latest_);
  const EventCounts before = total_;
  total_.good += good;
  total_.bad += bad;
  for (Tier& tier : tiers_) {
    const auto size = static_cast<int64_t>(tier.ends.size());
    const int64_t bucket = floor_div(second, tier.step);
    // Skipped buckets hold no events: their end equals the previous end.
    for (int64_t k = std::max(tier.head + 1, bucket - size + 1); k < bucket; ++k)
      tier.ends[static_cast<size_t>(k % size)] = before;
    tier.head = std::max(tier.head, bucket);
    tier.ends[static_cast<size_t>(tier.head % size)] = total_;
  }
  latest_ = second;
}

EventCounts WindowCounter::cumulative_at(int64_t second) const {
  if (second >= latest_) return total_;
  for (size_t i = 0; i < tiers_.size(); ++i) {
    const Tier& tier = tiers_[i];
    const auto size = static_cast<int64_t>(tier.ends.size());
    const int64_t oldest = tier.head - size + 1;
    const int64_t bucket = floor_div(second, tier.step);
    const bool last = i + 1 == tiers_.size();
    if (bucket - 1 < oldest && !last) continue;  // too old for this ring
    if (bucket < oldest) return tier.ends[static_cast<size_t>(oldest % size)];
    const EventCounts& end = tier.ends[static_cast<size_t>(bucket % size)];
    const EventCounts& start =
        bucket - 1 >= oldest ? tier.ends[static_cast<size_t>((bucket - 1) % size)] : end;
    // Fraction of the bucket [bucket*step, (bucket+1)*step) at or before `second`.
    const double fraction = static_cast<double>(second - bucket * tier.step + 1) /
                            static_cast<double>(tier.step);
    return EventCounts{interpolate(start.good, end.good, fraction),
                       interpolate(start.bad, end.bad, fraction)};
  }
  return {};
}

EventCounts WindowCounter::window(int64_t now_second, std::chrono::seconds length) const {
  if (length.count() <= 0) return {};
  const EventCounts end = cumulative_at(now_second);
  const EventCounts start = cumulative_at(now_second - length.count());
  return EventCounts{end.good - std::min(end.good, start.good), end.bad - std::min(end.bad, start.bad)};
}

EventCounts WindowCounter::cumulative() const { return total_; }

size_t WindowCounter::memory_bytes() const {
  size_t bytes = sizeof(*this);
  for (const Tier& tier : tiers_) bytes += tier.ends.capacity() * sizeof(EventCounts);
  return bytes;
}

std::string WindowCounter::serialize() const {
  std::string out(kMagic, sizeof(kMagic));
  put<int64_t>(out, lookback_.count());
  put<int64_t>(out, latest_);
  put<uint64_t>(out, total_.good);
  put<uint64_t>(out, total_.bad);
  put<uint32_t>(out, static_cast<uint32_t>(tiers_.size()));
  for (const Tier& tier : tiers_) {
    put<int64_t>(out, tier.step);
    put<int64_t>(out, tier.head);
    put<uint64_t>(out, tier.ends.size());
    for (const EventCounts& end : tier.ends) {
      put<uint64_t>(out, end.good);
      put<uint64_t>(out, end.bad);
    }
  }
  put<uint64_t>(out, fnv1a(out));
  return out;
}

Result<void> WindowCounter::deserialize(std::string_view bytes) {
  if (bytes.size() < sizeof(kMagic) + sizeof(uint64_t) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    return fail("not a syncscope window-counter file (bad magic)");
  std::string_view body = bytes.substr(0, bytes.size() - sizeof(uint64_t));
  uint64_t checksum = 0;
  std::memcpy(&checksum, bytes.data() + body.size(), sizeof(checksum));
  if (checksum != fnv1a(body)) return fail("window-counter file is corrupt (checksum mismatch)");

  Reader in(body.substr(sizeof(kMagic)));
  int64_t lookback_s = 0;
  uint32_t tier_count = 0;
  WindowCounter other(std::chrono::seconds(1), 0);
  other.tiers_.clear();
  if (!in.get(lookback_s) || !in.get(other.latest_) || !in.get(other.total_.good) ||
      !in.get(other.total_.bad) || !in.get(tier_count) || tier_count == 0 || tier_count > 16)
    return fail("window-counter file is truncated");
  for (uint32_t i = 0; i < tier_count; ++i) {
    Tier tier;
    uint64_t size = 0;
    if (!in.get(tier.step) || !in.get(tier.head) || !in.get(size) || tier.step <= 0 || size == 0 ||
        size > in.remaining() / (2 * sizeof(uint64_t)))
      return fail("window-counter file has an invalid ring");
    tier.ends.resize(size);
    for (EventCounts& end : tier.ends) {
      in.get(end.good);
      in.get(end.bad);
    }
    other.tiers_.push_back(std::move(tier));
  }
  other.lookback_ = std::chrono::seconds(lookback_s);
  resample_from(other, latest_);
  return {};
}

void WindowCounter::resample_from(const WindowCounter& other, int64_t now_second) {
  latest_ = std::max(now_second, other.latest_);
  total_ = other.total_;
  tiers_ = layout(lookback_, latest_);
  for (Tier& tier : tiers_) {
    const auto size = static_cast<int64_t>(tier.ends.size());
    for (int64_t k = tier.head - size + 1; k <= tier.head; ++k)
      tier.ends[static_cast<size_t>(k % size)] = other.cumulative_at(k * tier.step + tier.step - 1);
  }
}

Result<void> WindowCounter::save(const std::string& path) const {
  TRY(notify::durable_write(path, serialize()));
  return {};
}

Result<void> WindowCounter::load(const std::string& path) {
  const std::string bytes = TRY(notify::read_whole_file(path));
  auto loaded = deserialize(bytes);
  if (!loaded) return std::unexpected(loaded.error().wrap(path));
  return {};
}

double burn_rate(const EventCounts& counts, double objective_percent) {
  if (counts.total() == 0) return 0;
  // (100 - objective) / 100 rather than 1 - objective / 100: exact for whole
  // and half percents, so 1 % bad against 99 % burns exactly 1.0.
  const double budget = (100.0 - objective_percent) / 100.0;
  const double bad_ratio = static_cast<double>(counts.bad) / static_cast<double>(counts.total());
  if (budget <= 0) return counts.bad > 0 ? std::numeric_limits<double>::infinity() : 0;
  return bad_ratio / budget;
}

double error_budget_remaining(const EventCounts& slo_window_counts, double objective_percent) {
  return 1.0 - burn_rate(slo_window_counts, objective_percent);
}

std::string_view to_string(Severity severity) {
  return severity == Severity::page ? "page" : "ticket";
}

namespace {

std::chrono::seconds whole_seconds(double seconds) {
  return std::chrono::seconds(std::max<int64_t>(1, std::llround(seconds)));
}

}  // namespace

std::vector<AlertRule> alert_rules(const config::SloConfig& slo) {
  using namespace std::chrono_literals;
  std::vector<AlertRule> rules;
  if (slo.alerting.page.empty() && slo.alerting.ticket.empty()) {
    struct Row {
      Severity severity;
      std::chrono::seconds long_window, short_window;
      double burn_rate;
    };
    // The SRE workbook, "Alerting on SLOs", table 5-8 (30-day SLO window).
    constexpr Row kTable[] = {
        {Severity::page, 1h, 5min, 14.4},
        {Severity::page, 6h, 30min, 6},
        {Severity::ticket, 72h, 6h, 1},
    };
    const double scale = std::chrono::duration<double>(slo.window).count() /
                         std::chrono::duration<double>(std::chrono::hours(24 * 30)).count();
    for (const Row& row : kTable)
      rules.push_back(AlertRule{row.severity, whole_seconds(static_cast<double>(row.long_window.count()) * scale),
                                whole_seconds(static_cast<double>(row.short_window.count()) * scale),
                                row.burn_rate});
    return rules;
  }
  auto convert = [&](const std::vector<config::BurnRateRule>& from, Severity severity) {
    for (const config::BurnRateRule& rule : from)
      rules.push_back(AlertRule{severity, whole_seconds(std::chrono::duration<double>(rule.long_window).count()),
                                whole_seconds(std::chrono::duration<double>(rule.short_window).count()),
                                rule.burn_rate});
  };
  convert(slo.alerting.page, Severity::page);
  convert(slo.alerting.ticket, Severity::ticket);
  return rules;
}

std::chrono::seconds lookback(const config::SloConfig& slo, const std::vector<AlertRule>& rules) {
  auto longest = std::chrono::ceil<std::chrono::seconds>(slo.window);
  for (const AlertRule& rule : rules) longest = std::max({longest, rule.long_window, rule.short_window});
  return std::max(longest, std::chrono::seconds(1));
}

}  // namespace syncscope::slo
