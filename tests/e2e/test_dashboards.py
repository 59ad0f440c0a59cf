"""The Grafana dashboards and Prometheus rules in dashboards/, proven against
the real consumers:

- every dashboard is well-formed for file provisioning (schemaVersion ≥ 39,
  uid, the `datasource` variable of type datasource that every panel uses,
  no import placeholders), has unique panel ids and a unit on every panel;
- the rules pass `promtool check rules` and `promtool test rules`;
- every panel query (and every variable query) parses and returns data in a
  real Prometheus 2.42 that scrapes a real agent under a workload (a CPU hog,
  contended pthread mutexes, contended Go mutexes, leaking goroutines, false
  sharing) and evaluates the rules — or is in ALLOWED_EMPTY with the reason it
  cannot here.
"""

import json
import pathlib
import re
import subprocess
import sys
import time

import pytest
import requests
import yaml

from conftest import BUILD, REPO, wait_until

DASHBOARDS = REPO / "dashboards"
RULES = DASHBOARDS / "rules"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))
EXPECTED_DASHBOARDS = {"syncscope-overview", "syncscope-locks", "syncscope-go", "syncscope-slos"}

# (dashboard uid, panel title) → why the query may return nothing on this
# machine. "pmu": allowed only when the host has no hardware PMU (on a PMU
# host these must return data). "always": allowed everywhere, with the reason.
ALLOWED_EMPTY = {
    ("syncscope-overview", "Cache misses by cgroup (PMU hosts)"):
        ("pmu", "hardware cache counters need a PMU; these VMs have none"),
    ("syncscope-slos", "Alerts"):
        ("always", "ALERTS has series only while a syncscope alert is pending or firing"),
}

# Grafana's own macros and the dashboards' variables, as Grafana would expand
# them for a short time range over 1 s scrapes; "All" is the regex .*
SUBSTITUTIONS = {
    "$__rate_interval": "20s",
    "$__interval": "5s",
    "$__range": "2m",
    "$job": ".*",
    "$instance": ".*",
    "$cgroup": ".*",
    "$slo": ".*",
}


def load(path):
    return json.loads(path.read_text())


