"""The SLO loop driven by the kernel: CPU hogs in cgroup /crowded burn the
run-queue SLO of issue 5 → the circuit opens (a signed circuit.open webhook)
and a page alert shows in a real Alertmanager 0.25 (its API and amtool);
hogs stopped → half_open → close, and the alert resolves. `syncscope slo
status` shows the same state as /debug/slo."""

import json
import subprocess
import time

import pytest

from conftest import SYNCSCOPE, have, wait_until
from slo_support import (Alertmanager, Hogs, WebhookReceiver, check_circuit_body, metric_value, parse_rfc3339, slo_config,
                         slo_status, write_secret)


@pytest.fixture
def alertmanager(tmp_path):
    if not have("prometheus-alertmanager") or not have("amtool"):
        pytest.skip("prometheus-alertmanager / amtool not installed (make deps)")
    am = Alertmanager(tmp_path / "alertmanager")
    yield am
    am.stop()


@pytest.fixture
def receiver(tmp_path):
    key = write_secret(tmp_path / "hook.key")
    r = WebhookReceiver(key).start()
    r.secret_file = tmp_path / "hook.key"
    yield r
    r.stop()


def types_received(receiver):
    return [r["json"]["type"] for r in receiver.unique()]


def test_cpu_hogs_open_the_circuit_and_page_then_it_closes(start_agent, cgroups, alertmanager, receiver):
    crowded = cgroups("/crowded")
    # The SLO exactly (threshold 1ms, 99 %, 1h, page 20s/4s at 5x,
    # min_open 5s, close_after 10s), with this test's receiver and Alertmanager.
    agent = start_agent(slo_config(["breaker", "am"], hook_url=receiver.url, secret_file=receiver.secret_file,
                                   am_url=alertmanager.url))
    status = slo_status(agent)
    assert [s["name"] for s in status["slos"]] == ["crowded-runq"]
    assert status["slos"][0]["circuit"]["state"] == "closed"
    assert status["slos"][0]["measurement"]["measured"], status["slos"][0]["measurement"]

    hogs = Hogs(crowded)
    try:
        wait_until(lambda: "circuit.open" in types_received(receiver), timeout=60, what="circuit.open webhook")
        opened = next(r for r in receiver.unique() if r["json"]["type"] == "circuit.open")
        assert opened["valid"], "signature does not verify with the secret"
        body = opened["json"]
        check_circuit_body(body, "circuit.open")
        assert body["sequence"] == 1
        assert body["burn_rates"]["4s"] > 5 and body["burn_rates"]["20s"] > 5, body["burn_rates"]
        # Evidence captured at the time: /crowded is among the slowest cgroups.
        assert any(c["cgroup"] == "/crowded" for c in body["evidence"]["slowest_cgroups"]), body["evidence"]
        evaluated = parse_rfc3339(body["timestamp"])
        print(f"hogs started → circuit.open received: {opened['at'] - hogs.started:.2f}s; "
              f"evaluation that saw the crossing → received: {opened['at'] - evaluated:.2f}s")

        assert metric_value(agent, "syncscope_circuit_state", slo="crowded-runq", state="open") == 1
        # The SLO and notifier families as a real consumer parses them.
        check = subprocess.run(["promtool", "check", "metrics"], input=agent.metrics().text, capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert metric_value(agent, "syncscope_slo_events_total", slo="crowded-runq", outcome="bad") > 0

        # The page alert in Alertmanager: its API and amtool.
        alerts = wait_until(lambda: alertmanager.alerts(slo="crowded-runq"), timeout=30,
                            what="alert in Alertmanager")
        labels = alerts[0]["labels"]
        assert labels["alertname"] == "SyncscopeSLOBurn"
        assert labels["severity"] == "page"
        assert labels["target"] == "cgroup=/crowded"
        assert labels["host"]
        assert "burn_rates" in alerts[0]["annotations"]
        queried = alertmanager.amtool_query("slo=crowded-runq")
        assert [a["labels"]["slo"] for a in queried] == ["crowded-runq"], queried

        # `syncscope slo status` against the running agent.
        out = subprocess.run([str(SYNCSCOPE), "slo", "status", "--agent", f"127.0.0.1:{agent.port}"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert "crowded-runq" in out.stdout and "open until" in out.stdout and "page" in out.stdout, out.stdout
        out = subprocess.run([str(SYNCSCOPE), "slo", "status", "--agent", f"127.0.0.1:{agent.port}", "--json"],
                             capture_output=True, text=True, timeout=20)
        assert json.loads(out.stdout)["slos"][0]["circuit"]["state"] == "open"
    finally:
        hogs.stop()

    # Burn over: half_open after min_open, then close after close_after.
    wait_until(lambda: "circuit.close" in types_received(receiver), timeout=60, what="circuit.close webhook")
    unique = sorted(receiver.unique(), key=lambda r: r["json"]["sequence"])
    assert all(r["valid"] for r in unique)
    for r in unique:
        check_circuit_body(r["json"])
    kinds = [r["json"]["type"] for r in unique]
    # Renewals (circuit.open again) may come before the half_open; the order
    # of states is open → half_open → close, sequences without gaps.
    assert kinds[0] == "circuit.open" and kinds[-1] == "circuit.close", kinds
    assert kinds[-2] == "circuit.half_open", kinds
    assert [r["json"]["sequence"] for r in unique] == list(range(1, len(unique) + 1))
    assert metric_value(agent, "syncscope_circuit_state", slo="crowded-runq", state="closed") == 1

    # The alert resolves: Alertmanager no longer lists it as active.
    wait_until(lambda: not alertmanager.alerts(slo="crowded-runq", ) or
               all(a["status"]["state"] != "active" for a in alertmanager.alerts(slo="crowded-runq")),
               timeout=30, what="alert resolved in Alertmanager")
    assert not [a for a in alertmanager.amtool_query("slo=crowded-runq") if a["status"]["state"] == "active"]
    assert metric_value(agent, "syncscope_notifications_total", notifier="am", result="delivered") >= 2
    assert metric_value(agent, "syncscope_outbox_pending") == 0


def test_slo_status_without_an_agent_fails_clearly():
    out = subprocess.run([str(SYNCSCOPE), "slo", "status", "--agent", "127.0.0.1:1"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 1
    assert "127.0.0.1:1" in out.stderr and "syncscope agent" in out.stderr
