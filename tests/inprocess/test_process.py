"""The shim as a process: ``python -m shim`` with workers, signals, exit statuses, metrics.

Each test starts the real entry point in a subprocess against a recording fake Glance
(running in the test's event loop) and reads its JSON log lines from stdout, which are
also checked for the token. Bounded: every wait has a timeout of a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

from tests.fakes import RecordingUpstream
from tests.fakes.entry import spawn_shim
from tests.fakes.logs import assert_free_of
from tests.stack.procs import free_port

TOKEN = "tok-process-test-3b9f1e2d7c-secret"
START_TIMEOUT = 15.0
Event = dict[str, Any]


class ShimProcess:
    """A running ``python -m shim``; its stdout parsed line by line as JSON events."""

    def __init__(self, proc: asyncio.subprocess.Process, api: int, metrics: int) -> None:
        self.proc = proc
        self.url = URL.build(scheme="http", host="127.0.0.1", port=api)
        self.metrics_url = URL.build(scheme="http", host="127.0.0.1", port=metrics)
        self.lines: list[str] = []
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            self.events.append(json.loads(line))  # every line is JSON, or the test fails
            self._changed.set()
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[list[Event]], bool], timeout: float = START_TIMEOUT
    ) -> list[Event]:
        async with asyncio.timeout(timeout):
            while not predicate(self.events):
                if self._reader.done():
                    self._reader.result()
                    raise AssertionError(f"shim exited; last lines: {self.lines[-5:]}")
                self._changed.clear()
                await self._changed.wait()
        return self.events

    def named(self, event: str) -> list[Event]:
        return [e for e in self.events if e["event"] == event]

    async def wait_listening(self, workers: int) -> list[int]:
        await self.wait_for(lambda _: len(self.named("listening")) >= workers)
        return [e["pid"] for e in self.named("listening")]

    async def exit_status(self, timeout: float = 15.0) -> int:
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self._reader
        return code


@asynccontextmanager
async def shim_process(env: Mapping[str, str]) -> AsyncIterator[ShimProcess]:
    api, metrics = free_port(), free_port()
    settings = {
        "SHIM_LISTEN": f"127.0.0.1:{api}",
        "SHIM_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        "SHIM_LOG_FORMAT": "json",
        "SHIM_SHUTDOWN_TIMEOUT": "10",
        **env,
    }
    proc = await spawn_shim(
        settings,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # so cleanup can kill master and workers together
    )
    shim = ShimProcess(proc, api, metrics)
    try:
        yield shim
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        with suppress(Exception):
            await shim._reader
        assert proc.stderr is not None
        await proc.stderr.read()
        assert_free_of(shim.lines, TOKEN)


def _families(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _value(
    samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_aggregate_across_two_workers(
    glance: tuple[RecordingUpstream, URL], tmp_path: Path
) -> None:
    _, glance_url = glance
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # from an earlier run
    agents = ["openstacksdk/4.5.0 keystoneauth1/5.11.0", "gophercloud/v2.4.0", "legacy-app/1.0"]
    requests = 60
    async with shim_process(
        {
            "SHIM_GLANCE_URL": str(glance_url),
            "SHIM_WORKERS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
    ) as shim:
        pids = await shim.wait_listening(2)
        assert len(set(pids)) == 2
        # A new connection per request: SO_REUSEPORT spreads connections, not requests.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:
            for n in range(requests):
                headers = {"X-Auth-Token": TOKEN, "User-Agent": agents[n % 3]}
                async with client.get(shim.url / "v2.1/images", headers=headers) as response:
                    assert response.status == 200
            async with client.get(shim.metrics_url / "metrics") as response:
                assert response.status == 200
                exposition = await response.text()
        await shim.wait_for(
            lambda events: sum(e.get("logger") == "shim.access" for e in events) >= requests
        )
        served_by = Counter(e["pid"] for e in shim.events if e.get("logger") == "shim.access")
        # Both workers answered some requests ...
        assert set(served_by) == set(pids), served_by
        # ... and each has its own multiprocess files; the stale one was cleared.
        assert not (metrics_dir / "counter_999999.db").exists()
        for pid in pids:
            values = MmapedDict.read_all_values_from_file(  # type: ignore[no-untyped-call]
                str(metrics_dir / f"counter_{pid}.db")
            )
            mine = sum(v for key, v, *_ in values if '"nova_image_shim_requests_total"' in key)
            assert mine == served_by[pid]
        # ... while the exposition, from whichever worker answered, sums them.
        samples = _families(exposition)
        assert (
            _value(
                samples,
                "nova_image_shim_requests_total",
                route="/v2.1/images",
                method="GET",
                status="200",
                microversion="2.1",
            )
            == requests
        )
        assert (
            _value(
                samples,
                "nova_image_shim_request_duration_seconds_count",
                route="/v2.1/images",
                method="GET",
            )
            == requests
        )
        assert (
            _value(
                samples,
                "nova_image_shim_upstream_requests_total",
                upstream="glance",
                operation="list",
                outcome="2xx",
            )
            == requests
        )
        for client_label in ("openstacksdk", "gophercloud", "other"):
            assert (
                _value(samples, "nova_image_shim_legacy_client_requests_total", client=client_label)
                == requests / 3
            )
        assert _value(samples, "nova_image_shim_requests_in_flight") == 0
        shim.proc.send_signal(signal.SIGTERM)
        assert await shim.exit_status() == 0
    exits = [e for e in shim.events if e["event"] == "worker_exited"]
    assert sorted(e["worker_pid"] for e in exits) == sorted(pids)
    assert all(e["exit_status"] == 0 for e in exits)


async def _readyz_status(shim: ShimProcess) -> int | None:
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(shim.metrics_url / "readyz") as response,
        ):
            return response.status
    except aiohttp.ClientConnectionError:
        return None  # a worker that finished draining closed its metrics socket


async def _accepts(url: URL) -> bool:
    try:
        _, writer = await asyncio.open_connection(url.host, url.port)
    except ConnectionRefusedError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_lets_a_slow_request_finish_then_exits_0(
    glance: tuple[RecordingUpstream, URL], workers: int
) -> None:
    fake, glance_url = glance
    async with shim_process(
        {"SHIM_GLANCE_URL": str(glance_url), "SHIM_WORKERS": str(workers)}
    ) as shim:
        await shim.wait_listening(workers)
        assert await _readyz_status(shim) == 200
        async with aiohttp.ClientSession() as client:

            async def slow() -> tuple[int, Any]:
                async with client.get(
                    shim.url / "v2.1/images/slow", headers={"X-Auth-Token": TOKEN}
                ) as response:
                    return response.status, await response.json()

            pending = asyncio.create_task(slow())
            # Not just any request: the start-up check already called Glance (/versions).
            async with asyncio.timeout(5):
                while not any(r.raw_path == "/v2/images/slow" for r in fake.requests):
                    await fake.wait_for(len(fake.requests) + 1)
            # Glance holds it for 2 s from now.
            started = time.monotonic()
            shim.proc.send_signal(signal.SIGTERM)
            await shim.wait_for(lambda _: len(shim.named("draining")) >= workers, 5)
            statuses = {await _readyz_status(shim) for _ in range(3)}
            assert 503 in statuses, statuses
            assert 200 not in statuses, statuses
            if workers == 1:  # the API socket is closed: new connections are refused
                async with asyncio.timeout(2):
                    while await _accepts(shim.url):
                        await asyncio.sleep(0.05)
            status, body = await pending
        assert status == 200
        assert body["image"]["id"] == "slow"
        assert await shim.exit_status() == 0
        assert time.monotonic() - started >= 1.5  # it waited for the request
    (access,) = [e for e in shim.events if e.get("logger") == "shim.access"]
    assert access["status"] == 200


async def test_a_dead_worker_is_logged_and_replaced(
    glance: tuple[RecordingUpstream, URL],
) -> None:
    _, glance_url = glance
    async with shim_process({"SHIM_GLANCE_URL": str(glance_url), "SHIM_WORKERS": "2"}) as shim:
        first, second = await shim.wait_listening(2)
        os.kill(first, signal.SIGKILL)
        await shim.wait_for(lambda _: bool(shim.named("worker_died")))
        (died,) = shim.named("worker_died")
        assert died["worker_pid"] == first
        assert died["exit_status"] == -signal.SIGKILL
        pids = await shim.wait_listening(3)
        assert pids[2] not in (first, second)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:
            for _ in range(10):
                async with client.get(
                    shim.url / "v2.1/images", headers={"X-Auth-Token": TOKEN}
                ) as response:
                    assert response.status == 200
        shim.proc.send_signal(signal.SIGTERM)
        assert await shim.exit_status() == 0


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_taken_port_stops_start_up(
    glance: tuple[RecordingUpstream, URL], workers: int
) -> None:
    _, glance_url = glance
    with socket.socket() as taken:  # bound without SO_REUSEPORT: nobody can share it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with shim_process(
            {
                "SHIM_GLANCE_URL": str(glance_url),
                "SHIM_WORKERS": str(workers),
                "SHIM_LISTEN": f"127.0.0.1:{port}",
            }
        ) as shim:
            assert await shim.exit_status() == 3
    [failed] = shim.named("startup_failed")
    assert "address already in use" in failed["error"].lower()
    assert not shim.named("worker_started")  # the master binds before forking anyone


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_second_shim_on_the_same_address_fails_instead_of_sharing_it(
    glance: tuple[RecordingUpstream, URL], workers: int
) -> None:
    """Two instances started with the same SHIM_LISTEN by mistake: the second must not
    quietly take part of the first one's traffic (as SO_REUSEPORT would let it)."""
    _, glance_url = glance
    async with shim_process(
        {"SHIM_GLANCE_URL": str(glance_url), "SHIM_WORKERS": str(workers)}
    ) as first:
        await first.wait_listening(workers)
        second_env = {
            "SHIM_GLANCE_URL": "http://127.0.0.1:9/wrong",
            "SHIM_WORKERS": str(workers),
            "SHIM_LISTEN": f"127.0.0.1:{first.url.port}",
        }
        async with shim_process(second_env) as second:
            assert await second.exit_status() == 3
        [failed] = second.named("startup_failed")
        assert "address already in use" in failed["error"].lower()
        # The first keeps answering every request with its own Glance.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as client:
            for _ in range(10):
                headers = {"X-Auth-Token": TOKEN}
                async with client.get(first.url / "v2.1/images", headers=headers) as response:
                    assert response.status == 200


async def test_bad_settings_exit_2_naming_the_setting() -> None:
    settings = {"SHIM_GLANCE_URL": "http://glance:9292", "SHIM_SUNSET": "whenever"}
    proc = await spawn_shim(settings, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    assert b"SHIM_SUNSET" in stderr


async def test_workers_do_not_outlive_a_killed_master(
    glance: tuple[RecordingUpstream, URL],
) -> None:
    _, glance_url = glance
    async with shim_process({"SHIM_GLANCE_URL": str(glance_url), "SHIM_WORKERS": "2"}) as shim:
        pids = await shim.wait_listening(2)
        shim.proc.send_signal(signal.SIGKILL)
        # The kernel SIGTERMs the orphans; they drain and exit, closing the log pipe.
        await shim.wait_for(lambda _: len(shim.named("stopped")) == 2, 10)
        await asyncio.wait_for(shim._reader, 10)
        async with asyncio.timeout(5):  # the pipe closes a moment before exit completes
            while any(_running(pid) for pid in pids):
                await asyncio.sleep(0.05)


def _running(pid: int) -> bool:
    """Alive and not a zombie (orphans are reaped by whatever PID 1 is, maybe never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
