"""Soak: a bounded run of mixed traffic through ``python -m shim`` to the real Glance.

``scripts/soak [--minutes 10] [--concurrency 16] [--report FILE]`` (this module's CLI).

1. Brings up the test stack in its own run directory (``<stack cache>/soak-run``, unless
   ``SHIM_STACK_RUN_DIR`` says otherwise), so restarting its Glance disturbs no test run.
2. Seeds alice's project: scratch images for metadata writes and bulk rows so an unpaged
   list spans several Glance pages. Everything it seeds is purged at the end.
3. Starts the shim as production does (``python -m shim``, one worker, JSON logs to a file)
   on loopback, and drives a fixed number of concurrent clients until the time is up:
   paged lists (following next links), unpaged lists, shows, metadata reads and writes on
   the scratch images, and 404s. Every request has a client timeout; one that expires is
   counted as *hung*.
4. Restarts Glance once, at the middle of the run (SIGTERM to its process group, then the
   same command on the same port), and records the window it was away.
5. Reports requests, errors by kind (inside and outside the restart window), hung requests,
   latency percentiles, and the shim's RSS after warm-up and at the end, then scans the
   shim's output and ``/metrics`` for the token and for unhandled exceptions.

Errors are attributed through the shim's own access line (found by the answer's request id):
an error whose Glance call failed (5xx, refused, timed out) has an upstream cause. Exit
status 0 only if: no request hung, no error outside the restart window without an upstream
cause, RSS drift below 5 %, no unhandled exception logged, and no token in logs or metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

from tests.fakes.entry import spawn_shim, until_ready
from tests.stack.configs import GlanceDirs
from tests.stack.info import StackInfo
from tests.stack.layout import HOST, StackPaths
from tests.stack.procs import free_port, spawn, stop_group, wait_ready
from tests.stack.realstack import _gunicorn, _server_env, ensure_up
from tests.stack.seed import GlanceApi, bulk_insert, purge

REQUEST_TIMEOUT: Final = 30.0
MAX_RSS_DRIFT: Final = 0.05
SCRATCH: Final = 24
BULK: Final = 400
PAGE_SIZE: Final = 50
CANARY: Final = "canaryTOK-soak-3c1d9e7f"
# operation -> (weight, statuses that are a correct answer)
OPERATIONS: Final[dict[str, tuple[int, frozenset[int]]]] = {
    "list_paged": (20, frozenset({200})),
    "list_unpaged": (6, frozenset({200})),
    "detail_paged": (14, frozenset({200})),
    "show": (20, frozenset({200})),
    "metadata_read": (12, frozenset({200})),
    # 16 clients write 24 images: Glance may answer a race with 409 (conflictingRequest).
    "metadata_write": (12, frozenset({200, 409})),
    "metadata_item": (6, frozenset({200, 204, 409})),
    "not_found": (8, frozenset({404})),
    "bad_token": (2, frozenset({401})),
}


@dataclass(frozen=True, slots=True)
class Sample:
    op: str
    started: float
    seconds: float
    outcome: str  # an HTTP status, or an exception class name
    ok: bool
    request_id: str | None  # the shim's id of the (last) answer, to find its access line


@dataclass
class Soak:
    base: str
    token: str
    project: str
    image_ids: list[str]
    scratch_ids: list[str]
    samples: list[Sample] = field(default_factory=list)

    async def one(self, session: aiohttp.ClientSession, op: str, rng: random.Random) -> None:
        expected = OPERATIONS[op][1]
        started = time.monotonic()
        seen: list[str] = []
        try:
            outcome = str(await self._request(session, op, rng, seen))
        except TimeoutError:
            outcome = "hung"
        except aiohttp.ClientError as exc:
            outcome = type(exc).__name__
        seconds = time.monotonic() - started
        ok = outcome.isdigit() and int(outcome) in expected
        self.samples.append(Sample(op, started, seconds, outcome, ok, seen[-1] if seen else None))

    async def _request(
        self, session: aiohttp.ClientSession, op: str, rng: random.Random, seen: list[str]
    ) -> int:
        auth = {"X-Auth-Token": self.token}
        prefix = rng.choice(["/v2.1", f"/v2.1/{self.project}", "/v2", f"/v2/{self.project}"])
        image = rng.choice(self.image_ids)
        scratch = rng.choice(self.scratch_ids)
        if op in ("list_paged", "detail_paged"):
            collection = "images" if op == "list_paged" else "images/detail"
            url: str | None = f"{self.base}{prefix}/{collection}?limit={rng.choice([5, 20, 100])}"
            status = 0
            for _ in range(3):  # follow up to two next links, as openstacksdk would
                if url is None:
                    break
                async with session.get(url, headers=auth) as response:
                    seen.append(response.headers.get("x-openstack-request-id", ""))
                    status = response.status
                    body = await response.json() if status == 200 else {}
                links = body.get("images_links") or [{}]
                url = links[0].get("href")
                if status != 200:
                    break
            return status
        if op == "list_unpaged":
            async with session.get(f"{self.base}{prefix}/images", headers=auth) as response:
                seen.append(response.headers.get("x-openstack-request-id", ""))
                body = await response.json() if response.status == 200 else {}
                if response.status == 200 and len(body["images"]) < BULK:
                    return 599  # a list that ended early: never acceptable
                return response.status
        if op == "show":
            path = f"{prefix}/images/{image}"
        elif op == "metadata_read":
            path = f"{prefix}/images/{scratch}/metadata"
        elif op == "not_found":
            path = rng.choice([f"{prefix}/images/{uuid.uuid4()}", f"{prefix}/images/x/y/z"])
        elif op == "bad_token":
            auth = {"X-Auth-Token": f"{CANARY}-{rng.randrange(10**6)}"}
            path = f"{prefix}/images/{image}"
        elif op == "metadata_write":
            body_json = {"metadata": {f"soak_{rng.randrange(8)}": str(rng.randrange(10**6))}}
            method = rng.choice(["POST", "PUT"])
            url = f"{self.base}{prefix}/images/{scratch}/metadata"
            async with session.request(method, url, json=body_json, headers=auth) as response:
                seen.append(response.headers.get("x-openstack-request-id", ""))
                await response.read()
                return response.status
        else:  # metadata_item: set one key, then delete it
            key = f"item_{rng.randrange(4)}"
            url = f"{self.base}{prefix}/images/{scratch}/metadata/{key}"
            body_json = {"meta": {key: "v"}}
            async with session.put(url, json=body_json, headers=auth) as response:
                seen.append(response.headers.get("x-openstack-request-id", ""))
                await response.read()
                if response.status != 200:
                    return response.status
            async with session.delete(url, headers=auth) as response:
                seen.append(response.headers.get("x-openstack-request-id", ""))
                await response.read()
                return 204 if response.status == 404 else response.status  # raced: gone
        async with session.get(f"{self.base}{path}", headers=auth) as response:
            seen.append(response.headers.get("x-openstack-request-id", ""))
            await response.read()
            return response.status


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def restart_glance(info: StackInfo, paths: StackPaths) -> tuple[StackInfo, float]:
    """Stop Glance's process group and start it again on the same port (blocking).

    Returns the new `StackInfo` (written to the state file, so the stack stays "healthy"
    for `ensure_up`) and the seconds Glance was away.
    """
    glance = GlanceDirs(paths.run / "glance")
    started = time.monotonic()
    stop_group(info.glance_pid)
    cmd = _gunicorn(
        paths.glance.bin,
        info.glance_port,
        glance.pid_file,
        "glance.wsgi.api:application",
        paths.run,
    )
    proc = spawn(cmd, glance.server_log, env=_server_env({"OS_GLANCE_CONFIG_DIR": str(glance.etc)}))
    wait_ready(
        "glance", f"{info.glance_url}/healthcheck", proc, [glance.server_log, glance.app_log]
    )
    restarted = dataclasses.replace(info, glance_pid=proc.pid)
    paths.state_file.write_text(restarted.to_json())
    return restarted, time.monotonic() - started


def upstream_statuses(lines: list[str]) -> dict[str, str]:
    """request id -> the failing upstream outcome of its access line (5xx, connect_error,
    timeout ...), for requests whose error had an upstream cause."""
    causes: dict[str, str] = {}
    for line in lines:
        if '"event": "request"' not in line:
            continue
        entry = json.loads(line)
        status = entry.get("upstream_status")
        if status is None or (isinstance(status, int) and status < 500):
            continue
        if isinstance(status, str) and status.isdigit() and int(status) < 500:
            continue
        causes[str(entry.get("request_id"))] = str(status)
    return causes


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def drive(soak: Soak, seconds: float, concurrency: int, seed: int) -> None:
    deadline = time.monotonic() + seconds
    names = list(OPERATIONS)
    weights = [OPERATIONS[name][0] for name in names]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def client(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            while time.monotonic() < deadline:
                await soak.one(session, rng.choices(names, weights)[0], rng)

        await asyncio.gather(*(client(n) for n in range(concurrency)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    paths = StackPaths.from_env()
    if not os.environ.get("SHIM_STACK_RUN_DIR"):
        paths = dataclasses.replace(paths, run=paths.cache / "soak-run")
    running = await asyncio.to_thread(ensure_up, paths)
    info = running.info
    api = GlanceApi(info)
    token = await asyncio.to_thread(info.token, "alice")
    scratch: list[str] = []
    bulk: list[str] = []
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / "shim.log"
    proc: asyncio.subprocess.Process | None = None
    try:
        for i in range(SCRATCH):
            image = await asyncio.to_thread(api.create, "alice", None, name=f"soak-{i}")
            scratch.append(image["id"])
        bulk = await asyncio.to_thread(bulk_insert, info, BULK, info.demo_a, name_prefix="soak")
        port, metrics_port = free_port(HOST), free_port(HOST)
        settings = {
            "SHIM_GLANCE_URL": info.glance_url,
            "SHIM_LISTEN": f"{HOST}:{port}",
            "SHIM_METRICS_LISTEN": f"{HOST}:{metrics_port}",
            "SHIM_WORKERS": "1",
            "SHIM_GLANCE_PAGE_SIZE": str(PAGE_SIZE),
            "SHIM_LOG_FORMAT": "json",
        }
        with log_path.open("wb") as out:
            proc = await spawn_shim(settings, stdout=out, stderr=out)
        metrics_url = f"http://{HOST}:{metrics_port}"
        await until_ready(metrics_url)
        rss_launch = rss_bytes(proc.pid)
        soak = Soak(f"http://{HOST}:{port}", token, info.demo_a, bulk[:200] + scratch, scratch)
        total = args.minutes * 60
        warmup = min(30.0, total / 10)
        began = time.monotonic()
        traffic = asyncio.create_task(drive(soak, total, args.concurrency, args.seed))
        await asyncio.sleep(warmup)
        rss_start = rss_bytes(proc.pid)
        await asyncio.sleep(max(0.0, began + total / 2 - time.monotonic()))
        restart_at = time.monotonic()
        info, away = await asyncio.to_thread(restart_glance, info, paths)
        running.info = info  # so that close() stops this Glance, not the one it replaced
        window = (restart_at, restart_at + away + REQUEST_TIMEOUT)
        await traffic
        elapsed = time.monotonic() - began
        rss_end = rss_bytes(proc.pid)
        async with aiohttp.ClientSession() as probe, probe.get(f"{metrics_url}/metrics") as r:
            exposition = await r.text()
    finally:
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
        await asyncio.to_thread(purge, info, scratch + bulk)
        running.close()
    output = log_path.read_text(errors="replace")
    return summarise(soak, elapsed, window, rss_launch, rss_start, rss_end, output, exposition,
                     token, args)  # fmt: skip


def summarise(
    soak: Soak,
    elapsed: float,
    window: tuple[float, float],
    rss_launch: int,
    rss_start: int,
    rss_end: int,
    output: str,
    exposition: str,
    token: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    samples = soak.samples
    lines = output.splitlines()
    upstream = upstream_statuses(lines)

    def in_window(sample: Sample) -> bool:  # in flight at any time during the restart
        return sample.started <= window[1] and sample.started + sample.seconds >= window[0]

    def kind(sample: Sample) -> str:
        cause = upstream.get(sample.request_id or "")
        return f"{sample.op} {sample.outcome}" + (f" (Glance: {cause})" if cause else "")

    inside = [s for s in samples if in_window(s) and not s.ok]
    outside = [s for s in samples if not in_window(s) and not s.ok]
    unexplained = [s for s in outside if not upstream.get(s.request_id or "")]
    latencies = [s.seconds for s in samples]
    unexpected = [
        line
        for line in lines
        if '"unexpected_error"' in line or '"unhandled_error"' in line or '"level": "error"' in line
    ]
    leaks = [
        where
        for where, text in (("log", output), ("metrics", exposition))
        if token in text or CANARY in text
    ]
    drift = (rss_end - rss_start) / rss_start
    report: dict[str, Any] = {
        "minutes": args.minutes,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 1),
        "requests": len(samples),
        "requests_per_second": round(len(samples) / elapsed, 1),
        "by_operation": dict(Counter(s.op for s in samples)),
        "outcomes": dict(Counter(s.outcome for s in samples)),
        "errors_in_restart_window": dict(Counter(kind(s) for s in inside)),
        "errors_outside_restart_window": dict(Counter(kind(s) for s in outside)),
        "errors_without_upstream_cause": dict(Counter(kind(s) for s in unexplained)),
        "restart_window_seconds": round(window[1] - window[0] - REQUEST_TIMEOUT, 2),
        "hung": sum(1 for s in samples if s.outcome == "hung"),
        "latency_ms": {
            name: round(percentile(latencies, q) * 1000, 1)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        },
        "p99_ms_by_operation": {
            op: round(percentile([s.seconds for s in samples if s.op == op], 0.99) * 1000, 1)
            for op in OPERATIONS
        },
        "rss_mib": {
            "launch": round(rss_launch / 2**20, 1),
            "after_warmup": round(rss_start / 2**20, 1),
            "end": round(rss_end / 2**20, 1),
            "drift_percent": round(drift * 100, 2),
        },
        "log_lines": len(lines),
        "unexpected_errors_logged": len(unexpected),
        "token_found_in": leaks,
    }
    report["passed"] = (
        report["hung"] == 0
        and not unexplained
        and drift < MAX_RSS_DRIFT
        and not unexpected
        and not leaks
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the run")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--seed", type=int, default=1, help="traffic mix seed")
    parser.add_argument("--report", help="also write the JSON report to this file")
    parser.add_argument("--workdir", default="/tmp/nova-image-shim-soak", help="shim log dir")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60 or not 1 <= args.concurrency <= 256:
        parser.error("--minutes must be in (0, 1440] and --concurrency in [1, 256]")
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        Path(args.report).write_text(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
