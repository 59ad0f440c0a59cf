#include "agent/slo/engine.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <optional>
#include <variant>

#include <nlohmann/json.hpp>

#include "agent/core/duration.h"
#include "agent/core/log.h"
#include "agent/slo/burn_rate.h"
#include "agent/slo/circuit.h"

namespace syncscope::slo {
namespace {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// Growth of the goroutine count is measured over this much history, and only
// judged once at least kGrowthMinHistory of it exists (a 2-goroutine blip
// over one second is not "growing 120 per minute").
constexpr int64_t kGrowthHistory = 60;
constexpr int64_t kGrowthMinHistory = 15;
// Gauge SLIs turn each elapsed second into one event. A longer gap between
// evaluations (the agent was stalled) counts as at most this many seconds.
constexpr int64_t kMaxGaugeSeconds = 60;

std::string_view sli_kind(config::Sli::Kind kind) {
  switch (kind) {
    case config::Sli::Kind::runq_latency: return "runq_latency";
    case config::Sli::Kind::lock_wait: return "lock_wait";
    case config::Sli::Kind::lock_wait_ratio: return "lock_wait_ratio";
    case config::Sli::Kind::goroutines: return "goroutines";
  }
  return "unknown";
}

std::string_view webhook_type(CircuitState state) {
  switch (state) {
    case CircuitState::open: return "circuit.open";
    case CircuitState::half_open: return "circuit.half_open";
    case CircuitState::closed: return "circuit.close";
  }
  return "circuit.close";
}

// SLO names become file names: keep [A-Za-z0-9._-], %-escape the rest.
std::string file_stem(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') out += static_cast<char>(c);
    else out += fmt::format("%{:02X}", c);
  }
  if (out.empty() || out == "." || out == "..") out = fmt::format("%{}", out.size());
  return out;
}

int64_t to_ms(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
WallTime from_ms(int64_t ms) { return WallTime(std::chrono::milliseconds(ms)); }

WallTime to_wall(SteadyTime t, SteadyTime steady_now, WallTime wall_now) {
  return wall_now + std::chrono::duration_cast<std::chrono::system_clock::duration>(t - steady_now);
}

double json_number(double value) { return std::isfinite(value) ? value : 0.0; }

}  // namespace

struct SloEngine::Slo {
  struct Window {
    std::chrono::seconds length{};
    std::string label;
    EventCounts counts;
    double burn_rate = 0;
  };
  struct RuleWindows {
    size_t long_index = 0;
    size_t short_index = 0;
    bool firing = false;
  };

  Slo(const config::SloConfig& c, int64_t now_second)
      : config(c),
        target(c.target.describe()),
        key(c.name + "/" + target),
        window_label(format_duration(c.window)),
        rules(alert_rules(c)),
        counter(lookback(c, rules), now_second),
        breaker(key, c.circuit) {
    for (const AlertRule& rule : rules)
      for (auto length : {rule.long_window, rule.short_window})
        if (std::none_of(windows.begin(), windows.end(), [&](const Window& w) { return w.length == length; }))
          windows.push_back(Window{length, format_duration(length), {}, 0});
    std::sort(windows.begin(), windows.end(), [](const Window& a, const Window& b) { return a.length < b.length; });
    auto index_of = [&](std::chrono::seconds length) {
      return static_cast<size_t>(std::find_if(windows.begin(), windows.end(),
                                              [&](const Window& w) { return w.length == length; }) -
                                 windows.begin());
    };
    for (const AlertRule& rule : rules)
      rule_windows.push_back(RuleWindows{index_of(rule.long_window), index_of(rule.short_window), false});
    slo_window = std::max(std::chrono::ceil<std::chrono::seconds>(c.window), std::chrono::seconds(1));
  }

  std::vector<std::pair<std::string, double>> burn_rates() const {
    std::vector<std::pair<std::string, double>> out;
    out.reserve(windows.size());
    for (const Window& w : windows) out.emplace_back(w.label, w.burn_rate);
    return out;
  }

