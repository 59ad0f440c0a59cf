#!/usr/bin/env python3
"""Writes the Grafana dashboards in this directory (overview, locks, go, slos).

The JSON files are what Grafana loads (file provisioning, or Import); this
script is how they are edited, so that every dashboard shares the same
variables, the same label filters and the same conventions:

  - the data source is a variable of type `datasource` named `datasource` and
    every panel and variable refers to it as ${datasource}: file provisioning
    does not resolve `__inputs` / ${DS_...} import placeholders;
  - every query filters on the `job` and `instance` variables;
  - every panel sets a unit; panel ids are unique within a dashboard.

Run it after an edit and commit the JSON:  python3 dashboards/generate.py
tests/e2e/test_dashboards.py validates the files and runs every query
against a real Prometheus scraping a real agent.
"""

import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance"'
CG = SEL + ',cgroup=~"$cgroup"'


# Error budget left (a ratio, negative when overspent): red below a quarter.
BUDGET_LEFT_FIELD = {"min": 0, "max": 1, "thresholds": {"mode": "absolute", "steps": [
    {"color": "red", "value": None}, {"color": "orange", "value": 0.25}, {"color": "green", "value": 0.5}]}}


def target(expr, legend="", instant=False, fmt="time_series", ref="A"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": not instant,
         "instant": instant}
    if fmt != "time_series":
        t["format"] = fmt
    return t


