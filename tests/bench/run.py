#!/usr/bin/python3
"""`make bench`: runs the benchmark modules of tests/bench and prints, after
each module's own report, one summary table of ratios against the anchors
measured in the same run (bare workloads, libbpf-tools, bpftrace stand-ins).

  python3 tests/bench/run.py [--json FILE] [--list] [NAME ...]

NAME picks a subset (sched, locks, falseshare, go_locks, goroutines, slo);
the default is every module in BENCHMARKS. A module that is not written yet
is skipped with a message. Nothing here asserts on time: the exit status is
1 only when a benchmark crashed (raised), or a name is unknown, else 0.

A benchmark module provides
  run() -> dict             measures; raises on failure; may return
                            {"skipped": "why"} when the machine lacks something
  report(result) -> str     optional: its own human-readable lines
  summary(result) -> rows   optional: (measure, ours, anchor, ratio, target)
                            tuples for the table below; without it the table
                            shows result["ratios"] against result["targets"].
Every result is also written as JSON to $SYNCSCOPE_BUILD/bench-results.json
(or --json FILE), with the date and the machine it was measured on.
"""

import argparse
import datetime
import importlib.util
import json
import math
import os
import pathlib
import platform
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = pathlib.Path(os.environ.get("SYNCSCOPE_BUILD", REPO / "build"))

# In the order they run: the foundation first.
BENCHMARKS = {
    "sched": "run-queue collector: BPF ns per scheduler event vs libbpf-tools runqlat; agent RSS, idle CPU",
    "locks": "lock contention: uncontended and contended lock cost with the agent vs bare, vs futexctn stand-in",
    "falseshare": "false sharing: target slowdown vs watchpoint duty cycle; time to detection",
    "go_locks": "Go mutex contention: contended Go benchmark with the agent vs bare; agent CPU",
    "goroutines": "Go goroutine tracking: cost to the Go program vs bare",
    "slo": "SLO engine: threshold crossing to webhook latency; CPU for 1000 SLOs",
}


