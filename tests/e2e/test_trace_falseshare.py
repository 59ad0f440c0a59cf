"""False sharing end to end: `syncscope trace falseshare --json` on workloads
with known answers (tests/workloads/falseshare.cpp), and the running agent's
cache-line metrics and /debug/probes rows — on this machine without a PMU,
so through hardware watchpoints."""

import json
import re
import signal
import subprocess

import requests

from conftest import LOCK_HINTS_ONLY_CONFIG, SYNCSCOPE, wait_until

GLOBAL = re.compile(r"global name=(\S+) addr=(0x[0-9a-f]+) size=\d+ line=(0x[0-9a-f]+)")


def start_falseshare(workloads, mode, threads=2):
    """Starts the workload, returns (workload, {name: line address}, [tids])."""
    w = workloads("falseshare", mode, threads, 0, 500)
    w.wait_for("ready")
    lines = {}
    while True:
        line = w.process.stdout.readline()
        m = GLOBAL.search(line)
        if m:
            lines[m.group(1)] = int(m.group(3), 16)
        if line.startswith("region"):
            break
    w.send("go\n")
    tids = [int(w.wait_for("thread").split("tid=")[1]) for _ in range(threads)]
    return w, lines, sorted(tids)


def trace(pid, *args, timeout=90):
    r = subprocess.run([str(SYNCSCOPE), "trace", "falseshare", "-p", str(pid), *args],
                       capture_output=True, text=True, timeout=timeout)
    return r


def line_entry(report, address):
    for entry in report["lines"]:
        if int(entry["line"], 16) == address:
            return entry
    return None


