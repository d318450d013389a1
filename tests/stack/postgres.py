"""PostgreSQL 15 from Debian as the stack's database server (docs/stack.md §8).

Owns the server binaries and the unprivileged account the server runs as, the template
cluster (roles, databases and schemas made once per install) and one server per stack run:
a copy of the template, listening on 127.0.0.1 on a free port (no unix socket), stopped with
the stack. PostgreSQL refuses to run as root: as root, the server runs as Debian's
``postgres`` account (created by `ensure_server` where the package did not). It must not
know what Glance or Nova store; callers sync their schemas through `Server.url`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psycopg
from psycopg import sql

from tests.stack.layout import HOST, PG_MAJOR
from tests.stack.procs import (
    StackError,
    free_port,
    pid_runs_in,
    run_logged,
    spawn,
    stop_group,
    succeeds,
    tail,
)

BIN: Final = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
DEBIAN_PACKAGE: Final = f"postgresql-{PG_MAJOR}"
ACCOUNT: Final = "postgres"  # Debian's; used only when the stack runs as root
SUPERUSER: Final = "stack"
ADMIN_DATABASE: Final = "template1"  # the superuser's; initdb's "postgres" is dropped
READY_TIMEOUT: Final = 60.0
_PRIVATE_PREFIX: Final = "nova-image-shim-pg-"
# One database per entry: name -> owning role. The owner runs the schema sync and seeding.
DATABASES: Final = {"glance": "glance", "nova_api": "nova", "nova": "nova"}
# What Glance and Nova connect with (SQLAlchemy's dialect and driver).
SQLALCHEMY_DRIVER: Final = "postgresql+psycopg2"
# A throwaway cluster on loopback: durability buys nothing, speed does. Without recycling,
# a clean shutdown leaves one WAL segment, not the schema syncs' worth, to copy per run.
SERVER_SETTINGS: Final = """
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
min_wal_size = 2MB
max_wal_size = 64MB
wal_recycle = off
wal_init_zero = off
max_connections = 200
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
"""


def password(role: str) -> str:
    """Every role's password: the server listens on loopback only, for the test stack."""
    return f"pw-db-{role}"


@dataclass(frozen=True, slots=True)
class Account:
    """Who the server runs as: ``None`` ids mean the current user (not root)."""

    uid: int | None
    gid: int | None

    @classmethod
    def for_server(cls) -> Account:
        if os.geteuid() != 0:
            return cls(None, None)
        try:
            entry = pwd.getpwnam(ACCOUNT)
        except KeyError as exc:
            raise StackError(
                f"no {ACCOUNT!r} account: run `python -m tests.stack install`"
            ) from exc
        return cls(entry.pw_uid, entry.pw_gid)

    def give(self, path: Path) -> None:
        """Hand `path` (a tree) to the account; the server insists on owning its data."""
        if self.uid is None or self.gid is None:
            return
        for item in _walk(path):
            os.chown(item, self.uid, self.gid, follow_symlinks=False)

    def can_enter(self, directory: Path) -> bool:
        """True if the account can reach `directory` (root's home is closed to others)."""
        if self.uid is None:
            return True
        return succeeds(["test", "-x", str(directory)], user=self.uid, group=self.gid)


def _walk(path: Path) -> Iterator[Path]:
    yield path
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            yield Path(root) / name


def ensure_server(log: Path) -> None:
    """Install Debian's server package and create its account where they are missing."""
    if not (BIN / "postgres").exists():
        if os.geteuid() != 0:
            raise StackError(f"{BIN / 'postgres'} is missing: apt-get install {DEBIAN_PACKAGE}")
        # No system cluster: the stack makes its own, and a packaged one would start on 5432.
        conf = Path("/etc/postgresql-common/createcluster.d/nova-image-shim.conf")
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "-q"]
        run_logged([*apt, "update"], log, env=env)
        run_logged([*apt, "install", "-y", "--no-install-recommends", DEBIAN_PACKAGE], log, env=env)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(ACCOUNT)
        except KeyError:
            home = "/var/lib/postgresql"
            cmd = ["useradd", "--system", "--user-group", "--home-dir", home, ACCOUNT]
            run_logged([*cmd, "--shell", "/usr/sbin/nologin"], log)


def url(port: int, database: str, driver: str = "postgresql") -> str:
    """Connection URL as `database`'s owner (the superuser for `ADMIN_DATABASE`):
    ``postgresql+psycopg2`` for SQLAlchemy, plain ``postgresql`` for libpq and psycopg."""
    role = DATABASES.get(database, SUPERUSER)
    return f"{driver}://{role}:{password(role)}@{HOST}:{port}/{database}"


