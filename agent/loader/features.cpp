#include "agent/loader/features.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/hw_breakpoint.h>
#include <linux/perf_event.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/core/fd.h"
#include "agent/core/log.h"
#include "agent/core/result.h"
#include "bpf/features.skel.h"

namespace syncscope::loader {
namespace {

using FeaturesSkeleton = CHandle<features_bpf, features_bpf__destroy>;

bool file_exists(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0;
}

int perf_event_open(perf_event_attr* attr, pid_t pid, int cpu) {
  return static_cast<int>(::syscall(SYS_perf_event_open, attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC));
}

// Loads features.bpf.o with only `program` enabled (and attaches it when asked).
// Returns "" on success, else the reason.
std::string try_program(const char* program, bool attach, bool needs_task_storage = false) {
  FeaturesSkeleton skel(features_bpf__open());
  if (!skel) return fmt::format("open: {}", std::strerror(errno));
  bpf_program* chosen = nullptr;
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel->obj) {
    bool on = std::string_view(bpf_program__name(prog)) == program;
    bpf_program__set_autoload(prog, on);
    if (on) chosen = prog;
  }
  if (!chosen) return "no such probe program";
  if (!needs_task_storage) bpf_map__set_autocreate(skel->maps.probe_task_storage, false);
  if (int err = features_bpf__load(skel.get()); err)
    return fmt::format("the kernel refused to load it: {}", std::strerror(-err));
  if (attach) {
    bpf_link* link = bpf_program__attach(chosen);
    if (!link) return fmt::format("loaded but cannot attach: {}", std::strerror(errno));
    bpf_link__destroy(link);
  }
  return "";
}

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

uint64_t effective_capabilities() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("CapEff:")) return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  (void)level;
  // Verifier logs arrive as one long message: keep enough of it to debug.
  static thread_local std::vector<char> buffer(64 * 1024);
  int n = std::vsnprintf(buffer.data(), buffer.size(), format, args);
  std::string_view text(buffer.data(), n > 0 ? std::min<size_t>(static_cast<size_t>(n), buffer.size() - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  // libbpf's warnings during probing are expected failures; keep them at debug
  // level and let callers report what failed in their own words.
  if (log::min_level() >= log::Level::debug) log::debug("libbpf: {}", text);
  return n;
}

}  // namespace

void install_libbpf_logging() { libbpf_set_print(libbpf_print); }

const FeatureCheck* Features::find(std::string_view name) const {
  for (const FeatureCheck& check : checks)
    if (check.name == name) return &check;
  return nullptr;
}

std::string ensure_tracefs() {
  if (file_exists("/sys/kernel/tracing/events")) return "tracefs mounted at /sys/kernel/tracing";
  if (::mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0)
    return "mounted tracefs at /sys/kernel/tracing";
  if (file_exists("/sys/kernel/debug/tracing/events")) return "tracefs found at /sys/kernel/debug/tracing";
  return fmt::format("tracefs is not mounted and mounting it failed: {}", std::strerror(errno));
}