def test_json_names_the_false_sharing_struct(workloads):
    w, lines, tids = start_falseshare(workloads, "false_sharing")
    r = trace(w.pid, "-d", "8", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert "watchpoints" in report["path"]
    assert report["pmu_available"] is False
    assert report["windows"] > 0
    assert report["watched_fraction"] <= report["duty_cycle"] + 1e-6
    entry = line_entry(report, lines["g_false_shared"])
    assert entry, f"g_false_shared's line not reported: {json.dumps(report['lines'], indent=1)}"
    assert entry["line"] == hex(lines["g_false_shared"])
    assert entry["symbol"] == "g_false_shared"
    assert entry["verdict"] == "false_sharing"
    assert "alignas(64)" in entry["fix"]
    offsets = {o["offset"]: o for o in entry["offsets"]}
    assert sorted(offsets) == [0, 8]
    for o in offsets.values():
        assert o["threads"] == 1 and o["writes"] > 0
    assert sorted(offsets[0]["tids"] + offsets[8]["tids"]) == tids
    # The banner went to stderr: stdout is exactly one JSON object.
    assert "Tracing cache lines" in r.stderr


def test_json_reports_nothing_for_the_padded_twin(workloads):
    w, lines, _ = start_falseshare(workloads, "padded")
    r = trace(w.pid, "-d", "8", "--json", "--all")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    padded = [line_entry(report, lines["g_padded"]), line_entry(report, lines["g_padded"] + 64)]
    # Both lines were watched (with --all the unshared ones are listed) ...
    assert all(padded), json.dumps(report["lines"], indent=1)
    assert all(e["verdict"] == "none" for e in padded)
    assert all(e["hits"] > 0 for e in padded)
    # ... and without --all nothing is reported at all.
    r = trace(w.pid, "-d", "4", "--json")
    assert json.loads(r.stdout)["lines"] == []


def test_true_sharing_and_the_table(workloads):
    w, lines, _ = start_falseshare(workloads, "true_sharing")
    r = trace(w.pid, "-d", "10")
    assert r.returncode == 0, r.stderr
    assert "g_true_shared  true_sharing" in r.stdout, r.stdout
    assert "shard it per thread" in r.stdout
    assert "no hardware PMU" in r.stdout


def test_watch_narrows_the_search(workloads):
    w, lines, _ = start_falseshare(workloads, "false_sharing")
    r = trace(w.pid, "-d", "4", "--json", "--all", "--watch", "g_padded")
    report = json.loads(r.stdout)
    assert report["lines"], "the named symbol's lines are watched"
    assert {e["symbol"] for e in report["lines"]} == {"g_padded"}
    assert line_entry(report, lines["g_false_shared"]) is None


def test_bad_pid_is_a_usage_error():
    r = trace(4000000, "-d", "1")
    assert r.returncode == 2
    assert "does not exist" in r.stderr


def test_agent_exports_the_line_and_says_which_path_is_active(start_agent, workloads):
    w, lines, _ = start_falseshare(workloads, "false_sharing")
    agent = start_agent(f"""
sched: {{ enabled: false }}
locks: {{ enabled: false }}
cachelines:
  enabled: true
  targets: [{{ pid: {w.pid} }}]
  watch: {{ window_ms: 20, duty_cycle: 0.05 }}
""")
    expected = f'line="{hex(lines["g_false_shared"])}",symbol="g_false_shared",verdict="false_sharing"'

    def exported():
        text = agent.metrics().text
        return text if expected in text else None
    text = wait_until(exported, timeout=30, what="the false-sharing line in /metrics")
    assert re.search(r'^syncscope_false_sharing_lines\{cgroup="[^"]+"\} 1$', text, re.M), text
    assert re.search(r"^syncscope_pmu_available 0$", text, re.M)
    assert re.search(r"^syncscope_cacheline_watch_windows_total [1-9]", text, re.M)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    probes = requests.get(agent.url + "/debug/probes", timeout=5).json()
    cachelines = probes["collectors"]["cachelines"]
    assert "no hardware PMU" in cachelines["summary"]
    assert "hardware watchpoints" in cachelines["summary"]
    attached = {row["program"]: row for row in cachelines["attached"]}
    not_attached = {row["program"]: row for row in cachelines["not_attached"]}
    assert "cacheline_watch_hit" in attached
    assert "no hardware PMU" in not_attached["cacheline_mem_sample"]["reason"]
    assert "no hardware PMU" in not_attached["cacheline_cache_misses"]["reason"]
    checks = {c["name"]: c for c in probes["features"]["checks"]}
    assert "no hardware PMU" in checks["cacheline_path"]["detail"]


def test_agent_watches_lines_the_locks_collector_hints(start_agent, workloads):
    """No cache-line targets: the only candidates are the contended locks the
    locks collector sees. Two threads per mutex contend (futex waits), and the
    two mutexes share one line."""
    agent = start_agent(LOCK_HINTS_ONLY_CONFIG)
    w, lines, _ = start_falseshare(workloads, "mutexes", threads=4)
    expected = f'line="{hex(lines["g_mutex_pair"])}",symbol="g_mutex_pair",verdict="false_sharing"'

    def exported():
        text = agent.metrics().text
        return text if expected in text else None
    wait_until(exported, timeout=45, what="the hinted mutex line in /metrics")


def test_sighup_turns_the_cacheline_collector_on_and_off(start_agent, workloads):
    w, lines, _ = start_falseshare(workloads, "false_sharing")
    agent = start_agent("sched: { enabled: false }\nlocks: { enabled: false }\ncachelines: { enabled: false }\n")

    def probes():
        return requests.get(agent.url + "/debug/probes", timeout=5).json()["collectors"]["cachelines"]
    assert probes()["summary"] == "disabled in config"
    agent.write_config(f"""
sched: {{ enabled: false }}
locks: {{ enabled: false }}
cachelines: {{ enabled: true, targets: [{{ pid: {w.pid} }}], watch: {{ window_ms: 20, duty_cycle: 0.05 }} }}
""")
    agent.process.send_signal(signal.SIGHUP)
    expected = f'line="{hex(lines["g_false_shared"])}",symbol="g_false_shared",verdict="false_sharing"'
    wait_until(lambda: expected in agent.metrics().text, timeout=30, what="the line after the reload")
    assert any(row["program"] == "cacheline_watch_hit" for row in probes()["attached"])

    agent.write_config("sched: { enabled: false }\nlocks: { enabled: false }\ncachelines: { enabled: false }\n")
    agent.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "syncscope_cacheline_contention" not in agent.metrics().text, what="cachelines off")
    # The collector leaves the registry before its worker has stopped and the
    # probe report says so.
    wait_until(lambda: probes()["summary"] == "disabled in config", what="cachelines reported disabled")
    assert agent.process.poll() is None
