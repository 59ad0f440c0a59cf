#!/usr/bin/python3
"""Go mutex benchmarks: what the Go lock probes (uprobes on lockSlow's entry
and RETs; with `trace locks`, on unlockSlow's entry for the holder side too)
cost a contended Go program, as ratios against the same workload measured
bare in the same run.

  1. Contended: tests/workloads/go/gomutex, 8 goroutines on one sync.Mutex
     (hold 50 us, 5 us outside) for a fixed time; throughput = acquisitions
     per second. With the agent attached vs bare, and under `trace locks -p
     --json` (holder side probed too). Every contended Lock costs two traps
     (entry + RET), and under the trace its Unlock one more, so this is the
     probes' worst case per wait; what matters is that the cost scales with
     contention.
  2. Uncontended: one goroutine, nothing outside the lock: Lock never takes
     the slow path, no probe fires; the ratio should be ~1.00.
  Also the agent's own CPU time (utime + stime from /proc) while the
  contended workload ran, as a share of one core.

The agent runs with `sched` and `cachelines` off and `locks` on for every
process (golang enabled, the default), so Go binaries are probed when they
exec. Rounds
alternate bare / agent; medians are printed. No assertions on time: the
shared build machines are noisy.

Runnable alone (`python3 tests/bench/go_locks.py`, as root, after
`make all workloads`), or through tests/bench/run.py, which calls run().
"""

import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import common
from common import BUILD, SYNCSCOPE, Agent, cpu_seconds, require, stop_process

GOMUTEX = BUILD / "workloads" / "gomutex"

ROUNDS = int(os.environ.get("GO_LOCKS_BENCH_ROUNDS", "3"))
DURATION_S = 3


