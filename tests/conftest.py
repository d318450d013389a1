"""Top-level pytest configuration: the real-stack fixtures, and no silent skips.

A skipped test would hide a missing server or tool in CI, so any skip fails the run.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.stack.fixtures", "tests.shim_fixtures"]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"{len(skipped)} test(s) skipped: a skip fails this suite", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