def panels_of(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep theirs inside


def expand(expr):
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"unexpanded variable in {expr!r}"
    return expr


def variable_query(variable):
    """label_values(SELECTOR, LABEL) → a PromQL query with the same answer."""
    query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
    assert m, f"variable {variable['name']}: unsupported query {query!r}"
    return f"group by ({m.group(2)}) ({expand(m.group(1))})"


# --- structure -----------------------------------------------------------------

def test_dashboards_are_well_formed():
    uids = {}
    for path in DASHBOARD_FILES:
        text = path.read_text()
        d = json.loads(text)
        where = path.name
        assert d.get("schemaVersion", 0) >= 39, f"{where}: schemaVersion {d.get('schemaVersion')}"
        assert d.get("uid") and d.get("title"), f"{where}: uid and title must be set"
        assert d["uid"] not in uids, f"{where}: uid {d['uid']} also in {uids.get(d['uid'])}"
        uids[d["uid"]] = where
        # Import placeholders are not resolved by file provisioning.
        assert "__inputs" not in d and "${DS_" not in text, f"{where}: import-style data source inputs"

        variables = {v["name"]: v for v in d["templating"]["list"]}
        ds = variables.get("datasource")
        assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", \
            f"{where}: needs a variable `datasource` of type datasource (prometheus)"
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                assert v["datasource"]["uid"] == "${datasource}", f"{where}: variable {v['name']} data source"

        ids = set()
        for panel in panels_of(d):
            title = f"{where}: panel {panel.get('id')} {panel.get('title')!r}"
            assert isinstance(panel.get("id"), int), f"{title}: no id"
            assert panel["id"] not in ids, f"{title}: duplicate id"
            ids.add(panel["id"])
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, f"{title}: gridPos {grid}"
            if panel["type"] == "row":
                continue
            assert panel.get("title") and panel.get("description"), f"{title}: title and description"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, f"{title}: data source"
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
            assert unit, f"{title}: no unit"
            assert panel["targets"], f"{title}: no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), f"{title}: duplicate refIds {refs}"
            for t in panel["targets"]:
                assert t.get("expr"), f"{title}: empty expr"
                assert t["datasource"]["uid"] == "${datasource}", f"{title}: query data source"
    assert set(uids) == EXPECTED_DASHBOARDS, f"dashboards: {sorted(uids)}"
    for key in ALLOWED_EMPTY:
        assert any(load(p)["uid"] == key[0] and any(q.get("title") == key[1] for q in panels_of(load(p)))
                   for p in DASHBOARD_FILES), f"ALLOWED_EMPTY names a panel that does not exist: {key}"


def test_dashboards_match_their_generator(tmp_path):
    """dashboards/generate.py is how they are edited: the committed JSON must be its output."""
    before = {p.name: p.read_text() for p in DASHBOARD_FILES}
    copy = tmp_path / "generate.py"
    copy.write_text((DASHBOARDS / "generate.py").read_text())
    subprocess.run([sys.executable, str(copy)], check=True, cwd=tmp_path)
    after = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    assert after == before, "dashboards/*.json differ from `python3 dashboards/generate.py` output"


def test_provisioning_files():
    dashboards = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards.yaml").read_text())
    assert dashboards["apiVersion"] == 1
    provider = dashboards["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("/share/syncscope/dashboards")
    datasources = yaml.safe_load((DASHBOARDS / "provisioning" / "datasource.yaml").read_text())
    assert datasources["datasources"][0]["type"] == "prometheus"


# --- rules -------------------------------------------------------------------------

def test_rules_pass_promtool():
    files = sorted(str(p) for p in RULES.glob("*.yaml"))
    checked = subprocess.run(["promtool", "check", "rules", *files], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "syncscope.rules.test.yaml"], cwd=RULES / "tests",
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


# --- every query against a real Prometheus and a real agent ------------------------------

AGENT_CONFIG = """
locks: {{ enabled: true }}
golang: {{ enabled: true, scan_interval: 1s }}
cachelines:
  enabled: true
  targets: [{{ comm: falseshare }}]
  # Only the workload's falsely shared global is a candidate, so a verdict
  # comes within seconds even on a loaded machine.
  watch: {{ window_ms: 20, duty_cycle: 0.25, symbols: [g_false_shared] }}
slos:
  - name: host-runq
    target: {{ cgroup: / }}
    sli: {{ runq_latency: {{ threshold: 50us }} }}
    objective: 99.0
    window: 1h
    min_events: 10
    circuit: {{ notify: [hook, am] }}
notifiers:
  # Nothing listens on these ports: deliveries fail, are counted and retried.
  hook: {{ type: webhook, url: "http://127.0.0.1:{dead_port}/hook", secret_file: "{secret}" }}
  am: {{ type: alertmanager, url: "http://127.0.0.1:{dead_port}" }}
"""

def test_every_panel_query_returns_data(tmp_path, start_agent, start_prometheus, workloads):
    from conftest import free_port
    secret = tmp_path / "hook.key"
    secret.write_text("whsec_c3luY3Njb3BlLXRlc3Qtc2VjcmV0\n")
    # Workloads first, so every collector has something to find at its first scan.
    hog = workloads("cpu_hog", 1)
    hog.wait_for("ready")
    locks = workloads("lock_contention", "mutex", 4, 400000, 100)
    locks.wait_for("ready")
    locks.send("go\n")
    gomutex = workloads("gomutex", "-duration", "180s", "-goroutines", "4")
    gomutex.wait_for("ready")
    goleak = workloads("goleak", "-rate", "20", "-duration", "180s")
    goleak.wait_for("ready")
    falseshare = workloads("falseshare", "false_sharing", 2, 180)
    falseshare.wait_for("ready")
    falseshare.send("go\n")

    agent = start_agent(AGENT_CONFIG.format(dead_port=free_port(), secret=secret))
    prometheus = start_prometheus([f"127.0.0.1:{agent.port}"], rule_files=[str(RULES / "syncscope.rules.yaml")])
    wait_until(lambda: any(t["health"] == "up" for t in prometheus.targets()), timeout=30, what="target up")

    queries = []  # (dashboard uid, panel title, refId, promql, range?)
    for path in DASHBOARD_FILES:
        d = load(path)
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                queries.append((d["uid"], f"variable ${v['name']}", "", variable_query(v), False))
        for panel in panels_of(d):
            for t in panel.get("targets", []):
                queries.append((d["uid"], panel["title"], t["refId"], expand(t["expr"]), not t.get("instant")))

    def run(expr, ranged):
        if ranged:
            end = time.time()
            r = requests.get(prometheus.url + "/api/v1/query_range",
                             params={"query": expr, "start": end - 60, "end": end, "step": "2s"}, timeout=10)
        else:
            r = requests.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert body.get("status") == "success", f"{expr!r}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]["result"]

    # Everything parses at once; data arrives as collectors find their targets
    # and counters get a second sample, so poll until all have data (or 100 s:
    # a false-sharing verdict and Go lock probes take longest on a busy machine).
    for uid, title, ref, expr, ranged in queries:
        run(expr, ranged)
    pmu = run("max(syncscope_pmu_available)", False)
    has_pmu = bool(pmu) and float(pmu[0]["value"][1]) > 0
    pending = list(queries)
    polling_started = time.monotonic()
    deadline = polling_started + 100
    def may_stay_empty(q):
        allowed = ALLOWED_EMPTY.get((q[0], q[1]))
        return bool(allowed) and (allowed[0] == "always" or (allowed[0] == "pmu" and not has_pmu))

    while pending and time.monotonic() < deadline:
        pending = [q for q in pending if not run(q[3], q[4])]
        if all(may_stay_empty(q) for q in pending):
            break
        time.sleep(3)

    print(f"{len(queries)} queries; {len(queries) - len(pending)} returned data "
          f"({time.monotonic() - polling_started:.0f} s of polling)")
    unexplained = []
    for uid, title, ref, expr, ranged in pending:
        if may_stay_empty((uid, title)):
            print(f"allowed empty: {uid} / {title} {ref}: {ALLOWED_EMPTY[(uid, title)][1]}")
            continue
        unexplained.append(f"{uid} / {title} {ref}: {expr}")
    assert not unexplained, "queries without data:\n" + "\n".join(unexplained) + \
        "\n\nagent log tail:\n" + agent.logs()[-3000:]
    for (uid, title), (kind, reason) in ALLOWED_EMPTY.items():
        if kind == "pmu" and not has_pmu:
            assert any(q[0] == uid and q[1] == title for q in pending), \
                f"{uid} / {title} has data without a PMU: remove it from ALLOWED_EMPTY ({reason})"
    # The rules evaluated without errors against the real series.
    groups = requests.get(prometheus.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    errors = [(r["name"], r["lastError"]) for g in groups for r in g["rules"] if r.get("lastError")]
    assert not errors, errors
    assert all(t["lastError"] == "" for t in prometheus.targets())
