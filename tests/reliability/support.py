"""What every reliability test shares: the canary token, log capture, leak checks, a fake Glance.

* `CANARY`: a distinctive token prefix. Every request in these tests carries a token that
  starts with it, so `Captured.assert_no_canary` can scan logs, fault bodies, upstream query
  strings and metric labels for it (token hygiene, docs/contract.md §5).
* `capture`: structlog's `capture_logs` (raw event dicts, *before* any redaction: a token
  that only redaction hides is still a finding) plus a root stdlib handler (aiohttp's own
  loggers, asyncio), with ``unexpected_error`` and tracebacks counted.
* `settle`: wait until no connection is checked out of the shim's pool and no task running
  shim code is left, and until the task count is back to a baseline.
* `IMAGE`: the image the fake Glance of the ``shim_over_fakes`` fixture (conftest.py) knows;
  `ShimOverFakes`: that fixture's type.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import structlog
from aiohttp.test_utils import TestClient
from structlog.typing import EventDict

from tests.fakes import RecordingUpstream, acquired_connections
from tests.fakes.images import glance_image

CANARY: Final = "canaryTOK-9e1f3a7c5b2d4e6f8a0b"
"""Prefix of every token used here: long, unique, and unlike any real token shape."""

IMAGE: Final = glance_image(7)
IMAGE_ID: Final = str(IMAGE["id"])

Client = TestClient[Any, Any]
ShimOverFakes = Callable[..., Awaitable[tuple[Client, RecordingUpstream, RecordingUpstream]]]
"""Starts a shim in front of a fake Glance and a fake Nova: the ``shim_over_fakes`` fixture."""

SHIM_ROOT: Final = str(Path(__file__).resolve().parents[2] / "shim")
FAKES_ROOT: Final = str(Path(__file__).resolve().parents[1] / "fakes")


def token(n: int | str = 0) -> str:
    return f"{CANARY}-{n}"


@dataclass
class Captured:
    events: list[EventDict] = field(default_factory=list)
    records: list[logging.LogRecord] = field(default_factory=list)

    def texts(self, skip_loggers: tuple[str, ...] = ()) -> Iterator[str]:
        for event in self.events:
            yield repr(event)
        for record in self.records:
            if record.name in skip_loggers:
                continue
            yield f"{record.name} {record.levelname} {record.getMessage()}"
            if record.exc_info is not None:
                yield logging.Formatter().formatException(record.exc_info)

    def unexpected(self) -> list[str]:
        """Unhandled exceptions: the fault middleware's ``unexpected_error``, the server's
        ``unhandled_error``, aiohttp's "Error handling request", any ERROR with a traceback."""
        found = [
            repr(e)
            for e in self.events
            if e.get("event") in ("unexpected_error", "unhandled_error")
            or e.get("log_level") in ("error", "critical")
        ]
        found += [
            f"{r.name}: {r.getMessage()}\n{logging.Formatter().formatException(r.exc_info)}"
            if r.exc_info
            else f"{r.name}: {r.getMessage()}"
            for r in self.records
            if (r.levelno >= logging.ERROR or r.exc_info is not None) and not _from_fake(r)
        ]
        return found

    def assert_no_canary(self, *more: str, skip_loggers: tuple[str, ...] = ()) -> None:
        leaks = [text for text in (*self.texts(skip_loggers), *more) if CANARY in text]
        assert not leaks, f"token canary found in {len(leaks)} place(s): {leaks[:3]}"


def _from_fake(record: logging.LogRecord) -> bool:
    """aiohttp's server logger is shared: a fake upstream whose peer (the shim) hung up
    mid-answer logs "Error handling request" too. Such a traceback runs through the fake."""
    if record.exc_info is None or record.exc_info[2] is None:
        return False
    frames = traceback.extract_tb(record.exc_info[2])
    return any(frame.filename.startswith(FAKES_ROOT) for frame in frames)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    """Everything logged inside the block, structlog and stdlib alike."""
    captured = Captured()
    root = logging.getLogger()
    handler = _ListHandler(captured.records)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with structlog.testing.capture_logs() as events:
            yield captured
            captured.events.extend(events)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _runs_shim_code(task: asyncio.Task[Any]) -> bool:
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    return code is not None and code.co_filename.startswith(SHIM_ROOT)


def shim_tasks() -> list[asyncio.Task[Any]]:
    """Live tasks whose coroutine is shim code (a prefetch, a token load ...)."""
    return [t for t in asyncio.all_tasks() if not t.done() and _runs_shim_code(t)]


async def settle(
    connector: aiohttp.BaseConnector, baseline_tasks: int, timeout: float = 3.0
) -> None:
    """Assert the pool and the task set return to baseline within *timeout*."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        acquired = acquired_connections(connector)
        tasks = len(asyncio.all_tasks())
        leftovers = shim_tasks()
        if acquired == 0 and tasks <= baseline_tasks and not leftovers:
            return
        if loop.time() > deadline:
            names = sorted(str(t.get_coro()) for t in asyncio.all_tasks())
            raise AssertionError(
                f"not back to baseline: {acquired} pooled connections in use, "
                f"{tasks} tasks (baseline {baseline_tasks}), shim tasks {leftovers}: {names}"
            )
        await asyncio.sleep(0.02)
