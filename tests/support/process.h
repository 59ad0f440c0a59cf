// Child processes for tests: spawn with piped stdin/stdout, read lines with a
// timeout, stop and reap. The destructor kills and reaps whatever is left, so
// a failing test never leaks a workload.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace syncscope::testing {

class Process {
 public:
  static Process spawn(const std::vector<std::string>& argv);
  Process(Process&& other) noexcept;
  Process& operator=(Process&&) = delete;
  Process(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  // Next line of stdout (without the newline), or nullopt on EOF/timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Reads lines until one starts with `prefix`; returns it.
  std::optional<std::string> wait_for(const std::string& prefix,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool write(const std::string& text);
  void close_stdin();
  void signal(int sig);
  // Waits for exit; returns the exit status (or -signal), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void kill_and_reap();

 private:
  Process() = default;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
  bool reaped_ = false;
};

// $SYNCSCOPE_BUILD (default "build") + "/" + relative.
std::string build_path(const std::string& relative);

// Voluntary and involuntary context switches of a process (all its threads)
// from /proc/PID/status (the thread group leader's) and /proc/PID/task/*/status.
struct ContextSwitches {
  uint64_t voluntary = 0;
  uint64_t involuntary = 0;
};
ContextSwitches context_switches(pid_t pid);

}  // namespace syncscope::testing
