"""The running agent: HTTP endpoints, exposition formats, signals, config
errors — with real consumers (promtool)."""

import json
import re
import signal
import subprocess
import time

import requests

from conftest import SYNCSCOPE, wait_until


def check_histograms(text):
    """What promtool does not check: ordered le buckets, +Inf present,
    _count equal to +Inf."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\w+?)(_bucket|_count)(?:\{(.*)\})? (\S+)$", line)
        if not m or types.get(m.group(1)) != "histogram":
            continue
        name, suffix, labels, value = m.groups()
        labels = labels or ""
        le = re.search(r'le="([^"]+)"', labels)
        key = name + "{" + re.sub(r',?le="[^"]+"', "", labels) + "}"
        s = series.setdefault(key, {"buckets": [], "inf": None, "count": None})
        if suffix == "_count":
            s["count"] = float(value)
        elif le.group(1) == "+Inf":
            s["inf"] = float(value)
        else:
            s["buckets"].append((float(le.group(1)), float(value)))
    problems = []
    for key, s in series.items():
        if s["inf"] is None:
            problems.append(f"{key}: no +Inf bucket")
        if s["count"] != s["inf"]:
            problems.append(f"{key}: _count {s['count']} != +Inf {s['inf']}")
        les = [le for le, _ in s["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            problems.append(f"{key}: le values not strictly increasing")
        counts = [c for _, c in s["buckets"]] + ([s["inf"]] if s["inf"] is not None else [])
        if counts != sorted(counts):
            problems.append(f"{key}: cumulative counts decrease")
    return problems, len(series)


def test_metrics_text_format_passes_promtool_and_histogram_invariants(start_agent, workloads):
    agent = start_agent()
    sleeper = workloads("sleeper", 200, 1000)
    sleeper.wait_for("ready")
    sleeper.send("go\n")
    sleeper.wait_for("done")
    time.sleep(1.5)  # one refresh
    r = agent.metrics()
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.text
    for name in ["syncscope_build_info", "syncscope_runq_latency_seconds_bucket",
                 "syncscope_context_switches_total", "syncscope_bpf_program_runs_total",
                 "syncscope_bpf_program_run_seconds_total", "syncscope_events_lost_total"]:
        assert name in text, name
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    problems, histograms = check_histograms(text)
    assert histograms >= 2
    assert problems == []
    runs = re.search(r'syncscope_bpf_program_runs_total\{program="tp_btf_sched_switch"\} (\d+)', text) or \
        re.search(r'syncscope_bpf_program_runs_total\{program="raw_tp_sched_switch"\} (\d+)', text)
    assert runs and int(runs.group(1)) > 0, "bpf_stats run counts should move"


def test_openmetrics_when_the_scraper_asks(start_agent):
    agent = start_agent()
    r = agent.metrics(accept="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert r.headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert r.text.endswith("# EOF\n")
    assert "# TYPE syncscope_context_switches counter" in r.text
    assert "syncscope_context_switches_total{" in r.text


def test_healthz_and_debug_probes(start_agent):
    agent = start_agent()
    assert requests.get(agent.url + "/healthz", timeout=2).text == "ok\n"
    probes = requests.get(agent.url + "/debug/probes", timeout=2).json()
    names = {c["name"]: c for c in probes["features"]["checks"]}
    for feature in ["btf", "ringbuf", "tp_btf", "raw_tp", "uprobes", "kprobes", "pmu", "hw_breakpoints"]:
        assert feature in names
    assert names["kprobes"]["available"] is False and "CONFIG_KPROBES" in names["kprobes"]["detail"]
    sched = probes["collectors"]["sched"]
    attached = {p["program"] for p in sched["attached"]}
    assert {"tp_btf_sched_switch", "tp_btf_sched_wakeup", "tp_btf_sched_wakeup_new"} <= attached
    assert all(p["reason"] for p in sched["not_attached"])
    assert requests.get(agent.url + "/nope", timeout=2).status_code == 404


def test_sigterm_detaches_and_exits_zero(start_agent):
    agent = start_agent()
    pid = agent.process.pid
    agent.process.send_signal(signal.SIGTERM)
    # A bound for a hung agent, not a speed target (detaching waits for RCU
    # grace periods, which a loaded machine stretches).
    agent.process.wait(timeout=30)
    assert agent.process.returncode == 0
    # Nothing of ours is left attached: no BPF program held by the old pid.
    listing = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, text=True)
    assert f'"pid":{pid}' not in listing.stdout.replace(" ", "")


def test_sigint_also_exits_zero(start_agent):
    agent = start_agent()
    assert agent.stop(signal.SIGINT) == 0


def test_sighup_reload_keeps_old_config_when_new_one_is_invalid(start_agent):
    agent = start_agent("log_level: info\n")
    agent.config_path.write_text(f"listen: 127.0.0.1:{agent.port}\nsched:\n  enabled: perhaps\n")
    agent.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in agent.logs(), what="reload refusal in the log")
    assert "sched.enabled: expected true or false" in agent.logs()
    assert agent.process.poll() is None
    assert agent.metrics().status_code == 200
    assert "syncscope_runq_latency_seconds" in agent.metrics().text

    # A valid config applies: turning the sched collector off removes its metrics.
    agent.config_path.write_text(f"listen: 127.0.0.1:{agent.port}\nstate_dir: {agent.state_dir}\nsched:\n  enabled: false\n")
    agent.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "syncscope_runq_latency_seconds" not in agent.metrics().text, what="sched collector off")
    agent.config_path.write_text(f"listen: 127.0.0.1:{agent.port}\nstate_dir: {agent.state_dir}\n")
    agent.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "syncscope_runq_latency_seconds" in agent.metrics().text, what="sched collector back")


def test_listen_flag_overrides_config(start_agent, tmp_path):
    from conftest import free_port
    port = free_port()
    agent = start_agent("", wait=False, extra_args=("--listen", f"127.0.0.1:{port}"))
    wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok, what="agent on --listen port")


def test_invalid_config_exits_2_with_position_and_attaches_nothing(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("listen: 127.0.0.1:9479\nlocks:\n  top_k: lots\n")
    r = subprocess.run([str(SYNCSCOPE), "agent", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert f"{config}:3:10: locks.top_k: expected a non-negative integer, got \"lots\"" in r.stderr
    assert "nothing attached" in r.stderr
    assert "sched: attached" not in r.stderr

    r = subprocess.run([str(SYNCSCOPE), "config", "check", str(config)], capture_output=True, text=True)
    assert r.returncode == 2 and "locks.top_k" in r.stderr
    good = tmp_path / "good.yaml"
    good.write_text("sched: { enabled: true }\n")
    r = subprocess.run([str(SYNCSCOPE), "config", "check", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    r = subprocess.run([str(SYNCSCOPE), "agent", "--listen", "nonsense"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--listen" in r.stderr


def test_port_in_use_is_a_clear_error(start_agent, tmp_path):
    first = start_agent()
    config = tmp_path / "same-port.yaml"
    config.write_text(f"listen: 127.0.0.1:{first.port}\nstate_dir: {tmp_path}\n")
    r = subprocess.run([str(SYNCSCOPE), "agent", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"listen 127.0.0.1:{first.port}" in r.stderr


def test_probe_command_reports_features(tmp_path):
    r = subprocess.run([str(SYNCSCOPE), "probe", "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["btf"]["available"]
    assert "pmu" in checks and checks["pmu"]["detail"]
    text = subprocess.run([str(SYNCSCOPE), "probe"], capture_output=True, text=True, timeout=60).stdout
    assert re.search(r"^\s+pmu\s+(yes|no)\s+\S", text, re.M)
