// `syncscope trace falseshare -p PID`: which cache lines of a process are
// falsely (or truly) shared, by whom, and what to do about it — from the same
// cache-line collector the agent runs, for one process, for -d seconds.
//
// Without hints it rotates through the process's writable globals, hottest
// first; --watch SYMBOL narrows that to the named objects. The watch duty
// cycle defaults higher than the agent's (a developer is asking, for a few
// seconds) and is a flag; the printed summary says how much of the time the
// process was actually watched.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/collectors/cachelines.h"
#include "agent/core/log.h"
#include "agent/loader/features.h"

namespace syncscope::cli {
namespace {

struct TraceFalseshareArgs {
  uint32_t pid = 0;
  uint32_t duration_s = 10;
  std::vector<std::string> watch;
  bool json = false;
  bool all = false;  // lines judged unshared too
  uint32_t window_ms = 20;
  double duty_cycle = 0.05;
  size_t top = 20;
  std::string pmu = "auto";
  bool verbose = false;
  std::optional<double> recheck_s;  // watch judged lines again after this long (default: not within a trace)
};

bool signalled(const sigset_t& signals) {
  timespec zero{};
  return ::sigtimedwait(&signals, nullptr, &zero) > 0;
}

int run_trace_falseshare(const TraceFalseshareArgs& args) {
  if (::kill(static_cast<pid_t>(args.pid), 0) != 0 && errno == ESRCH) {
    std::fprintf(stderr, "syncscope trace falseshare: process %u does not exist\n", args.pid);
    return kExitUsage;
  }
  if (!(args.duty_cycle > 0 && args.duty_cycle <= 1)) {
    std::fprintf(stderr, "syncscope trace falseshare: --duty-cycle must be in (0, 1]\n");
    return kExitUsage;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  log::set_min_level(args.verbose ? log::Level::debug : log::Level::warning);
  loader::install_libbpf_logging();
  loader::Features features = loader::probe_features();
  auto cgroups = probes::CgroupResolver::for_this_host();
  if (!cgroups) {
    std::fprintf(stderr, "syncscope trace falseshare: %s\n", cgroups.error().message().c_str());
    return kExitFailure;
  }
  collectors::CachelinesOptions options;
  options.pid = args.pid;
  options.window = std::chrono::milliseconds(args.window_ms);
  options.duty_cycle = args.duty_cycle;
  options.watch_symbols = args.watch;
  options.max_cgroups = UINT32_MAX;
  options.pmu = args.pmu == "on"    ? config::CachelinesConfig::Pmu::on
                : args.pmu == "off" ? config::CachelinesConfig::Pmu::off
                                    : config::CachelinesConfig::Pmu::auto_detect;
  // Verdicts do not go stale within one trace, unless asked (benchmarks
  // keep the windows on the same hot lines with --recheck 0).
  options.recheck = args.recheck_s
                        ? std::chrono::duration_cast<Nanoseconds>(std::chrono::duration<double>(*args.recheck_s))
                        : Nanoseconds(std::chrono::hours(1));
  auto collector = collectors::CachelinesCollector::start(options, features, **cgroups, nullptr, nullptr);
  if (!collector) {
    std::fprintf(stderr, "syncscope trace falseshare: %s\n", collector.error().message().c_str());
    if (!features.missing_capabilities.empty())
      std::fprintf(stderr, "  %s\n", features.find("capabilities")->detail.c_str());
    return kExitFailure;
  }
  collectors::CachelinesStatus status = (*collector)->status();
  std::FILE* banner = args.json ? stderr : stdout;
  std::fprintf(banner, "Tracing cache lines of process %u for %u s: %s... Hit Ctrl-C to end.\n", args.pid,
               args.duration_s, status.path.c_str());
  std::fflush(banner);
  if (!status.watchpoints && !status.memory_sampling) {
    std::fprintf(stderr, "syncscope trace falseshare: neither hardware watchpoints nor memory sampling work here\n");
    return kExitFailure;
  }

  auto started = std::chrono::steady_clock::now();
  bool target_exited = false;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (signalled(signals)) break;
    if (args.duration_s && std::chrono::steady_clock::now() - started >= std::chrono::seconds(args.duration_s)) break;
    if ((*collector)->target_exited()) {
      target_exited = true;
      break;
    }
  }
  double duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::vector<collectors::LineReport> lines = (*collector)->report(args.top, args.all);
  std::vector<collectors::SampledLineReport> sampled = (*collector)->sampled_report(args.top);
  std::vector<collectors::AtomicReport> atomics = (*collector)->atomic_report(args.top);
  status = (*collector)->status();
  collector->reset();  // every watchpoint and probe detached before printing

  collectors::FalseshareInfo info;
  info.pid = args.pid;
  info.duration_s = duration;
  info.path = status.path;
  info.pmu_available = features.pmu;
  info.window_ms = args.window_ms;
  info.duty_cycle = args.duty_cycle;
  info.watched_fraction = status.watched_fraction;
  info.windows = status.windows;
  info.threads_busy = status.threads_busy;
  info.events_lost = status.events_lost;
  info.target_exited = target_exited;
  if (args.json) {
    std::printf("%s\n", collectors::falseshare_json(lines, sampled, atomics, info).dump().c_str());
  } else {
    if (target_exited) std::printf("process %u exited after %.1f s\n", args.pid, duration);
    std::printf("%s", collectors::render_falseshare_table(lines, sampled, atomics, info).c_str());
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

void register_trace_falseshare(CLI::App* trace, int& exit_code) {
  auto args = std::make_shared<TraceFalseshareArgs>();
  CLI::App* cmd =
      trace->add_subcommand("falseshare", "False sharing: cache lines several threads write (like perf c2c)");
  cmd->add_option("-p,--pid", args->pid, "the process to examine")->required();
  cmd->add_option("-d,--duration", args->duration_s, "stop after SECONDS (default 10; 0: until Ctrl-C)");
  cmd->add_option("--watch", args->watch, "only these globals (symbol names; repeatable)");
  cmd->add_flag("--json", args->json, "print one JSON object: {\"lines\":[…]}");
  cmd->add_flag("--all", args->all, "also list lines that were watched and found unshared");
  cmd->add_option("--window-ms", args->window_ms, "one watchpoint window (default 20)")->check(CLI::Range(1, 10000));
  cmd->add_option("--duty-cycle", args->duty_cycle, "fraction of the time the process may be watched (default 0.05)");
  cmd->add_option("--top", args->top, "print at most N lines (default 20)")->check(CLI::PositiveNumber);
  cmd->add_option("--pmu", args->pmu, "memory sampling with the PMU: auto, on, off (default auto)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--recheck", args->recheck_s, "watch a judged line again after SECONDS (default: never)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("-v,--verbose", args->verbose, "log what is watched, window by window (stderr)");
  cmd->callback([args, &exit_code] { exit_code = run_trace_falseshare(*args); });
}

}  // namespace syncscope::cli