class Dashboard:
    def __init__(self, uid, title, description, extra_vars=()):
        self.uid, self.title, self.description = uid, title, description
        self.panels = []
        self.next_id = 1
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.extra_vars = list(extra_vars)

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"type": "row", "title": title, "id": self.next_id, "collapsed": False,
                            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.next_id += 1
        self.y += 1

    def panel(self, kind, title, description, targets, unit, w=12, h=8, options=None, field=None, **extra):
        defaults = {"unit": unit}
        defaults.update(field or {})
        p = {
            "type": kind,
            "title": title,
            "description": description,
            "id": self.next_id,
            "datasource": DS,
            "gridPos": self._place(w, h),
            "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {},
        }
        p.update(extra)
        self.next_id += 1
        self.panels.append(p)
        return p

    def timeseries(self, title, description, targets, unit, stack=False, **kw):
        field = {"custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if not stack else 40,
                            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                            "showPoints": "never"}}
        field.update(kw.pop("field", {}))
        options = {"legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                              "calcs": ["mean", "max", "lastNotNull"]},
                   "tooltip": {"mode": "multi", "sort": "desc"}}
        return self.panel("timeseries", title, description, targets, unit, field=field, options=options, **kw)

    def heatmap(self, title, description, expr, unit, **kw):
        options = {"calculate": False, "yAxis": {"unit": unit, "axisPlacement": "left"},
                   "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                   "rowsFrame": {"layout": "auto"}, "tooltip": {"show": True, "yHistogram": True},
                   "legend": {"show": True}}
        return self.panel("heatmap", title, description, [target(expr, "{{le}}", fmt="heatmap")], unit,
                          options=options, **kw)

    def table(self, title, description, expr, unit, hide=(), rename=None, **kw):
        excluded = {"Time": True}
        excluded.update({name: True for name in hide})
        transformations = [{"id": "organize", "options": {"excludeByName": excluded,
                                                          "renameByName": rename or {}}}]
        options = {"showHeader": True, "sortBy": [{"displayName": (rename or {}).get("Value", "Value"),
                                                   "desc": True}]}
        return self.panel("table", title, description, [target(expr, instant=True, fmt="table")], unit,
                          options=options, transformations=transformations, **kw)

    def stat(self, title, description, targets, unit, mappings=None, field=None, **kw):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "colorMode": "value", "graphMode": "none", "textMode": "auto", "justifyMode": "auto",
                   "orientation": "auto"}
        field = dict(field or {}, mappings=mappings or [])
        return self.panel("stat", title, description, targets, unit, options=options, field=field, **kw)

    def bargauge(self, title, description, targets, unit, field=None, **kw):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
        return self.panel("bargauge", title, description, targets, unit, options=options, field=field, **kw)

    def state_timeline(self, title, description, targets, unit, mappings, **kw):
        options = {"showValue": "auto", "mergeValues": True, "rowHeight": 0.8, "alignValue": "left",
                   "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        field = {"mappings": mappings, "color": {"mode": "thresholds"},
                 "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}}
        return self.panel("state-timeline", title, description, targets, unit, options=options, field=field,
                          **kw)

    def to_json(self):
        variables = [
            {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
            query_var("job", "Job", "label_values(syncscope_build_info, job)", multi=False, include_all=True),
            query_var("instance", "Host", 'label_values(syncscope_build_info{job=~"$job"}, instance)'),
        ] + self.extra_vars
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["syncscope", "ebpf"],
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "graphTooltip": 1,
            "timezone": "",
            "time": {"from": "now-1h", "to": "now"},
            "refresh": "30s",
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "links": [{"title": "syncscope", "type": "dashboards", "tags": ["syncscope"], "asDropdown": True,
                       "includeVars": True, "keepTime": True}],
            "templating": {"list": variables},
            "panels": self.panels,
        }

    def write(self, name):
        (HERE / name).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")


def query_var(name, label, query, multi=True, include_all=True):
    return {"type": "query", "name": name, "label": label, "datasource": DS,
            "query": {"query": query, "refId": f"{name}-query"}, "definition": query,
            "refresh": 2, "multi": multi, "includeAll": include_all, "allValue": ".*", "sort": 1,
            "current": {"text": "All", "value": "$__all"} if include_all else {}, "hide": 0,
            "regex": "", "options": []}


CGROUP_VAR = query_var("cgroup", "cgroup",
                       'label_values(syncscope_context_switches_total{job=~"$job",instance=~"$instance"}, cgroup)')
SLO_VAR = query_var("slo", "SLO", 'label_values(syncscope_slo_burn_rate{job=~"$job",instance=~"$instance"}, slo)')
CIRCUIT_MAPPINGS = [{"type": "value", "options": {
    "0": {"text": "closed", "color": "green", "index": 0},
    "1": {"text": "half-open", "color": "yellow", "index": 1},
    "2": {"text": "open", "color": "red", "index": 2}}}]
# 0 closed, 1 half-open, 2 open: one series per circuit for the state timeline.
CIRCUIT_EXPR = ('max by (slo, target) (syncscope_circuit_state{%s,slo=~"$slo",state="open"}) * 2'
                ' + max by (slo, target) (syncscope_circuit_state{%s,slo=~"$slo",state="half_open"})')


def overview():
    d = Dashboard("syncscope-overview", "syncscope / Host overview",
                  "Where the programs on the selected hosts wait: run queues, locks, the Go scheduler, "
                  "cache lines; SLO budgets and circuits; the agent's own health.", [CGROUP_VAR])
    d.row("Run queues")
    d.heatmap("Run-queue latency", "How long runnable tasks waited for a CPU (wakeup or preemption to "
              "switch-in), all selected cgroups. syncscope_runq_latency_seconds.",
              f"sum by (le) (rate(syncscope_runq_latency_seconds_bucket{{{CG}}}[$__rate_interval]))", "s")
    d.timeseries("Run-queue latency p99 by cgroup", "99th percentile of the run-queue wait per cgroup v2 "
                 "group (systemd unit or container), from the histogram buckets.",
                 [target("histogram_quantile(0.99, sum by (cgroup, le) (rate("
                         f"syncscope_runq_latency_seconds_bucket{{{CG}}}[$__rate_interval])))", "{{cgroup}}")], "s")
    d.timeseries("Context switches", "Switches per second of tasks in the selected cgroups: voluntary "
                 "(blocked) and involuntary (preempted while runnable). syncscope_context_switches_total.",
                 [target(f"sum by (kind) (rate(syncscope_context_switches_total{{{CG}}}[$__rate_interval]))",
                         "{{kind}}")], "ops", stack=True)
    d.timeseries("Run-queue length p90 by CPU", "Tasks waiting on each CPU's run queue, 90th percentile of "
                 "the samples. syncscope_runq_length.",
                 [target("histogram_quantile(0.9, sum by (cpu, le) (rate("
                         f"syncscope_runq_length_bucket{{{SEL}}}[$__rate_interval])))", "cpu {{cpu}}")], "short")
    d.row("Locks and goroutines")
    d.timeseries("Lock wait by kind", "Seconds per second that threads slept on contended locks, by kind "
                 "(pthread_mutex, pthread_rwlock, pthread_cond, glibc_internal, futex, go_mutex, "
                 "go_rwmutex): 2 means two threads waited all the time. syncscope_lock_wait_seconds.",
                 [target(f"sum by (kind) (rate(syncscope_lock_wait_seconds_sum{{{CG}}}[$__rate_interval]))",
                         "{{kind}}")], "s", stack=True, w=8)
    d.timeseries("Lock contentions by kind", "Contended waits that slept, per second. "
                 "syncscope_lock_contentions_total.",
                 [target(f"sum by (kind) (rate(syncscope_lock_contentions_total{{{CG}}}[$__rate_interval]))",
                         "{{kind}}")], "ops", stack=True, w=8)
    d.timeseries("Goroutines by state", "Goroutines of the Go processes on the host by scheduler state "
                 "(running, runnable, waiting, syscall). syncscope_goroutines.",
                 [target(f"sum by (state) (syncscope_goroutines{{{CG}}})", "{{state}}")], "short",
                 stack=True, w=8)
    d.row("Cache lines")
    d.timeseries("False-shared cache lines", "Lines currently judged falsely shared (two threads write "
                 "different words of one 64-byte line), per cgroup. syncscope_false_sharing_lines.",
                 [target(f"sum by (cgroup) (syncscope_false_sharing_lines{{{CG}}})", "{{cgroup}}")], "short",
                 w=8)
    d.stat("Hardware PMU", "Whether the host has a PMU: memory sampling and cache counters run only where "
           "it does; otherwise false sharing is found with hardware watchpoints alone. "
           "syncscope_pmu_available.",
           [target(f"min(syncscope_pmu_available{{{SEL}}})")], "bool_yes_no", w=4,
           mappings=[{"type": "value", "options": {"0": {"text": "no PMU", "color": "orange", "index": 0},
                                                    "1": {"text": "PMU", "color": "green", "index": 1}}}])
    d.timeseries("Cache misses by cgroup (PMU hosts)", "Hardware cache misses per second charged to the "
                 "running task's cgroup; empty on hosts without a PMU. syncscope_cache_misses_total.",
                 [target(f"sum by (cgroup) (rate(syncscope_cache_misses_total{{{CG}}}[$__rate_interval]))",
                         "{{cgroup}}")], "ops", w=12)
    d.row("SLOs")
    d.bargauge("Error budget left", "Share of each SLO's error budget left over its window (negative: "
               "overspent). syncscope_slo_error_budget_remaining_ratio.",
               [target(f"min by (slo) (syncscope_slo_error_budget_remaining_ratio{{{SEL}}})", "{{slo}}")],
               "percentunit", w=12,
               field=BUDGET_LEFT_FIELD)
    d.state_timeline("Circuits", "Circuit breaker state per SLO and target: open while the SLO burns its "
                     "budget fast (webhooks and Alertmanager alerts are sent), half-open while it recovers. "
                     "syncscope_circuit_state.",
                     [target(CIRCUIT_EXPR.replace('slo=~"$slo",', "") % (SEL, SEL), "{{slo}} {{target}}")],
                     "none", CIRCUIT_MAPPINGS, w=12)
    d.row("Agent health")
    d.timeseries("Events lost", "Events dropped in the kernel because a ring buffer was full, per source; "
                 "should stay at 0. syncscope_events_lost_total.",
                 [target(f"sum by (source) (rate(syncscope_events_lost_total{{{SEL}}}[$__rate_interval]))",
                         "{{source}}")], "ops", w=8)
    d.timeseries("BPF CPU by program", "CPU spent inside each BPF program (1 = one CPU), from kernel "
                 "bpf_stats; 0 when stats are off (no CAP_SYS_ADMIN and kernel.bpf_stats_enabled=0). "
                 "syncscope_bpf_program_run_seconds_total.",
                 [target("topk(10, sum by (program) (rate("
                         f"syncscope_bpf_program_run_seconds_total{{{SEL}}}[$__rate_interval])))",
                         "{{program}}")], "percentunit", w=8)
    d.timeseries("Agent CPU and memory", "CPU (left) and resident memory (right) of the agent process.",
                 [target(f"sum by (instance) (rate(process_cpu_seconds_total{{{SEL}}}[$__rate_interval]))",
                         "cpu {{instance}}"),
                  target(f"sum by (instance) (process_resident_memory_bytes{{{SEL}}})", "rss {{instance}}")],
                 "percentunit", w=8)
    # RSS on its own axis in bytes.
    d.panels[-1]["fieldConfig"]["overrides"] = [{
        "matcher": {"id": "byFrameRefID", "options": "B"},
        "properties": [{"id": "unit", "value": "bytes"},
                       {"id": "custom.axisPlacement", "value": "right"}]}]
    d.bargauge("Probes attached", "BPF attachments per collector: attached, and not attached (fallbacks "
               "that were not needed, or failures: /debug/probes says which and why). syncscope_probes.",
               [target(f'sum by (collector) (syncscope_probes{{{SEL},state="attached"}})', "{{collector}}"),
                target(f'sum by (collector) (syncscope_probes{{{SEL},state="not_attached"}})',
                       "{{collector}} not attached")], "short", w=8)
    d.stat("Collectors without probes", "Collectors that run with no probe attached "
           "(syncscope_collector_up == 0): failed to start, or every attachment failed.",
           [target(f"count(syncscope_collector_up{{{SEL}}} == 0) or vector(0)")], "short", w=4,
           field={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                               {"color": "red", "value": 1}]}})
    d.table("Agents", "Agent version, libbpf and kernel per host. syncscope_build_info.",
            f"max by (instance, version, libbpf, kernel) (syncscope_build_info{{{SEL}}})", "none",
            hide=("Value",), w=12)
    return d


