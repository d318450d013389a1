"""Capture every log line the shim would print, through its real logging pipeline.

:func:`captured_logs` runs :func:`shim.observability.configure_logging` (without logger
caching, as structlog's testing docs ask) with a string buffer as the output, so structlog
events, aiohttp's and the stdlib's records all land in :attr:`LogCapture.text` exactly as
production renders them; the previous logging state is restored afterwards.
:meth:`LogCapture.assert_free_of` is the token-hygiene check: it fails naming the line.

For a whole suite, wrap the session in it (an autouse session fixture) and assert once at
the end; subprocess tests check their child's stdout the same way.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from yarl import URL

from shim.observability import configure_logging
from shim.settings import Settings


@dataclass
class LogCapture:
    buffer: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def events(self) -> list[dict[str, Any]]:
        """Every line parsed as JSON (the capture must use the json format)."""
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def assert_free_of(self, *secrets: str) -> None:
        assert_free_of(self.lines, *secrets)


def assert_free_of(lines: list[str], *secrets: str) -> None:
    for number, line in enumerate(lines, 1):
        for secret in secrets:
            assert secret not in line, f"log line {number} leaks a secret: {line[:300]}"


@contextmanager
def captured_logs(settings: Settings | None = None) -> Iterator[LogCapture]:
    """Configure the shim's logging into a buffer for the duration (json, debug level)."""
    settings = settings or Settings(glance_url=URL("http://glance.invalid"), log_level="debug")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    saved_structlog = structlog.get_config()
    capture = LogCapture()
    configure_logging(settings, stream=capture.buffer, cache=False)
    try:
        yield capture
    finally:
        root.handlers[:], root.level = saved
        # Restore, not reset: captures nest (the suite-wide one holds every test's).
        structlog.configure(**saved_structlog)
