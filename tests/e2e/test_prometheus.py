"""A real Prometheus 2.42 scrapes the running agent; the run-queue histogram
comes back through its query API."""

from conftest import wait_until


def test_prometheus_scrapes_runq_latency(start_agent, start_prometheus, workloads):
    agent = start_agent()
    prometheus = start_prometheus([f"127.0.0.1:{agent.port}"])
    sleeper = workloads("sleeper", 2000, 1000)
    sleeper.wait_for("ready")
    sleeper.send("go\n")

    wait_until(lambda: any(t["health"] == "up" for t in prometheus.targets()), timeout=30, what="target up")
    result = wait_until(lambda: prometheus.query('syncscope_runq_latency_seconds_bucket{cgroup="/",le="+Inf"}'),
                        timeout=30, what="runq buckets in Prometheus")
    assert float(result[0]["value"][1]) > 0
    # histogram_quantile works on our buckets, and the rate is positive.
    p99 = wait_until(lambda: prometheus.query(
        'histogram_quantile(0.99, sum by (le) (rate(syncscope_runq_latency_seconds_bucket[5s])))'),
        timeout=30, what="a p99 over two scrapes")
    assert 0 < float(p99[0]["value"][1]) < 5
    up = prometheus.query('up{job="syncscope"}')
    assert up[0]["value"][1] == "1"
    # Prometheus negotiated OpenMetrics and parsed it without errors.
    assert all(t["lastError"] == "" for t in prometheus.targets())
