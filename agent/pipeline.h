// The one place that wires the stages together.
//
//   kernel maps / ring buffers ─► collectors ─► metrics registry ─► /metrics
//                                          └──► SLO engine ─► circuits ─► notifier
//
// The pipeline owns every stage, runs the event loop on the calling thread
// (ring buffers, once-per-second refresh, SLO evaluation, watchdog) and serves
// HTTP from civetweb's threads, which only read what the loop published.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "agent/collectors/collector.h"
#include "agent/config/config.h"
#include "agent/core/result.h"
#include "agent/http/server.h"
#include "agent/ingest/event_loop.h"
#include "agent/loader/bpf_stats.h"
#include "agent/loader/features.h"
#include "agent/loader/probe_report.h"
#include "agent/metrics/metric.h"
#include "probes/cgroup.h"

namespace syncscope::collectors {
class SchedCollector;
class LocksCollector;
class CachelinesCollector;
class GoroutinesCollector;
class LockCandidateSource;
}
namespace syncscope::slo {
class SloStage;
}

namespace syncscope {

class Pipeline {
 public:
  static Result<std::unique_ptr<Pipeline>> start(const config::Config& config, const loader::Features& features);
  ~Pipeline();

  // One turn of the loop: waits for ring-buffer data up to `max_wait`, and
  // runs the once-per-second work when it is due.
  Result<void> run_once(std::chrono::milliseconds max_wait);

  // Applies a new, already validated config. Stages whose section did not
  // change keep running (and keep their counters); a stage that fails to start
  // under the new config leaves the error in the result and the old stage in
  // place.
  Result<void> reload(const config::Config& next);

  // Lets the caller wait on its own fds (the signalfd) in the same loop.
  Result<void> watch_fd(int fd, ingest::EventLoop::Callback on_readable) {
    return loop_.watch(fd, std::move(on_readable));
  }

  const config::Config& config() const { return config_; }
  uint16_t http_port() const { return http_ ? http_->port() : 0; }
  std::string status_line() const;  // for systemd STATUS=

 private:
  Pipeline(const config::Config& config, const loader::Features& features);
  Result<void> start_collectors(const config::Config& config);
  Result<void> start_http(const config::Config& config);
  void every_second(std::chrono::steady_clock::time_point now);
  http::Response serve_metrics(const http::Request& request) const;

  config::Config config_;
  loader::Features features_;
  metrics::Registry registry_;
  loader::BpfSelfMetrics bpf_self_metrics_;
  loader::ProbeReport probe_report_;
  std::unique_ptr<metrics::MetricSource> agent_metrics_;
  std::unique_ptr<probes::CgroupResolver> cgroups_;
  ingest::EventLoop loop_;
  std::vector<std::unique_ptr<collectors::Collector>> collectors_;
  collectors::SchedCollector* sched_ = nullptr;
  collectors::LocksCollector* locks_ = nullptr;  // lock-wait SLIs and cache-line candidates come from it
  collectors::CachelinesCollector* cachelines_ = nullptr;
  // Live goroutine counts per target (the SLO engine's `goroutines` SLI reads
  // GoroutinesCollector::live_goroutines(selector)); null when golang is off.
  collectors::GoroutinesCollector* goroutines_ = nullptr;
  // The locks collector as a source of candidate cache lines (rewired when
  // either collector is replaced).
  std::unique_ptr<collectors::LockCandidateSource> lock_hints_;
  void connect_cacheline_hints();
  // SLIs → SLO engine → circuits → notifiers; evaluated in every_second().
  // Re-pointed at the collectors after start and after every reload.
  std::unique_ptr<slo::SloStage> slo_;
  void connect_slo();
  std::unique_ptr<http::Server> http_;
  std::chrono::steady_clock::time_point next_tick_{};
  std::atomic<int64_t> last_tick_ns_{0};
};

}  // namespace syncscope
