"""Worker processes: one `serve` per process, and the pre-fork master that supervises them.

With ``SHIM_WORKERS`` > 1 the master binds the API and metrics addresses once
(`shim.server.bind_listeners`, no ``SO_REUSEPORT``) and forks that many workers, which
inherit both sockets and accept on them; a second shim started on the same address fails
to bind ("address in use", exit 3) instead of sharing the port. The master runs no event
loop and accepts nothing. It only relays signals and watches its children:

* SIGTERM / SIGINT are relayed to every worker, which drains (`shim.server`). The master
  exits 0 when every worker exited 0, else 1. A worker still running
  ``SHIM_SHUTDOWN_TIMEOUT`` + `KILL_GRACE` seconds later is killed (exit 1).
* Workers die with the master: if it is killed (even by SIGKILL), the kernel sends each
  worker SIGTERM (``PR_SET_PDEATHSIG``) and it drains as usual.
* A worker that dies while the master is not stopping is logged with its exit status and
  replaced, so the other workers' connections survive. The master gives up instead, stops
  the others and exits 1, when a worker could not start (`Exit.STARTUP_FAILED`, for
  example its port is taken) or when more than `MAX_RESTARTS` workers died within
  `RESTART_WINDOW` seconds: a crash loop is for the orchestrator (Kubernetes restarts the
  pod with back-off), not for us to hide.

Metrics: prometheus-client's multiprocess mode needs one directory shared by the workers
(`prepare_metrics_dir`). Stale files from an earlier run are removed at start, a dead
worker's live gauges are dropped (``mark_process_dead``) so ``requests_in_flight`` never
counts a dead process, and a directory the master created itself is removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import enum
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog
from prometheus_client import multiprocess

from shim import metrics
from shim.server import Listeners, StartupFailed, bind_listeners, serve
from shim.settings import Settings

log = structlog.get_logger(__name__)

MAX_RESTARTS: Final = 5
RESTART_WINDOW: Final = 60.0
KILL_GRACE: Final = 5.0
POLL_INTERVAL: Final = 0.1
PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
_STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True, slots=True)
class MetricsDir:
    path: Path
    owned: bool
    """Created by us (a temporary directory), so removed at exit."""


def prepare_metrics_dir(
    configured: str | None, workers: int, metrics_on: bool = True
) -> MetricsDir | None:
    """Turn on multiprocess metrics where they are used: several workers with metrics on.

    *configured* is ``PROMETHEUS_MULTIPROC_DIR`` from the environment (prometheus-client's
    own variable; the chart mounts an ``emptyDir`` there). When it is unset, a new
    directory under the temporary directory (``TMPDIR``, else ``/tmp``) is made and removed
    at exit. One worker, or metrics off: plain single-process metrics, and a configured
    directory is neither touched nor passed on (a read-only one is no error then).
    """
    if workers == 1 or not metrics_on:
        metrics.single_process()
        return None
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{path} is not writable")
        for stale in path.glob("*.db"):
            stale.unlink()
        chosen = MetricsDir(path, owned=False)
    else:
        try:
            made = tempfile.mkdtemp(prefix="nova-image-shim-metrics-")
        except OSError as exc:
            raise OSError(
                f"unset, and no temporary directory is writable ({exc}): several workers with "
                "metrics need one; mount a tmpfs on /tmp, or set TMPDIR or "
                "PROMETHEUS_MULTIPROC_DIR to a writable directory"
            ) from exc
        chosen = MetricsDir(Path(made), owned=True)
    metrics.enable_multiprocess(chosen.path)
    return chosen


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when the ``fast`` extra is installed (about a third less CPU per
    request, BENCHMARKS.md); the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class Exit(enum.IntEnum):
    """The process's exit status (`shim.cli` says when each is given)."""

    OK = 0
    FAILED = 1
    BAD_SETTINGS = 2
    STARTUP_FAILED = 3


def run_worker(settings: Settings, listeners: Listeners | None = None) -> int:
    """Serve in this process until stopped (on *listeners*, else on sockets it binds
    itself); the process exit status."""
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(settings, listeners=listeners))
    except StartupFailed as exc:
        log.error("startup_failed", error=str(exc))
        return Exit.STARTUP_FAILED
    except Exception:
        log.exception("worker_failed")
        return Exit.FAILED
    return Exit.OK


