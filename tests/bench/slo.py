#!/usr/bin/python3
"""SLO engine benchmarks, printed with their anchors from the same run; no
assertions on time (the shared machines are noisy).

  1. Threshold crossing → webhook received, over repeated trips. CPU hogs
     start in a test cgroup; the run-queue SLO (threshold 1 ms, 99 %, page
     at 5x over 3 s and 1 s) burns; the agent evaluates once a second, opens
     the circuit and delivers a signed circuit.open. Per trip:
       delivery  = received − the body's timestamp (the evaluation that saw
                   the crossing): the outbox write + fsync, the wake-up of
                   the sender thread, the HTTP POST;
       detection = received − hogs started (includes gathering min_events
                   and the up-to-1-s evaluation granularity).
     p50 and p99 of each, and delivery against the anchor: a bare HTTP POST
     of the same body from this process to the same receiver.
  2. CPU of the agent evaluating 1000 SLOs every second (500 run-queue SLOs
     over 10 kernel rows, 500 lock-wait SLOs over 50 targets, 30-day windows
     with the SRE workbook's default policy, state persisted every 60 s)
     against the same agent with no SLOs: agent CPU ms per wall second (its
     threads' schedstat run time), medians over alternating rounds, and the
     ratio.

Runnable alone (`python3 tests/bench/slo.py`, as root, after `make all
workloads`) or through tests/bench/run.py, which calls run().
"""

import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import common
from common import BUILD, REPO, Agent, require

# The e2e tier's SLO helpers: the Standard Webhooks receiver (it verifies
# every signature), secrets, timestamps, the cgroup v2 mount.
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from conftest import cgroup2_mount  # noqa: E402
from slo_support import WebhookReceiver, parse_rfc3339, write_secret  # noqa: E402

CPU_HOG = BUILD / "workloads" / "cpu_hog"
TRIPS = int(os.environ.get("SLO_BENCH_TRIPS", "10"))
CPU_ROUNDS = int(os.environ.get("SLO_BENCH_CPU_ROUNDS", "2"))
CPU_SECONDS = float(os.environ.get("SLO_BENCH_CPU_SECONDS", "30"))
CGROUP = "/syncscope-bench-slo"


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def slo_status(agent):
    return agent.get_json("/debug/slo")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def trip_latencies(workdir):
    secret = workdir / "hook.key"
    receiver = WebhookReceiver(write_secret(secret)).start()
    mount = cgroup2_mount()
    group = pathlib.Path(mount + CGROUP)
    group.mkdir(exist_ok=True)
    config = f"""sched: {{ enabled: true }}
locks: {{ enabled: false }}
golang: {{ enabled: false }}
cachelines: {{ enabled: false }}
slos:
  - name: bench-runq
    target: {{ cgroup: {CGROUP} }}
    sli: {{ runq_latency: {{ threshold: 1ms }} }}
    objective: 99.0
    window: 1h
    min_events: 20
    alerting:
      page: [{{ long: 3s, short: 1s, burn_rate: 5 }}]
    circuit: {{ min_open: 1s, close_after: 1s, notify: [hook] }}
notifiers:
  hook: {{ type: webhook, url: "{receiver.url}", secret_file: {secret} }}
"""
    agent = Agent(workdir, config, "trips")
    delivery, detection, post = [], [], []
    try:
        for trip in range(TRIPS):
            wait_for(lambda: slo_status(agent)["slos"][0]["circuit"]["state"] == "closed", 60, "circuit closed")
            seen = len(receiver.received())
            hogs = subprocess.Popen([str(CPU_HOG), str(4 * os.cpu_count())], stdout=subprocess.PIPE, text=True)
            try:
                hogs.stdout.readline()
                (group / "cgroup.procs").write_text(str(hogs.pid))
                started = time.time()
                opened = wait_for(lambda: next((r for r in receiver.received()[seen:]
                                                if r["json"] and r["json"]["type"] == "circuit.open"), None), 60,
                                  "circuit.open")
            finally:
                hogs.kill()
                hogs.wait()
                hogs.stdout.close()
            if not opened["valid"]:
                raise RuntimeError(f"circuit.open with a bad signature: {opened['headers']}")
            delivery.append(opened["at"] - parse_rfc3339(opened["json"]["timestamp"]))
            detection.append(opened["at"] - started)
            # The anchor: the same body POSTed straight to the receiver.
            body = opened["body"]
            t0 = time.time()
            urllib.request.urlopen(urllib.request.Request(
                receiver.url, data=body, headers={"webhook-id": "msg_anchor", "webhook-timestamp": "0",
                                                  "webhook-signature": "v1,anchor"}), timeout=5).read()
            post.append(time.time() - t0)
            print(f"  trip {trip + 1}/{TRIPS}: delivery {delivery[-1] * 1000:.1f} ms, "
                  f"detection {detection[-1]:.2f} s", file=sys.stderr)
    finally:
        agent.stop()
        receiver.stop()
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    return {
        "trips": len(delivery),
        "delivery_ms": {"p50": percentile(delivery, 50) * 1000, "p99": percentile(delivery, 99) * 1000},
        "detection_s": {"p50": percentile(detection, 50), "p99": percentile(detection, 99)},
        "bare_post_ms": {"p50": percentile(post, 50) * 1000, "p99": percentile(post, 99) * 1000},
        "samples": {"delivery_s": delivery, "detection_s": detection, "bare_post_s": post},
    }


