"""Servers under test and one measurement ("cell") of one of them.

A `Target` is something that answers HTTP: nginx itself (direct), a floor, or the shim. A
closed cell runs wrk against it and reads, around the run, the CPU time of the target's whole
process tree, nginx's request counter (Glance calls per client request) and each core's load.
A target that could not start, or answers a probe wrongly, is ``n/a`` with the reason; the run
goes on without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson

from bench import loadgen
from bench.catalogue import PROJECT_ID, Catalogue
from bench.procs import (
    REPO,
    CoreLoad,
    Service,
    StartError,
    cpu_seconds,
    free_port,
    http_get,
    own_cpu_seconds,
    reset_peak_rss,
    status_kib,
    taskset,
)
from bench.upstream import Nginx

AUTH: Final = {"X-Auth-Token": loadgen.TOKEN, "Accept": "application/json"}
SHOW_INDEX: Final = 7
_CALL_SAMPLES: Final = 4


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of client request, as the shim sees it and as the Glance call behind it."""

    key: str
    label: str
    shim_path: str
    glance_path: str
    images: int
    basic: bool = False
    nova_key: str | None = None
    """A canned Nova answer (bench/nova_answers.py): the top-level key it must have."""

    def expect(self, document: object, shim: bool) -> str | None:
        """None if *document* is the right answer, else what is wrong with it."""
        if not isinstance(document, dict):
            return "answer is not a JSON object"
        if self.nova_key is not None:
            return None if self.nova_key in document else f"no {self.nova_key!r} in answer"
        if self.key == "show":
            found = document.get("image") if shim else document
            return None if isinstance(found, dict) and "id" in found else "no image in answer"
        images = document.get("images")
        if not isinstance(images, list) or len(images) != self.images:
            got = len(images) if isinstance(images, list) else "no"
            return f"expected {self.images} images, got {got}"
        if self.basic and shim and images and set(images[0]) - {"id", "name", "links"}:
            return f"basic list item has extra keys {sorted(set(images[0]))}"
        return None


def kinds(catalogue: Catalogue) -> dict[str, Kind]:
    image_id = catalogue.first_id(SHOW_INDEX)
    prefix = f"/v2.1/{PROJECT_ID}/images"
    out = {
        f"detail{n}": Kind(
            f"detail{n}",
            f"detail, {n} image{'s' if n > 1 else ''}",
            f"{prefix}/detail?limit={n}",
            f"/v2/images?limit={n}",
            n,
        )
        for n in (1, 25, 200, 1000)
    }
    out["show"] = Kind(
        "show", "show one image", f"{prefix}/{image_id}", f"/v2/images/{image_id}", 1
    )
    out["basic25"] = Kind(
        "basic25", "basic list, 25", f"{prefix}?limit=25", "/v2/images?limit=25", 25, basic=True
    )
    return out


@dataclass
class Target:
    key: str
    label: str
    url: str
    pids: Callable[[], list[int]]
    speaks_nova: bool
    service: Service | None = None
    na: str | None = None
    probed: dict[str, str | None] = field(default_factory=dict)
    calls: dict[str, float] = field(default_factory=dict)

    def path(self, kind: Kind) -> str:
        return kind.shim_path if self.speaks_nova else kind.glance_path

    def probe(self, kind: Kind, nginx: Nginx) -> str | None:
        """Check one answer before measuring (once per kind); the reason if it is wrong.

        Then count Glance calls per request over a few sequential requests, which a loaded
        run cannot do exactly (requests still in flight when wrk stops).
        """
        if kind.key not in self.probed:
            self.probed[kind.key] = self._check(kind)
            if self.probed[kind.key] is None:
                nginx.quiesce()
                before = nginx.requests_served()
                for _ in range(_CALL_SAMPLES):
                    http_get(self.url + self.path(kind), AUTH, timeout=30.0)
                after = nginx.requests_served()
                self.calls[kind.key] = (after - before - 1) / _CALL_SAMPLES
        return self.probed[kind.key]

    def refusal(self, kind: Kind, nginx: Nginx) -> str | None:
        """Why a cell of *kind* cannot run on this target (not started, wrong answer)."""
        return self.na or self.probe(kind, nginx)

    def _check(self, kind: Kind) -> str | None:
        try:
            status, body = http_get(self.url + self.path(kind), AUTH, timeout=30.0)
        except OSError as exc:
            return f"no answer: {exc}"
        if status != 200:
            return f"HTTP {status}: {body[:160]!r}"
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return f"not JSON: {body[:120]!r}"
        return kind.expect(document, self.speaks_nova)

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


