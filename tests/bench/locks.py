#!/usr/bin/python3
"""Lock-contention benchmarks: what the locks collector costs the programs it
watches, as ratios against the same workload measured bare in the same run.

  1. Uncontended lock/unlock, ns per pair (tests/workloads/lock_bench
     uncontended): with the agent attached vs bare. Target <= 1.02x: an
     uncontended lock never enters the kernel and hits no probe.
  2. Four threads taking one mutex, each holding it for 20 us of work and
     coming straight back for it, wall time (lock_bench contended): nearly
     every release wakes a sleeping waiter, some 12 000 futex waits and as many
     wakes per second. With the agent attached vs bare (target <= 1.05x), and
     with the futexctn stand-in (tests/e2e/futexctn.bt, bpftrace; Debian 12's
     libbpf-tools does not ship futexctn) attached instead, for comparison.
     Also the agent without glibc uprobes, without stacks, and without
     both (the futex tracepoints alone): where the contended cost goes.

The agent runs with `sched` and `cachelines` off and `locks` on for every
process (the default locks config), so the ratio is the lock collector's
cost. Rounds
alternate bare / agent / stand-in to spread machine noise; medians are
printed. No assertions on time: the shared build machines are noisy.

Runnable alone (`python3 tests/bench/locks.py`, as root, after
`make workloads`), or through tests/bench/run.py, which calls run().
"""

import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import common
from common import BUILD, REPO, Agent, require

LOCK_BENCH = BUILD / "workloads" / "lock_bench"
STANDIN = REPO / "tests" / "e2e" / "futexctn.bt"

ROUNDS = int(os.environ.get("LOCKS_BENCH_ROUNDS", "3"))
UNCONTENDED_ITERATIONS = 50_000_000
CONTENDED_THREADS = 4
CONTENDED_ITERATIONS = 50_000
CONTENDED_INSIDE_NS = 20_000  # held this long per acquisition
CONTENDED_OUTSIDE_NS = 0


def run_workload(*args):
    out = subprocess.run([str(LOCK_BENCH), *map(str, args)], capture_output=True, text=True, check=True).stdout
    key, _, value = out.strip().partition("=")
    return float(value)


def uncontended():
    # Three runs, the median: one run is well under a second.
    return statistics.median(run_workload("uncontended", UNCONTENDED_ITERATIONS) for _ in range(3))


def contended():
    return run_workload("contended", CONTENDED_THREADS, CONTENDED_ITERATIONS, CONTENDED_INSIDE_NS,
                        CONTENDED_OUTSIDE_NS)


# The agent's configurations: the default, and with one source of cost at a
# time taken away, so the report says where the contended cost goes.
VARIANTS = {
    "agent": "",
    "agent_no_glibc_uprobes": "glibc_uprobes: false, ",
    "agent_no_stacks": "stacks: false, ",
    "agent_futex_only": "glibc_uprobes: false, stacks: false, ",
}


def locks_agent(workdir, name, variant="agent"):
    """A locks-only agent, ready once its collector runs (with glibc uprobes:
    once they are attached)."""
    def ready(agent):
        locks = agent.probes("locks")
        if "glibc_uprobes: false" in VARIANTS[variant]:
            return bool(locks)
        return any(row["kind"] == "uprobe" for row in locks.get("attached", []))
    # Only the locks collector: the cache-line detector, on by default, would
    # add its watchpoint duty cycle (tests/bench/falseshare.py measures that).
    config = ("sched: { enabled: false }\ncachelines: { enabled: false }\n"
              f"locks: {{ {VARIANTS[variant]}enabled: true }}\n")
    return Agent(workdir, config, name, ready=ready, timeout=30)