def load(name):
    """tests/bench/NAME.py by path, under a private name: `sched` would
    otherwise be the standard library's module if anything imported it first."""
    spec = importlib.util.spec_from_file_location(f"syncscope_bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rows_from_ratios(result):
    """The default: every result["ratios"] entry against result["targets"]."""
    targets = result.get("targets", {})
    return [(name, None, None, ratio, f"<= {targets[name]}" if name in targets else "")
            for name, ratio in result.get("ratios", {}).items()]


def locks_rows(result):
    u, c, r = result["uncontended_ns_per_iter"], result["contended_wall_ms"], result["ratios"]
    rows = [("uncontended ns/lock+unlock, agent vs bare", u["agent"], u["bare"], r["uncontended_agent_vs_bare"],
             "<= 1.02"),
            ("contended wall ms, agent vs bare", c["agent"], c["bare"], r["contended_agent_vs_bare"], "<= 1.05")]
    for variant in ("agent_no_glibc_uprobes", "agent_no_stacks", "agent_futex_only"):
        if variant in c:
            rows.append((f"contended wall ms, {variant} vs bare", c[variant], c["bare"],
                         r[f"contended_{variant}_vs_bare"], ""))
    if "contended_standin_vs_bare" in r:
        rows.append(("contended wall ms, futexctn stand-in vs bare", c["futexctn_standin"], c["bare"],
                     r["contended_standin_vs_bare"], ""))
    return rows


def falseshare_rows(result):
    rows = [(f"ops/s watched vs bare, {s['window_ms']} ms window, duty {s['duty_cycle']:.2f}",
             s["traced_ops_per_s"], s["bare_ops_per_s"], s["ratio"], f"~ {s['expected_ratio']:.3f}")
            for s in result["slowdown"]]
    for config, d in result["detection"].items():
        rows.append((f"seconds to detection from ready, {config}", d["median_from_ready_s"], None, None,
                     f"{d['found']}/{d['rounds']} found"))
    return rows


# Modules written before the summary() convention; adapted here so their
# files stay as their authors left them.
ADAPTERS = {"locks": locks_rows, "falseshare": falseshare_rows}


def summary_rows(name, module, result):
    if hasattr(module, "summary"):
        return list(module.summary(result))
    if name in ADAPTERS:
        return ADAPTERS[name](result)
    return rows_from_ratios(result)


def cell(value):
    """Three significant digits or so, whatever the magnitude (ns, MiB, %)."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, (int, float)):
        magnitude = abs(value)
        if magnitude == 0 or magnitude >= 100:
            return f"{value:.0f}"
        return f"{value:.2f}" if magnitude >= 1 else f"{value:.3f}"
    return str(value)


def print_table(outcomes):
    header = ("benchmark", "measure", "ours", "anchor", "ratio", "target")
    lines = []
    for name, outcome in outcomes.items():
        if outcome["status"] != "ok":
            lines.append((name, f"{outcome['status']}: {outcome['reason']}", "", "", "", ""))
            continue
        for measure, ours, anchor, ratio, target in outcome["rows"]:
            finite = isinstance(ratio, (int, float)) and math.isfinite(ratio)
            ratio_text = f"{ratio:.3f}x" if finite else cell(ratio)
            lines.append((name, measure, cell(ours), cell(anchor), ratio_text, target or ""))
    widths = [max(len(str(row[i])) for row in (header, *lines)) for i in range(len(header))]
    widths[1] = min(widths[1], 60)

    def fmt(row):
        left = f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}"
        return left + "".join(f"  {row[i]:>{widths[i]}}" for i in (2, 3, 4)) + f"  {row[5]}"

    print("\n== summary: ratios against the anchors measured in this run (no assertions on time)")
    print(fmt(header))
    print("-" * (sum(widths) + 10))
    for row in lines:
        print(fmt(row))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--json", type=pathlib.Path, default=BUILD / "bench-results.json",
                        help="where to write every result (default: $SYNCSCOPE_BUILD/bench-results.json)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    # `make bench` pipes us: keep the modules' progress (stderr) and their
    # reports (stdout) in order.
    sys.stdout.reconfigure(line_buffering=True)

    if args.list:
        for name, what in BENCHMARKS.items():
            present = (HERE / f"{name}.py").exists()
            print(f"{name:<11} {what}{'' if present else '  (not written yet)'}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        print(f"run.py: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 1
    names = args.names or list(BENCHMARKS)
    if os.geteuid() != 0:
        print("run.py: the benchmarks load BPF programs and attach probes: run them as root", file=sys.stderr)
        return 1

    outcomes, crashed = {}, False
    for name in names:
        print(f"\n== {name}: {BENCHMARKS[name]}", flush=True)
        if not (HERE / f"{name}.py").exists():
            reason = f"tests/bench/{name}.py is not written yet"
            print(f"  skipped: {reason}")
            outcomes[name] = {"status": "skipped", "reason": reason}
            continue
        started = time.monotonic()
        try:
            module = load(name)
            if not hasattr(module, "run"):
                raise RuntimeError(f"tests/bench/{name}.py has no run() function")
            result = module.run()
            if isinstance(result, dict) and "skipped" in result:
                print(f"  skipped: {result['skipped']}")
                outcomes[name] = {"status": "skipped", "reason": result["skipped"]}
                continue
            print(module.report(result) if hasattr(module, "report") else json.dumps(result, indent=2, default=str),
                  flush=True)
            rows = summary_rows(name, module, result)
            outcomes[name] = {"status": "ok", "result": result, "rows": rows,
                              "seconds": round(time.monotonic() - started, 1)}
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a crash of one benchmark must not hide the others' numbers
            traceback.print_exc()
            outcomes[name] = {"status": "crashed", "reason": f"{type(e).__name__}: {e}"}
            crashed = True

    print_table(outcomes)
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count(), "arch": platform.machine()},
        "benchmarks": {name: {k: v for k, v in o.items() if k != "rows"} | {"summary": o.get("rows", [])}
                       for name, o in outcomes.items()},
    }
    try:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"\nresults: {args.json}")
    except OSError as e:
        print(f"run.py: could not write {args.json}: {e}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