def locks():
    d = Dashboard("syncscope-locks", "syncscope / Locks",
                  "User-space lock contention: waits that slept in the kernel on a contended lock "
                  "(pthread, glibc-internal, futex, Go). The most waited-on locks with their process and "
                  "symbol.", [CGROUP_VAR])
    d.row("Top contended locks")
    d.table("Top contended locks", "The locks waited on most over the dashboard's time range: process "
            "(comm[pid]), lock address, symbol (the global it is, else the code that waited), and the "
            "seconds waited. Locks outside the agent's top K are summed in the row labelled other. "
            "syncscope_lock_top_wait_seconds_total.",
            "topk(25, sum by (cgroup, process, lock, symbol) (increase("
            f"syncscope_lock_top_wait_seconds_total{{{CG}}}[$__range])))", "s",
            rename={"Value": "seconds waited"}, w=24, h=10)
    d.timeseries("Wait of the top 10 locks", "Seconds per second waited on each of the ten most contended "
                 "locks (1 = one thread waiting all the time).",
                 [target("topk(10, sum by (process, lock, symbol) (rate("
                         f'syncscope_lock_top_wait_seconds_total{{{CG},lock!="other"}}[$__rate_interval])))',
                         "{{process}} {{symbol}} {{lock}}")], "s", w=24)
    d.row("By kind")
    d.timeseries("Lock wait by kind", "Seconds per second threads slept on contended locks, by kind.",
                 [target(f"sum by (kind) (rate(syncscope_lock_wait_seconds_sum{{{CG}}}[$__rate_interval]))",
                         "{{kind}}")], "s", stack=True, w=8)
    d.timeseries("Contentions by kind", "Contended waits per second, by kind.",
                 [target(f"sum by (kind) (rate(syncscope_lock_contentions_total{{{CG}}}[$__rate_interval]))",
                         "{{kind}}")], "ops", w=8)
    d.timeseries("Average wait by kind", "Seconds slept per contended wait, by kind.",
                 [target(f"sum by (kind) (rate(syncscope_lock_wait_seconds_sum{{{CG}}}[$__rate_interval]))"
                         f" / sum by (kind) (rate(syncscope_lock_wait_seconds_count{{{CG}}}[$__rate_interval]))",
                         "{{kind}}")], "s", w=8)
    d.timeseries("Lock wait p99 by kind", "99th percentile of one contended wait, by kind.",
                 [target("histogram_quantile(0.99, sum by (kind, le) (rate("
                         f"syncscope_lock_wait_seconds_bucket{{{CG}}}[$__rate_interval])))", "{{kind}}")],
                 "s", w=12)
    d.heatmap("Lock wait distribution", "How long contended waits slept, every kind.",
              f"sum by (le) (rate(syncscope_lock_wait_seconds_bucket{{{CG}}}[$__rate_interval]))", "s", w=12)
    d.row("By cgroup")
    d.timeseries("Lock wait by cgroup", "Seconds per second threads of each cgroup slept on contended locks.",
                 [target("topk(10, sum by (cgroup) (rate("
                         f"syncscope_lock_wait_seconds_sum{{{CG}}}[$__rate_interval])))", "{{cgroup}}")], "s",
                 w=12)
    d.timeseries("Lock events lost", "Lock events dropped in the kernel (ring buffer full): the figures "
                 "above undercount while this is above 0.",
                 [target(f'sum by (source) (rate(syncscope_events_lost_total{{{SEL},source=~"lock_.*"}}'
                         '[$__rate_interval]))', "{{source}}")], "ops", w=12)
    return d


