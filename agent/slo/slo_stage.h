// The pipeline's SLO stage: the SLI source over the collectors, the engine,
// and the notification dispatcher, with their lifetimes in the right order.
//
//   collectors ─► CollectorSliSource ─► SloEngine ─► Dispatcher ─► outbox ─► webhooks
//                 CollectorEvidence ──┘                          └──────────► Alertmanager
//
// The engine holds references to the SLI source and the dispatcher, so it is
// destroyed first (saving its state), the dispatcher next (joining its
// delivery threads). A reload that changes slos, notifiers, outbox or
// state_dir stops the old dispatcher before the new one opens the same
// outbox directory, so two delivery threads never send the same entry; if the
// new notifiers cannot start (an unreadable secret_file), the old generation
// resumes and the reload reports the error.
//
// Threading: connect(), reload() and evaluate() run on the pipeline thread;
// status_json() and collect() on HTTP threads.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "agent/config/config.h"
#include "agent/core/clock.h"
#include "agent/core/result.h"
#include "agent/metrics/metric.h"
#include "agent/notify/http_sender.h"
#include "agent/notify/notifier.h"
#include "agent/slo/engine.h"
#include "agent/slo/sli_sources.h"

namespace syncscope::slo {

class SloStage final : public metrics::MetricSource {
 public:
  // Fails when a notifier cannot start (secret_file unreadable or malformed,
  // outbox directory unwritable): the error names the notifier and the file.
  static Result<std::unique_ptr<SloStage>> start(const config::Config& config, probes::CgroupResolver& cgroups,
                                                 const Clock& clock = SystemClock::instance());
  ~SloStage() override;
  SloStage(const SloStage&) = delete;
  SloStage& operator=(const SloStage&) = delete;

  // The collectors the SLIs and the evidence come from (any may be null).
  // Called at start and after every reload, whether or not a collector was
  // replaced: the rows are reinstalled (losing at most the last second of
  // events), which is always safe.
  void connect(collectors::SchedCollector* sched, collectors::LocksCollector* locks,
               const collectors::GoroutinesCollector* goroutines);

  // Applies slos, notifiers, outbox and state_dir from `next` (no-op when
  // none changed). The new SLI rows are installed by the connect() that
  // follows every reload: the collectors may have been replaced too, and
  // reload() touches none of them.
  Result<void> reload(const config::Config& next);

  // Once a second on the pipeline thread: collector snapshots, then the
  // engine's evaluation (which queues notifications and wakes the senders).
  void evaluate(std::chrono::steady_clock::time_point now);

  // /debug/slo: SloEngine::status_json() with, per SLO, "measurement" (the SLI
  // source's status), plus the notifiers and the outbox.
  std::string status_json() const;

  // The engine's and the dispatcher's families.
  void collect(std::vector<metrics::Family>& out) const override;

 private:
  SloStage(probes::CgroupResolver& cgroups, const Clock& clock);

  // One configuration's objects. Declaration order is construction order;
  // destruction runs backwards: engine, then dispatcher, then SLI source.
  struct Generation {
    std::unique_ptr<CollectorSliSource> sli;
    std::unique_ptr<notify::Dispatcher> dispatcher;
    std::unique_ptr<SloEngine> engine;
  };

  const Clock& clock_;
  notify::CurlHttpSender sender_;
  CollectorSliHost host_;
  CollectorEvidence evidence_;
  config::Config config_;

  mutable std::mutex mu_;  // guards the swap of current_ against HTTP readers
  Generation current_;
};

// Whether a reload touches the SLO stage.
bool slo_config_changed(const config::Config& before, const config::Config& after);

}  // namespace syncscope::slo
