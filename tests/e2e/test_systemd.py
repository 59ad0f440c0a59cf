"""config/syncscope.service and running without root.

- `systemd-analyze verify` is clean and `systemd-analyze security` rates the
  unit's exposure ≤ 3.0. Both run on the unit file (offline): the unit is not
  installed here, and on these machines systemd is not PID 1 at all.
- The agent runs as an unprivileged user holding exactly the unit's
  capabilities (setpriv, the way systemd's AmbientCapabilities= grants them):
  it attaches its programs and serves /metrics.
- Without CAP_BPF it exits non-zero and names the capability.
"""

import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import REPO, SYNCSCOPE, free_port, have, wait_until

UNIT = REPO / "config" / "syncscope.service"
NEEDED = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}
MAX_EXPOSURE = 3.0
NOBODY = 65534


def unit_settings():
    settings = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.fixture
def installed_unit(tmp_path):
    """The unit as `make install` writes it, pointing at the binary under test."""
    if not have("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    path = tmp_path / "syncscope.service"
    path.write_text(UNIT.read_text().replace("/usr/local/bin/syncscope", str(SYNCSCOPE)))
    if not pathlib.Path("/run/systemd/system").exists():
        print("systemd is not PID 1 here: verifying and rating the unit file offline")
    return path


def test_unit_verifies_clean(installed_unit):
    result = subprocess.run(["systemd-analyze", "verify", str(installed_unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Clean: no warnings about the unit at all (unknown keys, bad values, missing binary).
    complaints = [l for l in result.stderr.splitlines() if "syncscope.service" in l]
    assert not complaints, "\n".join(complaints)


def test_unit_security_exposure(installed_unit):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(installed_unit)],
                            capture_output=True, text=True)
    m = re.search(r"Overall exposure level for syncscope\.service:\s*([0-9.]+)", result.stdout)
    assert m, result.stdout + result.stderr
    exposure = float(m.group(1))
    print(f"systemd-analyze security: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, result.stdout


def test_unit_grants_exactly_the_needed_capabilities():
    s = unit_settings()
    assert s["Type"] == ["notify"]
    assert set(s["CapabilityBoundingSet"][0].split()) == NEEDED
    assert set(s["AmbientCapabilities"][0].split()) == NEEDED
    assert s["SystemCallFilter"] == ["@system-service bpf perf_event_open"]
    assert s["ProtectSystem"] == ["strict"] and s["StateDirectory"] == ["syncscope"]
    assert s["ConfigurationDirectory"] == ["syncscope"] and s["LimitMEMLOCK"] == ["infinity"]
    assert s["ExecStart"][0].split()[:2] == ["/usr/local/bin/syncscope", "agent"]
    # The agent's default state_dir is the StateDirectory.
    default = (REPO / "config" / "default.yaml").read_text()
    assert re.search(r"^state_dir: /var/lib/syncscope$", default, re.M)


def setpriv_command(caps, config, log):
    lowered = ",".join("+" + c.removeprefix("CAP_").lower() for c in sorted(caps))
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps=-all,{lowered}", f"--ambient-caps=-all,{lowered}", f"--bounding-set=-all,{lowered}",
            "--", str(SYNCSCOPE), "agent", "--config", str(config)]


@pytest.fixture
def unprivileged_dir():
    if not have("setpriv"):
        pytest.skip("setpriv is not installed (Debian package util-linux)")
    # A directory the unprivileged user can reach (pytest's tmp_path is under /tmp/pytest-of-root, 0700).
    directory = pathlib.Path(tempfile.mkdtemp(prefix="syncscope-nonroot-"))
    os.chmod(directory, 0o755)
    state = directory / "state"
    state.mkdir()
    os.chown(state, NOBODY, NOBODY)
    # The binary must be reachable by the user: every directory above it must be searchable.
    for parent in SYNCSCOPE.parents:
        if not os.stat(parent).st_mode & 0o001:
            shutil.rmtree(directory)
            pytest.skip(f"{parent} is not searchable by other users: cannot run {SYNCSCOPE} as nobody")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def write_config(directory, port):
    config = directory / "syncscope.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nstate_dir: {directory / 'state'}\n"
                      "cachelines: { enabled: false }\n")
    os.chmod(config, 0o644)
    return config


def capabilities_of(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return int(fields["Uid"].split()[0]), int(fields["CapEff"], 16)


def test_agent_runs_unprivileged_with_the_unit_capabilities(unprivileged_dir):
    port = free_port()
    config = write_config(unprivileged_dir, port)
    log_path = unprivileged_dir / "agent.log"
    with open(log_path, "w") as log:
        agent = subprocess.Popen(setpriv_command(NEEDED, config, log), stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def ready():
            assert agent.poll() is None, f"agent exited with {agent.returncode}:\n{log_path.read_text()}"
            return requests.get(url + "/healthz", timeout=1).status_code == 200
        wait_until(ready, timeout=40, what="unprivileged agent /healthz")

        uid, effective = capabilities_of(agent.pid)
        assert uid == NOBODY
        bits = {"CAP_DAC_READ_SEARCH": 2, "CAP_SYS_PTRACE": 19, "CAP_PERFMON": 38, "CAP_BPF": 39}
        assert effective == sum(1 << bits[c] for c in NEEDED), f"CapEff {effective:#x}"

        probes = requests.get(url + "/debug/probes", timeout=5).json()
        assert not probes["features"]["missing_capabilities"], probes["features"]
        sched = probes["collectors"]["sched"]
        assert sched["attached"], sched
        # Real data: run-queue events from every process on the host, not only nobody's.
        def runq_count():
            text = requests.get(url + "/metrics", timeout=5).text
            m = re.search(r'^syncscope_runq_latency_seconds_count\{cgroup="/"\} (\S+)$', text, re.M)
            return m and float(m.group(1)) > 0 and text
        text = wait_until(runq_count, timeout=20, what="run-queue events seen by the unprivileged agent")
        assert re.search(r'^syncscope_collector_up\{collector="sched"\} 1$', text, re.M), text
        assert re.search(r'^syncscope_collector_up\{collector="locks"\} 1$', text, re.M), \
            "locks collector has no probe attached without root:\n" + log_path.read_text()[-3000:]
    finally:
        agent.terminate()
        try:
            assert agent.wait(timeout=30) == 0, log_path.read_text()[-3000:]
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()


def test_agent_names_the_missing_capability(unprivileged_dir):
    port = free_port()
    config = write_config(unprivileged_dir, port)
    started = time.monotonic()
    result = subprocess.run(setpriv_command(NEEDED - {"CAP_BPF"}, config, None), capture_output=True, text=True,
                            timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "missing capability CAP_BPF" in output, output
    assert time.monotonic() - started < 60


def test_agent_speaks_the_notify_protocol(tmp_path):
    """Type=notify without systemd: the test is the service manager. The agent
    must send READY=1 (with STATUS=) only once /metrics answers, WATCHDOG=1
    within WatchdogSec/2, and STOPPING=1 on SIGTERM."""
    import signal
    import socket
    directory = pathlib.Path(tempfile.mkdtemp(prefix="syncscope-notify-"))
    notify_path = directory / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(1.0)
    port = free_port()
    config = directory / "syncscope.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\nstate_dir: {directory / 'state'}\n"
                      "locks: { enabled: false }\ncachelines: { enabled: false }\n")
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="2000000")
    log_path = directory / "agent.log"
    with open(log_path, "w") as log:
        agent = subprocess.Popen([str(SYNCSCOPE), "agent", "--config", str(config)], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
    messages = []
    try:
        def receive_until(word, timeout):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    message = sock.recv(4096).decode()
                except socket.timeout:
                    assert agent.poll() is None, log_path.read_text()
                    continue
                messages.append(message)
                if word in message.split("\n"):
                    return message
            raise AssertionError(f"no {word} in {messages}:\n{log_path.read_text()}")

        ready = receive_until("READY=1", 40)
        # READY=1 comes after the port is bound: a scrape works right away.
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
        assert re.search(r"^STATUS=\d+ probes attached; serving 127\.0\.0\.1:\d+$", ready, re.M), ready
        receive_until("WATCHDOG=1", 5)
        agent.send_signal(signal.SIGTERM)
        receive_until("STOPPING=1", 30)
        assert agent.wait(timeout=30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)
