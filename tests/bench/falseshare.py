#!/usr/bin/python3
"""False-sharing benchmarks: what hardware-watchpoint detection costs the
program it watches, and how long it takes to find a falsely shared line —
as ratios against the same workload measured bare in the same run.

  1. Target slowdown vs duty cycle and window length. One
     tests/workloads/falseshare process runs throughout in `padded` mode (two
     threads, each hammering its own std::atomic<long> on its own line) and
     the trace is narrowed to those lines (--watch g_padded, --recheck 0),
     so every window lands on hot words and every access in it traps: the
     worst case. (The false_sharing mode is not used here: its throughput depends
     on whether the scheduler happens to put both threads on one core, which
     a second process on a 2-CPU machine changes, so it measures placement,
     not the watchpoints.) The workload's own throughput reports (ops/s
     every 250 ms) are averaged while `syncscope trace falseshare` watches it
     and while nothing does, alternately; ops per CPU-second of the workload
     (/proc/PID/stat) are given too, as they do not depend on how busy the
     machine is. Expected: traced/bare ~= 1 - duty cycle / 2: a window
     watches one line, so one of the two threads traps on every access
     (~10 us each: it does almost nothing during the window) while the
     other runs free. A program whose every thread writes the watched line
     would pay the whole duty cycle. The trace's own accounting (watched
     time / wall time) is printed next to it.
  2. Time to detection: a fresh `syncscope agent` with the process as its
     cachelines target, no hints; seconds from start (and from /healthz
     ready) until /metrics shows the line as false_sharing.

The anchors the design names for false sharing, `perf c2c` and
Featherlight-style sampling, need a PMU; this machine has none, so the bare
workload is the only anchor. No assertions on time: the shared build
machines are noisy.

Runnable alone (`python3 tests/bench/falseshare.py`, as root, after
`make all workloads`), or through tests/bench/run.py, which calls run().
FALSESHARE_BENCH_GRID="10:0.02,20:0.05" picks (window_ms:duty) pairs;
FALSESHARE_BENCH_ROUNDS sets the detection rounds (default 3).
"""

import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import common
from common import BUILD, SYNCSCOPE, Agent, cpu_seconds, require

FALSESHARE = BUILD / "workloads" / "falseshare"

DEFAULT_GRID = [(10, 0.02), (20, 0.01), (20, 0.02), (20, 0.05), (20, 0.10), (50, 0.02), (50, 0.05)]
TRACE_SECONDS = 8
SETTLE_SECONDS = 2.0  # the trace's start-up (feature probing, globals scan) is not measured
ROUNDS = int(os.environ.get("FALSESHARE_BENCH_ROUNDS", "3"))


def grid():
    text = os.environ.get("FALSESHARE_BENCH_GRID")
    if not text:
        return DEFAULT_GRID
    return [(int(w), float(d)) for w, d in (pair.split(":") for pair in text.split(","))]


