"""Fixtures for the e2e tier: the real agent binary, real Prometheus and
Alertmanager from Debian's packages, workloads from build/workloads. Every
server listens on 127.0.0.1 and every fixture stops what it started."""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("SYNCSCOPE_BUILD", REPO / "build"))
SYNCSCOPE = BUILD / "syncscope"

# An agent whose cache-line detector has no targets: the only lines it
# watches are the ones the locks collector hints (contended locks).
LOCK_HINTS_ONLY_CONFIG = """
sched: { enabled: false }
locks: { enabled: true }
cachelines:
  enabled: true
  watch: { window_ms: 20, duty_cycle: 0.05 }
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=15.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the server may not be up yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last_error}")


def wait_for_line(stream, needle, timeout=30):
    """The first line of `stream` that contains `needle`; fails with what it
    read instead. Each read blocks until the writer writes or closes."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"never saw {needle!r}; got:\n{''.join(seen)}")


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, _, after = line.partition(" - ")
            if after.split()[0] == "cgroup2":
                return before.split()[4]
    raise RuntimeError("no cgroup2 mount")


class TestCgroup:
    """A cgroup v2 group for one test, removed (after moving stragglers to the
    root) when the test ends."""

    def __init__(self, path):
        self.mount = cgroup2_mount()
        self.path = path
        self.directory = self.mount + path
        if os.path.isdir(self.directory):
            self.remove()
        os.makedirs(self.directory)
        self.id = os.stat(self.directory).st_ino

    def add(self, pid):
        with open(os.path.join(self.directory, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def remove(self):
        for _ in range(100):
            try:
                with open(os.path.join(self.directory, "cgroup.procs")) as f:
                    pids = f.read().split()
                for pid in pids:
                    try:
                        with open(os.path.join(self.mount, "cgroup.procs"), "w") as root:
                            root.write(pid)
                    except OSError:
                        pass
                os.rmdir(self.directory)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


class Agent:
    """A running `syncscope agent` with its own config, state dir and port."""

    def __init__(self, config_text, tmp_path, extra_args=()):
        self.port = free_port()
        self.state_dir = tmp_path / "state"
        self.state_dir.mkdir(exist_ok=True)
        self.config_path = tmp_path / "syncscope.yaml"
        self.write_config(config_text)
        self.log_path = tmp_path / "agent.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(SYNCSCOPE), "agent", "--config", str(self.config_path), *extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def write_config(self, config_text):
        text = config_text.replace("{port}", str(self.port)).replace("{state_dir}", str(self.state_dir))
        if "listen:" not in text:
            text = f"listen: 127.0.0.1:{self.port}\n" + text
        if "state_dir:" not in text:
            text = f"state_dir: {self.state_dir}\n" + text
        self.config_path.write_text(text)

    def wait_ready(self, timeout=30):
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"agent exited with {self.process.returncode}:\n{self.logs()}")
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        wait_until(ready, timeout=timeout, what="agent /healthz")
        return self

    def metrics(self, accept=None):
        headers = {"Accept": accept} if accept else {}
        return requests.get(self.url + "/metrics", headers=headers, timeout=5)

    def logs(self):
        self.log.flush()
        return self.log_path.read_text()

    def stop(self, sig=signal.SIGTERM, timeout=5):
        if self.log.closed:
            return self.process.returncode
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@pytest.fixture
def start_agent(tmp_path):
    agents = []

    def start(config_text="", wait=True, extra_args=()):
        directory = tmp_path / f"agent{len(agents)}"
        directory.mkdir()
        agent = Agent(config_text, directory, extra_args)
        agents.append(agent)
        return agent.wait_ready() if wait else agent

    yield start
    for agent in agents:
        agent.stop(signal.SIGKILL)


class Workload:
    """A workload from build/workloads that prints "ready pid=N" and waits for a
    line on stdin before starting (see tests/workloads/sleeper.c)."""

    def __init__(self, name, *args):
        self.process = subprocess.Popen([str(BUILD / "workloads" / name), *map(str, args)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.process.pid

    def wait_for(self, prefix, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"{self.process.args[0]} exited before printing {prefix!r}")
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"timed out waiting for {prefix!r}")

    def send(self, text):
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def workloads():
    started = []

    def start(name, *args):
        w = Workload(name, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def cgroups():
    made = []

    def make(path):
        group = TestCgroup(path)
        made.append(group)
        return group

    yield make
    for group in reversed(made):
        group.remove()


class Prometheus:
    def __init__(self, tmp_path, scrape_targets, rule_files=(), alertmanager=None):
        self.port = free_port()
        self.dir = tmp_path
        config = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s"]
        if rule_files:
            config.append("rule_files:")
            config += [f"  - {f}" for f in rule_files]
        if alertmanager:
            config += ["alerting:", "  alertmanagers:", "    - static_configs:", f"        - targets: ['{alertmanager}']"]
        config += ["scrape_configs:", "  - job_name: syncscope", "    static_configs:",
                   f"      - targets: [{', '.join(repr(t) for t in scrape_targets)}]"]
        (self.dir / "prometheus.yml").write_text("\n".join(config) + "\n")
        self.log = open(self.dir / "prometheus.log", "w")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: requests.get(self.url + "/-/ready", timeout=1).status_code == 200,
                   timeout=60, what="prometheus ready")

    def query(self, expr):
        r = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return body["data"]["result"]

    def targets(self):
        return requests.get(self.url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def start_prometheus(tmp_path):
    started = []

    def start(scrape_targets, **kwargs):
        directory = tmp_path / f"p{len(started)}"
        directory.mkdir()
        p = Prometheus(directory, scrape_targets, **kwargs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def require_root():
    if os.geteuid() != 0:
        pytest.skip("e2e tests load BPF programs: run as root")


@pytest.fixture(autouse=True)
def _root_and_binary():
    require_root()
    if not SYNCSCOPE.exists():
        pytest.fail(f"{SYNCSCOPE} is missing: run `make` first")


def have(tool):
    return shutil.which(tool) is not None
