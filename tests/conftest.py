"""Top-level pytest configuration: the real-stack fixtures, and no silent skips.

A skipped test would hide a missing server or tool in CI, so any skip fails the run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.logs import LogCapture, captured_logs

pytest_plugins = ["tests.stack.fixtures", "tests.stack.tls_fixtures", "tests.shim_fixtures"]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"{len(skipped)} test(s) skipped: a skip fails this suite", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Keystone's Fernet tokens (and the suite's fake ones) all start so; none may be logged.
_TOKEN_SHAPE = re.compile(r"gAAAAA[A-Za-z0-9_=-]{16,}")


@pytest.fixture(scope="session", autouse=True)
def no_token_in_any_log_line() -> Iterator[LogCapture]:
    """Every line the shim logs during the whole run, rendered as in production, and the
    check that none carries a token (docs/contract.md §8: tokens never reach the logs)."""
    with captured_logs() as capture:
        yield capture
    leaks = [line for line in capture.lines if _TOKEN_SHAPE.search(line)]
    assert not leaks, f"{len(leaks)} log line(s) carry a token, e.g. {leaks[0][:300]}"