def go():
    d = Dashboard("syncscope-go", "syncscope / Go",
                  "Go programs on the host: goroutines by state and by creation site, and Go mutex "
                  "contention (sync.Mutex, sync.RWMutex).", [CGROUP_VAR])
    d.row("Goroutines")
    d.timeseries("Goroutines by state", "Goroutines by scheduler state, all selected Go processes. "
                 "syncscope_goroutines.",
                 [target(f"sum by (state) (syncscope_goroutines{{{CG}}})", "{{state}}")], "short", stack=True)
    d.timeseries("Goroutines by process", "Goroutines per Go process (comm[pid]); a line that only grows "
                 "is a leak.",
                 [target(f"topk(15, sum by (process) (syncscope_goroutines{{{CG}}}))", "{{process}}")],
                 "short")
    d.timeseries("Goroutine growth", "Change in the goroutine count per minute, per process (linear fit "
                 "over 5 minutes).",
                 [target(f"topk(10, sum by (process) (deriv(syncscope_goroutines{{{CG}}}[5m])) * 60)",
                         "{{process}}")], "short", w=12)
    d.timeseries("Goroutines created", "Goroutines created per second, per process. "
                 "syncscope_goroutines_created_total.",
                 [target("topk(10, sum by (process) (rate("
                         f"syncscope_goroutines_created_total{{{CG}}}[$__rate_interval])))", "{{process}}")],
                 "ops", w=12)
    d.table("Goroutines by creation site", "Live goroutines per creating function (the `go` statement's "
            "caller): thousands parked at one site is the classic leak. syncscope_goroutines_by_creator.",
            f"topk(25, sum by (process, function) (syncscope_goroutines_by_creator{{{CG}}}))", "short",
            rename={"Value": "goroutines"}, w=24, h=10)
    d.timeseries("Goroutine scans", "Per-process goroutine scans per second by result: ok, exited (the "
                 "process went away mid-read), failed (see the agent log). syncscope_goroutines_scans_total.",
                 [target("sum by (result) (rate("
                         f"syncscope_goroutines_scans_total{{{SEL}}}[$__rate_interval]))", "{{result}}")],
                 "ops", w=12)
    d.timeseries("Goroutine scan cost", "Share of wall time the agent spends listing Go processes and "
                 "reading their goroutines (1 = one CPU busy). syncscope_goroutines_scan_seconds_total.",
                 [target("sum by (instance) (rate("
                         f"syncscope_goroutines_scan_seconds_total{{{SEL}}}[$__rate_interval]))",
                         "{{instance}}")], "percentunit", w=12)
    d.row("Go mutexes")
    go_kind = 'kind=~"go_mutex|go_rwmutex"'
    d.timeseries("Go mutex wait", "Seconds per second goroutines waited in sync.Mutex / sync.RWMutex slow "
                 "paths, by kind. syncscope_lock_wait_seconds{kind=~\"go_.*\"}.",
                 [target(f"sum by (kind) (rate(syncscope_lock_wait_seconds_sum{{{CG},{go_kind}}}"
                         "[$__rate_interval]))", "{{kind}}")], "s", w=8)
    d.timeseries("Go mutex contentions", "Contended sync.Mutex / RWMutex acquisitions per second.",
                 [target(f"sum by (kind) (rate(syncscope_lock_contentions_total{{{CG},{go_kind}}}"
                         "[$__rate_interval]))", "{{kind}}")], "ops", w=8)
    d.timeseries("Go mutex wait p99", "99th percentile of one contended Go mutex wait.",
                 [target("histogram_quantile(0.99, sum by (kind, le) (rate("
                         f"syncscope_lock_wait_seconds_bucket{{{CG},{go_kind}}}[$__rate_interval])))",
                         "{{kind}}")], "s", w=8)
    d.table("Top contended locks in Go processes", "The locks waited on most in processes that have "
            "goroutines, over the time range (process, lock address, symbol).",
            "topk(15, sum by (process, lock, symbol) (increase("
            f"syncscope_lock_top_wait_seconds_total{{{CG}}}[$__range]))"
            f" and on (process) (sum by (process) (syncscope_goroutines{{{SEL}}}) > 0))", "s",
            rename={"Value": "seconds waited"}, w=24)
    return d


