#!/usr/bin/python3
"""Scheduler benchmarks (issue 2): what the run-queue collector costs, as
ratios against libbpf-tools `runqlat` measured on the same workload in the
same run.

  1. BPF cost per scheduler event: run_time_ns / run_cnt (bpf_stats, read
     with `bpftool prog show -j`) of our sched_wakeup(_new) and sched_switch
     programs vs runqlat's, per kind of event and over all of them. Target
     <= 0.7x runqlat's cost per event, while we also label every event by
     cgroup and count voluntary/involuntary switches. The workload is
     wakeup-heavy: SLEEPERS tests/workloads/sleeper processes (one nanosleep
     of SLEEP_US per wakeup, run until killed) beside one cpu_hog thread they
     preempt. Rounds alternate agent alone / runqlat alone / both at once:
     "alone" is each tool's own cost with the other's cache footprint out of
     the way; "together" sees exactly the same events. Medians are printed.
  2. Events per second our programs handled during the "alone" phases, and
     the agent's own CPU while they did (user space reading the maps).
  3. Agent RSS and idle CPU (% of one core over IDLE_SECONDS, from its
     threads' /proc/PID/task/*/schedstat, /proc/PID/stat without it) with
     the sched collector on and the others off, and with the embedded
     default config (every collector on); the anchor is `runqlat 1`
     (per-second reports, as an operator would run it) measured the same
     way in the same run. Issue 2 states no number for these.
  4. Sanity: in the "together" phases both tools must see the same events;
     their run counts per second are printed side by side.

The agent runs with bpf_stats on; this script also holds its own
BPF_ENABLE_STATS fd so both tools are timed for the whole run whoever else
toggles kernel.bpf_stats_enabled. Program ids come from /proc/PID/fdinfo of
each tool, so other BPF users on the machine are never counted. runqlat
block-buffers stdout into a pipe: it writes to /dev/null and readiness is
read from the kernel (its programs exist), never from its output.

No assertions on time: the shared build machines are noisy. Runnable alone
(`python3 tests/bench/sched.py [--json]`, as root, after `make all
workloads`), or through tests/bench/run.py, which calls run().
SCHED_BENCH_ROUNDS, SCHED_BENCH_PHASE_S and SCHED_BENCH_IDLE_S tune it.
"""

import ctypes
import json
import os
import pathlib
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import common
from common import BUILD, SYNCSCOPE, Agent, cpu_seconds, stop_process

SLEEPER = BUILD / "workloads" / "sleeper"
CPU_HOG = BUILD / "workloads" / "cpu_hog"

ROUNDS = int(os.environ.get("SCHED_BENCH_ROUNDS", "3"))
PHASE_SECONDS = float(os.environ.get("SCHED_BENCH_PHASE_S", "5"))
IDLE_SECONDS = float(os.environ.get("SCHED_BENCH_IDLE_S", "10"))
SETTLE_SECONDS = 1.0  # after attaching, before measuring: start-up work is not steady state
SLEEPERS = 4
SLEEP_US = 100
TARGET_COST_RATIO = 0.7
KINDS = ("wakeup", "switch")
PHASES = ("alone", "together", "together_agent_first", "together_runqlat_first")

# bpf(2): BPF_ENABLE_STATS (cmd 32) with BPF_STATS_RUN_TIME (0) returns an fd
# that keeps run-time accounting on until it is closed (kernel 5.8).
BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0


def runqlat_path():
    return shutil.which("runqlat") or next(
        (p for p in ("/usr/sbin/runqlat", "/usr/share/libbpf-tools/runqlat") if os.access(p, os.X_OK)), None)