@dataclass
class _Master:
    settings: Settings
    metrics_dir: MetricsDir | None
    listeners: Listeners
    pid: int = field(default_factory=os.getpid)
    workers: dict[int, int] = field(default_factory=dict)  # pid -> slot
    deaths: deque[float] = field(default_factory=deque)
    stopping: bool = False
    stop_deadline: float | None = None
    failed: bool = False

    def on_signal(self, signum: int, _frame: object) -> None:
        if os.getpid() != self.pid:  # a just-forked child, before it reset its handlers
            return
        log.info("master_stopping", signal=signal.Signals(signum).name)
        self.stop(signum)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.settings.shutdown_timeout + KILL_GRACE
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def spawn(self, slot: int, *, replacement: bool = False) -> None:
        # Block stop signals across fork so the child never runs the master's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._child(replacement)
            self.workers[pid] = slot
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        log.info("worker_started", worker_pid=pid, slot=slot)

    def _child(self, replacement: bool) -> None:
        code: int = Exit.FAILED
        try:
            for signum in _STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            _stop_with_parent(self.pid)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
            if replacement:
                metrics.worker_replaced()  # in the child: the master creates no metrics
            code = run_worker(self.settings, self.listeners)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reap(self, pid: int, status: int) -> None:
        slot = self.workers.pop(pid, None)
        if slot is None:
            return
        code = os.waitstatus_to_exitcode(status)
        if self.metrics_dir is not None:
            multiprocess.mark_process_dead(pid, str(self.metrics_dir.path))  # type: ignore[no-untyped-call]
        if self.stopping:
            # Killed by the relayed signal before installing its own handler: clean too.
            clean = code == 0 or -code in _STOP_SIGNALS
            if not clean:
                self.failed = True
            log.info("worker_exited", worker_pid=pid, exit_status=code)
            return
        log.error("worker_died", worker_pid=pid, exit_status=code, slot=slot)
        if code == Exit.STARTUP_FAILED:
            self._give_up("a worker could not start")
            return
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - RESTART_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) > MAX_RESTARTS:
            self._give_up(f"more than {MAX_RESTARTS} worker deaths in {RESTART_WINDOW:.0f} s")
            return
        self.spawn(slot, replacement=True)

    def _give_up(self, reason: str) -> None:
        log.error("master_giving_up", reason=reason)
        self.failed = True
        self.stop()

    def run(self) -> int:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self.on_signal)
        for slot in range(self.settings.workers):
            if not self.stopping:
                self.spawn(slot)
        while self.workers:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                self.reap(pid, status)
                continue
            if self.stop_deadline is not None and time.monotonic() > self.stop_deadline:
                log.error("workers_killed", worker_pids=sorted(self.workers))
                for pid in list(self.workers):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.failed = True
                self.stop_deadline = None
            time.sleep(POLL_INTERVAL)
        return Exit.FAILED if self.failed else Exit.OK


def _stop_with_parent(master_pid: int) -> None:
    """Have the kernel SIGTERM this worker if the master dies (even by SIGKILL), so workers
    never outlive it holding the port (Linux ``PR_SET_PDEATHSIG``)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != master_pid:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(settings: Settings, metrics_dir: MetricsDir | None) -> int:
    """Bind the listeners, run `Settings.workers` workers on them until stopped; the
    master's exit status (`Exit.STARTUP_FAILED` when an address cannot be bound)."""
    try:
        return _supervise(settings, metrics_dir)
    finally:
        if metrics_dir is not None and metrics_dir.owned:
            shutil.rmtree(metrics_dir.path, ignore_errors=True)


def _supervise(settings: Settings, metrics_dir: MetricsDir | None) -> int:
    try:
        listeners = bind_listeners(settings)
    except OSError as exc:
        log.error("startup_failed", error=f"cannot listen: {exc}")
        return Exit.STARTUP_FAILED
    log.info(
        "master_started",
        workers=settings.workers,
        listen=str(settings.listen),
        metrics_dir=str(metrics_dir.path) if metrics_dir is not None else None,
    )
    try:
        return _Master(settings, metrics_dir, listeners).run()
    finally:
        listeners.close()
