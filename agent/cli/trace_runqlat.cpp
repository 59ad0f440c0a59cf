// `syncscope trace runqlat`: run-queue latency as a histogram on the terminal,
// printed the way libbpf-tools runqlat prints it (same flags where they
// exist), from the same sched collector the agent runs.
#include <signal.h>
#include <time.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/cli/histogram_print.h"
#include "agent/collectors/sched.h"
#include "agent/core/log.h"
#include "agent/loader/features.h"

namespace syncscope::cli {
namespace {

using collectors::CgroupSchedStats;
using collectors::RunqHistogram;

RunqHistogram difference(const RunqHistogram& now, const RunqHistogram& before) {
  RunqHistogram d;
  for (size_t i = 0; i < d.slots.size(); ++i) d.slots[i] = now.slots[i] - std::min(now.slots[i], before.slots[i]);
  d.sum_ns = now.sum_ns - std::min(now.sum_ns, before.sum_ns);
  return d;
}

nlohmann::json histogram_json(const std::vector<Log2Row>& rows, const RunqHistogram& h, uint64_t unit_ns) {
  nlohmann::json buckets = nlohmann::json::array();
  for (const Log2Row& row : rows) {
    nlohmann::json bucket = {{"low", row.low}, {"count", row.count}};
    bucket["high"] = row.high_is_infinite ? nlohmann::json(nullptr) : nlohmann::json(row.high);
    buckets.push_back(std::move(bucket));
  }
  return {{"total", h.count()}, {"sum", static_cast<double>(h.sum_ns) / static_cast<double>(unit_ns)},
          {"buckets", std::move(buckets)}};
}

// Waits up to `timeout` for SIGINT/SIGTERM; true when one arrived.
bool interrupted_within(std::chrono::milliseconds timeout, const sigset_t& signals) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000), static_cast<long>((timeout.count() % 1000) * 1'000'000)};
  return ::sigtimedwait(&signals, nullptr, &ts) > 0;
}

}  // namespace

int run_trace_runqlat(const RunqlatArgs& args) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  loader::install_libbpf_logging();
  loader::Features features = loader::probe_features();
  auto cgroups = probes::CgroupResolver::for_this_host();
  if (!cgroups) {
    std::fprintf(stderr, "syncscope trace runqlat: %s\n", cgroups.error().message().c_str());
    return kExitFailure;
  }
  collectors::SchedOptions options;
  options.filter_tgid = args.pid;
  options.filter_cgroup = args.cgroup;
  options.runq_length = false;
  options.max_cgroups = UINT32_MAX;
  options.hist_unit_ns = args.milliseconds ? 1'000'000 : 1'000;
  options.hist_min_shift = 0;
  auto collector = collectors::SchedCollector::start(options, features, **cgroups, nullptr, nullptr);
  if (!collector) {
    std::fprintf(stderr, "syncscope trace runqlat: %s\n", collector.error().message().c_str());
    if (!features.missing_capabilities.empty())
      std::fprintf(stderr, "  %s\n", features.find("capabilities")->detail.c_str());
    return kExitFailure;
  }
  const char* unit = args.milliseconds ? "msecs" : "usecs";
  // The banner also tells scripts that the programs are attached: on stderr
  // in JSON mode so stdout stays one object per line.
  std::fprintf(args.json ? stderr : stdout, "Tracing run queue latency... Hit Ctrl-C to end.\n");
  std::fflush(args.json ? stderr : stdout);

  std::map<uint64_t, CgroupSchedStats> before = (*collector)->read_cgroups();
  auto started = std::chrono::steady_clock::now();
  uint32_t printed = 0;
  bool done = false;
  while (!done) {
    std::chrono::milliseconds wait = args.interval_s ? std::chrono::milliseconds(args.interval_s * 1000ULL)
                                                     : std::chrono::milliseconds(99'999'999);
    if (args.duration_s) {
      auto left = started + std::chrono::seconds(args.duration_s) - std::chrono::steady_clock::now();
      wait = std::min(wait, std::max(std::chrono::duration_cast<std::chrono::milliseconds>(left),
                                     std::chrono::milliseconds(0)));
    }
    bool interrupted = interrupted_within(wait, signals);
    bool out_of_time = args.duration_s && std::chrono::steady_clock::now() - started >= std::chrono::seconds(args.duration_s);
    std::map<uint64_t, CgroupSchedStats> now = (*collector)->read_cgroups();

    // Per cgroup path (two ids can share a path when a group was recreated).
    std::map<std::string, RunqHistogram> per_cgroup;
    RunqHistogram total;
    for (const auto& [id, stats] : now) {
      RunqHistogram delta = stats.runq;
      if (auto it = before.find(id); it != before.end()) delta = difference(stats.runq, it->second.runq);
      if (delta.count() == 0) continue;
      total.add(delta);
      if (args.per_cgroup) {
        std::string path = id == SCHED_OTHER_CGROUP_ID ? "other" : (*cgroups)->path_of(id).value_or(fmt::format("id:{}", id));
        per_cgroup[path].add(delta);
      }
    }
    before = std::move(now);

    if (args.json) {
      nlohmann::json out = histogram_json(log2_rows(total.slots, 0), total, options.hist_unit_ns);
      out["unit"] = unit;
      out["timestamp"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
      if (args.per_cgroup) {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& [path, h] : per_cgroup) {
          nlohmann::json entry = histogram_json(log2_rows(h.slots, 0), h, options.hist_unit_ns);
          entry["cgroup"] = path;
          list.push_back(std::move(entry));
        }
        out["cgroups"] = std::move(list);
      }
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("\n");
      if (args.timestamps) {
        std::time_t t = std::time(nullptr);
        char stamp[16];
        std::strftime(stamp, sizeof stamp, "%H:%M:%S", std::localtime(&t));
        std::printf("%-8s\n", stamp);
      }
      auto print_one = [&](const RunqHistogram& h) {
        std::printf("%s", args.fine ? render_fine_histogram(h.slots, 0, unit).c_str()
                                    : render_log2_histogram(log2_rows(h.slots, 0), unit).c_str());
        if (h.count()) std::printf("     total %llu, average %.1f %s\n", static_cast<unsigned long long>(h.count()),
                                   static_cast<double>(h.sum_ns) / static_cast<double>(options.hist_unit_ns) /
                                       static_cast<double>(h.count()),
                                   unit);
      };
      if (args.per_cgroup) {
        for (const auto& [path, h] : per_cgroup) {
          std::printf("\ncgroup = %s\n", path.c_str());
          print_one(h);
        }
      } else {
        print_one(total);
      }
    }
    std::fflush(stdout);
    ++printed;
    done = interrupted || out_of_time || !args.interval_s || (args.count && printed >= args.count);
  }
  return kExitOk;
}

}  // namespace syncscope::cli
