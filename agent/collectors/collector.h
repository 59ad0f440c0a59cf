// What every collector is to the pipeline: a metric source that refreshes
// from the kernel once per second, may hand ring-buffer fds to the event
// loop, and reports what it attached.
#pragma once

#include <chrono>
#include <string_view>

#include "agent/ingest/event_loop.h"
#include "agent/metrics/metric.h"

namespace syncscope::collectors {

class Collector : public metrics::MetricSource {
 public:
  virtual std::string_view name() const = 0;
  // Pipeline thread, once per second: read maps, resolve names, expire state.
  virtual void refresh(std::chrono::steady_clock::time_point now) = 0;
  // Pipeline thread, at start: register ring buffers and other fds.
  virtual Result<void> add_to(ingest::EventLoop&) { return {}; }
};

}  // namespace syncscope::collectors