class RunTimeStats:
    """Holds run-time accounting on for the benchmark's lifetime: a
    BPF_ENABLE_STATS fd, or (older kernels) the sysctl, restored afterwards."""

    def __init__(self):
        self.fd = -1
        self.restore = None
        if BPF_SYSCALL is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            attr = (ctypes.c_uint32 * 4)(BPF_STATS_RUN_TIME, 0, 0, 0)
            self.fd = libc.syscall(BPF_SYSCALL, BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr))
        if self.fd < 0:
            sysctl = pathlib.Path("/proc/sys/kernel/bpf_stats_enabled")
            self.restore = sysctl.read_text().strip()
            sysctl.write_text("1\n")
        self.how = "BPF_ENABLE_STATS" if self.fd >= 0 else "kernel.bpf_stats_enabled=1"

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
        elif self.restore is not None:
            pathlib.Path("/proc/sys/kernel/bpf_stats_enabled").write_text(self.restore + "\n")


def held_programs(pid):
    """{prog_id: tracepoint name or None} for the BPF programs process `pid`
    holds: prog fds carry prog_id, link fds carry prog_id and (raw
    tracepoint links, which tp_btf attachments are too) tp_name."""
    programs = {}
    try:
        entries = list(pathlib.Path(f"/proc/{pid}/fdinfo").iterdir())
    except OSError:
        return programs
    for entry in entries:
        try:
            fields = dict(line.split(":\t", 1) for line in entry.read_text().splitlines() if ":\t" in line)
        except OSError:  # the fd closed while we looked
            continue
        if "prog_id" not in fields:
            continue
        prog_id = int(fields["prog_id"])
        tp_name = fields.get("tp_name", "").strip() or None
        if tp_name or prog_id not in programs:
            programs[prog_id] = tp_name
    return programs


def kind_of(name, tp_name):
    """wakeup (sched_wakeup, sched_wakeup_new), switch, or None for programs
    that are not per-scheduler-event (our run-queue length sampler)."""
    text = tp_name or name
    if "sched_switch" in text:
        return "switch"
    if "sched_wakeup" in text:
        return "wakeup"
    return None


def bpftool_programs():
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True).stdout
    return {p["id"]: p for p in json.loads(out)}


def snapshot(pid):
    """{kind: (run_time_ns, run_cnt)} summed over the scheduler programs of `pid`."""
    held = held_programs(pid)
    shown = bpftool_programs()
    totals = {k: [0, 0] for k in KINDS}
    for prog_id, tp_name in held.items():
        p = shown.get(prog_id)
        if p is None:
            continue
        kind = kind_of(p.get("name", ""), tp_name)
        if kind:
            totals[kind][0] += p.get("run_time_ns", 0)
            totals[kind][1] += p.get("run_cnt", 0)
    return {k: tuple(v) for k, v in totals.items()}


def sched_programs_attached(pid):
    held = held_programs(pid)
    if not held:
        return False
    shown = bpftool_programs()
    kinds = {kind_of(shown[i].get("name", ""), tp) for i, tp in held.items() if i in shown}
    # Attached, not just loaded: a link fd names the tracepoint.
    return set(KINDS) <= kinds and sum(1 for tp in held.values() if tp) >= 3


