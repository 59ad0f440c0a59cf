"""Durable, signed circuit webhooks against a receiver that misbehaves: down,
then slow (past the agent's timeout), 500, 429 with Retry-After, then 2xx —
every notification arrives, signatures verify with the secret, duplicates
carry the same webhook-id and body; and the same with the agent SIGKILLed in
the middle of the outage and restarted on the same state_dir.

The burn comes from the kernel (CPU hogs in /crowded) with short windows, so
a circuit opens within seconds and, while the burn lasts, renews its lease
(another circuit.open, next sequence) every min_open / 2 = 1 s: a steady
stream of notifications to lose."""

import signal
import time

import pytest

from conftest import wait_until
from slo_support import Hogs, WebhookReceiver, check_circuit_body, metric_value, slo_config, slo_status, write_secret

FAST = dict(page="[{ long: 10s, short: 2s, burn_rate: 5 }]", min_events=20, min_open="2s", close_after="3s",
            max_backoff="2s", hook_timeout="1s")


@pytest.fixture
def receiver(tmp_path):
    key = write_secret(tmp_path / "hook.key")
    r = WebhookReceiver(key)  # not started: the receiver is down
    r.secret_file = tmp_path / "hook.key"
    yield r
    r.stop()


def pending(agent):
    return metric_value(agent, "syncscope_outbox_pending") or 0


def circuit(agent):
    return slo_status(agent)["slos"][0]["circuit"]


def check_complete(receiver, last_sequence):
    """Every notification 1..last_sequence arrived (deduplicated by
    webhook-id), signed, and a retried id always carried the same body."""
    received = receiver.received()
    assert received, "nothing arrived"
    assert all(r["valid"] for r in received), [r["headers"] for r in received if not r["valid"]]
    assert all(r["path"] == "/hook" for r in received)
    bodies = {}
    for r in received:
        bodies.setdefault(r["headers"]["webhook-id"], set()).add(r["body"])
    assert all(len(b) == 1 for b in bodies.values()), "a retry changed the body"
    unique = receiver.unique()
    sequences = sorted(r["json"]["sequence"] for r in unique)
    assert sequences == list(range(1, last_sequence + 1)), f"lost or repeated: {sequences}"
    for r in unique:
        check_circuit_body(r["json"])
    return unique


def test_every_notification_arrives_through_a_misbehaving_receiver(start_agent, cgroups, receiver):
    crowded = cgroups("/crowded")
    agent = start_agent(slo_config(["breaker"], hook_url=receiver.url, secret_file=receiver.secret_file, **FAST))
    hogs = Hogs(crowded)
    try:
        # Down: notifications pile up in the outbox, attempts fail.
        wait_until(lambda: pending(agent) >= 3, timeout=60, what="3 notifications queued while the receiver is down")
        assert metric_value(agent, "syncscope_notifications_total", notifier="breaker", result="failed") >= 1
        # Up, but: too slow (answered after the agent's 1 s timeout), 500,
        # 429 with Retry-After: 2, then 2xx.
        receiver.script = ["slow:2", "500", "429:2"]
        receiver.start()
        wait_until(lambda: len(receiver.received()) >= 5 and pending(agent) == 0, timeout=60,
                   what="outbox drained after the faults")
    finally:
        hogs.stop()
    wait_until(lambda: circuit(agent)["state"] == "closed" and pending(agent) == 0, timeout=60,
               what="circuit closed and every notification delivered")
    last = circuit(agent)["sequence"]
    unique = check_complete(receiver, last)
    kinds = [r["json"]["type"] for r in sorted(unique, key=lambda r: r["json"]["sequence"])]
    assert kinds[0] == "circuit.open" and kinds[-2:] == ["circuit.half_open", "circuit.close"], kinds

    received = receiver.received()
    actions = [r["action"] for r in received]
    assert actions[:3] == ["slow:2", "500", "429:2"], actions
    # The slow answer came after the timeout: the same notification (same
    # id) was sent again — the duplicate a receiver deduplicates.
    slow_id = received[0]["headers"]["webhook-id"]
    assert sum(r["headers"]["webhook-id"] == slow_id for r in received) >= 2
    # 500: retried, same id.
    assert sum(r["headers"]["webhook-id"] == received[1]["headers"]["webhook-id"] for r in received) >= 2
    # 429 with Retry-After: 2 — the endpoint waited at least that long (a
    # lower bound: a loaded machine only makes it later).
    assert received[3]["at"] - received[2]["at"] >= 1.9, received[3]["at"] - received[2]["at"]

    delivered = metric_value(agent, "syncscope_notifications_total", notifier="breaker", result="delivered")
    assert delivered == len(unique)  # the slow one's 2xx never reached the agent: it was retried
    assert metric_value(agent, "syncscope_notifications_total", notifier="breaker", result="retried") >= 3