  config::SloConfig config;
  std::string target;
  std::string key;
  std::string window_label;
  std::chrono::seconds slo_window{};
  std::vector<AlertRule> rules;
  std::vector<Window> windows;  // distinct rule windows, shortest first
  std::vector<RuleWindows> rule_windows;  // parallel to rules
  WindowCounter counter;
  // syncscope_slo_events_total counts from zero at process start, not from the
  // persisted cumulative: after a SIGKILL the state file is up to one
  // persist_interval old, and a counter that went backwards would read to
  // Prometheus as a reset followed by a huge increase. A true reset to zero
  // is what rate() and increase() handle correctly.
  EventCounts since_start;
  EventCounts in_slo_window;
  double budget_remaining = 1;
  bool page_firing = false;
  bool ticket_firing = false;
  CircuitBreaker breaker;
  uint64_t sequence = 0;
  // The highest sequence handed to the notifier (whose outbox makes it
  // durable). The sequence is persisted before the hand-over, so a kill in
  // between leaves queued_sequence < sequence on disk: the transition was
  // never queued, and the next run sends the circuit's state once more.
  uint64_t queued_sequence = 0;
  bool resend_after_restart = false;

  // Turning readings into events.
  std::optional<EventCounters> baseline;
  std::optional<int64_t> last_second;
  std::deque<std::pair<int64_t, uint64_t>> goroutine_history;

