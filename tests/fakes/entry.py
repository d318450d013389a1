"""The shim's own entry point, ``python -m shim``, as a child process of a test.

:func:`shim_env` is the environment such a child gets: the test's own, without its
``SHIM_*`` settings or a ``PROMETHEUS_MULTIPROC_DIR`` (so only the test's settings count),
with this repository importable. :func:`spawn_shim` starts the child with it, and
:func:`until_ready` waits for its metrics listener to say it is ready.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SHIM_COMMAND: Final = (sys.executable, "-m", "shim")


def shim_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment, without ``SHIM_*`` or ``PROMETHEUS_MULTIPROC_DIR``, with
    ``PYTHONPATH`` at the repository and *settings* added."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SHIM_") and name != "PROMETHEUS_MULTIPROC_DIR"
    }
    return {**inherited, "PYTHONPATH": str(REPO_ROOT), **settings}


async def spawn_shim(settings: Mapping[str, str], **options: Any) -> asyncio.subprocess.Process:
    """Start ``python -m shim`` in the repository with :func:`shim_env` of *settings*;
    *options* (``stdout``, ``stderr``, ``start_new_session``...) go to
    :func:`asyncio.create_subprocess_exec`."""
    return await asyncio.create_subprocess_exec(
        *SHIM_COMMAND, cwd=REPO_ROOT, env=shim_env(settings), **options
    )


async def until_ready(metrics_base: str, timeout: float = 30.0) -> None:
    """Wait until ``{metrics_base}/readyz`` answers 200 (the listener may not be up yet);
    :class:`TimeoutError` after *timeout* seconds."""
    async with aiohttp.ClientSession() as probe, asyncio.timeout(timeout):
        while True:
            try:
                async with probe.get(f"{metrics_base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
