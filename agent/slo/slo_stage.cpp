#include "agent/slo/slo_stage.h"

#include <nlohmann/json.hpp>

#include "agent/core/log.h"

namespace syncscope::slo {

namespace {
// No SLOs, no state: an agent without SLOs does not create state_dir/slo.
std::string engine_state_dir(const config::Config& config) { return config.slos.empty() ? "" : config.state_dir; }
}  // namespace

bool slo_config_changed(const config::Config& before, const config::Config& after) {
  return before.slos != after.slos || before.notifiers != after.notifiers || before.outbox != after.outbox ||
         before.state_dir != after.state_dir;
}

SloStage::SloStage(probes::CgroupResolver& cgroups, const Clock& clock)
    : clock_(clock), host_(cgroups), evidence_(cgroups) {}

SloStage::~SloStage() {
  std::lock_guard lock(mu_);
  current_.engine.reset();      // saves the window counters and circuits
  current_.dispatcher.reset();  // joins the delivery threads; the outbox stays on disk
  current_.sli.reset();
}

Result<std::unique_ptr<SloStage>> SloStage::start(const config::Config& config, probes::CgroupResolver& cgroups,
                                                  const Clock& clock) {
  std::unique_ptr<SloStage> stage(new SloStage(cgroups, clock));
  auto dispatcher = notify::Dispatcher::create(config.notifiers, config.outbox, config.state_dir, stage->sender_, clock);
  if (!dispatcher) return std::unexpected(dispatcher.error().wrap("notifiers"));
  stage->config_ = config;
  stage->current_.sli = std::make_unique<CollectorSliSource>(config.slos, stage->host_);
  stage->current_.dispatcher = std::move(*dispatcher);
  stage->current_.engine = std::make_unique<SloEngine>(config.slos, *stage->current_.sli, clock,
                                                       *stage->current_.dispatcher, &stage->evidence_,
                                                       engine_state_dir(config));
  stage->current_.dispatcher->start();
  if (!config.slos.empty())
    log::info("slo: evaluating {} SLO(s) every second; {} notifier(s); {} notification(s) pending in the outbox",
              config.slos.size(), config.notifiers.size(), stage->current_.dispatcher->pending());
  return stage;
}

void SloStage::connect(collectors::SchedCollector* sched, collectors::LocksCollector* locks,
                       const collectors::GoroutinesCollector* goroutines) {
  host_.connect(sched, locks, goroutines);
  evidence_.connect(sched, locks);
  current_.sli->collectors_changed();
}

Result<void> SloStage::reload(const config::Config& next) {
  if (!slo_config_changed(config_, next)) return {};
  // No delivery thread of the old generation may run once the new outbox has
  // loaded the same directory.
  current_.dispatcher->stop();
  auto dispatcher = notify::Dispatcher::create(next.notifiers, next.outbox, next.state_dir, sender_, clock_);
  if (!dispatcher) {
    current_.dispatcher->start();
    return std::unexpected(dispatcher.error().wrap("reload: notifiers (the previous SLOs and notifiers keep running)"));
  }
  Generation fresh;
  fresh.sli = std::make_unique<CollectorSliSource>(next.slos, host_);
  fresh.dispatcher = std::move(*dispatcher);
  {
    std::lock_guard lock(mu_);
    // The old engine saves its state before the new one loads it; then its
    // dispatcher (stopped, with nothing left in flight) and SLI source go.
    current_.engine.reset();
    current_.dispatcher.reset();
    current_.sli.reset();
    fresh.engine = std::make_unique<SloEngine>(next.slos, *fresh.sli, clock_, *fresh.dispatcher, &evidence_,
                                               engine_state_dir(next));
    current_ = std::move(fresh);
  }
  current_.dispatcher->start();
  config_ = next;
  log::info("slo: reloaded: {} SLO(s), {} notifier(s)", next.slos.size(), next.notifiers.size());
  return {};
}

void SloStage::evaluate(std::chrono::steady_clock::time_point now) {
  evidence_.refresh(now);
  current_.sli->refresh(now);
  current_.engine->evaluate();
}

std::string SloStage::status_json() const {
  std::lock_guard lock(mu_);
  nlohmann::ordered_json status = nlohmann::ordered_json::parse(current_.engine->status_json());
  const nlohmann::json measurement = current_.sli->status();
  for (auto& slo : status["slos"]) {
    const std::string name = slo.value("name", "");
    if (measurement.contains(name)) slo["measurement"] = nlohmann::ordered_json::parse(measurement[name].dump());
  }
  nlohmann::ordered_json notifiers = nlohmann::ordered_json::object();
  for (const auto& [name, notifier] : config_.notifiers) {
    const bool webhook = notifier.type == config::NotifierConfig::Type::webhook;
    notifiers[name] = {{"type", webhook ? "webhook" : "alertmanager"},
                       {"url", notifier.url},
                       {"disabled", current_.dispatcher->disabled(name)}};
  }
  status["notifiers"] = std::move(notifiers);
  status["outbox_pending"] = current_.dispatcher->pending();
  return status.dump(2);
}

void SloStage::collect(std::vector<metrics::Family>& out) const {
  std::lock_guard lock(mu_);
  current_.engine->collect(out);
  current_.dispatcher->collect(out);
}

}  // namespace syncscope::slo