  SteadyTime next_save{};
};

struct SloEngine::Pending {
  Slo* slo = nullptr;  // stable: slos_ is never resized after construction
  std::optional<notify::CircuitNotification> circuit;
  std::optional<notify::AlertNotification> alert;
};

SloEngine::SloEngine(const std::vector<config::SloConfig>& slos, const SliSource& sli, const Clock& clock,
                     notify::Notifier& notifier, const EvidenceSource* evidence, std::string state_dir,
                     EngineOptions options)
    : sli_(sli),
      clock_(clock),
      notifier_(notifier),
      evidence_(evidence),
      state_dir_(std::move(state_dir)),
      options_(options) {
  const int64_t now_second =
      std::chrono::floor<std::chrono::seconds>(clock_.wall_now().time_since_epoch()).count();
  const auto steady = clock_.steady_now();
  if (!state_dir_.empty()) {
    if (auto made = notify::ensure_directory(state_dir_ + "/slo"); !made)
      log::error("slo: {}; SLO state will not survive a restart", made.error().message());
  }
  slos_.reserve(slos.size());
  for (size_t i = 0; i < slos.size(); ++i) {
    auto slo = std::make_unique<Slo>(slos[i], now_second);
    // Stagger the periodic saves so 1000 SLOs do not all write in one second.
    slo->next_save = steady + options_.persist_interval * static_cast<int64_t>(i + 1) /
                                  static_cast<int64_t>(slos.size());
    if (!state_dir_.empty()) load(*slo);
    slos_.push_back(std::move(slo));
  }
}

SloEngine::~SloEngine() {
  if (auto saved = save_state(); !saved) log::error("slo: saving state at shutdown: {}", saved.error().message());
}

void SloEngine::load(Slo& slo) {
  const std::string stem = state_dir_ + "/slo/" + file_stem(slo.config.name);
  if (auto loaded = slo.counter.load(stem + ".counts"); !loaded) {
    if (loaded.error().sys_errno() != ENOENT)
      log::warn("slo {}: starting with an empty error budget history: {}", slo.config.name,
                loaded.error().message());
  } else {
    log::info("slo {}: resumed window counters from {}.counts", slo.config.name, stem);
  }

  auto text = notify::read_whole_file(stem + ".json");
  if (!text) {
    if (text.error().sys_errno() != ENOENT) log::warn("slo {}: {}", slo.config.name, text.error().message());
    return;
  }
  try {
    const nlohmann::json state = nlohmann::json::parse(*text);
    slo.sequence = state.at("sequence").get<uint64_t>();
    slo.queued_sequence = state.value("queued_sequence", slo.sequence);
    const nlohmann::json& circuit = state.at("circuit");
    auto restored = circuit_state_from_string(circuit.at("state").get<std::string>());
    if (!restored) throw std::runtime_error("unknown circuit state");
    slo.breaker.restore(
        CircuitBreaker::Snapshot{*restored, from_ms(circuit.at("since_ms").get<int64_t>()),
                                 from_ms(circuit.at("opened_at_ms").get<int64_t>()),
                                 from_ms(circuit.at("renewed_at_ms").get<int64_t>()),
                                 from_ms(circuit.at("open_until_ms").get<int64_t>())},
        clock_);
    if (slo.breaker.state() != CircuitState::closed)
      log::info("slo {}: circuit {} resumed {} (sequence {})", slo.config.name, slo.key,
                to_string(slo.breaker.state()), slo.sequence);
    if (slo.queued_sequence < slo.sequence) {
      slo.resend_after_restart = true;
      log::warn("slo {}: circuit {} sequence {} was never queued (the agent stopped first): sending it now",
                slo.config.name, slo.key, slo.sequence);
    }
  } catch (const std::exception& e) {
    log::warn("slo {}: ignoring unreadable {}.json: {}", slo.config.name, stem, e.what());
  }
}

Result<void> SloEngine::save_counts(const Slo& slo) const {
  if (state_dir_.empty()) return {};
  return slo.counter.save(state_dir_ + "/slo/" + file_stem(slo.config.name) + ".counts");
}

Result<void> SloEngine::save_circuit(const Slo& slo) const {
  if (state_dir_.empty()) return {};
  const CircuitBreaker::Snapshot snap = slo.breaker.snapshot(clock_);
  const nlohmann::json state = {
      {"name", slo.config.name},
      {"sequence", slo.sequence},
      {"queued_sequence", slo.queued_sequence},
      {"circuit",
       {{"key", slo.key},
        {"state", to_string(snap.state)},
        {"since_ms", to_ms(snap.since)},
        {"opened_at_ms", to_ms(snap.opened_at)},
        {"renewed_at_ms", to_ms(snap.renewed_at)},
        {"open_until_ms", to_ms(snap.open_until)}}},
  };
  return notify::durable_write(state_dir_ + "/slo/" + file_stem(slo.config.name) + ".json", state.dump());
}

Result<void> SloEngine::save_state() {
  std::lock_guard lock(mu_);
  Result<void> result;
  for (const auto& slo : slos_) {
    auto counts = save_counts(*slo);
    auto circuit = save_circuit(*slo);
    if (!counts && result) result = counts;
    if (!circuit && result) result = circuit;
  }
  return result;
}

void SloEngine::evaluate() {
  const WallTime wall = clock_.wall_now();
  const SteadyTime steady = clock_.steady_now();
  const int64_t second = std::chrono::floor<std::chrono::seconds>(wall.time_since_epoch()).count();
  std::vector<Pending> pending;
  {
    std::lock_guard lock(mu_);
    evaluated_at_ = wall;
    for (auto& slo : slos_) {
      evaluate_one(*slo, second, steady, wall, pending);
      if (steady >= slo->next_save) {
        if (auto saved = save_counts(*slo); !saved)
          log::warn("slo {}: {}", slo->config.name, saved.error().message());
        slo->next_save += options_.persist_interval;
        if (slo->next_save <= steady) slo->next_save = steady + options_.persist_interval;
      }
    }
  }
  // Outside the lock: evidence gathering and the outbox's fsync must not hold
  // up a /metrics scrape.
  for (Pending& p : pending) {
    if (p.circuit) {
      if (evidence_) {
        try {
          p.circuit->evidence = evidence_->evidence(p.slo->config);
        } catch (const std::exception& e) {
          p.circuit->evidence = {{"error", e.what()}};
        }
      }
      notifier_.circuit_event(*p.circuit);
      std::lock_guard lock(mu_);
      p.slo->queued_sequence = std::max(p.slo->queued_sequence, p.circuit->sequence);
      if (auto saved = save_circuit(*p.slo); !saved)
        log::warn("slo {}: {}", p.slo->config.name, saved.error().message());
    }
    if (p.alert) notifier_.alert_state(*p.alert);
  }
}

void SloEngine::evaluate_one(Slo& slo, int64_t second, SteadyTime steady, WallTime wall,
                             std::vector<Pending>& pending) {
  // 1. The reading → this second's good and bad events.
  const std::optional<SliReading> reading = sli_.read(slo.config);
  const int64_t elapsed =
      slo.last_second ? std::clamp<int64_t>(second - *slo.last_second, 0, kMaxGaugeSeconds) : 1;
  slo.last_second = std::max(second, slo.last_second.value_or(second));
  uint64_t good = 0;
  uint64_t bad = 0;
  if (reading) {
    std::visit(
        [&](const auto& r) {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, EventCounters>) {
            if (slo.baseline) {
              // A counter that went down was reset: count from zero.
              good = r.good_total >= slo.baseline->good_total ? r.good_total - slo.baseline->good_total : r.good_total;
              bad = r.bad_total >= slo.baseline->bad_total ? r.bad_total - slo.baseline->bad_total : r.bad_total;
            }
            slo.baseline = r;
          } else if constexpr (std::is_same_v<T, WaitRatio>) {
            if (r.wall_ns == 0) return;
            const double ratio = static_cast<double>(r.waiting_ns) / static_cast<double>(r.wall_ns);
            (ratio > slo.config.sli.max_ratio ? bad : good) = static_cast<uint64_t>(elapsed);
          } else {
            auto& history = slo.goroutine_history;
            history.emplace_back(second, r.goroutines);
            while (!history.empty() && history.front().first < second - kGrowthHistory) history.pop_front();
            bool over = slo.config.sli.max_goroutines && r.goroutines > *slo.config.sli.max_goroutines;
            const int64_t span = second - history.front().first;
            if (slo.config.sli.max_growth_per_min && span >= kGrowthMinHistory) {
              const double growth = (static_cast<double>(r.goroutines) - static_cast<double>(history.front().second)) *
                                    60.0 / static_cast<double>(span);
              over = over || growth > *slo.config.sli.max_growth_per_min;
            }
            (over ? bad : good) = static_cast<uint64_t>(elapsed);
          }
        },
        *reading);
  }
  slo.counter.add(second, good, bad);
  slo.since_start.good += good;
  slo.since_start.bad += bad;

