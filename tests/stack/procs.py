"""Child processes of the test stack: commands, servers, ports, readiness and logs.

Owns `StackError` and every subprocess call of the stack. Failures are loud: each
error carries the tail of the log that explains it. It must not know what Glance or
Keystone are; callers pass commands, URLs and log files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

TAIL_LINES: Final = 60
READY_TIMEOUT: Final = 90.0
STOP_TIMEOUT: Final = 15.0


class StackError(RuntimeError):
    """Provisioning, starting or seeding the real stack failed."""


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return f"--- last {lines} lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def run_logged(
    cmd: Sequence[str | Path],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
    user: int | None = None,
    group: int | None = None,
) -> None:
    """Run a command to completion, appending its output to `log`; raise with the tail.

    `user` and `group` (ids) run it as another account, without root's other groups.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(part) for part in cmd]
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                timeout=timeout,
                check=False,
                user=user,
                group=group,
                extra_groups=None if user is None else [],
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"timed out after {timeout}s: {argv}\n{tail(log)}") from exc
    if result.returncode != 0:
        raise StackError(f"exit {result.returncode}: {' '.join(argv)}\n{tail(log)}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on `host` (IPv4, or IPv6 such as ``::1``); the
    server binds it a moment later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def succeeds(cmd: Sequence[str], *, user: int | None = None, group: int | None = None) -> bool:
    """True if a short command exits 0 (as another account, like `run_logged`)."""
    result = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=30,
        user=user,
        group=group,
        extra_groups=None if user is None else [],
    )
    return result.returncode == 0


def spawn(
    cmd: Sequence[str | Path],
    log: Path,
    *,
    env: Mapping[str, str],
    user: int | None = None,
    group: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own session so that it, and its workers, stop as a group."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(part) for part in cmd],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=None if user is None else [],
        )


def http_ok(url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None) -> bool:
    """True if `url` answers 2xx or 3xx (over https with `context`, when given)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            status: int = resp.status
            return 200 <= status < 400
    except urllib.error.HTTPError as exc:
        exc.close()
        return False
    except OSError:
        return False


def wait_ready(
    name: str,
    url: str,
    proc: subprocess.Popen[bytes],
    logs: Sequence[Path],
    timeout: float = READY_TIMEOUT,
    context: ssl.SSLContext | None = None,
) -> float:
    """Poll `url` until it answers (`http_ok`); return the seconds it took. Raise with the
    log tails."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            detail = "\n".join(tail(log) for log in logs)
            raise StackError(
                f"{name} exited with {proc.returncode} before {url} answered\n{detail}"
            )
        if http_ok(url, context=context):
            return time.monotonic() - start
        time.sleep(0.2)
    stop_group(proc.pid)
    proc.wait(STOP_TIMEOUT)
    detail = "\n".join(tail(log) for log in logs)
    raise StackError(f"{name} did not answer {url} within {timeout}s\n{detail}")


def stop_spawned(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server `spawn` started (its whole process group) and reap it."""
    stop_group(proc.pid)
    proc.wait(timeout=30)


def pid_runs_in(pid: int, cwd: Path) -> bool:
    """True if `pid` is alive with working directory `cwd` (guards against reused pids).

    gunicorn rewrites its process title (setproctitle), so the command line cannot tell
    our servers apart; their working directory, set by ``--chdir``, can.
    """
    try:
        return os.readlink(f"/proc/{pid}/cwd") == str(cwd)
    except OSError:
        return False


def group_leaders_in(cwd: Path) -> list[int]:
    """Process-group leaders running in `cwd`: servers of a run whose state file was lost."""
    leaders = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        with contextlib.suppress(ProcessLookupError):
            if pid_runs_in(pid, cwd) and os.getpgid(pid) == pid:
                leaders.append(pid)
    return leaders


def stop_group(
    pid: int, timeout: float = STOP_TIMEOUT, first_signal: signal.Signals = signal.SIGTERM
) -> None:
    """Signal the process group led by `pid` (a server we spawned); SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, first_signal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in group `pgid`."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        # Fields after the command name: state, ppid, pgrp (proc(5)).
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so that two sessions never install or start at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