@dataclass(slots=True)
class Server:
    """A running cluster: `pid` is the postmaster, `data` its data directory."""

    data: Path
    port: int
    pid: int
    proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str, driver: str = "postgresql") -> str:
        return url(self.port, database, driver)

    def stop(self) -> None:
        stop(self.pid, self.data)
        if self.proc is not None:
            self.proc.wait(timeout=30)


def build_template(log: Path) -> Server:
    """initdb a cluster with the stack's roles and empty databases, started on a free port.

    The caller syncs schemas through `Server.url`, then calls `keep_template`. The build
    happens in a private directory the server account can reach (``$TMPDIR``).
    """
    account = Account.for_server()
    work = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
    server: Server | None = None
    try:
        account.give(work)
        data = work / "data"
        pwfile = work / "superuser-password"
        pwfile.write_text(password(SUPERUSER) + "\n")
        account.give(pwfile)
        initdb: list[str | Path] = [BIN / "initdb", "-D", data, "-U", SUPERUSER]
        # C collation sorts by code point, as Python and sqlite do; 1 MiB WAL segments keep
        # the copy made per run small.
        initdb += [f"--pwfile={pwfile}", "--no-sync", "-A", "scram-sha-256", "-E", "UTF8"]
        initdb += ["--locale=C", "--wal-segsize=1"]
        run_logged(initdb, log, user=account.uid, group=account.gid)
        pwfile.unlink()
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_SETTINGS)
        server = _start_in(data, log, account)
        with psycopg.connect(server.url(ADMIN_DATABASE), autocommit=True) as conn:
            conn.execute("DROP DATABASE postgres")  # unused: 7 MiB less to copy per run
            for role in sorted(set(DATABASES.values())):
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password(role))
                    )
                )
            for database, owner in DATABASES.items():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(owner)
                    )
                )
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        raise
    return server


def keep_template(server: Server, template: Path) -> None:
    """Stop the build server cleanly and keep its data directory as the template."""
    server.stop()
    if template.exists():
        shutil.rmtree(template)
    template.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(server.data, template, symlinks=True)
    discard(server.data)


def start(template: Path, run: Path, log: Path) -> Server:
    """A fresh copy of the template under `run`, started on a free loopback port.

    The data directory is ``run/postgres/data``. As root with a run directory the server
    account cannot reach (under root's home), it lives in a private directory under
    ``$TMPDIR`` instead, and ``run/postgres`` links to it.
    """
    account = Account.for_server()
    home = run / "postgres"
    if account.can_enter(run):
        home.mkdir()
    else:
        outside = Path(tempfile.mkdtemp(prefix=_PRIVATE_PREFIX))
        home.symlink_to(outside, target_is_directory=True)
        home = outside
    data = home / "data"
    shutil.copytree(template, data, symlinks=True)
    account.give(home)
    return _start_in(data, log, account)


def _start_in(data: Path, log: Path, account: Account) -> Server:
    data.chmod(0o700)
    port = free_port(HOST)
    cmd: list[str | Path] = [BIN / "postgres", "-D", data, "-p", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = spawn(cmd, log, env=env, user=account.uid, group=account.gid)
    server = Server(data.resolve(), port, proc.pid, proc)
    url = server.url(ADMIN_DATABASE)
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise StackError(f"postgres exited with {proc.returncode} on start\n{tail(log)}")
        try:
            with psycopg.connect(url, connect_timeout=2):
                return server
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                stop_group(proc.pid)
                raise StackError(f"postgres did not accept connections\n{tail(log)}") from None
            time.sleep(0.05)


def stop(pid: int, data: Path) -> None:
    """Fast shutdown: SIGINT ends the sessions instead of waiting for clients to leave."""
    if pid_runs_in(pid, data):
        stop_group(pid, first_signal=signal.SIGINT)


def discard(data: Path) -> None:
    """Remove a stopped cluster's data (and its private directory outside the run)."""
    if data.parent.name.startswith(_PRIVATE_PREFIX):
        shutil.rmtree(data.parent, ignore_errors=True)
    else:
        shutil.rmtree(data, ignore_errors=True)


def stop_stale(run: Path) -> None:
    """Stop the server of a run whose state file was lost, and remove its data."""
    home = run / "postgres"
    if not home.exists():
        return
    data = home.resolve() / "data"
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        pid = 0
    stop(pid, data)
    discard(data)