def direct_target(nginx: Nginx) -> Target:
    return Target("direct", "(a) direct nginx", nginx.url, nginx.service.pids, speaks_nova=False)


def _service_target(
    key: str, label: str, service: Service, url: str, ready_path: str, nova: bool
) -> Target:
    target = Target(key, label, url, service.pids, speaks_nova=nova, service=service)
    try:
        status, body = service.wait_ready(url + ready_path, AUTH, timeout=30.0)
    except StartError as exc:
        target.na = str(exc)
        return target
    if status != 200:
        service.stop()
        target.na = f"HTTP {status} on {ready_path}: {body[:160]!r}"
    return target


def floor_target(
    key: str,
    module: str,
    label: str,
    nginx: Nginx,
    workers: int,
    cpus: str | None,
    loop: str,
    logs: Path,
) -> Target:
    port = free_port()
    argv = [*taskset(cpus), sys.executable, "-m", module, "--upstream", nginx.url]
    argv += ["--listen", f"127.0.0.1:{port}", "--workers", str(workers), "--loop", loop]
    service = Service(label, argv, logs / f"{key}-{workers}w.log", cwd=REPO)
    service.start()
    return _service_target(
        key, label, service, f"http://127.0.0.1:{port}", "/v2/images?limit=1", nova=False
    )


@dataclass(frozen=True, slots=True)
class Launch:
    """How every shim of a run starts: the command (None: ``python -m shim``), its log level."""

    command: list[str] | None = None
    log_level: str = "warning"


def shim_target(
    nginx: Nginx,
    workers: int,
    cpus: str | None,
    page_size: int,
    logs: Path,
    launch: Launch,
    log_name: str = "shim",
    extra_env: dict[str, str] | None = None,
    *,
    tls: bool = False,
    tree: Path | None = None,
    named: tuple[str, str] | None = None,
) -> Target:
    """The shim over *nginx*; with *tls* it calls nginx's HTTPS port, verifying it.

    With *tree* it runs the ``shim`` package of that directory (another revision of this
    repository, `bench/against.py`) instead of this checkout's, under the same interpreter;
    *named* is then the target's key and label.
    """
    key, label = ("shim-tls", "(e) shim, Glance over HTTPS") if tls else ("shim", "(d) shim")
    if named is not None:
        key, label = named
    command = launch.command
    if command is None and not ((tree or REPO) / "shim" / "__main__.py").exists():
        reason = "shim CLI not written yet (no shim/__main__.py for `python -m shim`)"
        return Target(key, label, "", list, speaks_nova=True, na=reason)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    env |= {
        "SHIM_GLANCE_URL": nginx.url,
        "SHIM_LISTEN": f"127.0.0.1:{port}",
        "SHIM_METRICS_LISTEN": "off",
        "SHIM_WORKERS": str(workers),
        "SHIM_LOG_LEVEL": launch.log_level,
        "SHIM_GLANCE_PAGE_SIZE": str(page_size),
        **(extra_env or {}),
    }
    if tls:
        env |= {"SHIM_GLANCE_URL": nginx.tls_url, "SHIM_CA_FILE": str(nginx.ca_file)}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    argv = [*taskset(cpus), *(command or [sys.executable, "-m", "shim"])]
    log = logs / f"{log_name}-{workers}w.log"
    service = Service(label, argv, log, env=env, cwd=tree or REPO)
    service.start()
    ready = f"/v2.1/{PROJECT_ID}/images/detail?limit=1"
    return _service_target(key, label, service, f"http://127.0.0.1:{port}", ready, nova=True)


