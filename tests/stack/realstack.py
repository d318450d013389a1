"""Bring the real Keystone 30 + Glance 33 + Nova 34 stack up on 127.0.0.1, reuse it, take it down.

`ensure_up` is the one entry point for both the CLI and the pytest fixtures: it installs
the pinned virtualenvs if needed, reuses a running healthy stack named by the state file,
or starts a fresh one (new run directory, free ports, PostgreSQL from the template cluster,
Keystone provisioned through its API, Glance and Nova's compute API on PostgreSQL with
keystonemiddleware against Keystone). `start_nova` starts a further Nova on the same
databases (another configuration of it). Every failure raises `StackError` with the
relevant log tail; nothing is ever skipped. It must not seed images (see `seed`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.stack import identity, nova, postgres
from tests.stack.configs import GLANCE_TOKEN_CACHE_TIME, GlanceDirs, KeystoneDirs, ServerDirs
from tests.stack.info import OutdatedState, StackInfo
from tests.stack.install import copy_templates, ensure_installed
from tests.stack.layout import HOST, StackPaths
from tests.stack.procs import (
    StackError,
    file_lock,
    free_port,
    group_leaders_in,
    http_ok,
    pid_runs_in,
    spawn,
    stop_group,
    stop_spawned,
    tail,
    wait_ready,
)
from tests.stack.rest import expect, request

__all__ = [
    "NovaServer",
    "RunningStack",
    "StackError",
    "StackInfo",
    "StackPaths",
    "ensure_up",
    "load_state",
    "start_nova",
    "stop",
]


@dataclass(slots=True)
class RunningStack:
    """A stack this process holds: `started` tells whether this process started it."""

    info: StackInfo
    started: bool
    timings: dict[str, float] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def close(self) -> None:
        """Stop the servers if this process started them; a reused stack is left running."""
        if not self.started:
            return
        stop(self.info)
        for proc in self.procs:
            proc.wait(timeout=30)
        self.procs.clear()


def ensure_up(paths: StackPaths | None = None) -> RunningStack:
    paths = paths or StackPaths.from_env()
    timings: dict[str, float] = {}
    start = time.monotonic()
    timings["install"] = ensure_installed(paths).seconds
    with file_lock(paths.lock_file):
        info = load_state(paths)
        if info is not None and healthy(info):
            timings["total"] = time.monotonic() - start
            return RunningStack(info, started=False, timings=timings)
        if info is not None:
            stop(info)
        running = _start(paths, timings)
        paths.state_file.write_text(running.info.to_json())
    timings["total"] = time.monotonic() - start
    return running


def load_state(paths: StackPaths | None = None) -> StackInfo | None:
    paths = paths or StackPaths.from_env()
    try:
        return StackInfo.from_json(paths.state_file.read_text())
    except FileNotFoundError:
        return None
    except OutdatedState:
        # Started by an older layout: `_start` stops whatever still runs in the run dir.
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(f"unreadable state file {paths.state_file}: {exc!r}") from exc


def healthy(info: StackInfo) -> bool:
    return (
        pid_runs_in(info.keystone_pid, info.run_dir)
        and pid_runs_in(info.glance_pid, info.run_dir)
        and pid_runs_in(info.db_pid, info.db_dir)
        and pid_runs_in(info.nova_pid, info.run_dir)
        and http_ok(f"{info.keystone_url}/v3")
        and http_ok(f"{info.glance_url}/healthcheck")
        and http_ok(f"{info.nova_url}/")
    )


def stop(info: StackInfo) -> None:
    """Stop every server (only pids still running in this stack's run dir), then the database."""
    for pid in (info.nova_pid, info.glance_pid, info.keystone_pid):
        if pid_runs_in(pid, info.run_dir):
            stop_group(pid)
    postgres.stop(info.db_pid, info.db_dir)
    postgres.discard(info.db_dir)
    (info.run_dir / "state.json").unlink(missing_ok=True)


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env.update(extra)
    return env


def _gunicorn(bin_dir: Path, port: int, pid_file: Path, app: str, run_dir: Path) -> list[str]:
    """gunicorn serving `app` ("package.module:application") through a one-line wrapper.

    oslo.config in Keystone parses ``sys.argv`` and rejects gunicorn's flags, so the
    wrapper (written next to the pid file) clears them before importing the application.
    ``--chdir`` puts the servers in the run dir, which is how `stop` recognises our pids;
    the control socket would otherwise be one shared file in ``$HOME``.
    """
    module, attr = app.split(":")
    wrapper = pid_file.parent / f"{pid_file.stem}_wsgi.py"
    wrapper.write_text(
        f"import sys\n\nsys.argv[1:] = []\nfrom {module} import {attr}  # noqa: E402\n"
    )
    return [
        str(bin_dir / "gunicorn"),
        f"--bind={HOST}:{port}",
        "--workers=1",
        "--threads=4",
        "--timeout=300",
        "--graceful-timeout=5",
        "--no-control-socket",
        f"--pid={pid_file}",
        f"--chdir={run_dir}",
        f"--pythonpath={wrapper.parent}",
        f"{wrapper.stem}:{attr}",
    ]


def spawn_server(
    bin_dir: Path,
    dirs: ServerDirs,
    port: int,
    run_dir: Path,
    *extra: str,
    pid_file: Path | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """gunicorn serving `dirs`' application on `port` with its config directory, its own
    flags and `extra` ones; the pid file and log are `dirs`' unless given."""
    pid_file = pid_file or dirs.pid_file
    cmd = _gunicorn(bin_dir, port, pid_file, dirs.wsgi_app, run_dir)
    env = _server_env({dirs.config_dir_variable: str(dirs.etc)})
    return spawn([*cmd, *dirs.gunicorn_flags, *extra], log or dirs.server_log, env=env)


def _start(paths: StackPaths, timings: dict[str, float]) -> RunningStack:
    if paths.run.exists():
        for pid in group_leaders_in(paths.run):
            stop_group(pid)
        postgres.stop_stale(paths.run)
        shutil.rmtree(paths.run)
    keystone = KeystoneDirs(paths.run / "keystone")
    glance = GlanceDirs(paths.run / "glance")
    ks_port, g_port = free_port(HOST), free_port(HOST)
    while g_port == ks_port:
        g_port = free_port(HOST)
    keystone_url, glance_url = f"http://{HOST}:{ks_port}", f"http://{HOST}:{g_port}"
    procs: list[subprocess.Popen[bytes]] = []
    paths.run.mkdir(parents=True)
    # PostgreSQL (a copy of the template cluster) starts while Keystone bootstraps.
    pool = ThreadPoolExecutor(max_workers=1)
    db_start = pool.submit(
        postgres.start, paths.templates / "postgres", paths.run, paths.run / "postgres.log"
    )
    try:
        mark = time.monotonic()
        keystone.write()
        copy_templates(paths, keystone)
        identity.bootstrap(paths, keystone, keystone_url)
        timings["keystone_bootstrap"] = time.monotonic() - mark
        procs.append(spawn_server(paths.keystone.bin, keystone, ks_port, paths.run))
        logs = [keystone.server_log, keystone.app_log]
        timings["keystone_ready"] = wait_ready("keystone", f"{keystone_url}/v3", procs[0], logs)
        mark = time.monotonic()
        ident = identity.provision(keystone_url, glance_url)
        timings["keystone_provision"] = time.monotonic() - mark
        mark = time.monotonic()
        db = db_start.result()
        timings["postgres_wait"] = time.monotonic() - mark

        glance.write(
            keystone_url, identity.password("glance"), db.url("glance", postgres.SQLALCHEMY_DRIVER)
        )
        procs.append(spawn_server(paths.glance.bin, glance, g_port, paths.run))
        # Nova imports while Glance does: both are seconds of CPU-bound start-up.
        nova_dirs = nova.NovaDirs(paths.run / "nova")
        nova_dirs.write(
            paths,
            keystone_url=keystone_url,
            glance_url=glance_url,
            service_password=identity.password(nova.SERVICE_USER),
            db_port=db.port,
        )
        pending_nova = _spawn_nova(paths, nova_dirs, paths.run)
        procs.append(pending_nova.proc)
        logs = [glance.server_log, glance.app_log]
        timings["glance_ready"] = wait_ready("glance", f"{glance_url}/healthcheck", procs[1], logs)
        nova_server = pending_nova.wait()
        timings["nova_ready"] = nova_server.ready_seconds
        info = StackInfo(
            keystone_url=keystone_url,
            glance_url=glance_url,
            keystone_port=ks_port,
            glance_port=g_port,
            keystone_pid=procs[0].pid,
            glance_pid=procs[1].pid,
            project_ids=ident.project_ids,
            user_ids=ident.user_ids,
            run_dir=paths.run,
            db_port=db.port,
            db_pid=db.pid,
            db_dir=db.data,
            glance_db_url=db.url("glance"),
            glance_data_dir=glance.images,
            glance_staging_dir=glance.staging,
            keystone_db=keystone.db,
            logs={
                "glance": glance.app_log,
                "glance-server": glance.server_log,
                "keystone": keystone.app_log,
                "keystone-server": keystone.server_log,
                "postgres": paths.run / "postgres.log",
                "nova": nova_dirs.app_log,
                "nova-server": nova_dirs.server_log,
            },
            glance_token_cache_time=GLANCE_TOKEN_CACHE_TIME,
            nova_url=nova_server.url,
            nova_port=nova_server.port,
            nova_pid=nova_server.pid,
            nova_dir=nova_dirs.base,
        )
        mark = time.monotonic()
        _check_auth(info)
        timings["auth_check"] = time.monotonic() - mark
    except BaseException:
        for proc in procs:
            stop_spawned(proc)
        _discard(db_start)
        raise
    finally:
        pool.shutdown()
    if db.proc is not None:
        procs.append(db.proc)
    return RunningStack(info, started=True, timings=timings, procs=procs)


def _discard(db_start: Future[postgres.Server]) -> None:
    """Stop and remove the database server of a start that failed, once it is up."""
    try:
        db = db_start.result()
    except Exception:  # its own failure is not the one being raised
        return
    db.stop()
    postgres.discard(db.data)


@dataclass(frozen=True, slots=True)
class NovaServer:
    """A Nova compute API this process started: stop it with `stop`."""

    url: str  # http://127.0.0.1:PORT (no version)
    port: int
    proc: subprocess.Popen[bytes]
    ready_seconds: float

    @property
    def pid(self) -> int:
        """The gunicorn master, leader of its process group."""
        return self.proc.pid

    def stop(self) -> None:
        stop_spawned(self.proc)


@dataclass(frozen=True, slots=True)
class _PendingNova:
    port: int
    dirs: nova.NovaDirs
    proc: subprocess.Popen[bytes]

    def wait(self) -> NovaServer:
        url = f"http://{HOST}:{self.port}"
        logs = [self.dirs.server_log, self.dirs.app_log]
        seconds = wait_ready("nova", f"{url}/", self.proc, logs)
        return NovaServer(url, self.port, self.proc, seconds)


def _spawn_nova(paths: StackPaths, dirs: nova.NovaDirs, run_dir: Path) -> _PendingNova:
    port = free_port(HOST)
    shutil.copyfile(nova.ENTRY, dirs.pid_file.parent / nova.ENTRY.name)
    return _PendingNova(port, dirs, spawn_server(paths.nova.bin, dirs, port, run_dir))


def start_nova(
    info: StackInfo, *, proxy_headers: bool, paths: StackPaths | None = None
) -> NovaServer:
    """One more Nova compute API over the running stack's Nova databases, configured as the
    stack's except `proxy_headers` (``[oslo_middleware] enable_proxy_headers_parsing``).

    It runs in the stack's run dir (``nova-<port>/``) until `NovaServer.stop`; a stack
    restart stops a leftover one.
    """
    paths = paths or StackPaths.from_env()
    dirs = nova.NovaDirs(Path(tempfile.mkdtemp(prefix="nova-", dir=info.run_dir)))
    dirs.write(
        paths,
        keystone_url=info.keystone_url,
        glance_url=info.glance_url,
        service_password=identity.password(nova.SERVICE_USER),
        db_port=info.db_port,
        proxy_headers=proxy_headers,
    )
    return _spawn_nova(paths, dirs, info.run_dir).wait()


def _check_auth(info: StackInfo) -> None:
    """Glance and Nova must authenticate real tokens through keystonemiddleware, and refuse
    none."""
    # Nova's image routes call Glance with the caller's token: both ends must work.
    for url, log in (
        (f"{info.glance_url}/v2/images?limit=1", "glance"),
        (f"{info.nova_url}/v2.1/images?limit=1", "nova"),
    ):
        try:
            expect(request("GET", url, token=info.token("alice")), 200)
            expect(request("GET", url), 401)
        except StackError as exc:
            raise StackError(f"{exc}\n{tail(info.logs[log])}") from exc
