"""A real Prometheus scraping a two-worker shim under mixed traffic on the real stack.

One scenario per module: ``python -m shim`` (the real entry point, two workers, keystone
mode against the real Keystone, the real Nova behind) serves Glance through a relay that
the test switches off ("Glance down"). Traffic from two projects and several clients gets
200s, 404s, 401s, passthrough answers from Nova and, with Glance down, 503s; then one
worker is killed and replaced. A real Prometheus (Debian's package,
`tests.stack.prometheus`) scrapes the metrics port every second with the alert
rules of ``deploy/prometheus`` loaded. The tests read everything back through Prometheus's
HTTP API: the series and their values, the caller series (never a token or a user name),
the alerts the traffic should and should not raise, and every query of the Grafana
dashboard in ``deploy/grafana``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.relay import Relay
from tests.stack.info import StackInfo
from tests.stack.layout import HOST
from tests.stack.procs import free_port, spawn, stop_group, tail
from tests.stack.prometheus import Prometheus, PromQLError, start

REPO: Final = Path(__file__).resolve().parents[2]
RULES: Final = REPO / "deploy" / "prometheus" / "nova-image-shim.rules.yaml"
DASHBOARD: Final = REPO / "deploy" / "grafana" / "nova-image-shim.json"
JOB: Final = "nova-image-shim"
WORKERS: Final = 2
SDK: Final = "openstacksdk/4.5.0 keystoneauth1/5.11.0 python-requests/2.32.3 CPython/3.11.2"
GLANCE_DOWN_CALLS: Final = 40
# Spread over several scrapes: a counter's first sample is its baseline, so the calls that
# created a series (the first 503, the first failed Glance call) are not in its rate.
GLANCE_DOWN_PAUSE: Final = 0.15
WAIT: Final = 60.0
EXPECTED_ALERTS: Final = {
    "NovaImageShimGlanceUnavailable",  # 40 of 60 Glance calls failed
    "NovaImageShimGlanceErrors",
    "NovaImageShimHighErrorRatio",  # 40 of 65 answers were 503
    "NovaImageShimWorkersRestarting",  # one worker killed and replaced
}
QUIET_ALERTS: Final = {
    "NovaImageShimHighLatency",
    "NovaImageShimKeystoneUnavailable",
    "NovaImageShimNoLegacyCallers",
}


@dataclass(frozen=True, slots=True)
class Scenario:
    prometheus: Prometheus
    sent: Counter[tuple[str, str]]  # (route, status) -> requests
    callers: Counter[tuple[str, str]]  # (client, project) -> legacy requests
    started: float
    finished: float
    secrets: tuple[str, ...]  # tokens and user names that must be in no label


def call(url: str, token: str | None, agent: str) -> int:
    """One GET on a new connection (so the kernel spreads them over the workers)."""
    headers = {"User-Agent": agent, "Connection": "close"}
    if token is not None:
        headers["X-Auth-Token"] = token
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.read()
        exc.close()
        return exc.code


def scrape(metrics_url: str) -> dict[str, float]:
    """The samples of the shim's own /metrics by name, summed over their labels."""
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


