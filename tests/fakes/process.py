"""Serve an app factory in a child process, and read that process's memory.

Memory tests must measure a process that does nothing else, so the app under test runs
as ``python -m tests.fakes.process module:factory``: settings come from ``SHIM_*``
variables through ``Settings.from_sources`` (as in production), the server runs with
``auto_decompress=False``, and the child prints ``LISTENING <port>`` then serves until
its stdin closes. :func:`served` starts and stops it; :class:`ServedProcess` reads
``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) and resets the peak via ``clear_refs``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from aiohttp import web
from yarl import URL

from shim.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Memory:
    rss: int
    """Resident set size now, bytes."""
    hwm: int
    """Peak resident set size since start or the last :meth:`ServedProcess.reset_peak`."""


def _read_memory(pid: int) -> Memory:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return Memory(rss=fields["VmRSS"], hwm=fields["VmHWM"])


@dataclass(frozen=True, slots=True)
class ServedProcess:
    pid: int
    url: URL

    async def memory(self) -> Memory:
        return await asyncio.to_thread(_read_memory, self.pid)

    async def reset_peak(self) -> None:
        """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` value 5)."""
        await asyncio.to_thread(Path(f"/proc/{self.pid}/clear_refs").write_text, "5")


@asynccontextmanager
async def served(factory: str, env: Mapping[str, str]) -> AsyncIterator[ServedProcess]:
    """Run ``factory`` (``module:callable`` taking Settings) in a child with *env* added."""
    child_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.process",
        factory,
        cwd=REPO_ROOT,
        env=child_env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        if not line.startswith(b"LISTENING "):
            raise RuntimeError(f"child did not start: {line!r}")
        port = int(line.split()[1])
        yield ServedProcess(proc.pid, URL.build(scheme="http", host="127.0.0.1", port=port))
    finally:
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _serve(factory: Callable[[Settings], web.Application]) -> None:
    app = factory(Settings.from_sources(os.environ))
    runner = web.AppRunner(app, auto_decompress=False, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()
    # Anything printed later goes to stderr so a full stdout pipe never blocks the child.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        await reader.read()  # until the parent closes our stdin
    finally:
        await runner.cleanup()


def main() -> None:
    module_name, _, attribute = sys.argv[1].partition(":")
    factory = cast(
        "Callable[[Settings], web.Application]",
        getattr(importlib.import_module(module_name), attribute),
    )
    asyncio.run(_serve(factory))


if __name__ == "__main__":
    main()