def test_no_notification_is_lost_across_sigkill_and_restart(start_agent, cgroups, receiver, tmp_path):
    crowded = cgroups("/crowded")
    state_dir = tmp_path / "shared-state"
    config = slo_config(["breaker"], hook_url=receiver.url, secret_file=receiver.secret_file, state_dir=state_dir,
                        **FAST)
    first = start_agent(config)
    hogs = Hogs(crowded)
    try:
        # Killed right after a notification was queued (the queue is polled
        # fast), mid-outage.
        wait_until(lambda: pending(first) >= 3, timeout=60, interval=0.02, what="notifications queued")
        queued_before_kill = pending(first)
        first.stop(signal.SIGKILL)
        assert first.process.returncode == -signal.SIGKILL

        second = start_agent(config)
        # The restarted agent resumes the circuit (open, or already half_open:
        # the window counters since the last periodic save died with the
        # process, so it has to see the burn again) with its sequence, and the
        # queue.
        resumed = circuit(second)
        assert resumed["state"] in ("open", "half_open"), resumed
        assert resumed["sequence"] >= queued_before_kill
        assert pending(second) >= queued_before_kill
        receiver.start()
        wait_until(lambda: pending(second) == 0 and len(receiver.unique()) >= queued_before_kill, timeout=60,
                   what="the queue from before the SIGKILL delivered")
    finally:
        hogs.stop()
    wait_until(lambda: circuit(second)["state"] == "closed" and pending(second) == 0, timeout=60,
               what="circuit closed after the restart")
    unique = check_complete(receiver, circuit(second)["sequence"])
    assert any(r["json"]["type"] == "circuit.close" for r in unique)


def test_sighup_moves_the_queue_to_the_new_webhook_url(start_agent, cgroups, receiver, tmp_path):
    """A reload that changes the notifiers stops the old senders and hands the
    outbox to the new ones: what was queued for the dead URL goes to the new
    one, nothing is lost or sent twice with different ids."""
    crowded = cgroups("/crowded")
    agent = start_agent(slo_config(["breaker"], hook_url=receiver.url, secret_file=receiver.secret_file, **FAST))
    replacement = WebhookReceiver(receiver.key).start()
    hogs = Hogs(crowded)
    try:
        wait_until(lambda: pending(agent) >= 2, timeout=60, what="notifications queued for the dead URL")
        agent.write_config(slo_config(["breaker"], hook_url=replacement.url, secret_file=receiver.secret_file,
                                      **FAST))
        agent.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "slo: reloaded" in agent.logs(), what="the SLO stage reloaded")
        assert agent.process.poll() is None
        wait_until(lambda: len(replacement.unique()) >= 2 and pending(agent) == 0, timeout=60,
                   what="the queue delivered to the new URL")
    finally:
        hogs.stop()
    wait_until(lambda: circuit(agent)["state"] == "closed" and pending(agent) == 0, timeout=60,
               what="circuit closed")
    replacement.stop()
    assert not receiver.received()  # the old URL never answered
    check_complete(replacement, circuit(agent)["sequence"])