def wait_scraped(metrics_url: str, name: str, value: float, proc_log: Path) -> None:
    deadline = time.monotonic() + WAIT
    seen: float | None = None
    while time.monotonic() < deadline:
        try:
            seen = scrape(metrics_url).get(name)
        except OSError:
            seen = None
        if seen == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} stayed at {seen}, expected {value}\n{tail(proc_log)}")


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@pytest.fixture(scope="module")
def scenario(
    real_stack: StackInfo, tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp("prometheus-scenario")
    api_port, metrics_port = free_port(HOST), free_port(HOST)
    while metrics_port == api_port:
        metrics_port = free_port(HOST)
    glance = urlsplit(real_stack.glance_url)
    relay = Relay(str(glance.hostname), int(glance.port or 80))
    prometheus = start(base / "prometheus", JOB, [f"{HOST}:{metrics_port}"], [RULES])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIM_", "PROMETHEUS_"))}
    env.update(
        PYTHONPATH=str(REPO),
        PROMETHEUS_MULTIPROC_DIR=str(base / "multiproc"),
        SHIM_LISTEN=f"{HOST}:{api_port}",
        SHIM_METRICS_LISTEN=f"{HOST}:{metrics_port}",
        SHIM_WORKERS=str(WORKERS),
        SHIM_AUTH="keystone",
        SHIM_KEYSTONE_URL=real_stack.keystone_url,
        SHIM_GLANCE_URL=relay.url,
        SHIM_NOVA_URL=real_stack.nova_url,
        SHIM_GLANCE_RETRIES="0",
        SHIM_LOG_LEVEL="warning",
        SHIM_SHUTDOWN_TIMEOUT="5",
    )
    log = base / "shim.log"
    shim = spawn([sys.executable, "-m", "shim"], log, env=env)
    try:
        api = f"http://{HOST}:{api_port}"
        metrics_url = f"http://{HOST}:{metrics_port}"
        wait_scraped(metrics_url, "nova_image_shim_workers", WORKERS, log)
        # Prometheus holds the series the workers start with (primed at zero, plus the
        # start-up checks' calls) before any traffic, as in production, where the shim is
        # scraped long before its first calls.
        prometheus.wait_for(
            f'sum(nova_image_shim_upstream_duration_seconds_count{{job="{JOB}", '
            'upstream="keystone"})',
            lambda v: v is not None,
        )
        demo_a, demo_b = real_stack.demo_a, real_stack.demo_b
        alice, dave_b = tokens["alice"], tokens["dave-b"]
        missing = uuid.uuid4()
        plan = [
            # (path, token, User-Agent, times, route, status, (client, project))
            ("/v2.1/images/detail?limit=1", alice, SDK, 8, "/v2.1/images/detail", "200",
             ("openstacksdk", demo_a)),
            (f"/v2.1/{demo_b}/images", dave_b, "gophercloud/2.4.0", 6,
             "/v2.1/{project_id}/images", "200", ("gophercloud", demo_b)),
            (f"/v2.1/images/{missing}", alice, SDK, 4, "/v2.1/images/{image_id}", "404",
             ("openstacksdk", demo_a)),
            (f"/v2/{demo_b}/images/{missing}", dave_b, "python-novaclient", 2,
             "/v2/{project_id}/images/{image_id}", "404", ("python-novaclient", demo_b)),
            ("/v2.1/images", "not-a-valid-token-4f2a9c", "curl/8.5.0", 2, "/v2.1/images",
             "401", ("curl", "unknown")),
        ]  # fmt: skip
        sent: Counter[tuple[str, str]] = Counter()
        callers: Counter[tuple[str, str]] = Counter()
        started = time.time()

        def send(path: str, token: str, agent: str, times: int, route: str, status: str,
                 caller: tuple[str, str], pause: float = 0.0) -> None:  # fmt: skip
            for _ in range(times):
                time.sleep(pause)
                got = call(api + path, token, agent)
                assert str(got) == status, f"{path}: {got}\n{tail(log)}"
                sent[(route, status)] += 1
                callers[caller] += 1

        for step in plan:
            send(*step)
        for _ in range(3):  # the rest of the compute API goes to Nova: no legacy caller
            got = call(f"{api}/v2.1/flavors", alice, "python-openstackclient")
            assert got == 200, f"/v2.1/flavors: {got}\n{tail(log)}"
            sent[("passthrough", "200")] += 1
        relay.down()  # Glance is gone: connections refused, pooled ones cut
        send("/v2.1/images/detail", alice, SDK, GLANCE_DOWN_CALLS, "/v2.1/images/detail", "503",
             ("openstacksdk", demo_a), GLANCE_DOWN_PAUSE)  # fmt: skip
        finished = time.time()
        total = sum(sent.values())
        # A worker counts a request just after the answer's last byte left, so one killed
        # the moment its answer arrived could take that count with it: wait for them all.
        wait_scraped(metrics_url, "nova_image_shim_requests_total", total, log)
        # A worker dies; the master replaces it.
        os.kill(worker_pids(shim.pid)[0], signal.SIGKILL)
        wait_scraped(metrics_url, "nova_image_shim_worker_restarts_total", 1, log)
        wait_scraped(metrics_url, "nova_image_shim_workers", WORKERS, log)
        prometheus.wait_for(
            f'sum(nova_image_shim_requests_total{{job="{JOB}"}})', lambda v: v == total
        )
        prometheus.wait_for(
            f'sum(nova_image_shim_worker_restarts_total{{job="{JOB}"}})', lambda v: v == 1
        )
        prometheus.wait_for(f'sum(nova_image_shim_workers{{job="{JOB}"}})', lambda v: v == WORKERS)
        secrets = (*tokens.values(), "not-a-valid-token-4f2a9c", "alice", "dave",
                   *real_stack.user_ids.values())  # fmt: skip
        yield Scenario(prometheus, sent, callers, started, finished, secrets)
    finally:
        stop_group(shim.pid)
        shim.wait(timeout=30)
        relay.down()
        prometheus.stop()


def by(prometheus: Prometheus, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(series["metric"].get(label, "") for label in labels): float(series["value"][1])
        for series in prometheus.query(promql)
    }


def of_job(
    prometheus: Prometheus, metric: str, *labels: str, op: str = "sum", match: str = ""
) -> dict[tuple[str, ...], float]:
    """`by` for ``op by (labels) (metric{job="<JOB>", match})``: the shim's series of *metric*."""
    selector = ", ".join(filter(None, [f'job="{JOB}"', match]))
    return by(prometheus, f"{op} by ({', '.join(labels)}) ({metric}{{{selector}}})", *labels)


def test_requests_by_route_and_status(scenario: Scenario) -> None:
    got = of_job(scenario.prometheus, "nova_image_shim_requests_total", "route", "status")
    assert got == {key: float(n) for key, n in scenario.sent.items()}
    # Every answer was timed: the histogram counts as many.
    count = scenario.prometheus.scalar(
        f'sum(nova_image_shim_request_duration_seconds_count{{job="{JOB}"}})'
    )
    assert count == sum(scenario.sent.values())


def test_upstream_calls_by_outcome(scenario: Scenario) -> None:
    upstream_calls = "nova_image_shim_upstream_requests_total"
    glance = of_job(scenario.prometheus, upstream_calls, "outcome", match='upstream="glance"')
    failed = sum(n for (outcome,), n in glance.items() if outcome in ("connect_error", "error"))
    assert failed == GLANCE_DOWN_CALLS, glance  # no retries: one failed call per 503
    assert glance[("4xx",)] == 6  # the 404s: Glance said the image does not exist
    assert glance[("2xx",)] >= 14
    keystone = of_job(
        scenario.prometheus, upstream_calls, "operation", "outcome", match='upstream="keystone"'
    )
    assert keystone.get(("validate", "2xx"), 0) >= 2  # two users' tokens
    assert keystone.get(("validate", "4xx"), 0) >= 1  # the invalid one
    cache = of_job(scenario.prometheus, "nova_image_shim_token_cache_lookups_total", "result")
    legacy = sum(n for (route, _), n in scenario.sent.items() if route != "passthrough")
    assert cache[("hit",)] + cache[("miss",)] == legacy  # passthrough validates nothing
    assert cache[("hit",)] > cache[("miss",)]


def test_legacy_callers_by_client_and_project(scenario: Scenario) -> None:
    got = of_job(scenario.prometheus, "nova_image_shim_legacy_callers_total", "client", "project")
    assert got == {key: float(n) for key, n in scenario.callers.items()}
    seen = of_job(
        scenario.prometheus,
        "nova_image_shim_legacy_caller_last_seen_timestamp_seconds",
        "client",
        "project",
        op="max",
    )
    assert set(seen) == set(scenario.callers)
    for caller, when in seen.items():
        assert scenario.started <= when <= scenario.finished + 1, caller


def test_no_label_holds_a_token_or_a_user(scenario: Scenario) -> None:
    series = scenario.prometheus.api("series", **{"match[]": f'{{job="{JOB}"}}'})
    assert len(series) > 50
    values = {value for labels in series for value in labels.values()}
    leaks = [value for value in values for secret in scenario.secrets if secret in value]
    assert not leaks


def test_workers_and_restarts(scenario: Scenario) -> None:
    prometheus = scenario.prometheus
    assert prometheus.scalar(f'sum(nova_image_shim_workers{{job="{JOB}"}})') == WORKERS
    assert prometheus.scalar(f'sum(nova_image_shim_worker_restarts_total{{job="{JOB}"}})') == 1
    assert prometheus.scalar(f'max(up{{job="{JOB}"}})') == 1


def test_alert_rules_evaluate_and_the_right_ones_go_off(scenario: Scenario) -> None:
    prometheus = scenario.prometheus
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == RULES.read_text("utf-8").count("- alert:") + RULES.read_text(
        "utf-8"
    ).count("- record:")
    assert all(rule["health"] == "ok" for rule in rules), [
        (rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"
    ]
    deadline = time.monotonic() + WAIT
    active: set[str] = set()
    while time.monotonic() < deadline:
        alerts = prometheus.api("alerts")["alerts"]
        active = {alert["labels"]["alertname"] for alert in alerts}
        if active >= EXPECTED_ALERTS:
            break
        time.sleep(0.5)
    assert active >= EXPECTED_ALERTS, active
    assert not active & QUIET_ALERTS, active & QUIET_ALERTS
    # The latest last-seen time is now recorded for the retirement alert.
    recorded = prometheus.scalar(f'nova_image_shim:legacy_last_seen_timestamp:max{{job="{JOB}"}}')
    assert recorded is not None
    assert scenario.started <= recorded <= scenario.finished + 1


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def as_promql(expr: str) -> str:
    """A panel's query as Grafana would send it for this job over the last hour."""
    for variable, value in (("$__rate_interval", "5m"), ("$__range", "1h"), ("$job", JOB)):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def finite(series: list[dict[str, Any]]) -> bool:
    return any(re.fullmatch(r"-?[0-9.e+-]+", s["value"][1]) for s in series)


def test_every_dashboard_query_parses_and_returns_data(scenario: Scenario) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    empty: list[str] = []
    errors: list[str] = []
    answered: set[str] = set()
    for title, expr in queries:
        try:
            series = scenario.prometheus.query(as_promql(expr))
        except PromQLError as exc:
            errors.append(f"{title}: {exc}")
            continue
        if finite(series):
            answered.add(title)
        else:
            empty.append(title)
    assert not errors, "\n".join(errors)
    assert not empty, f"panels without data: {empty}"
    # The job variable lists this job.
    variable = json.loads(DASHBOARD.read_text("utf-8"))["templating"]["list"][1]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"]).groups()  # type: ignore[union-attr]
    assert (JOB,) in by(scenario.prometheus, f"count by ({label}) ({metric})", label)