Metrics = dict[str, float]


def closed_cell(
    target: Target,
    kind: Kind,
    nginx: Nginx,
    connections: int,
    seconds: int,
    warmup: int,
    load_cpus: str | None,
) -> Metrics | str:
    """Run wrk once; the metrics, or why the cell is n/a."""
    refused = target.refusal(kind, nginx)
    if refused:
        return refused
    url = target.url + target.path(kind)
    try:
        if warmup:
            loadgen.wrk(url, connections, warmup, load_cpus)
        pids = target.pids()
        upstream = [] if target.key == "direct" else nginx.service.pids()
        cores = CoreLoad()
        ours0 = own_cpu_seconds() + cpu_seconds(upstream)
        cpu0 = cpu_seconds(pids)
        cores.start()
        result = loadgen.wrk(url, connections, seconds, load_cpus)
        cpu1 = cpu_seconds(pids)
        ours1 = own_cpu_seconds() + cpu_seconds(upstream)
        load = cores.stop(ours1 - ours0 + cpu1 - cpu0)
    except (loadgen.LoadError, OSError) as exc:
        return f"load failed: {exc}"
    done = max(result.requests, 1)
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "cpu_s_per_1k": (cpu1 - cpu0) / done * 1000,
        "glance_calls": target.calls.get(kind.key, float("nan")),
        "errors": float(result.errors + result.non_2xx),
        "requests": float(result.requests),
        **load,
    }


def open_cell(
    target: Target,
    kind: Kind,
    nginx: Nginx,
    rate: float,
    seconds: float,
    load_cpus: str | None,
) -> Metrics | str:
    refused = target.refusal(kind, nginx)
    if refused:
        return refused
    try:
        result = loadgen.openloop(target.url + target.path(kind), rate, seconds, load_cpus)
    except (loadgen.LoadError, OSError) as exc:
        return f"load failed: {exc}"
    return {
        "rate": result.rate,
        "achieved_rate": result.achieved_rate,
        "p50_ms": result.p50_ms,
        "p90_ms": result.p90_ms,
        "p99_ms": result.p99_ms,
        "max_ms": result.max_ms,
        "errors": float(result.errors + result.non_2xx),
        "dispatch_lag_p99_ms": result.dispatch_lag_p99_ms,
    }


def direct_walk_cell(
    nginx: Nginx, page_size: int, loop: str, load_cpus: str | None
) -> Metrics | str:
    argv = ["--loop", loop, "glance", "--base", nginx.url, "--page-size", str(page_size)]
    data = loadgen.walker(argv, load_cpus)
    if "error" in data:
        return str(data["error"])
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


def unpaged_cell(target: Target, expected: int, load_cpus: str | None) -> Metrics | str:
    """One unpaged detail list; the shim's peak RSS is reset first and read after."""
    if target.na:
        return target.na
    pids = target.pids()
    reset = all(reset_peak_rss(pid) for pid in pids)
    rss0 = max((status_kib(pid, "VmRSS") for pid in pids), default=0)
    cpu0 = cpu_seconds(pids)
    base = f"{target.url}/v2.1/{PROJECT_ID}/images"
    data = loadgen.walker(
        ["shim", "--url", f"{base}/detail", "--warm-url", f"{base}/detail?limit=1"],
        load_cpus,
        120.0,
    )
    cpu1 = cpu_seconds(pids)
    if "error" in data:
        return str(data["error"])
    if data.get("images") != expected:
        return f"expected {expected} images, got {data.get('images')}"
    out = {k: float(v) for k, v in data.items() if isinstance(v, int | float)}
    out["peak_rss_mb"] = max((status_kib(pid, "VmHWM") for pid in pids), default=0) / 1024
    out["rss_before_mb"] = rss0 / 1024
    out["peak_reset"] = 1.0 if reset else 0.0
    out["cpu_s"] = cpu1 - cpu0
    return out
