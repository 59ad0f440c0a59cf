"""`syncscope trace goroutines` and the agent's goroutine metrics end to end,
against tests/workloads/go/goleak (and its stripped copy), which leaks
goroutines from main.leakBatch and prints its own runtime.NumGoroutine() —
the anchor the counts are compared with."""

import json
import re
import signal
import subprocess

import pytest

from conftest import SYNCSCOPE, have, wait_until

LEAKED = 300


def start_leak(workloads, name):
    """goleak leaking LEAKED goroutines, then quiet; returns (workload, its own count)."""
    w = workloads(name, "-rate", 300, "-interval", "200ms", "-duration", "0", "-max", LEAKED)
    w.wait_for("ready")
    base = int(w.wait_for("goroutines=").split("=")[1])
    while int(w.wait_for("goroutines=").split("=")[1]) < base + LEAKED:
        pass
    w.process.send_signal(signal.SIGUSR1)
    own = int(w.wait_for("goroutines=").split("=")[1])
    return w, own


def trace(*args):
    return subprocess.run([str(SYNCSCOPE), "trace", "goroutines", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("name", ["goleak", "goleak.stripped"])
def test_json_counts_match_numgoroutine_and_name_the_leak(workloads, name):
    w, own = start_leak(workloads, name)
    out = trace("-p", w.pid, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert abs(report["total"] - own) <= 2, (report["total"], own)
    assert isinstance(report["by_state"], dict)
    assert sum(report["by_state"].values()) == report["total"]
    assert report["by_state"]["waiting_chan"] >= LEAKED
    top = report["top_creators"]
    assert isinstance(top, list) and top
    assert top[0] == {"function": "main.leakBatch", "count": LEAKED}

    table = trace("-p", w.pid)
    assert table.returncode == 0, table.stderr
    assert re.search(r"main\.leakBatch\s+%d" % LEAKED, table.stdout), table.stdout
    assert re.search(r"waiting_chan\s+\d+", table.stdout)


def test_errors_name_the_process(workloads):
    sleeper = workloads("sleeper", 1, 1000)
    out = trace("-p", sleeper.pid)
    assert out.returncode != 0
    assert f"process {sleeper.pid}" in out.stderr and "not a Go program" in out.stderr, out.stderr

    w = workloads("goleak", "-duration", "0")
    w.wait_for("ready")
    pid = w.pid
    w.stop()
    out = trace("-p", pid, "--json")
    assert out.returncode == 2
    assert f"process {pid}" in out.stderr and ("exited" in out.stderr or "does not exist" in out.stderr), out.stderr


def metric_value(text, name, **labels):
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_agent_exports_goroutine_metrics(start_agent, workloads, tmp_path):
    w, own = start_leak(workloads, "goleak.stripped")
    agent = start_agent(
        "sched: { enabled: false }\nlocks: { enabled: false }\ncachelines: { enabled: false }\n"
        f"golang: {{ enabled: true, targets: [{{ pid: {w.pid} }}], top_k: 3, scan_interval: 500ms }}\n")
    with open(f"/proc/{w.pid}/comm") as f:
        process = f"{f.read().strip()}[{w.pid}]"

    def scraped():
        text = agent.metrics().text
        value = metric_value(text, "syncscope_goroutines_by_creator", process=process, function="main.leakBatch")
        return text if value == LEAKED else None

    text = wait_until(scraped, timeout=30, what="syncscope_goroutines_by_creator for main.leakBatch")
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("syncscope_goroutines{") and f'process="{process}"' in line)
    assert abs(total - own) <= 2, (total, own)
    assert metric_value(text, "syncscope_goroutines", process=process, state="waiting_chan") >= LEAKED
    assert metric_value(text, "syncscope_goroutines_created_total", process=process) >= own
    assert metric_value(text, "syncscope_goroutines_by_creator", process=process, function="other") is not None
    assert "# TYPE syncscope_goroutines gauge" in text
    assert "# TYPE syncscope_goroutines_created_total counter" in text
    if have("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert "error" not in (check.stdout + check.stderr).lower(), check.stdout + check.stderr