def gomutex(*args):
    """Acquisitions per second of one gomutex run."""
    out = subprocess.run([str(GOMUTEX), "-duration", f"{DURATION_S}s", *map(str, args)], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("acquisitions="):
            return int(line.partition("=")[2]) / DURATION_S
    raise RuntimeError(f"gomutex printed no acquisitions: {out!r}")


CONTENDED = ("-goroutines", 8, "-hold", "50us", "-outside", "5us")


def contended():
    return gomutex(*CONTENDED)


def contended_under_trace():
    """The contended run with `syncscope trace locks -p PID --json` attached
    before it starts: the trace also probes unlockSlow for holder stacks."""
    workload = subprocess.Popen([str(GOMUTEX), "-wait", "-duration", f"{DURATION_S}s", *map(str, CONTENDED)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    trace = None
    try:
        for line in workload.stdout:
            if line.strip() == "ready":
                break
        trace = subprocess.Popen([str(SYNCSCOPE), "trace", "locks", "-p", str(workload.pid), "--json"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in trace.stderr:
            if "Tracing lock contention" in line:
                break
        else:
            raise RuntimeError("trace locks exited before attaching")
        workload.stdin.write("go\n")
        workload.stdin.flush()
        for line in workload.stdout:
            if line.startswith("acquisitions="):
                return int(line.partition("=")[2]) / DURATION_S
        raise RuntimeError("gomutex printed no acquisitions under the trace")
    finally:
        for p in (workload, trace):
            if p is not None:
                stop_process(p, timeout=30)  # the trace ends by itself when gomutex exits


def uncontended():
    return gomutex("-goroutines", 1, "-hold", "1us", "-outside", "0")


def go_locks_agent(workdir, name, golang=True):
    """An agent with only the locks collector, ready once it follows processes."""
    # No cache-line detector: its watchpoints on the contended mutex's line
    # are measured by tests/bench/falseshare.py, not here.
    config = ("sched: { enabled: false }\ncachelines: { enabled: false }\n"
              "locks: { enabled: true }\n"
              f"golang: {{ enabled: {'true' if golang else 'false'} }}\n")
    return Agent(workdir, config, name, ready=lambda agent: "locks" in agent.get_json("/debug/probes")["collectors"])


def go_probes_attached(agent):
    return any(row["program"].startswith("go_lock") for row in agent.probes("locks").get("attached", []))


def run():
    """Returns {"contended_acq_per_s": {...}, "uncontended_acq_per_s": {...}, "agent_cpu_share": x, "ratios": {...}}."""
    require("Go locks", GOMUTEX)
    samples = {"bare": {"c": [], "u": []}, "agent": {"c": [], "u": []}, "trace": {"c": []},
               "agent_no_go": {"c": []}, "agent_cpu_share": []}
    attached = False
    with tempfile.TemporaryDirectory(prefix="syncscope-go-locks-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        for round_ in range(ROUNDS):
            samples["bare"]["c"].append(contended())
            samples["bare"]["u"].append(uncontended())
            agent = go_locks_agent(workdir, f"agent-{round_}")
            try:
                before, start = cpu_seconds(agent.pid), time.monotonic()
                samples["agent"]["c"].append(contended())
                samples["agent_cpu_share"].append((cpu_seconds(agent.pid) - before) / (time.monotonic() - start))
                attached = attached or go_probes_attached(agent)
                samples["agent"]["u"].append(uncontended())
            finally:
                agent.stop()
            # `trace locks` also probes the holder side (unlockSlow): the
            # difference to the agent is what the holder stacks cost.
            samples["trace"]["c"].append(contended_under_trace())
            # The same agent with golang off: only the futex side sees the Go
            # program (its runtime's own futex sleeps), which isolates the cost
            # of the Go lock probes.
            agent = go_locks_agent(workdir, f"no-go-{round_}", golang=False)
            try:
                samples["agent_no_go"]["c"].append(contended())
            finally:
                agent.stop()
            print(f"  round {round_ + 1}/{ROUNDS} done", file=sys.stderr)
    med = {name: {k: statistics.median(v) for k, v in s.items()} for name, s in samples.items() if isinstance(s, dict)}
    return {
        "contended_acq_per_s": {"bare": med["bare"]["c"], "agent": med["agent"]["c"],
                                "trace_locks": med["trace"]["c"],
                                "agent_without_go_probes": med["agent_no_go"]["c"]},
        "uncontended_acq_per_s": {"bare": med["bare"]["u"], "agent": med["agent"]["u"]},
        "agent_cpu_share": statistics.median(samples["agent_cpu_share"]),
        "go_probes_attached": attached,
        "ratios": {
            # Throughput: below 1.0 means the agent slowed the workload down.
            "contended_agent_vs_bare": med["agent"]["c"] / med["bare"]["c"],
            "contended_trace_locks_vs_bare": med["trace"]["c"] / med["bare"]["c"],
            "contended_agent_without_go_probes_vs_bare": med["agent_no_go"]["c"] / med["bare"]["c"],
            "uncontended_agent_vs_bare": med["agent"]["u"] / med["bare"]["u"],
        },
        "samples": samples,
    }


def report(result):
    r = result["ratios"]
    c = result["contended_acq_per_s"]
    u = result["uncontended_acq_per_s"]
    lines = [
        "go_locks: gomutex, 8 goroutines on one sync.Mutex (hold 50 us), acquisitions/s (median)",
        f"  bare {c['bare']:.0f}   agent {c['agent']:.0f}   throughput ratio {r['contended_agent_vs_bare']:.3f}x",
        f"  trace locks -p --json {c['trace_locks']:.0f}   "
        f"ratio {r['contended_trace_locks_vs_bare']:.3f}x (also probes unlockSlow for holder stacks)",
        f"  agent with golang off {c['agent_without_go_probes']:.0f}   "
        f"ratio {r['contended_agent_without_go_probes_vs_bare']:.3f}x (the futex side alone)",
        f"  agent CPU while it ran: {result['agent_cpu_share'] * 100:.1f}% of one core",
        "go_locks: one goroutine, uncontended Lock/Unlock, acquisitions/s (median)",
        f"  bare {u['bare']:.0f}   agent {u['agent']:.0f}   throughput ratio {r['uncontended_agent_vs_bare']:.3f}x",
    ]
    if not result["go_probes_attached"]:
        lines.append("  WARNING: the agent never reported Go lock probes attached: the ratios measure nothing")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(common.main("go_locks", run, report))