class Workload:
    """falseshare MODE 2 0 250, its rate reports collected with timestamps."""

    def __init__(self, mode="false_sharing"):
        self.process = subprocess.Popen([str(FALSESHARE), mode, "2", "0", "250"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.process.pid
        self.line = None
        for text in self.process.stdout:
            m = re.search(r"global name=g_false_shared \S+ \S+ line=(0x[0-9a-f]+)", text)
            if m:
                self.line = m.group(1)
            if text.startswith("region"):
                break
        self.rates = []  # (monotonic time, ops/s)
        self.lock = threading.Lock()
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for text in self.process.stdout:
            m = re.match(r"rate ops_per_s=(\d+)", text)
            if m:
                with self.lock:
                    self.rates.append((time.monotonic(), float(m.group(1))))

    def mean_rate(self, start, end):
        with self.lock:
            values = [r for t, r in self.rates if start <= t <= end]
        return statistics.mean(values) if values else float("nan")

    def cpu_seconds(self):
        return cpu_seconds(self.pid)

    def stop(self):
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure(workload, seconds):
    """(ops/s, ops per CPU-second) over the next `seconds`."""
    start, cpu0 = time.monotonic(), workload.cpu_seconds()
    time.sleep(seconds)
    end, cpu1 = time.monotonic(), workload.cpu_seconds()
    rate = workload.mean_rate(start + 0.3, end)
    return rate, rate * (end - start) / max(cpu1 - cpu0, 1e-3)


def traced(workload, window_ms, duty):
    trace = subprocess.Popen([str(SYNCSCOPE), "trace", "falseshare", "-p", str(workload.pid), "-d", str(TRACE_SECONDS),
                              "--window-ms", str(window_ms), "--duty-cycle", str(duty), "--watch", "g_padded",
                              "--recheck", "0", "--all", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The steady state: after start-up, before the report is printed.
    time.sleep(SETTLE_SECONDS)
    rate, per_cpu = measure(workload, TRACE_SECONDS - SETTLE_SECONDS - 1.0)
    out, err = trace.communicate(timeout=60)
    if trace.returncode != 0:
        raise RuntimeError(f"trace falseshare failed: {err}")
    report = json.loads(out)
    hot = any(e["hits"] > 0 for e in report["lines"])
    return rate, per_cpu, report["watched_fraction"], hot


def slowdown():
    rows = []
    workload = Workload("padded")
    try:
        measure(workload, 1.0)  # warm-up
        for window_ms, duty in grid():
            before = measure(workload, 3.0)
            rate, per_cpu, watched, hot = traced(workload, window_ms, duty)
            after = measure(workload, 3.0)
            bare = statistics.mean([before[0], after[0]])
            bare_cpu = statistics.mean([before[1], after[1]])
            rows.append({"window_ms": window_ms, "duty_cycle": duty, "bare_ops_per_s": bare,
                         "traced_ops_per_s": rate, "ratio": rate / bare,
                         "bare_ops_per_cpu_s": bare_cpu, "traced_ops_per_cpu_s": per_cpu,
                         "cpu_ratio": per_cpu / bare_cpu, "expected_ratio": 1 - duty / 2,
                         "watched_fraction": watched, "windows_hit_hot_words": hot})
            print(f"  slowdown: window {window_ms} ms, duty {duty:.2f} done", file=sys.stderr)
    finally:
        workload.stop()
    return rows


def falseshare_agent(workdir, name, pid, window_ms, duty):
    """Returned at once (detection is timed from the agent's start)."""
    config = ("sched: { enabled: false }\nlocks: { enabled: false }\n"
              f"cachelines: {{ enabled: true, targets: [{{ pid: {pid} }}], "
              f"watch: {{ window_ms: {window_ms}, duty_cycle: {duty} }} }}\n")
    return Agent(workdir, config, name, ready=lambda agent: True)


def wait_for_metric(agent, needle, timeout=60):
    """(when /healthz first answered, when `needle` appeared in /metrics), monotonic; None if it never did."""
    ready = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.process.poll() is not None:
            raise RuntimeError(f"agent exited: see {agent.log_path}")
        try:
            if ready is None and agent.healthy():
                ready = time.monotonic()
            if needle in agent.get("/metrics"):
                return ready, time.monotonic()
        except OSError:
            pass
        time.sleep(0.1)
    return None


def detection(window_ms, duty):
    times = []
    with tempfile.TemporaryDirectory(prefix="syncscope-falseshare-bench-") as tmp:
        for round_ in range(ROUNDS):
            workload = Workload()
            agent = falseshare_agent(pathlib.Path(tmp), f"agent-{window_ms}-{duty}-{round_}", workload.pid, window_ms,
                                     duty)
            try:
                found = wait_for_metric(agent, f'line="{workload.line}",symbol="g_false_shared",'
                                               'verdict="false_sharing"')
                if found is not None:
                    ready, seen = found
                    times.append({"from_start_s": seen - agent.started,
                                  "from_ready_s": seen - (ready or agent.started)})
            finally:
                agent.stop()
                workload.stop()
    return times


def run():
    """Returns {"slowdown": [...], "detection": {...}}."""
    require("false-sharing", FALSESHARE)
    result = {"slowdown": slowdown(), "detection": {}}
    for window_ms, duty in ((20, 0.02), (20, 0.05)):
        times = detection(window_ms, duty)
        result["detection"][f"{window_ms}ms@{duty}"] = {
            "rounds": ROUNDS, "found": len(times),
            "median_from_start_s": statistics.median(t["from_start_s"] for t in times) if times else None,
            "median_from_ready_s": statistics.median(t["from_ready_s"] for t in times) if times else None,
            "samples": times}
        print(f"  detection: window {window_ms} ms, duty {duty:.2f} done", file=sys.stderr)
    return result


def report(result):
    lines = ["falseshare: target throughput while watched vs bare (padded workload, its hot lines watched; "
             "same process, alternating; ratio 1.00 = no cost)",
             f"  {'window':>7} {'duty':>6} {'bare ops/s':>13} {'traced ops/s':>13} {'ratio':>6} "
             f"{'per-CPU ratio':>13} {'expect':>6} {'watched':>8}"]
    for r in result["slowdown"]:
        lines.append(f"  {r['window_ms']:>5}ms {r['duty_cycle']:>6.2f} {r['bare_ops_per_s']:>13.0f} "
                     f"{r['traced_ops_per_s']:>13.0f} {r['ratio']:>6.3f} {r['cpu_ratio']:>13.3f} "
                     f"{r['expected_ratio']:>6.3f} {r['watched_fraction']:>8.4f}"
                     + ("" if r["windows_hit_hot_words"] else "  (no hits: the windows missed the hot words)"))
    lines.append("falseshare: time to detection (agent, no hints, globals rotation), median seconds")
    for config, d in result["detection"].items():
        if d["found"]:
            lines.append(f"  {config}: {d['median_from_start_s']:.1f} s from start, "
                         f"{d['median_from_ready_s']:.1f} s from ready ({d['found']}/{d['rounds']} rounds found it)")
        else:
            lines.append(f"  {config}: not found within 60 s in {d['rounds']} rounds")
    lines.append("  anchors: perf c2c and PMU-sampling detectors need a hardware PMU, which this machine lacks")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(common.main("falseshare", run, report))