def wait_for_sched_programs(process, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited (status {process.returncode}) before attaching")
        if sched_programs_attached(process.pid):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not attach its scheduler programs within {timeout} s")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sched_agent(workdir, default_config=False):
    """The agent with only the sched collector (bpf_stats on), or on the
    embedded default config, moved off the default port only; ready once its
    scheduler programs are attached and /healthz answers."""
    config = None if default_config else ("bpf_stats: true\nsched: { enabled: true }\nlocks: { enabled: false }\n"
                                          "golang: { enabled: false }\ncachelines: { enabled: false }\n")
    return Agent(workdir, config, "agent-default" if default_config else "agent",
                 ready=lambda agent: sched_programs_attached(agent.pid) and agent.healthy(), timeout=30)


class Runqlat:
    def __init__(self, interval_s=1):
        # stdout to /dev/null: runqlat block-buffers into a pipe, and its
        # histograms are not what is measured here.
        self.process = subprocess.Popen([runqlat_path(), str(interval_s)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.pid = self.process.pid
        try:
            wait_for_sched_programs(self.process, "runqlat")
        except Exception:
            self.stop()
            raise

    def stop(self):
        stop_process(self.process, signal.SIGINT)


class Workload:
    """SLEEPERS sleepers waking every SLEEP_US, one CPU hog they preempt."""

    def __init__(self):
        self.processes = []
        try:
            hog = subprocess.Popen([str(CPU_HOG), "1"], stdout=subprocess.PIPE, text=True)
            self.processes.append(hog)
            hog.stdout.readline()
            for _ in range(SLEEPERS):
                s = subprocess.Popen([str(SLEEPER), str(10**12), str(SLEEP_US)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
                self.processes.append(s)
                if not s.stdout.readline().startswith("ready"):
                    raise RuntimeError("sleeper did not start")
                s.stdin.write("go\n")
                s.stdin.flush()
        except Exception:
            self.stop()
            raise

    def stop(self):
        for p in self.processes:
            if p.poll() is None:
                p.kill()
            p.wait()


def measure(tools, seconds):
    """{tool name: {kind: {ns_per_event, events_per_s}}, "cpu_percent"} over `seconds`."""
    time.sleep(SETTLE_SECONDS)
    before = {name: snapshot(t.pid) for name, t in tools.items()}
    cpu_before = {name: cpu_seconds(t.pid) for name, t in tools.items()}
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    after = {name: snapshot(t.pid) for name, t in tools.items()}
    result = {}
    for name in tools:
        per_kind = {}
        total_ns = total_cnt = 0
        for kind in KINDS:
            ns = after[name][kind][0] - before[name][kind][0]
            cnt = after[name][kind][1] - before[name][kind][1]
            total_ns += ns
            total_cnt += cnt
            per_kind[kind] = {"ns_per_event": ns / cnt if cnt else float("nan"), "events_per_s": cnt / elapsed}
        per_kind["all"] = {"ns_per_event": total_ns / total_cnt if total_cnt else float("nan"),
                           "events_per_s": total_cnt / elapsed}
        per_kind["cpu_percent"] = 100.0 * (cpu_seconds(tools[name].pid) - cpu_before[name]) / elapsed
        result[name] = per_kind
    return result


def measure_phase(start_tool, name):
    tool = start_tool()
    try:
        return measure({name: tool}, PHASE_SECONDS)[name]
    finally:
        tool.stop()


def measure_together(starters, first, second):
    tools = {}
    try:
        tools[first] = starters[first]()
        tools[second] = starters[second]()
        return measure(tools, PHASE_SECONDS)
    finally:
        for tool in reversed(list(tools.values())):
            tool.stop()


def idle_footprint(make_tool):
    """RSS (KiB) and CPU (% of one core) of a tool over IDLE_SECONDS with no workload of ours."""
    tool = make_tool()
    try:
        time.sleep(2.0)  # start-up (feature probing, first refresh) is not idle
        cpu0, t0 = cpu_seconds(tool.pid), time.monotonic()
        time.sleep(IDLE_SECONDS)
        cpu = 100.0 * (cpu_seconds(tool.pid) - cpu0) / (time.monotonic() - t0)
        return {"rss_kib": rss_kib(tool.pid), "cpu_percent": cpu}
    finally:
        tool.stop()


def median_of(samples, path):
    values = [s for s in (sample_get(x, path) for x in samples) if s == s]  # drop NaN
    return statistics.median(values) if values else float("nan")


def sample_get(sample, path):
    for key in path:
        sample = sample[key]
    return sample


def run():
    """Returns {"cost": {...}, "events_per_s": ..., "footprint": {...}, "ratios": {...}, "targets": {...}}."""
    if os.geteuid() != 0:
        raise RuntimeError("the sched benchmark loads BPF programs and enables bpf_stats: run it as root")
    for path in (SYNCSCOPE, SLEEPER, CPU_HOG):
        if not path.exists():
            raise RuntimeError(f"{path} is missing: run `make all workloads` first")
    if runqlat_path() is None:
        raise RuntimeError("libbpf-tools runqlat is missing: `make deps` installs it (Debian package libbpf-tools)")
    if shutil.which("bpftool") is None:
        raise RuntimeError("bpftool is missing: `make deps` installs it")

    stats = RunTimeStats()
    alone = {"agent": [], "runqlat": []}
    together = {"agent_first": [], "runqlat_first": []}
    try:
        with tempfile.TemporaryDirectory(prefix="syncscope-sched-bench-") as tmp:
            workdir = pathlib.Path(tmp)
            starters = {"agent": lambda: sched_agent(workdir), "runqlat": Runqlat}
            workload = Workload()
            try:
                for round_ in range(ROUNDS):
                    # Alternate which tool goes first, so a drift in the
                    # machine's load does not favour one of them.
                    order = ("agent", "runqlat") if round_ % 2 == 0 else ("runqlat", "agent")
                    for name in order:
                        alone[name].append(measure_phase(starters[name], name))
                    # Programs on one tracepoint run in attach order, and the
                    # first pays the cache misses on the task_structs for both:
                    # measure both orders.
                    for first, second in (order, order[::-1]):
                        together[f"{first}_first"].append(measure_together(starters, first, second))
                    print(f"  sched: round {round_ + 1}/{ROUNDS} done", file=sys.stderr)
            finally:
                workload.stop()
            footprint = {
                "agent_sched_only": idle_footprint(lambda: sched_agent(workdir)),
                "agent_default_config": idle_footprint(lambda: sched_agent(workdir, default_config=True)),
                "runqlat": idle_footprint(lambda: Runqlat(1)),
            }
            print("  sched: idle footprint done", file=sys.stderr)
    finally:
        stats.close()

    pooled = together["agent_first"] + together["runqlat_first"]
    cost = {phase: {} for phase in PHASES}
    for kind in (*KINDS, "all"):
        cost["alone"][kind] = {tool: median_of(alone[tool], (kind, "ns_per_event")) for tool in alone}
        cost["together"][kind] = {tool: median_of(pooled, (tool, kind, "ns_per_event")) for tool in alone}
        for first in ("agent", "runqlat"):
            cost[f"together_{first}_first"][kind] = {
                tool: median_of(together[f"{first}_first"], (tool, kind, "ns_per_event")) for tool in alone}
    events = {kind: median_of(alone["agent"], (kind, "events_per_s")) for kind in (*KINDS, "all")}
    events_together = {tool: {kind: median_of(pooled, (tool, kind, "events_per_s")) for kind in (*KINDS, "all")}
                       for tool in alone}
    agent_cpu_under_load = median_of(alone["agent"], ("cpu_percent",))
    runqlat_cpu_under_load = median_of(alone["runqlat"], ("cpu_percent",))

    ratios, targets = {}, {}
    for phase in PHASES:
        for kind in (*KINDS, "all"):
            c = cost[phase][kind]
            ratios[f"bpf_ns_per_{kind}_event_{phase}"] = c["agent"] / c["runqlat"]
            targets[f"bpf_ns_per_{kind}_event_{phase}"] = TARGET_COST_RATIO
    anchor_fp = footprint["runqlat"]
    for config in ("agent_sched_only", "agent_default_config"):
        ratios[f"rss_{config}_vs_runqlat"] = footprint[config]["rss_kib"] / max(anchor_fp["rss_kib"], 1)
        ratios[f"idle_cpu_{config}_vs_runqlat"] = (footprint[config]["cpu_percent"] / anchor_fp["cpu_percent"]
                                                   if anchor_fp["cpu_percent"] > 0 else float("inf"))
    return {
        "workload": {"sleepers": SLEEPERS, "sleep_us": SLEEP_US, "cpu_hog_threads": 1,
                     "phase_s": PHASE_SECONDS, "rounds": ROUNDS, "stats": stats.how},
        "cost_ns_per_event": cost,
        "events_per_s": events,
        "events_per_s_together": events_together,
        "cpu_percent_under_load": {"agent": agent_cpu_under_load, "runqlat": runqlat_cpu_under_load},
        "footprint": footprint,
        "ratios": ratios,
        "targets": targets,
        "samples": {"alone": alone, **{f"together_{k}": v for k, v in together.items()}},
    }


def summary(result):
    """Rows for tests/bench/run.py's table: (metric, ours, anchor, ratio, target)."""
    rows = []
    picks = [("alone", kind) for kind in (*KINDS, "all")] + [(phase, "all") for phase in PHASES[1:]]
    for phase, kind in picks:
        c = result["cost_ns_per_event"][phase][kind]
        rows.append((f"BPF ns/{kind} event ({phase.replace('_', ' ')}) vs runqlat", c["agent"], c["runqlat"],
                     result["ratios"][f"bpf_ns_per_{kind}_event_{phase}"], f"<= {TARGET_COST_RATIO}"))
    fp = result["footprint"]
    for config, label in (("agent_sched_only", "sched only"), ("agent_default_config", "default config")):
        rows.append((f"RSS MiB, agent {label} vs runqlat", fp[config]["rss_kib"] / 1024,
                     fp["runqlat"]["rss_kib"] / 1024,
                     result["ratios"][f"rss_{config}_vs_runqlat"], ""))
        rows.append((f"idle CPU %, agent {label} vs runqlat", fp[config]["cpu_percent"],
                     fp["runqlat"]["cpu_percent"], result["ratios"][f"idle_cpu_{config}_vs_runqlat"], ""))
    load = result["cpu_percent_under_load"]
    rows.append(("CPU % under load, agent vs runqlat", load["agent"], load["runqlat"],
                 load["agent"] / load["runqlat"] if load["runqlat"] > 0 else float("inf"), ""))
    rows.append(("sched events/s handled (agent)", result["events_per_s"]["all"], None, None, ""))
    return rows


def report(result):
    w = result["workload"]
    c = result["cost_ns_per_event"]
    lines = [f"sched: BPF cost per scheduler event, ns (bpf_stats via {w['stats']}; median of {w['rounds']} rounds "
             f"x {w['phase_s']:.0f} s; {w['sleepers']} sleepers every {w['sleep_us']} us + 1 CPU hog)",
             f"  {'event':<8} {'phase':<24} {'syncscope':>10} {'runqlat':>9} {'ratio':>7}  "
             f"(target <= {TARGET_COST_RATIO}x)"]
    labels = {"alone": "alone", "together": "together (both orders)", "together_agent_first": "together, ours first",
              "together_runqlat_first": "together, runqlat first"}
    for phase in PHASES:
        for kind in (*KINDS, "all"):
            r = result["ratios"][f"bpf_ns_per_{kind}_event_{phase}"]
            lines.append(f"  {kind:<8} {labels[phase]:<24} {c[phase][kind]['agent']:>10.0f} "
                         f"{c[phase][kind]['runqlat']:>9.0f} {r:>6.2f}x")
    e = result["events_per_s"]
    lines.append(f"sched: events handled by our programs, per s: {e['wakeup']:.0f} wakeups, {e['switch']:.0f} "
                 f"switches ({e['all']:.0f} in all)")
    t = result["events_per_s_together"]
    lines.append(f"sched: same events seen together, per s: wakeups {t['agent']['wakeup']:.0f} (ours) vs "
                 f"{t['runqlat']['wakeup']:.0f} (runqlat), switches {t['agent']['switch']:.0f} vs "
                 f"{t['runqlat']['switch']:.0f}")
    load = result["cpu_percent_under_load"]
    lines.append(f"sched: user-space CPU under that load, % of one core: agent {load['agent']:.2f}, "
                 f"runqlat 1 {load['runqlat']:.2f}")
    fp = result["footprint"]
    lines.append(f"sched: idle footprint over {IDLE_SECONDS:.0f} s (anchor: runqlat 1)")
    for name, label in (("agent_sched_only", "agent, sched only"), ("agent_default_config", "agent, default config"),
                        ("runqlat", "runqlat 1")):
        lines.append(f"  {label:<24} RSS {fp[name]['rss_kib'] / 1024:7.1f} MiB   CPU {fp[name]['cpu_percent']:6.2f} %")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(common.main("sched", run, report))