def slos():
    ss = SEL + ',slo=~"$slo"'
    d = Dashboard("syncscope-slos", "syncscope / SLOs",
                  "The agent's SLOs: burn rate per alert window, error budget left, circuit state over "
                  "time, and the notifications (webhooks, Alertmanager) it sent.", [SLO_VAR])
    d.row("Budget")
    d.timeseries("Burn rate per window", "Error budget burn rate over each alert window: (bad / total) / "
                 "(1 - objective). 1 spends the budget exactly over the SLO window; the page rules fire "
                 "above 14.4 (1h and 5m) or 6 (6h and 30m), the ticket rule above 1 (3d and 6h). "
                 "syncscope_slo_burn_rate.",
                 [target(f"max by (slo, window) (syncscope_slo_burn_rate{{{ss}}})", "{{slo}} {{window}}")],
                 "suffix:×", w=16,
                 field={"custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never",
                                   "thresholdsStyle": {"mode": "dashed"}},
                        "thresholds": {"mode": "absolute", "steps": [
                            {"color": "green", "value": None}, {"color": "orange", "value": 6},
                            {"color": "red", "value": 14.4}]}})
    d.bargauge("Error budget left", "Share of the error budget left over the SLO window (negative: "
               "overspent). syncscope_slo_error_budget_remaining_ratio.",
               [target(f"min by (slo) (syncscope_slo_error_budget_remaining_ratio{{{ss}}})", "{{slo}}")],
               "percentunit", w=8,
               field=BUDGET_LEFT_FIELD)
    d.timeseries("Error budget left over time", "The same ratio over time.",
                 [target(f"min by (slo) (syncscope_slo_error_budget_remaining_ratio{{{ss}}})", "{{slo}}")],
                 "percentunit", w=12)
    d.timeseries("Bad events", "Share of the SLI's events that were bad (e.g. wakeups that waited longer "
                 "than the threshold). syncscope_slo_events_total.",
                 [target(f'sum by (slo) (rate(syncscope_slo_events_total{{{ss},outcome="bad"}}[$__rate_interval]))'
                         f" / sum by (slo) (rate(syncscope_slo_events_total{{{ss}}}[$__rate_interval]))",
                         "{{slo}}")], "percentunit", w=12)
    d.timeseries("SLI events", "Good and bad events per second, per SLO.",
                 [target("sum by (slo, outcome) (rate("
                         f"syncscope_slo_events_total{{{ss}}}[$__rate_interval]))", "{{slo}} {{outcome}}")],
                 "ops", w=12)
    d.timeseries("Burn rate by Prometheus rules (1h, 5m)", "The same burn rates computed by "
                 "dashboards/rules/syncscope.rules.yaml in Prometheus (empty if those rules are not "
                 "loaded): they should follow the agent's own.",
                 [target(f"max by (slo) (syncscope:slo_burn_rate:1h{{{ss}}})", "{{slo}} 1h"),
                  target(f"max by (slo) (syncscope:slo_burn_rate:5m{{{ss}}})", "{{slo}} 5m")],
                 "suffix:×", w=12)
    d.row("Circuits and notifications")
    d.state_timeline("Circuit state", "Each SLO's circuit over time: closed, open (the SLO burns its "
                     "budget fast; webhooks say circuit.open), half-open (burn stopped, waiting "
                     "close_after). syncscope_circuit_state.",
                     [target(CIRCUIT_EXPR % (SEL, SEL), "{{slo}} {{target}}")], "none", CIRCUIT_MAPPINGS,
                     w=24)
    d.timeseries("Notifications", "Notifications per notifier and result over each interval: delivered, "
                 "failed (an attempt that failed), retried, dropped (outbox full), disabled (410 Gone). "
                 "syncscope_notifications_total.",
                 [target("sum by (notifier, result) (increase("
                         f"syncscope_notifications_total{{{SEL}}}[$__rate_interval]))",
                         "{{notifier}} {{result}}")], "short", w=12)
    d.timeseries("Outbox backlog", "Webhook notifications stored in the durable outbox and not yet "
                 "delivered (they survive restarts). syncscope_outbox_pending.",
                 [target(f"max by (instance) (syncscope_outbox_pending{{{SEL}}})", "{{instance}}")], "short",
                 w=12)
    d.table("Alerts", "syncscope alerts pending or firing in Prometheus (from "
            "dashboards/rules/syncscope.rules.yaml).",
            'max by (alertname, alertstate, severity, instance, slo, collector) (ALERTS{alertname=~"Syncscope.*"})',
            "none", hide=("Value",), w=24)
    return d


def main():
    overview().write("syncscope-overview.json")
    locks().write("syncscope-locks.json")
    go().write("syncscope-go.json")
    slos().write("syncscope-slos.json")


if __name__ == "__main__":
    main()
