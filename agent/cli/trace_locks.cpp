// `syncscope trace locks`: which user-space locks are contended, for how
// long, and from where — a table like `perf lock contention` (or JSON), from
// the same locks collector the agent runs, for one process (-p) or all.
#include <signal.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/collectors/locks.h"
#include "agent/core/log.h"
#include "agent/loader/features.h"

namespace syncscope::cli {
namespace {

struct TraceLocksArgs {
  std::optional<uint32_t> pid;
  uint32_t duration_s = 0;  // 0: until Ctrl-C (or the -p target exits)
  size_t top = 20;
  bool stacks = false;
  bool json = false;
  bool all = false;  // condvar/semaphore/join waits and non-lock futex sleeps too
  bool wake_uprobes = false;
};

bool signalled(const sigset_t& signals) {
  timespec zero{};
  return ::sigtimedwait(&signals, nullptr, &zero) > 0;
}

bool process_exists(uint32_t pid) { return ::access(fmt::format("/proc/{}/stat", pid).c_str(), F_OK) == 0; }

int run_trace_locks(const TraceLocksArgs& args) {
  if (args.pid && !process_exists(*args.pid)) {
    std::fprintf(stderr, "syncscope trace locks: process %u does not exist\n", *args.pid);
    return kExitUsage;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The banner says what attached; per-library info lines are agent-log noise here.
  log::set_min_level(log::Level::warning);
  loader::install_libbpf_logging();
  loader::Features features = loader::probe_features();
  auto cgroups = probes::CgroupResolver::for_this_host();
  if (!cgroups) {
    std::fprintf(stderr, "syncscope trace locks: %s\n", cgroups.error().message().c_str());
    return kExitFailure;
  }
  collectors::LocksOptions options;
  options.pid = args.pid;
  options.stacks = true;  // the caller column comes from the waiter stacks
  options.keep_non_contention = args.all;
  options.wake_uprobes = args.wake_uprobes;
  // Go holder stacks cost a trap per contended Unlock: only when printed.
  options.go_holder_stacks = args.stacks || args.json;
  options.keep_exited = true;
  options.symbolize_eagerly = true;
  options.lazy_wakeup = false;
  options.max_cgroups = UINT32_MAX;
  auto collector = collectors::LocksCollector::start(options, features, **cgroups, nullptr, nullptr);
  if (!collector) {
    std::fprintf(stderr, "syncscope trace locks: %s\n", collector.error().message().c_str());
    if (!features.missing_capabilities.empty())
      std::fprintf(stderr, "  %s\n", features.find("capabilities")->detail.c_str());
    return kExitFailure;
  }
  // The banner also tells scripts the probes are attached: on stderr in
  // JSON mode so stdout stays one JSON object.
  std::FILE* banner = args.json ? stderr : stdout;
  std::fprintf(banner, "Tracing lock contention (%s)... Hit Ctrl-C to end.\n", (*collector)->sources().c_str());
  std::fflush(banner);

  auto started = std::chrono::steady_clock::now();
  auto next_refresh = started + std::chrono::seconds(1);
  bool target_exited = false;
  for (;;) {
    (*collector)->poll(std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    if (signalled(signals)) break;
    if (args.duration_s && now - started >= std::chrono::seconds(args.duration_s)) break;
    // The kernel reports the target's exit; /proc is the fallback.
    if (args.pid && ((*collector)->target_exited() || !process_exists(*args.pid))) {
      target_exited = true;
      break;
    }
    if (now >= next_refresh) {
      (*collector)->refresh(now);
      next_refresh = now + std::chrono::seconds(1);
    }
  }
  double duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::vector<collectors::LockReport> locks = (*collector)->report(args.top);

  collectors::TraceInfo info;
  info.duration_s = duration;
  info.pid = args.pid;
  info.target_exited = target_exited;
  info.events_lost = (*collector)->events_lost();
  info.waits_not_slept = (*collector)->futex_skipped()[LOCK_SKIP_VALUE_CHANGED];
  info.sources = (*collector)->sources();
  if (args.json) {
    std::printf("%s\n", collectors::lock_report_json(locks, info).dump().c_str());
  } else {
    if (target_exited) std::printf("process %u exited after %.1f s\n", *args.pid, duration);
    std::printf("%s", collectors::render_lock_table(locks, args.stacks).c_str());
    if (locks.empty()) std::printf("(no contended locks)\n");
    if (info.events_lost)
      std::printf("warning: %llu events lost (ring buffer full)\n", static_cast<unsigned long long>(info.events_lost));
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

void register_trace_locks(CLI::App* trace, int& exit_code) {
  auto args = std::make_shared<TraceLocksArgs>();
  CLI::App* locks = trace->add_subcommand("locks", "User-space lock contention (like perf lock contention)");
  locks->add_option("-p,--pid", args->pid, "only this process (the glibc uprobes are attached for it alone)");
  locks->add_option("-d,--duration", args->duration_s, "stop after SECONDS (default: Ctrl-C or the process exits)");
  locks->add_option("--top", args->top, "print the N locks with the most wait (default 20)")->check(CLI::PositiveNumber);
  locks->add_flag("--stacks", args->stacks, "print waiter and holder stacks under each lock");
  locks->add_flag("--json", args->json, "print one JSON object: {\"locks\":[…]}");
  locks->add_flag("--all", args->all, "also condvar, semaphore and join waits and futex sleeps that are not locks");
  locks->add_flag("--wake-uprobes", args->wake_uprobes,
                  "also trap glibc's __lll_lock_wake (classifies each wake; adds a trap to every contended hand-off)");
  locks->callback([args, &exit_code] { exit_code = run_trace_locks(*args); });
}

}  // namespace syncscope::cli