  // 2. Burn rates, budget, rules.
  const double objective = slo.config.objective;
  for (Slo::Window& w : slo.windows) {
    w.counts = slo.counter.window(second, w.length);
    w.burn_rate = burn_rate(w.counts, objective);
  }
  slo.in_slo_window = slo.counter.window(second, slo.slo_window);
  slo.budget_remaining = error_budget_remaining(slo.in_slo_window, objective);
  bool page = false;
  bool ticket = false;
  for (size_t i = 0; i < slo.rules.size(); ++i) {
    const AlertRule& rule = slo.rules[i];
    Slo::RuleWindows& rw = slo.rule_windows[i];
    const Slo::Window& long_window = slo.windows[rw.long_index];
    const Slo::Window& short_window = slo.windows[rw.short_index];
    rw.firing = long_window.counts.total() >= slo.config.min_events && long_window.burn_rate > rule.burn_rate &&
                short_window.burn_rate > rule.burn_rate;
    (rule.severity == Severity::page ? page : ticket) |= rw.firing;
  }

  // 3. The breaker.
  auto circuit_notification = [&](CircuitState state, std::string reason, std::optional<SteadyTime> open_until) {
    notify::CircuitNotification n;
    n.type = webhook_type(state);
    n.sequence = slo.sequence;
    n.circuit = slo.key;
    n.slo_name = slo.config.name;
    n.objective = objective;
    n.window = slo.window_label;
    n.target = slo.target;
    n.reason = std::move(reason);
    n.burn_rates = slo.burn_rates();
    n.error_budget_remaining = slo.budget_remaining;
    if (open_until) n.open_until = to_wall(*open_until, steady, wall);
    n.timestamp = wall;
    n.notifiers = slo.config.circuit.notify;
    pending.push_back(Pending{&slo, std::move(n), std::nullopt});
  };
  if (std::optional<CircuitEvent> event = slo.breaker.update(page, steady)) {
    ++slo.sequence;
    if (auto saved = save_circuit(slo); !saved)
      log::error("slo {}: could not persist circuit sequence {}: {}", slo.config.name, slo.sequence,
                 saved.error().message());
    circuit_notification(event->to, event->reason, event->open_until);
  } else if (slo.resend_after_restart) {
    // The body is the circuit's whole state, so the lost transition is
    // carried by its state now, under the sequence it was given.
    circuit_notification(slo.breaker.state(), "resent after a restart: the agent stopped before queueing it",
                         slo.breaker.open_until());
  }
  slo.resend_after_restart = false;

  // 4. Alerts: every second while firing (fresh annotations), once when they stop.
  if (!slo.config.circuit.notify.empty()) {
    for (auto [severity, now_firing, was_firing] :
         {std::tuple{Severity::page, page, slo.page_firing}, std::tuple{Severity::ticket, ticket, slo.ticket_firing}}) {
      if (!now_firing && !was_firing) continue;
      notify::AlertNotification a;
      a.slo = slo.config.name;
      a.target = slo.target;
      a.severity = std::string(to_string(severity));
      a.firing = now_firing;
      a.objective = objective;
      a.window = slo.window_label;
      a.burn_rates = slo.burn_rates();
      a.error_budget_remaining = slo.budget_remaining;
      a.notifiers = slo.config.circuit.notify;
      pending.push_back(Pending{&slo, std::nullopt, std::move(a)});
    }
  }
  if (page != slo.page_firing || ticket != slo.ticket_firing)
    log::info("slo {}: page alert {}, ticket alert {} (budget remaining {:.4f})", slo.config.name,
              page ? "firing" : "ok", ticket ? "firing" : "ok", slo.budget_remaining);
  slo.page_firing = page;
  slo.ticket_firing = ticket;
}

