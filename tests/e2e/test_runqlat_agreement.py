"""`syncscope trace runqlat` agrees with libbpf-tools runqlat (Debian package
libbpf-tools) attached at the same time to the same workload: total counts
within 3 %, medians in the same power-of-two bucket."""

import json
import re
import signal
import subprocess

import pytest

from conftest import SYNCSCOPE, have


def median_row(rows):
    total = sum(count for _, _, count in rows)
    seen = 0
    for low, high, count in rows:
        seen += count
        if seen * 2 >= total:
            return low, high
    raise AssertionError("empty histogram")


def parse_runqlat(text):
    rows = [(int(low), int(high), int(count))
            for low, high, count in re.findall(r"^\s*(\d+) -> (\d+)\s*: (\d+)\s", text, re.M)]
    assert rows, f"no histogram in runqlat output:\n{text}"
    return rows


@pytest.mark.parametrize("hogs", [0, 2])
def test_agrees_with_libbpf_tools_runqlat(workloads, hogs):
    if not have("runqlat"):
        pytest.fail("libbpf-tools runqlat is missing: `make deps` installs it")
    crowd = [workloads("cpu_hog", 2) for _ in range(hogs)]
    for c in crowd:
        c.wait_for("ready")
    sleeper = workloads("sleeper", 3000, 300)
    sleeper.wait_for("ready")
    pid = str(sleeper.pid)

    anchor = subprocess.Popen(["runqlat", "-p", pid], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ours = subprocess.Popen([str(SYNCSCOPE), "trace", "runqlat", "-p", pid, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Tracing run queue latency" in anchor.stdout.readline()
        assert "Tracing run queue latency" in ours.stderr.readline()
        sleeper.send("go\n")
        sleeper.wait_for("done", timeout=60)
        for p in (anchor, ours):
            p.send_signal(signal.SIGINT)
        anchor_out, _ = anchor.communicate(timeout=30)
        ours_out, ours_err = ours.communicate(timeout=30)
    finally:
        for p in (anchor, ours):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert ours.returncode == 0, ours_err

    anchor_rows = parse_runqlat(anchor_out)
    report = json.loads(ours_out.strip().splitlines()[-1])
    assert report["unit"] == "usecs"
    our_rows = [(b["low"], b["high"], b["count"]) for b in report["buckets"]]
    anchor_total = sum(c for _, _, c in anchor_rows)
    our_total = report["total"]
    assert sum(c for _, _, c in our_rows) == our_total
    assert anchor_total >= 3000
    assert abs(our_total - anchor_total) <= 0.03 * anchor_total, (our_total, anchor_total)
    assert median_row(our_rows) == median_row(anchor_rows), (our_rows, anchor_rows)