class Standin:
    def __init__(self):
        self.process = subprocess.Popen(["bpftrace", str(STANDIN), "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("bpftrace exited before attaching")
            if "futexctn stand-in attached" in line:
                return
        raise RuntimeError("bpftrace did not attach within 30 s")

    def stop(self):
        # SIGINT: bpftrace prints its maps (read here, so a full pipe cannot
        # block it) and detaches.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run():
    """Returns {"uncontended_ns_per_iter": {...}, "contended_wall_ms": {...}, "ratios": {...}}."""
    require("locks", LOCK_BENCH)
    have_standin = shutil.which("bpftrace") is not None
    samples = {"bare": {"u": [], "c": []}, "agent": {"u": [], "c": []}, "standin": {"c": []},
               **{variant: {"c": []} for variant in VARIANTS if variant != "agent"}}
    with tempfile.TemporaryDirectory(prefix="syncscope-locks-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        for round_ in range(ROUNDS):
            samples["bare"]["u"].append(uncontended())
            samples["bare"]["c"].append(contended())
            agent = locks_agent(workdir, f"agent-{round_}")
            try:
                samples["agent"]["u"].append(uncontended())
                samples["agent"]["c"].append(contended())
            finally:
                agent.stop()
            for variant in VARIANTS:
                if variant == "agent":
                    continue
                agent = locks_agent(workdir, f"{variant}-{round_}", variant)
                try:
                    samples[variant]["c"].append(contended())
                finally:
                    agent.stop()
            if have_standin:
                standin = Standin()
                try:
                    samples["standin"]["c"].append(contended())
                finally:
                    standin.stop()
            print(f"  round {round_ + 1}/{ROUNDS} done", file=sys.stderr)

    med = {name: {k: statistics.median(v) for k, v in s.items() if v} for name, s in samples.items()}
    result = {
        "uncontended_ns_per_iter": {"bare": med["bare"]["u"], "agent": med["agent"]["u"]},
        "contended_wall_ms": {"bare": med["bare"]["c"], "agent": med["agent"]["c"]},
        "ratios": {
            "uncontended_agent_vs_bare": med["agent"]["u"] / med["bare"]["u"],
            "contended_agent_vs_bare": med["agent"]["c"] / med["bare"]["c"],
        },
        "targets": {"uncontended_agent_vs_bare": 1.02, "contended_agent_vs_bare": 1.05},
        "samples": samples,
    }
    for variant in VARIANTS:
        if variant != "agent":
            result["contended_wall_ms"][variant] = med[variant]["c"]
            result["ratios"][f"contended_{variant}_vs_bare"] = med[variant]["c"] / med["bare"]["c"]
    if "c" in med["standin"]:
        result["contended_wall_ms"]["futexctn_standin"] = med["standin"]["c"]
        result["ratios"]["contended_standin_vs_bare"] = med["standin"]["c"] / med["bare"]["c"]
    return result


def report(result):
    r = result["ratios"]
    u = result["uncontended_ns_per_iter"]
    c = result["contended_wall_ms"]
    lines = [
        "locks: uncontended lock/unlock, ns per pair (median)",
        f"  bare {u['bare']:.2f}   agent {u['agent']:.2f}   ratio {r['uncontended_agent_vs_bare']:.3f}x (target <= 1.02x)",
        f"locks: {CONTENDED_THREADS} threads x {CONTENDED_ITERATIONS} acquisitions held "
        f"{CONTENDED_INSIDE_NS // 1000} us, wall ms (median)",
        f"  bare {c['bare']:.1f}   agent {c['agent']:.1f}   ratio {r['contended_agent_vs_bare']:.3f}x (target <= 1.05x)",
    ]
    for variant, config in VARIANTS.items():
        if variant != "agent":
            lines.append(f"  {variant} ({config.strip(', ')}) {c[variant]:.1f}   "
                         f"ratio {r[f'contended_{variant}_vs_bare']:.3f}x")
    if "contended_standin_vs_bare" in r:
        lines.append(f"  futexctn stand-in (bpftrace) {c['futexctn_standin']:.1f}   "
                     f"ratio {r['contended_standin_vs_bare']:.3f}x")
    else:
        lines.append("  futexctn stand-in skipped: bpftrace is not installed")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(common.main("locks", run, report))