std::string SloEngine::status_json() const {
  std::lock_guard lock(mu_);
  const SteadyTime steady = clock_.steady_now();
  const WallTime wall = clock_.wall_now();
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& slo : slos_) {
    nlohmann::ordered_json rates = nlohmann::ordered_json::object();
    for (const Slo::Window& w : slo->windows) rates[w.label] = json_number(w.burn_rate);
    nlohmann::ordered_json rules = nlohmann::ordered_json::array();
    for (size_t i = 0; i < slo->rules.size(); ++i)
      rules.push_back({{"severity", to_string(slo->rules[i].severity)},
                       {"long", format_duration(slo->rules[i].long_window)},
                       {"short", format_duration(slo->rules[i].short_window)},
                       {"burn_rate", slo->rules[i].burn_rate},
                       {"firing", slo->rule_windows[i].firing}});
    const auto open_until = slo->breaker.open_until();
    list.push_back({
        {"name", slo->config.name},
        {"target", slo->target},
        {"sli", sli_kind(slo->config.sli.kind)},
        {"objective", slo->config.objective},
        {"window", slo->window_label},
        {"min_events", slo->config.min_events},
        {"error_budget_remaining", json_number(slo->budget_remaining)},
        {"events", {{"good", slo->in_slo_window.good}, {"bad", slo->in_slo_window.bad}}},
        {"burn_rates", rates},
        {"rules", rules},
        {"alerts", {{"page", slo->page_firing}, {"ticket", slo->ticket_firing}}},
        {"circuit",
         {{"key", slo->key},
          {"state", to_string(slo->breaker.state())},
          // null until the first transition (or a restored state).
          {"since", slo->breaker.since() == SteadyTime{}
                        ? nlohmann::ordered_json(nullptr)
                        : nlohmann::ordered_json(notify::format_rfc3339(to_wall(slo->breaker.since(), steady, wall)))},
          {"open_until", open_until ? nlohmann::ordered_json(notify::format_rfc3339(to_wall(*open_until, steady, wall)))
                                    : nlohmann::ordered_json(nullptr)},
          {"sequence", slo->sequence}}},
    });
  }
  nlohmann::ordered_json status = {
      {"evaluated_at", evaluated_at_ == WallTime{} ? nlohmann::ordered_json(nullptr)
                                                   : nlohmann::ordered_json(notify::format_rfc3339(evaluated_at_))},
      {"slos", std::move(list)},
  };
  return status.dump(2);
}

void SloEngine::collect(std::vector<metrics::Family>& out) const {
  metrics::Family burn = metrics::gauge(
      "syncscope_slo_burn_rate",
      "Error budget burn rate over the window: (bad/total)/(1-objective); 1 spends the budget exactly.");
  metrics::Family budget = metrics::gauge("syncscope_slo_error_budget_remaining_ratio",
                                          "Share of the SLO window's error budget left (negative: overspent).");
  metrics::Family events = metrics::counter("syncscope_slo_events_total",
                                            "SLI events counted by this agent process, by outcome.");
  metrics::Family objective = metrics::gauge(
      "syncscope_slo_objective_ratio",
      "The SLO's objective as a ratio of good events (config objective / 100), for burn rates computed in PromQL.");
  metrics::Family circuit = metrics::gauge("syncscope_circuit_state",
                                           "Circuit breaker state per SLO and target: 1 for the current state.");
  std::lock_guard lock(mu_);
  for (const auto& slo : slos_) {
    const std::string& name = slo->config.name;
    for (const Slo::Window& w : slo->windows) burn.add({{"slo", name}, {"window", w.label}}, w.burn_rate);
    budget.add({{"slo", name}}, slo->budget_remaining);
    objective.add({{"slo", name}}, slo->config.objective / 100);
    events.add({{"slo", name}, {"outcome", "good"}}, static_cast<double>(slo->since_start.good));
    events.add({{"slo", name}, {"outcome", "bad"}}, static_cast<double>(slo->since_start.bad));
    for (CircuitState state : {CircuitState::closed, CircuitState::open, CircuitState::half_open})
      circuit.add({{"slo", name}, {"target", slo->target}, {"state", std::string(to_string(state))}},
                  slo->breaker.state() == state ? 1.0 : 0.0);
  }
  out.push_back(std::move(burn));
  out.push_back(std::move(budget));
  out.push_back(std::move(objective));
  out.push_back(std::move(events));
  out.push_back(std::move(circuit));
}

}  // namespace syncscope::slo
