// The command-line front ends. main() parses arguments with CLI11 and calls
// one of these; each returns the process exit code (0 ok, 1 runtime failure,
// 2 bad usage or invalid config).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace syncscope::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct AgentArgs {
  std::optional<std::string> config_path;
  std::optional<std::string> listen;
};
int run_agent(const AgentArgs& args);

int run_probe(bool json);
int run_config_check(const std::string& path);

struct RunqlatArgs {
  uint32_t pid = 0;
  std::optional<std::string> cgroup;
  bool milliseconds = false;
  bool per_cgroup = false;
  bool json = false;
  bool fine = false;       // print the log-linear sub-buckets too
  bool timestamps = false;
  uint32_t interval_s = 0;  // 0: run until Ctrl-C (or --duration), print once
  uint32_t count = 0;       // 0: unlimited
  uint32_t duration_s = 0;  // stop after this long even without an interval
};
int run_trace_runqlat(const RunqlatArgs& args);

}  // namespace syncscope::cli
