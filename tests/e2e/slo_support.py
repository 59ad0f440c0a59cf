"""Helpers for the SLO e2e tests (tests/e2e/test_slo_*.py): a Standard
Webhooks receiver whose behaviour the test scripts, a real Alertmanager 0.25
on 127.0.0.1, CPU hogs in a test cgroup, and the agent's SLO config.

Everything started here is stopped by the fixture or context that started it."""

import base64
import calendar
import hashlib
import hmac
import http.server
import json
import os
import pathlib
import subprocess
import threading
import time

import requests

from conftest import BUILD, free_port, wait_until


def write_secret(path):
    """A fresh Standard Webhooks secret: whsec_ + base64 of 24 random bytes."""
    key = os.urandom(24)
    pathlib.Path(path).write_text("whsec_" + base64.b64encode(key).decode() + "\n")
    os.chmod(path, 0o600)
    return key


def verify_signature(key, headers, body):
    """Standard Webhooks 1.0: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>;
    the header may carry several space-separated signatures."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


class WebhookReceiver:
    """An HTTP receiver on 127.0.0.1:port. `script` is a list of behaviours
    consumed one per request ("ok", "500", "429:SECONDS", "slow:SECONDS",
    "410"); when it is empty every request gets 200. Every request is
    recorded with its arrival time, headers, body, signature check and the
    answer given. start()/stop() can be called repeatedly (down, then up)."""

    def __init__(self, key, port=None):
        self.key = key
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.script = []
        self.requests = []
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.time()
                with receiver.lock:
                    action = receiver.script.pop(0) if receiver.script else "ok"
                record = {
                    "at": arrived,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "valid": verify_signature(receiver.key, {k.lower(): v for k, v in self.headers.items()}, body),
                    "action": action,
                }
                try:
                    record["json"] = json.loads(body)
                except ValueError:
                    record["json"] = None
                with receiver.lock:
                    receiver.requests.append(record)
                status, extra = 200, {}
                if action.startswith("slow:"):
                    time.sleep(float(action.split(":")[1]))
                elif action == "500":
                    status = 500
                elif action.startswith("429:"):
                    status, extra = 429, {"Retry-After": action.split(":")[1]}
                elif action == "410":
                    status = 410
                try:
                    self.send_response(status)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the agent gave up (timeout): it retries

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
            self.server = None

    def received(self):
        with self.lock:
            return list(self.requests)

    def accepted(self):
        """Requests answered 2xx (slow ones too: they were answered, if late)."""
        return [r for r in self.received() if r["action"] == "ok" or r["action"].startswith("slow:")]

    def unique(self):
        """Deliveries deduplicated by webhook-id, as a receiver must."""
        seen = {}
        for r in self.received():
            seen.setdefault(r["headers"]["webhook-id"], r)
        return list(seen.values())


class Alertmanager:
    """prometheus-alertmanager 0.25 on 127.0.0.1 with a temporary storage dir
    and a receiver that sends nowhere; amtool queries it."""

    def __init__(self, directory):
        self.port = free_port()
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "alertmanager.yml").write_text(
            "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n"
            "receivers:\n  - name: blackhole\n")
        self.log = open(self.dir / "alertmanager.log", "w")
        self.process = subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={self.dir / 'alertmanager.yml'}",
             f"--storage.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address=", "--log.level=info"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: requests.get(self.url + "/-/ready", timeout=1).status_code == 200,
                   timeout=30, what="alertmanager ready")

    def alerts(self, **filters):
        """GET /api/v2/alerts (active alerts) filtered by label=value."""
        params = [("filter", f'{k}="{v}"') for k, v in filters.items()]
        r = requests.get(self.url + "/api/v2/alerts", params=params, timeout=5)
        r.raise_for_status()
        return r.json()

    def amtool_query(self, *matchers):
        out = subprocess.run(["amtool", f"--alertmanager.url={self.url}", "alert", "query", "-o", "json", *matchers],
                             capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            raise AssertionError(f"amtool failed: {out.stderr}")
        return json.loads(out.stdout or "[]")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Hogs:
    """cpu_hog with `threads` spinning threads, moved into `cgroup` (more
    runnable threads than CPUs: every preempted one waits in a run queue)."""

    def __init__(self, cgroup, threads=None):
        threads = threads or 4 * os.cpu_count()
        self.process = subprocess.Popen([str(BUILD / "workloads" / "cpu_hog"), str(threads)],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.startswith("ready"), line
        # Threads were created before the move; cgroup.procs moves them all.
        cgroup.add(self.process.pid)
        self.started = time.time()

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()


def slo_config(notify, hook_url=None, secret_file=None, am_url=None, page="[{ long: 20s, short: 4s, burn_rate: 5 }]",
               min_open="5s", close_after="10s", min_events=None, state_dir=None, threshold="1ms",
               hook_timeout="1s", max_backoff=None):
    """The issue's SLO, with the notifiers the test runs. Collectors other
    than sched are off: the SLO needs only run-queue latency."""
    lines = []
    if state_dir:
        lines.append(f"state_dir: {state_dir}")
    lines += [
        "sched: { enabled: true }",
        "locks: { enabled: false }",
        "golang: { enabled: false }",
        "cachelines: { enabled: false }",
        "slos:",
        "  - name: crowded-runq",
        "    target: { cgroup: /crowded }",
        f"    sli: {{ runq_latency: {{ threshold: {threshold} }} }}",
        "    objective: 99.0",
        "    window: 1h",
    ]
    if min_events is not None:
        lines.append(f"    min_events: {min_events}")
    lines += [
        "    alerting:",
        f"      page: {page}",
        f"    circuit: {{ min_open: {min_open}, close_after: {close_after}, notify: [{', '.join(notify)}] }}",
        "notifiers:",
    ]
    if hook_url:
        lines.append(f'  breaker: {{ type: webhook, url: "{hook_url}", secret_file: {secret_file}, '
                     f'timeout: {hook_timeout} }}')
    if am_url:
        lines.append(f'  am: {{ type: alertmanager, url: "{am_url}" }}')
    if max_backoff:
        lines.append(f"outbox: {{ max_backoff: {max_backoff} }}")
    return "\n".join(lines) + "\n"


def parse_rfc3339(text):
    """"2027-01-15T08:00:00.123Z" → unix seconds."""
    whole = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return whole + (float(text[19:-1]) if text[19:20] == "." else 0.0)


def slo_status(agent):
    r = requests.get(agent.url + "/debug/slo", timeout=5)
    r.raise_for_status()
    return r.json()


def metric_value(agent, name, **labels):
    """The value of one sample from /metrics, or None."""
    text = agent.metrics().text
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return None


def check_circuit_body(body, expected_type=None):
    """The webhook body schema (README "Circuit webhooks")."""
    for key in ("type", "sequence", "circuit", "slo", "target", "reason", "burn_rates", "error_budget_remaining",
                "open_until", "evidence", "timestamp"):
        assert key in body, f"webhook body lacks {key}: {body}"
    assert body["type"] in ("circuit.open", "circuit.half_open", "circuit.close"), body["type"]
    if expected_type:
        assert body["type"] == expected_type, body
    assert body["circuit"] == "crowded-runq/cgroup=/crowded"
    assert body["slo"] == {"name": "crowded-runq", "objective": 99.0, "window": "1h"}
    assert body["target"] == "cgroup=/crowded"
    assert isinstance(body["sequence"], int) and body["sequence"] >= 1
    assert isinstance(body["burn_rates"], dict) and body["burn_rates"], body["burn_rates"]
    if body["type"] == "circuit.open":
        assert body["open_until"], "an open circuit carries a lease"
    else:
        assert body["open_until"] is None
