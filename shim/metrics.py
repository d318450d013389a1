"""Prometheus metrics, and the metrics-port app serving ``/metrics``, ``/healthz``, ``/readyz``.

Metric objects are process-wide (prometheus-client keeps one value per process, and in
multiprocess mode one mmap file per pid), created lazily on first use so that importing
this module has no side effect and the pre-fork master never creates any.

Across workers: every worker runs its own metrics site on ``SHIM_METRICS_LISTEN``
(``SO_REUSEPORT``, like the API port). With more than one worker, prometheus-client's
multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR``; the CLI makes a temporary one when
it is unset), so whichever worker answers a scrape reads every worker's files and returns
the same aggregate: counters and histograms summed, the in-flight gauge summed over live
workers (``livesum``). A probe answered by a worker proves that worker's event loop runs,
which an exporter in the master could not show.

Labels are bounded: ``route`` is a template (`shim.access.route_of`), ``method`` one of
`METHODS` or ``other``, ``status`` an HTTP status code, ``microversion`` a valid version no
higher than the configured maximum, else ``invalid`` (``none`` when absent), ``client`` one
of `shim.user_agents.KNOWN_CLIENTS` or ``other``, ``upstream`` one of glance, keystone,
nova. ``project`` (legacy callers) is a project id seen by this worker, at most
``SHIM_CALLER_PROJECTS_MAX`` of them, then ``other``; ``unknown`` when the caller's project is
not known or does not look like a project id (`caller_project_label`).

It must not call Glance or any upstream: probes only read `Runtime`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar, cast

from aiohttp import web
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import MetricWrapperBase

from shim.legacy.microversion import MIN_VERSION, Version, parse_version
from shim.runtime import Runtime

NAMESPACE: Final = "nova_image_shim"
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
NO_VERSION: Final = "none"
INVALID_VERSION: Final = "invalid"
UNKNOWN_PROJECT: Final = "unknown"
OTHER_PROJECT: Final = "other"
# Keystone project ids are 32 hex digits; other backends use short opaque ids. Anything
# else (a name with spaces, a pasted token, a kilobyte of junk) is not a label value.
_PROJECT_RE: Final = re.compile(r"[0-9A-Za-z_-]{1,64}")
# Legacy calls are mostly Glance round trips (tens of ms); unpaged lists of big catalogues
# and slow passthrough calls reach tens of seconds.
REQUEST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UPSTREAM_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_Metric = TypeVar("_Metric", bound=MetricWrapperBase)

_multiproc_dir: Path | None = None
_metrics: ShimMetrics | None = None


@dataclass(frozen=True, slots=True)
class ShimMetrics:
    registry: CollectorRegistry
    requests: Counter
    request_duration: Histogram
    in_flight: Gauge
    upstream_requests: Counter
    upstream_duration: Histogram
    token_cache: Counter
    legacy_clients: Counter
    legacy_callers: Counter
    legacy_last_seen: Gauge
    workers: Gauge
    worker_restarts: Counter
    # Projects in this worker's caller series: bounded by SHIM_CALLER_PROJECTS_MAX.
    caller_projects: set[str] = field(default_factory=set)
    # Labelled children by (metric, label values). prometheus-client's own `labels()`
    # checks and converts every value and takes a lock on each call; the label sets are
    # bounded (module docstring), so each is looked up there once.
    children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = field(default_factory=dict)

    def child(self, metric: _Metric, *labels: str) -> _Metric:
        key = (id(metric), labels)
        found = self.children.get(key)
        if found is None:
            found = self.children[key] = metric.labels(*labels)
        return cast(_Metric, found)


def _create() -> ShimMetrics:
    registry = CollectorRegistry(auto_describe=True)
    if _multiproc_dir is None:
        # Single process: the usual process_*/python_* series too (the multiprocess
        # collector cannot aggregate those, so they are left out there).
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    # Every metric is named under NAMESPACE and registered in this registry.
    counter = functools.partial(Counter, namespace=NAMESPACE, registry=registry)
    histogram = functools.partial(Histogram, namespace=NAMESPACE, registry=registry)
    gauge = functools.partial(Gauge, namespace=NAMESPACE, registry=registry)
    return ShimMetrics(
        registry=registry,
        requests=counter(
            "requests",
            "API requests answered, by route template, method, status and microversion.",
            ["route", "method", "status", "microversion"],
        ),
        request_duration=histogram(
            "request_duration_seconds",
            "Time from request head to the last byte of the answer.",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
        ),
        in_flight=gauge(
            "requests_in_flight",
            "API requests being handled now.",
            multiprocess_mode="livesum",
        ),
        upstream_requests=counter(
            "upstream_requests",
            "Calls to Glance, Keystone and Nova, by operation and outcome "
            "(2xx..5xx, timeout, connect_error, error).",
            ["upstream", "operation", "outcome"],
        ),
        upstream_duration=histogram(
            "upstream_duration_seconds",
            "Time from sending an upstream request to its response headers (or failure).",
            ["upstream", "operation"],
            buckets=UPSTREAM_BUCKETS,
        ),
        token_cache=counter(
            "token_cache_lookups",
            "Keystone token-cache lookups, by result (hit, miss).",
            ["result"],
        ),
        legacy_clients=counter(
            "legacy_client_requests",
            "Requests to the legacy image routes, by the User-Agent's first product token "
            "when it is a known client, else 'other'.",
            ["client"],
        ),
        legacy_callers=counter(
            "legacy_callers",
            "Requests to the legacy image routes by client label and caller project: who "
            "still calls, so the shim can be switched off.",
            ["client", "project"],
        ),
        legacy_last_seen=gauge(
            "legacy_caller_last_seen_timestamp_seconds",
            "Unix time of the latest legacy image-route request by client label and project.",
            ["client", "project"],
            multiprocess_mode="max",
        ),
        workers=gauge(
            "workers",
            "Worker processes serving now (1 per live worker).",
            multiprocess_mode="livesum",
        ),
        worker_restarts=counter(
            "worker_restarts",
            "Workers started by the master to replace one that died.",
        ),
    )


def enable_multiprocess(path: Path) -> None:
    """Aggregate across worker processes through *path* (call before any metric is used).

    prometheus-client picks its value class when ``prometheus_client.values`` is imported,
    from ``PROMETHEUS_MULTIPROC_DIR``; the variable is set here for the workers it forks and
    the choice made again, since the CLI may have imported the package before deciding.
    """
    global _multiproc_dir
    if _metrics is not None:
        raise RuntimeError("metrics already in use; enable multiprocess mode before forking")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _multiproc_dir = path


def single_process() -> None:
    """Keep every metric in this process, whatever ``PROMETHEUS_MULTIPROC_DIR`` says (one
    worker, or metrics off: no directory is written, so a read-only one does no harm)."""
    global _multiproc_dir
    if _metrics is not None:
        raise RuntimeError("metrics already in use; choose the mode before using them")
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _multiproc_dir = None


def get() -> ShimMetrics:
    global _metrics
    if _metrics is None:
        _metrics = _create()
    return _metrics


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


@functools.lru_cache(maxsize=128)  # per request, from the few versions clients send
def microversion_label(value: str | None, max_version: Version) -> str:
    """``2.N`` when *value* is a valid version within the range, ``invalid`` otherwise."""
    if not value:
        return NO_VERSION
    version = parse_version(value.strip())
    if version is None or not MIN_VERSION <= version <= max_version:
        return INVALID_VERSION
    return str(version)


def caller_project_label(project: str | None, seen: set[str], limit: int) -> str:
    """The ``project`` label of a legacy call: *project* itself while *seen* (the projects
    already labelled in this worker) holds fewer than *limit*, then ``other``.

    ``unknown`` when there is no project or it is not shaped like a project id.
    """
    if not project or _PROJECT_RE.fullmatch(project) is None:
        return UNKNOWN_PROJECT
    if project in seen:
        return project
    if len(seen) >= limit:
        return OTHER_PROJECT
    seen.add(project)
    return project


def observe_request(
    route: str,
    method: str,
    status: int,
    microversion: str,
    seconds: float,
    client: str | None,
    caller: tuple[str | None, int] | None = None,
) -> None:
    """One answered request; *client* is set for legacy image routes only, and *caller*
    (the caller's project, or None, and ``SHIM_CALLER_PROJECTS_MAX``) with it."""
    metrics = get()
    method = method_label(method)
    metrics.child(metrics.requests, route, method, str(status), microversion).inc()
    metrics.child(metrics.request_duration, route, method).observe(seconds)
    if client is not None:
        metrics.child(metrics.legacy_clients, client).inc()
        project, limit = caller if caller is not None else (None, 0)
        label = caller_project_label(project, metrics.caller_projects, limit)
        metrics.child(metrics.legacy_callers, client, label).inc()
        metrics.child(metrics.legacy_last_seen, client, label).set(time.time())


def observe_upstream(upstream: str, operation: str, outcome: str, seconds: float) -> None:
    metrics = get()
    metrics.child(metrics.upstream_requests, upstream, operation, outcome).inc()
    metrics.child(metrics.upstream_duration, upstream, operation).observe(seconds)


# Outcomes primed at zero, so that rate() sees the first failure of a series (a counter's
# first sample is its baseline: the calls that created it would be invisible otherwise).
PRIMED_OUTCOMES: Final = ("2xx", "4xx", "5xx", "timeout", "connect_error", "error")


def prime(calls: Iterable[tuple[str, str]], *, token_cache: bool) -> None:
    """Create the upstream series of the *calls* (upstream, operation) this worker will make,
    and the token-cache series when it validates tokens, at zero."""
    metrics = get()
    for upstream, operation in calls:
        metrics.child(metrics.upstream_duration, upstream, operation)
        for outcome in PRIMED_OUTCOMES:
            metrics.child(metrics.upstream_requests, upstream, operation, outcome)
    if token_cache:
        for result in ("hit", "miss"):
            metrics.child(metrics.token_cache, result)


def token_cache(hit: bool) -> None:
    """Count one token-cache lookup (called by ``shim.keystone``)."""
    metrics = get()
    metrics.child(metrics.token_cache, "hit" if hit else "miss").inc()


def worker_replaced() -> None:
    """Count this worker as a replacement (called in a worker the master respawned)."""
    get().worker_restarts.inc()


def render(accept: str | None) -> tuple[bytes, str]:
    """The exposition (Prometheus text, or OpenMetrics if asked) and its content type."""
    if _multiproc_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(_multiproc_dir))  # type: ignore[no-untyped-call]
    else:
        registry = get().registry
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def create_metrics_app(runtime: Runtime) -> web.Application:
    """The metrics-port app. *runtime* is the API app's, shared so /readyz sees draining."""
    get().workers.set(1)  # also creates the metrics, so /metrics lists every family
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)

    async def readyz(request: web.Request) -> web.Response:
        return readiness(runtime)

    app.router.add_get("/readyz", readyz)
    return app


async def metrics_handler(request: web.Request) -> web.Response:
    # Multiprocess mode reads one file per worker: off the event loop.
    body, content_type = await asyncio.to_thread(render, request.headers.get("Accept"))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def readiness(runtime: Runtime) -> web.Response:
    if runtime.draining:
        return web.Response(status=503, text="draining\n")
    if not runtime.session_open:
        return web.Response(status=503, text="upstream session not open\n")
    return web.Response(text="ready\n")