def thousand_slos():
    lines = ["slos:"]
    for i in range(500):
        lines += [f"  - name: runq-{i}", "    target: { cgroup: / }",
                  f"    sli: {{ runq_latency: {{ threshold: {100 * (1 + i % 10)}us }} }}",
                  "    objective: 99.9", "    window: 30d"]
    for i in range(500):
        lines += [f"  - name: lock-{i}", f"    target: {{ comm: bench{i % 50} }}",
                  f"    sli: {{ lock_wait: {{ threshold: {1 + i // 50}ms }} }}",
                  "    objective: 99.9", "    window: 30d"]
    return "\n".join(lines) + "\n"


def cpu_cost(workdir):
    base = "sched: { enabled: true }\nlocks: { enabled: true }\ngolang: { enabled: false }\ncachelines: { enabled: false }\n"
    configs = {"idle": base, "slos": base + thousand_slos()}
    samples = {"idle": [], "slos": []}
    for round_ in range(CPU_ROUNDS):
        for name, text in configs.items():
            agent = Agent(workdir, text, f"cpu-{name}-{round_}")
            try:
                if name == "slos":
                    status = slo_status(agent)
                    assert len(status["slos"]) == 1000, len(status["slos"])
                time.sleep(5)  # past the start-up work
                c0, t0 = agent.cpu_seconds(), time.monotonic()
                time.sleep(CPU_SECONDS)
                c1, t1 = agent.cpu_seconds(), time.monotonic()
                samples[name].append((c1 - c0) / (t1 - t0) * 1000)
                if name == "slos":
                    measured = sum(1 for s in slo_status(agent)["slos"] if s["measurement"]["measured"])
                    samples.setdefault("measured", []).append(measured)
            finally:
                agent.stop()
            print(f"  cpu round {round_ + 1}/{CPU_ROUNDS} {name}: {samples[name][-1]:.2f} ms/s", file=sys.stderr)
    idle, slos = statistics.median(samples["idle"]), statistics.median(samples["slos"])
    return {"idle_ms_per_s": idle, "slos_ms_per_s": slos, "ratio": slos / idle if idle > 0 else float("inf"),
            # ms/s spread over 1000 SLOs is us per SLO per second.
            "per_slo_us_per_s": slos - idle, "measured_slos": samples.get("measured"),
            "samples": samples}


def run():
    require("SLO", CPU_HOG)
    with tempfile.TemporaryDirectory(prefix="syncscope-slo-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        trips = trip_latencies(workdir)
        cpu = cpu_cost(workdir)
    return {"trips": trips, "cpu": cpu,
            "ratios": {"delivery_p50_vs_bare_post": trips["delivery_ms"]["p50"] / trips["bare_post_ms"]["p50"],
                       "cpu_1000_slos_vs_idle": cpu["ratio"]}}


def report(result):
    t, c = result["trips"], result["cpu"]
    return "\n".join([
        f"slo: threshold crossing → signed circuit.open received, {t['trips']} trips",
        f"  delivery (evaluation → received)  p50 {t['delivery_ms']['p50']:.1f} ms  p99 {t['delivery_ms']['p99']:.1f} ms"
        f"   anchor: bare POST p50 {t['bare_post_ms']['p50']:.2f} ms  "
        f"({result['ratios']['delivery_p50_vs_bare_post']:.1f}x)",
        f"  detection (hogs start → received) p50 {t['detection_s']['p50']:.2f} s  p99 {t['detection_s']['p99']:.2f} s"
        "   (includes min_events and the 1 s evaluation tick)",
        "slo: agent CPU, 1000 SLOs evaluated every second vs no SLOs (sched + locks on in both)",
        f"  idle {c['idle_ms_per_s']:.2f} ms/s   1000 SLOs {c['slos_ms_per_s']:.2f} ms/s   ratio {c['ratio']:.2f}x"
        f"   ≈ {c['per_slo_us_per_s']:.2f} us per SLO per second; SLOs measured: {c['measured_slos']}",
    ])


def summary(result):
    t, c = result["trips"], result["cpu"]
    return [
        ("delivery ms p50 (evaluation → webhook), vs bare POST", t["delivery_ms"]["p50"], t["bare_post_ms"]["p50"],
         result["ratios"]["delivery_p50_vs_bare_post"], "< 2000 (+ <= 1 s tick)"),
        ("delivery ms p99", t["delivery_ms"]["p99"], t["bare_post_ms"]["p99"], None, "< 2000 (+ <= 1 s tick)"),
        ("detection s p50 (hogs start → webhook)", t["detection_s"]["p50"], None, None, ""),
        ("agent CPU ms/s, 1000 SLOs vs none", c["slos_ms_per_s"], c["idle_ms_per_s"], c["ratio"], ""),
    ]


if __name__ == "__main__":
    sys.exit(common.main("slo", run, report))
