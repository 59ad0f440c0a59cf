// `syncscope trace goroutines -p PID`: how many goroutines a Go program has,
// in which states, and which functions created the live ones — the leak
// signal — read from outside the process (no probe, no signal, no stop),
// stripped binaries included. The same reader the agent's goroutines
// collector runs every golang.scan_interval.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/collectors/goroutines.h"
#include "agent/core/log.h"

namespace syncscope::cli {
namespace {

struct TraceGoroutinesArgs {
  uint32_t pid = 0;
  size_t top = 10;
  bool json = false;
  uint32_t repeat = 1;  // scans to time (the benchmark's scan-cost figure)
};

int run_trace_goroutines(const TraceGoroutinesArgs& args) {
  log::set_min_level(log::Level::warning);
  auto inspected = collectors::inspect_go_process(args.pid, std::max<uint32_t>(args.repeat, 1));
  if (!inspected) {
    std::fprintf(stderr, "syncscope trace goroutines: %s\n", inspected.error().message().c_str());
    return inspected.error().sys_errno() == ESRCH ? kExitUsage : kExitFailure;
  }
  const collectors::GoProcessReport& r = *inspected;
  auto creators = probes::go::top_creators(r.summary.by_creator, args.top);
  if (args.json) {
    nlohmann::json by_state = nlohmann::json::object();
    for (size_t i = 0; i < probes::go::kGoroutineStateCount; ++i)
      by_state[std::string(probes::go::to_string(static_cast<probes::go::GoroutineState>(i)))] = r.summary.by_state[i];
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [function, count] : creators) top.push_back({{"function", function}, {"count", count}});
    nlohmann::json out = {{"pid", args.pid},
                          {"exe", r.exe},
                          {"go_version", r.go_version},
                          {"allgs", r.allgs_origin},
                          {"total", r.summary.live},
                          {"system", r.summary.system},
                          {"created", r.summary.max_goid},
                          {"allglen", r.allglen},
                          {"by_state", by_state},
                          {"top_creators", top},
                          {"scan_us", r.scan_seconds * 1e6},
                          {"scans", r.scans}};
    std::printf("%s\n", out.dump().c_str());
    return kExitOk;
  }
  std::printf("process %u (%s), Go %s, allgs from %s\n", args.pid, r.exe.c_str(), r.go_version.c_str(),
              r.allgs_origin.c_str());
  std::printf("goroutines: %llu live (+%llu runtime system goroutines); created about %lld (highest goroutine id)\n\n",
              static_cast<unsigned long long>(r.summary.live), static_cast<unsigned long long>(r.summary.system),
              static_cast<long long>(r.summary.max_goid));
  std::printf("%-16s %10s\n", "STATE", "COUNT");
  for (size_t i = 0; i < probes::go::kGoroutineStateCount; ++i) {
    if (!r.summary.by_state[i]) continue;
    std::printf("%-16s %10llu\n", std::string(probes::go::to_string(static_cast<probes::go::GoroutineState>(i))).c_str(),
                static_cast<unsigned long long>(r.summary.by_state[i]));
  }
  std::printf("\n%-50s %10s\n", "CREATED BY (go statement in)", "LIVE");
  for (const auto& [function, count] : creators)
    std::printf("%-50s %10llu\n", function.c_str(), static_cast<unsigned long long>(count));
  std::printf("\nscan: %.0f us for %llu goroutine records\n", r.scan_seconds * 1e6,
              static_cast<unsigned long long>(r.allglen));
  return kExitOk;
}

}  // namespace

void register_trace_goroutines(CLI::App* trace, int& exit_code) {
  auto args = std::make_shared<TraceGoroutinesArgs>();
  CLI::App* cmd = trace->add_subcommand("goroutines", "Goroutines of a Go process by state and creation site");
  cmd->add_option("-p,--pid", args->pid, "the Go process")->required();
  cmd->add_option("--top", args->top, "creation sites to list (default 10; the rest is \"other\")")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", args->json,
                "print one JSON object: {total, by_state:{…}, top_creators:[{function, count}], …}");
  cmd->add_option("--repeat", args->repeat, "scan N times and report the mean scan time (benchmarks)")
      ->check(CLI::PositiveNumber);
  cmd->callback([args, &exit_code] { exit_code = run_trace_goroutines(*args); });
}

}  // namespace syncscope::cli