Features probe_features() {
  Features f;
  utsname uts{};
  if (::uname(&uts) == 0) f.kernel_release = uts.release;
  auto record = [&f](std::string name, bool available, std::string detail) {
    f.checks.push_back(FeatureCheck{std::move(name), available, std::move(detail)});
    return available;
  };

  // Capabilities first: most other answers depend on them.
  uint64_t caps = effective_capabilities();
  struct Capability {
    int bit;
    const char* name;
    const char* why;
  };
  static constexpr Capability kNeeded[] = {
      {39, "CAP_BPF", "load BPF programs and create maps"},
      {38, "CAP_PERFMON", "attach tracing programs, uprobes and perf events"},
      {19, "CAP_SYS_PTRACE", "read other processes' memory (Go goroutines) and /proc/PID/maps of other users"},
      {2, "CAP_DAC_READ_SEARCH", "open other users' executables to resolve symbols for uprobes"},
  };
  std::string cap_detail;
  for (const Capability& cap : kNeeded) {
    if (!(caps & (1ULL << cap.bit))) {
      f.missing_capabilities.push_back(cap.name);
      cap_detail += fmt::format("{}missing {} (needed to {})", cap_detail.empty() ? "" : "; ", cap.name, cap.why);
    }
  }
  record("capabilities", f.missing_capabilities.empty(),
         f.missing_capabilities.empty() ? "CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH held" : cap_detail);

  f.btf = file_exists("/sys/kernel/btf/vmlinux");
  record("btf", f.btf, f.btf ? "/sys/kernel/btf/vmlinux" : "no /sys/kernel/btf/vmlinux: CO-RE programs cannot load");

  std::string tracefs = ensure_tracefs();
  f.tracefs = file_exists("/sys/kernel/tracing/events") || file_exists("/sys/kernel/debug/tracing/events");
  record("tracefs", f.tracefs, tracefs);

  int ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr);
  f.ringbuf = ringbuf == 1;
  record("ringbuf", f.ringbuf, f.ringbuf ? "BPF_MAP_TYPE_RINGBUF" : "no BPF ring buffer (needs 5.8)");

  std::string why = try_program("probe_tp_btf", true);
  f.tp_btf = record("tp_btf", why.empty(), why.empty() ? "typed tracepoints load and attach" : why);
  why = try_program("probe_raw_tp", true);
  f.raw_tp = record("raw_tp", why.empty(), why.empty() ? "raw tracepoints load and attach" : why);
  why = f.tp_btf ? try_program("probe_task_storage_prog", false, true) : "needs tp_btf";
  f.task_storage = record("task_storage", why.empty(), why.empty() ? "task local storage from tracing programs" : why);
  why = try_program("probe_fentry", true);
  f.fentry = record("fentry", why.empty(), why.empty() ? "fentry/fexit trampolines" : why);
  f.kprobes = file_exists("/sys/bus/event_source/devices/kprobe/type");
  if (f.kprobes) {
    why = try_program("probe_kprobe", true);
    f.kprobes = why.empty();
  } else {
    why = "no kprobe PMU in /sys/bus/event_source/devices (kernel built without CONFIG_KPROBES)";
  }
  record("kprobes", f.kprobes, f.kprobes ? "kprobes attach" : why);
  f.uprobes = file_exists("/sys/bus/event_source/devices/uprobe/type");
  record("uprobes", f.uprobes, f.uprobes ? "uprobe PMU present" : "no uprobe PMU (CONFIG_UPROBES off)");
  why = try_program("probe_perf_event", false);
  f.perf_event_programs = record("perf_event_programs", why.empty(), why.empty() ? "BPF_PROG_TYPE_PERF_EVENT loads" : why);

  {
    perf_event_attr attr{};
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = PERF_COUNT_HW_CACHE_MISSES;
    attr.exclude_kernel = 1;
    attr.disabled = 1;
    Fd fd(perf_event_open(&attr, 0, -1));
    f.pmu = fd.valid();
    record("pmu", f.pmu,
           f.pmu ? "hardware cache-miss counter opens"
                 : fmt::format("no hardware PMU (perf_event_open cache-misses: {}): cache counters and "
                               "address sampling are off; false sharing uses hardware watchpoints",
                               std::strerror(errno)));
  }
  {
    static volatile uint64_t watched = 0;
    perf_event_attr attr{};
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_BREAKPOINT;
    attr.bp_type = HW_BREAKPOINT_W;
    attr.bp_addr = reinterpret_cast<uint64_t>(&watched);
    attr.bp_len = HW_BREAKPOINT_LEN_8;
    attr.sample_period = 1;
    attr.disabled = 1;
    Fd fd(perf_event_open(&attr, 0, -1));
    f.hw_breakpoints = fd.valid();
    record("hw_breakpoints", f.hw_breakpoints,
           f.hw_breakpoints ? "hardware watchpoints open (4 per thread on x86)"
                            : fmt::format("perf_event_open(PERF_TYPE_BREAKPOINT): {}", std::strerror(errno)));
  }
  {
    // Which false-sharing path the cachelines collector can take, in words.
    bool programs = f.perf_event_programs;
    std::string detail =
        !programs ? "perf_event programs do not load: no false-sharing detection"
        : f.pmu && f.hw_breakpoints
            ? "hardware PMU: memory-access sampling finds lines, hardware watchpoints confirm them; per-cgroup "
              "cache counters on"
        : f.pmu ? "hardware PMU: memory-access sampling only (no hardware watchpoints to confirm with)"
        : f.hw_breakpoints
            ? "no hardware PMU: false sharing found with hardware watchpoints alone (candidates: contended locks, "
              "atomics, globals); cache counters off"
            : "neither a hardware PMU nor hardware watchpoints: no false-sharing detection";
    record("cacheline_path", programs && (f.pmu || f.hw_breakpoints), detail);
  }
  {
    Fd fd(bpf_enable_stats(BPF_STATS_RUN_TIME));
    f.bpf_stats = fd.valid();
    record("bpf_stats", f.bpf_stats,
           f.bpf_stats ? "BPF_ENABLE_STATS works"
                       : fmt::format("BPF_ENABLE_STATS: {} (needs CAP_SYS_ADMIN; kernel.bpf_stats_enabled={})",
                                     std::strerror(errno), read_first_line("/proc/sys/kernel/bpf_stats_enabled")));
  }
  why = try_program("probe_runqueues_ksym", false);
  f.runqueues_ksym = record("runqueues_ksym", why.empty(),
                            why.empty() ? "per-CPU runqueues resolves: rq->nr_running through bpf_this_cpu_ptr"
                                        : fmt::format("{} (its address is not in kallsyms without "
                                                      "CONFIG_KALLSYMS_ALL): rq found through the running task instead",
                                                      why));
  {
    btf* vmlinux = btf__load_vmlinux_btf();
    int cfs_rq = vmlinux ? btf__find_by_name_kind(vmlinux, "cfs_rq", BTF_KIND_STRUCT) : -1;
    bool has_rq = false;
    if (cfs_rq > 0) {
      const btf_type* type = btf__type_by_id(vmlinux, static_cast<uint32_t>(cfs_rq));
      const btf_member* member = btf_members(type);
      for (uint16_t i = 0; i < btf_vlen(type); ++i, ++member)
        if (std::string_view(btf__name_by_offset(vmlinux, member->name_off)) == "rq") has_rq = true;
    }
    btf__free(vmlinux);
    f.cfs_rq_has_rq = record("cfs_rq_rq", has_rq,
                             has_rq ? "cfs_rq::rq present (CONFIG_FAIR_GROUP_SCHED): rq reachable from any task"
                                    : "cfs_rq::rq absent (no CONFIG_FAIR_GROUP_SCHED)");
  }
  return f;
}

nlohmann::json Features::to_json() const {
  nlohmann::json checks_json = nlohmann::json::array();
  for (const FeatureCheck& check : checks)
    checks_json.push_back({{"name", check.name}, {"available", check.available}, {"detail", check.detail}});
  return {{"kernel", kernel_release}, {"checks", checks_json}, {"missing_capabilities", missing_capabilities}};
}

std::string Features::to_text() const {
  std::string out = fmt::format("kernel {}\n", kernel_release);
  for (const FeatureCheck& check : checks)
    out += fmt::format("  {:<20} {:<4} {}\n", check.name, check.available ? "yes" : "no", check.detail);
  return out;
}

}  // namespace syncscope::loader
