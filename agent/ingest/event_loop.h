// The pipeline's one event loop: waits on ring-buffer and signal fds with
// epoll and runs periodic work (map refresh, SLO evaluation, watchdog) on the
// same thread, so stages never race each other.
#pragma once

#include <chrono>
#include <functional>
#include <map>

#include "agent/core/fd.h"
#include "agent/core/result.h"

namespace syncscope::ingest {

class EventLoop {
 public:
  using Callback = std::function<void()>;

  static Result<EventLoop> create();

  // Calls `on_readable` whenever `fd` is readable. The fd stays owned by the caller.
  Result<void> watch(int fd, Callback on_readable);
  void unwatch(int fd);

  // Waits at most `timeout` for fds and runs their callbacks.
  Result<void> run_once(std::chrono::milliseconds timeout);

 private:
  Fd epoll_;
  std::map<int, Callback> callbacks_;
};

}  // namespace syncscope::ingest
