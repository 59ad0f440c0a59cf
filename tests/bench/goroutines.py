#!/usr/bin/python3
"""Goroutine-state benchmarks: what reading goroutines from outside costs,
against the alternative it replaces, as figures and ratios from one run.

  1. Scan cost: `syncscope trace goroutines -p PID --repeat 50` on goleak
     holding 1 000 and 10 000 leaked goroutines; the mean wall time of one
     scan (process_vm_readv of allgs and every g, plus the summary), in µs per
     scan per 1 000 goroutine records.
  2. What the target pays: goleak -churn (rounds of 8 goroutines passing a
     token around a ring of channels — every hand-off parks one goroutine
     and readies another), wall time:
       bare;
       while the reader scans it back to back (the agent scans every
       golang.scan_interval, 5 s by default: this is the worst case);
       with a bpftrace uprobe on runtime.casgstatus (the alternative: it
       fires on every goroutine state change), with its hit count, which
       gives µs per hit.
Rounds alternate bare / reader / uprobe to spread machine noise; medians are
printed. No assertions on time: the shared build machines are noisy.

Runnable alone (`python3 tests/bench/goroutines.py`, as root, after `make all
workloads`), or through tests/bench/run.py, which calls run().
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

import common
from common import BUILD, SYNCSCOPE, require

GOLEAK = BUILD / "workloads" / "goleak"

ROUNDS = int(os.environ.get("GOROUTINES_BENCH_ROUNDS", "3"))
CHURN_ROUNDS = 3000
# The uprobe makes every state change trap: a tenth of the work, against a
# bare run of the same tenth.
UPROBE_CHURN_ROUNDS = 300
SCAN_SIZES = (1000, 10000)


def leak_until(count):
    """goleak holding about `count` leaked goroutines, quiet."""
    p = subprocess.Popen([str(GOLEAK), "-rate", str(count * 5), "-interval", "200ms", "-duration", "0",
                          "-max", str(count)], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("goleak exited early")
        m = re.match(r"goroutines=(\d+)", line)
        if m and int(m.group(1)) >= count:
            return p
    p.kill()
    raise RuntimeError(f"goleak did not reach {count} goroutines")


def scan_cost(count):
    p = leak_until(count)
    try:
        out = subprocess.run([str(SYNCSCOPE), "trace", "goroutines", "-p", str(p.pid), "--json", "--repeat", "50"],
                             capture_output=True, text=True, check=True, timeout=120).stdout
        report = json.loads(out)
        return {"goroutines": report["allglen"], "scan_us": report["scan_us"],
                "us_per_1000": report["scan_us"] / report["allglen"] * 1000}
    finally:
        p.kill()
        p.wait()


def churn(during=None, rounds=CHURN_ROUNDS):
    """Wall ms of goleak -churn; `during(pid)` starts something against it
    and returns a stopper."""
    p = subprocess.Popen([str(GOLEAK), "-churn", str(rounds)], stdout=subprocess.PIPE, text=True)
    stop = None
    try:
        first = p.stdout.readline()
        if during:
            stop = during(int(first.split("=")[1]))
        for line in p.stdout:
            if line.startswith("elapsed_ms="):
                return float(line.split("=")[1])
        raise RuntimeError("goleak -churn printed no elapsed_ms")
    finally:
        if stop:
            stop()
        p.wait()


def continuous_reader(pid):
    # Scans until the process is gone (the CLI then exits with "has exited").
    r = subprocess.Popen([str(SYNCSCOPE), "trace", "goroutines", "-p", str(pid), "--json", "--repeat", "1000000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop():
        if r.poll() is None:
            r.kill()
        r.wait()
    return stop


class CasgstatusUprobe:
    """bpftrace counting runtime.casgstatus calls of the goleak binary."""

    def __init__(self):
        self.process = subprocess.Popen(
            ["bpftrace", "-e", f'uprobe:{GOLEAK}:runtime.casgstatus {{ @hits = count(); }}'],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("bpftrace exited before attaching")
            if line.startswith("Attaching"):
                time.sleep(0.5)  # the probe is live once bpftrace has printed this and attached
                return
        raise RuntimeError("bpftrace did not attach within 30 s")

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=30)
        m = re.search(r"@hits:\s*(\d+)", out)
        return int(m.group(1)) if m else 0


def run():
    """Returns {"scan": [...], "churn_wall_ms": {...}, "ratios": {...}, "casgstatus": {...}}."""
    require("goroutines", GOLEAK)
    have_bpftrace = shutil.which("bpftrace") is not None
    scans = [scan_cost(n) for n in SCAN_SIZES]
    samples = {"bare": [], "reader": [], "bare_small": [], "uprobe": []}
    hits = []
    for round_ in range(ROUNDS):
        samples["bare"].append(churn())
        samples["reader"].append(churn(continuous_reader))
        if have_bpftrace:
            samples["bare_small"].append(churn(rounds=UPROBE_CHURN_ROUNDS))
            probe = CasgstatusUprobe()
            try:
                samples["uprobe"].append(churn(rounds=UPROBE_CHURN_ROUNDS))
            finally:
                hits.append(probe.stop())
        print(f"  round {round_ + 1}/{ROUNDS} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    result = {
        "scan": scans,
        "churn_wall_ms": med,
        "ratios": {"reader_vs_bare": med["reader"] / med["bare"]},
        "samples": samples,
    }
    if "uprobe" in med:
        hit = statistics.median(hits)
        result["ratios"]["casgstatus_uprobe_vs_bare"] = med["uprobe"] / med["bare_small"]
        result["casgstatus"] = {
            "hits_per_run": hit,
            "hits_per_second_bare": hit / (med["bare_small"] / 1000),
            "us_per_hit": (med["uprobe"] - med["bare_small"]) * 1000 / hit if hit else None,
        }
    return result


def report(result):
    lines = ["goroutines: one scan of allgs (process_vm_readv + summary), mean of 50"]
    for s in result["scan"]:
        lines.append(f"  {s['goroutines']:6d} goroutine records: {s['scan_us']:9.1f} us per scan, "
                     f"{s['us_per_1000']:.1f} us per 1000 goroutines")
    c, r = result["churn_wall_ms"], result["ratios"]
    lines.append(f"goroutines: goleak -churn {CHURN_ROUNDS} (goroutine state changes), wall ms (median)")
    lines.append(f"  bare {c['bare']:.1f}   scanned back to back {c['reader']:.1f}   "
                 f"ratio {r['reader_vs_bare']:.3f}x")
    if "casgstatus" in result:
        g = result["casgstatus"]
        per_hit = f"{g['us_per_hit']:.2f}" if g["us_per_hit"] is not None else "n/a"
        lines.append(f"goroutines: goleak -churn {UPROBE_CHURN_ROUNDS}, wall ms (median)")
        lines.append(f"  bare {c['bare_small']:.1f}   uprobe on runtime.casgstatus {c['uprobe']:.1f}   ratio "
                     f"{r['casgstatus_uprobe_vs_bare']:.3f}x   {g['hits_per_run']:.0f} hits "
                     f"({g['hits_per_second_bare']:.0f}/s at full speed), {per_hit} us per hit")
    else:
        lines.append("  casgstatus uprobe skipped: bpftrace is not installed")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(common.main("goroutines", run, report))
