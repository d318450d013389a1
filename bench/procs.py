"""Processes the bench starts, and what /proc says about them (CPU time, peak RSS, core load).

Every process is started in its own session, so stopping it signals exactly that process group
and nothing else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TextIO

CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
REPO: Final = Path(__file__).resolve().parent.parent
_NO_PROXY: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def taskset(cpus: str | None) -> list[str]:
    """Prefix pinning a command to *cpus* (taskset execs, so the pid stays the command's)."""
    return ["taskset", "-c", cpus] if cpus else []


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # comm may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """*pid* and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(_stat_fields(int(entry))[1])
            children.setdefault(ppid, []).append(int(entry))
    found = [pid]
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of *pids* (live processes; a vanished one counts as 0)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (VmHWM, VmRSS), 0 if gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def event_loop_of(pids: Sequence[int]) -> str:
    """``uvloop`` if any of *pids* has uvloop's extension mapped, else ``asyncio``."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if "/uvloop/loop." in Path(f"/proc/{pid}/maps").read_text():
                return "uvloop"
    return "asyncio"


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``clear_refs`` value 5, Linux >= 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _cpu_jiffies() -> tuple[dict[str, tuple[int, int]], int]:
    """Per CPU (total, idle) jiffies, and user+nice+system jiffies over all CPUs."""
    per_cpu: dict[str, tuple[int, int]] = {}
    work = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu"):
            continue
        numbers = [int(v) for v in values]
        if name == "cpu":
            work = numbers[0] + numbers[1] + numbers[2]
        else:
            per_cpu[name[3:]] = (sum(numbers[:8]), numbers[3] + numbers[4])
    return per_cpu, work


def own_cpu_seconds() -> float:
    """CPU time of this process plus its reaped children (wrk, clients)."""
    mine = os.times()
    return mine.user + mine.system + mine.children_user + mine.children_system


@dataclass
class CoreLoad:
    """How busy each CPU was between `start` and `stop`, and how much of that was not ours.

    "Other" = user+nice+system time of the whole machine minus the CPU time of the processes
    the bench accounts for (the server tree, nginx, this process and its reaped children).
    Network softirq time is not in it. It shows when another workload shared the machine.
    """

    before: dict[str, tuple[int, int]] = field(default_factory=dict)
    work0: int = 0
    wall0: float = 0.0

    def start(self) -> None:
        self.before, self.work0 = _cpu_jiffies()
        self.wall0 = time.monotonic()

    def stop(self, ours_seconds: float) -> dict[str, float]:
        after, work1 = _cpu_jiffies()
        wall = max(time.monotonic() - self.wall0, 1e-9)
        out: dict[str, float] = {}
        for cpu, (total, idle) in after.items():
            total0, idle0 = self.before.get(cpu, (total, idle))
            span = total - total0
            out[f"cpu{cpu}_busy"] = 0.0 if span <= 0 else 1.0 - (idle - idle0) / span
        other = (work1 - self.work0) / CLK_TCK - ours_seconds
        out["other_cpu"] = max(0.0, other / wall)
        return out


def http_get(
    url: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - loopback
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


class StartError(RuntimeError):
    """A server did not come up; the message says why (for an ``n/a`` cell)."""


@dataclass
class Service:
    """A server the bench started, in its own process group."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    _log: TextIO | None = None

    def start(self) -> None:
        self._log = self.log_path.open("w")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def pids(self) -> list[int]:
        return descendants(self.pid) if self.alive() else []

    def log_tail(self, lines: int = 3) -> str:
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").strip().splitlines()
            return " | ".join(line.strip() for line in text[-lines:])
        return ""

    def wait_ready(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 20.0,
    ) -> tuple[int, bytes]:
        """Poll *url* until it answers at all; raise `StartError` if the process dies."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise StartError(f"{self.name} exited ({code}): {self.log_tail() or 'no output'}")
            try:
                return http_get(url, headers, timeout=5.0)
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise StartError(f"{self.name} not answering after {timeout:.0f} s: {last}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Workers may outlive a parent that died first: sweep the group once more.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
