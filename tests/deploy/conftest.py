"""Fixtures for the deployment tests. Helm is fetched here, so plain `pytest` works."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.kube import FETCH_HELM
from tests.stack.fixtures import summary_line


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """The pinned helm binary, fetched on first use by scripts/fetch-helm.sh.

    These tests never skip: without helm they fail, loudly, with the script's output.
    """
    try:
        proc = subprocess.run(
            ["bash", str(FETCH_HELM)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{FETCH_HELM} timed out after {exc.timeout} s", pytrace=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"{FETCH_HELM} failed (exit {proc.returncode}); the chart tests need helm.\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    path = Path(lines[-1])
    assert path.is_file(), f"{FETCH_HELM} printed {path}, which is not a file"
    return path


def report(config: pytest.Config, line: str) -> None:
    """A line for the run's summary under "container image" (sizes and build times)."""
    summary_line(config, "container image", line)
