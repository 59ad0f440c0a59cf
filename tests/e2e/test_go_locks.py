"""Go mutex contention end to end: `syncscope trace locks -p PID --json` on
tests/workloads/go/gomutex (and its stripped copy), in agreement with Go's own
mutex profile of the same run (runtime.SetMutexProfileFraction(1), read with
`go tool pprof -traces`); and the running agent's lock metrics with kind
go_mutex.

Go's profile records the delay at Unlock, attributed to the unlocker's stack,
while the agent times each waiter in lockSlow (and records the unlocker's
stack separately, as holder stacks from unlockSlow): the totals differ by design
(the profile counts only waits that ended in a handoff through the
semaphore), so the comparison is on which mutex and which call site
dominate, not on nanoseconds."""

import json
import re
import shutil
import subprocess
import time

import pytest
import requests

from conftest import BUILD, LOCK_HINTS_ONLY_CONFIG, SYNCSCOPE, wait_for_line, wait_until

GOMUTEX = BUILD / "workloads" / "gomutex"
ADDR = re.compile(r"^(\w+)=(0x[0-9a-f]+)$")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_tool():
    go = shutil.which("go")
    if not go:
        pytest.fail("go is missing: `make deps` installs golang-go")
    return go


def start_gomutex(binary, *args):
    """Started with -wait: it contends once go() is called (after the tracer attached)."""
    p = subprocess.Popen([str(binary), "-wait", *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, bufsize=1)
    addrs = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            raise AssertionError(f"{binary} exited before ready")
        m = ADDR.match(line.strip())
        if m:
            addrs[m.group(1)] = int(m.group(2), 16)
        if line.strip() == "ready":
            return p, addrs
    p.kill()
    raise AssertionError("gomutex never said ready")


def go(process):
    process.stdin.write("go\n")
    process.stdin.flush()


def pprof_traces(profile):
    """[(seconds, [function, …])] from `go tool pprof -traces`, innermost first."""
    out = subprocess.run([go_tool(), "tool", "pprof", "-traces", str(profile)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    traces = []
    for block in re.split(r"^-+\+-+$", out, flags=re.M)[1:]:
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        m = re.match(r"\s*([\d.]+)(ns|us|µs|ms|s|m|h)\s+(\S.*)$", lines[0])
        if not m:
            continue
        functions = [m.group(3).strip()] + [line.strip() for line in lines[1:]]
        traces.append((float(m.group(1)) * UNITS[m.group(2)], functions))
    return traces


def call_site(functions):
    """The first function that is not sync or runtime machinery."""
    for f in functions:
        f = f.removesuffix(" (inline)")
        if not (f.startswith("sync.") or f.startswith("runtime.") or f.startswith("internal/sync.")):
            return f
    return None


def trace_gomutex(binary, tmp_path, *extra):
    profile = tmp_path / "mutex.pprof"
    w, addrs = start_gomutex(binary, "-duration", "4s", "-goroutines", "8", "-light", "-pprof", profile, *extra)
    ours = subprocess.Popen([str(SYNCSCOPE), "trace", "locks", "-p", str(w.pid), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(ours.stderr, "Tracing lock contention")
        go(w)
        out, err = ours.communicate(timeout=90)  # ends when the workload exits
        assert w.wait(timeout=30) == 0
    finally:
        for p in (ours, w):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert ours.returncode == 0, err
    return json.loads(out), addrs, profile


@pytest.mark.parametrize("stripped", [False, True], ids=["symbols", "stripped"])
def test_trace_json_reports_the_go_mutex_and_agrees_with_pprof(tmp_path, stripped):
    binary = GOMUTEX.with_name("gomutex.stripped") if stripped else GOMUTEX
    report, addrs, profile = trace_gomutex(binary, tmp_path)
    assert report["target_exited"] is True
    assert "Go mutex uprobes" in report["sources"], report["sources"]
    go_locks = [lock for lock in report["locks"] if lock["kind"] == "go_mutex"]
    assert go_locks, json.dumps(report, indent=1)[:4000]
    by_addr = {int(lock["lock"], 16): lock for lock in go_locks}
    main = addrs["mutex_addr"]
    assert main in by_addr, f"{main:#x} not in {list(map(hex, by_addr))}"
    lock = by_addr[main]
    assert lock["lock"] == f"{main:#x}"
    assert lock["contentions"] > 10 and lock["wait_total_ns"] >= lock["wait_max_ns"] > 0
    frames = [f["symbol"] for f in lock["waiter_stacks"][0]["frames"]]
    assert "main.contendMutex" in frames, frames
    assert lock["caller"].startswith("main.contendMutex+0x"), lock["caller"]
    if not stripped:
        assert lock["symbol"] == "main.contended"  # a global, named from .symtab
    # The lightly contended second mutex, if it contended at all, waited less.
    if addrs["light_addr"] in by_addr:
        assert by_addr[addrs["light_addr"]]["wait_total_ns"] < lock["wait_total_ns"]

    # Go's own view of the same run: the dominating mutex call site.
    traces = pprof_traces(profile)
    assert traces, "Go wrote an empty mutex profile"
    by_site = {}
    for seconds, functions in traces:
        site = call_site(functions)
        by_site[site] = by_site.get(site, 0.0) + seconds
    go_top = max(by_site, key=by_site.get)
    ours_top = max(go_locks, key=lambda entry: entry["wait_total_ns"])
    assert int(ours_top["lock"], 16) == main
    assert go_top == "main.contendMutex", by_site
    assert ours_top["caller"].split("+")[0] == go_top, (ours_top["caller"], by_site)

    # The holder side (unlockSlow's uprobe): the unlocker's stack, which is
    # what Go's profile records, so the dominating release site agrees too.
    assert lock["wakes"] > 0 and lock["holder_stacks"], json.dumps(lock, indent=1)[:4000]
    releases = {}
    for stack in lock["holder_stacks"]:
        site = call_site([frame["symbol"] for frame in stack["frames"]])
        releases[site] = releases.get(site, 0) + stack["count"]
    assert max(releases, key=releases.get) == go_top, (releases, by_site)


def test_agent_exports_go_mutex_metrics(start_agent):
    agent = start_agent(f"sched: {{ enabled: false }}\nlocks: {{ top_k: 5, targets: [{{ exe: {GOMUTEX} }}] }}\n")
    w, addrs = start_gomutex(GOMUTEX, "-duration", "6s", "-goroutines", "8")
    try:
        def probes_attached():
            locks = requests.get(agent.url + "/debug/probes", timeout=5).json()["collectors"]["locks"]
            rows = [row for row in locks["attached"] if row["program"].startswith("go_lock")]
            return rows or None
        rows = wait_until(probes_attached, timeout=15, what="Go lock uprobes attached for the new target")
        assert any(row["target"].endswith(":sync.(*Mutex).lockSlow") for row in rows), rows
        # No holder-side trap in the agent: its metrics carry no stacks.
        locks = requests.get(agent.url + "/debug/probes", timeout=5).json()["collectors"]["locks"]
        assert not [row for row in locks["attached"] if row["program"] == "go_unlock_entry"], locks["attached"]
        go(w)

        series = f'process="gomutex[{w.pid}]",lock="{addrs["mutex_addr"]:#x}",symbol="main.contended"'

        def exported():
            text = agent.metrics().text
            return series in text and re.search(r'syncscope_lock_contentions_total\{cgroup="[^"]+",kind="go_mutex"\} '
                                                r'[1-9]', text) and text
        text = wait_until(exported, timeout=20, what="the Go mutex in the lock metrics")
        assert re.search(r'syncscope_lock_wait_seconds_bucket\{cgroup="[^"]+",kind="go_mutex",le="', text)
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
        assert w.wait(timeout=30) == 0
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    assert agent.process.poll() is None


def test_agent_finds_go_mutexes_sharing_a_cache_line(start_agent):
    """No cache-line targets: the only candidates are the contended locks the
    locks collector sees, here two Go mutexes on one line (gomutex -pair),
    each contended by its own two goroutines wired to their OS threads. The
    Go lock probes' hints (origin go_mutex) bring the line under the
    watchpoints, which find each mutex's state word written by its own
    threads only: false sharing, named after the Go global."""
    agent = start_agent(LOCK_HINTS_ONLY_CONFIG)
    w, addrs = start_gomutex(GOMUTEX, "-pair", "-duration", "60s", "-hold", "20us")
    try:
        go(w)
        expected = (f'process="gomutex[{w.pid}]",line="{addrs["pair_line"]:#x}",symbol="main.pairs",'
                    'verdict="false_sharing"')

        def exported():
            text = agent.metrics().text
            return text if expected in text else None
        text = wait_until(exported, timeout=45, what="the Go mutex pair's line in /metrics")
        # Both mutexes were contended, and each is its own lock row.
        for addr in (addrs["pair_addr"], addrs["pair_addr"] + 8):
            assert f'process="gomutex[{w.pid}]",lock="{addr:#x}"' in text, addr
    finally:
        w.kill()
        w.wait()
