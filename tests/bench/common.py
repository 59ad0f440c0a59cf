"""What every benchmark under tests/bench needs: where the build is, a root
and built-files check, a free loopback port, a process's CPU time, and the
agent under measurement (started on a config of the benchmark's choosing,
stopped and reaped whatever happens)."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("SYNCSCOPE_BUILD", REPO / "build"))
SYNCSCOPE = BUILD / "syncscope"


def require(what, *paths):
    """Raises RuntimeError (the benchmarks' way to refuse) unless root and every path exists."""
    if os.geteuid() != 0:
        raise RuntimeError(f"the {what} benchmark attaches BPF programs: run it as root")
    for path in (SYNCSCOPE, *paths):
        if not pathlib.Path(path).exists():
            raise RuntimeError(f"{path} is missing: run `make all workloads` first")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """CPU time of process `pid`: the sum of its threads' schedstat run time
    (nanoseconds; an idle agent uses well under one 10 ms clock tick per
    second), else utime + stime from /proc/PID/stat."""
    total_ns, found = 0, False
    try:
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[0])
                found = True
            except (OSError, ValueError, IndexError):  # the thread exited while we looked
                pass
    except OSError:
        pass
    if found:
        return total_ns / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(process, sig=signal.SIGTERM, timeout=10):
    """Signals, waits, kills if it will not go; a no-op for a process already reaped."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Agent:
    """`syncscope agent` for one benchmark phase, in its own directory
    workdir/NAME (config, state, log). `config_text` (YAML) gets `listen` and
    `state_dir` put in front of it; None runs the embedded default config with
    only the listen address moved. The constructor returns once `ready(agent)`
    is true (default: /healthz answers) and stops the agent if it never is."""

    def __init__(self, workdir, config_text, name="agent", ready=None, timeout=60):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = pathlib.Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "agent.log"
        if config_text is None:
            args = ["--listen", f"127.0.0.1:{self.port}"]
        else:
            config = self.dir / "syncscope.yaml"
            config.write_text(f"listen: 127.0.0.1:{self.port}\nstate_dir: {self.dir / 'state'}\n" + config_text)
            args = ["--config", str(config)]
        self.log = open(self.log_path, "a")
        self.started = time.monotonic()
        self.process = subprocess.Popen([str(SYNCSCOPE), "agent", *args], stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=self.dir)
        self.pid = self.process.pid
        try:
            self._wait(ready or Agent.healthy, timeout)
        except BaseException:
            self.stop()
            raise

    def _wait(self, ready, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited with {self.process.returncode}: see {self.log_path}")
            try:
                if ready(self):
                    return
            except OSError:  # not listening yet
                pass
            time.sleep(0.1)
        raise RuntimeError(f"agent not ready within {timeout} s: see {self.log_path}")

    def get(self, path, timeout=1):
        return urllib.request.urlopen(self.url + path, timeout=timeout).read().decode()

    def get_json(self, path, timeout=5):
        return json.loads(self.get(path, timeout))

    def healthy(self):
        return urllib.request.urlopen(self.url + "/healthz", timeout=1).status == 200

    def probes(self, collector):
        """/debug/probes for one collector ({} until it has started)."""
        return self.get_json("/debug/probes")["collectors"].get(collector, {})

    def cpu_seconds(self):
        return cpu_seconds(self.pid)

    def stop(self):
        stop_process(self.process)
        self.log.close()


def main(name, run, report):
    """What `python3 tests/bench/NAME.py [--json]` does: run, print the
    report (and the whole result with --json); 1 when the benchmark refused."""
    try:
        result = run()
    except RuntimeError as e:
        print(f"{name} benchmark: {e}", file=sys.stderr)
        return 1
    print(report(result))
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2, default=str))
    return 0
