"""A Docker daemon of the test run's own: Debian's ``docker.io``, started and stopped here.

The daemon has no bridge and touches no firewall (``--bridge=none --iptables=false
--ip-masq=false``), so no container ever gets an address of its own: every build and every
container uses the host's network, and servers in them listen on 127.0.0.1 only. Its socket,
pidfile and exec-root are in a new temporary directory; its data root (images, build cache)
is in the cache directory, shared by later runs under a file lock, so a warm run reuses the
base image and the build's layers. Stopping removes every container, stops the daemon and
ends any of its helpers still running: nothing outlives the test run.

The client is Debian's ``/usr/bin/docker`` by path, with ``DOCKER_BUILDKIT=1``: a newer
client earlier on PATH would ask for the buildx plugin, which Debian 12 does not ship.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.kube import REPO

DOCKERD = Path("/usr/sbin/dockerd")
DOCKER = Path("/usr/bin/docker")
INSTALL_TOOLS = REPO / "scripts" / "install-image-tools"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOCK_TIMEOUT = 1800.0
RUN_DIR_PREFIX = "nis-dockerd-"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class DockerUnavailable(Exception):
    """Docker cannot run here; the message says why (the tests fail with it, never skip)."""


def cache_root() -> Path:
    """``$NOVA_IMAGE_SHIM_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/nova-image-shim``."""
    configured = os.environ.get("NOVA_IMAGE_SHIM_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nova-image-shim"


def install_tools() -> None:
    """Debian's docker.io and debootstrap, installed with apt when missing."""
    try:
        proc = subprocess.run(
            [str(INSTALL_TOOLS)], capture_output=True, text=True, timeout=1200, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerUnavailable(f"{INSTALL_TOOLS} timed out after {exc.timeout} s") from exc
    if proc.returncode != 0:
        raise DockerUnavailable(
            f"{INSTALL_TOOLS} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    for tool in (DOCKERD, DOCKER):
        if not os.access(tool, os.X_OK):
            raise DockerUnavailable(f"{tool} is missing after {INSTALL_TOOLS}")


@dataclass(frozen=True, slots=True)
class Docker:
    """The client bound to one daemon's socket."""

    run_dir: Path

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_BUILDKIT": "1",
            "DOCKER_CONFIG": str(self.run_dir / "client"),  # not the user's ~/.docker
        }

    def command(self, *args: str) -> list[str]:
        return [str(DOCKER), *args]

    def run(
        self,
        *args: str,
        timeout: float = 120.0,
        stdin: int | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``docker ARGS``; a failure (when *check*) raises with both output streams."""
        proc = subprocess.run(
            self.command(*args),
            env=self.env(),
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def has_image(self, reference: str) -> bool:
        return self.run("image", "inspect", reference, check=False).returncode == 0

    def remove_all_containers(self) -> None:
        ids = self.run("ps", "--all", "--quiet", check=False).stdout.split()
        if ids:
            self.run("rm", "--force", "--volumes", *ids, check=False, timeout=60)


def _processes_mentioning(needle: str) -> list[int]:
    """Pids of processes whose command line contains *needle* (ours: a path of this run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with suppress(OSError):
            if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(entry.name))
    return found


def _end(pids: Sequence[int], timeout: float) -> None:
    """SIGTERM each pid, then SIGKILL what is left after *timeout*."""
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
    for pid in alive:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    with suppress(OSError):
        return " Z " in Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2][:4]
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on *path*: one daemon per data root at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DockerUnavailable(
                        f"{path} stayed locked for {LOCK_TIMEOUT:.0f} s: another test run "
                        "is using this Docker data root"
                    ) from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_tail(log: Path) -> str:
    with suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    return "(no log)"


@contextmanager
def daemon() -> Iterator[Docker]:
    """Start a daemon of our own, yield its client, and stop everything at the end."""
    install_tools()
    state = cache_root() / "docker"
    data_root = state / "data-root"
    with _locked(state / "lock"):
        # A daemon left by an earlier run that was killed holds the data root: end it, and
        # clear that run's directory (ours: it names this data root).
        _end(_processes_mentioning(f"--data-root {data_root}"), STOP_TIMEOUT)
        for stale in Path("/tmp").glob(f"{RUN_DIR_PREFIX}*"):
            with suppress(OSError):
                if (stale / "data-root").read_text() == str(data_root):
                    _end(_processes_mentioning(str(stale)), 10.0)
                    unmount_under(stale)
                    shutil.rmtree(stale, ignore_errors=True)
        run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir="/tmp"))  # short socket path
        (run_dir / "data-root").write_text(str(data_root))
        docker = Docker(run_dir)
        log = run_dir / "dockerd.log"
        command = [
            str(DOCKERD),
            "--data-root", str(data_root),
            "--exec-root", str(run_dir / "exec"),
            "--pidfile", str(run_dir / "dockerd.pid"),
            "--host", f"unix://{docker.socket}",
            "--bridge=none", "--iptables=false", "--ip-masq=false",
            "--log-level=warn",
        ]  # fmt: skip
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with_parent,  # a test run killed outright takes it along
            )
        try:
            _wait_ready(docker, proc, log)
            docker.remove_all_containers()  # left by a run that was killed
            yield docker
        finally:
            with suppress(Exception):
                docker.remove_all_containers()
            _end([proc.pid], STOP_TIMEOUT)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            # containerd and its shims, started by the daemon under our exec-root.
            _end(_processes_mentioning(str(run_dir)), 10.0)
            unmount_under(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)


def _stop_with_parent() -> None:
    """In the daemon's child before exec: the kernel sends it SIGTERM when the test process
    dies, however it dies (Linux ``PR_SET_PDEATHSIG``); dockerd then stops its containers."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(docker: Docker, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DockerUnavailable(
                f"dockerd exited with {proc.returncode} at start:\n{_log_tail(log)}"
            )
        if docker.socket.exists() and docker.run("version", check=False).returncode == 0:
            return
        time.sleep(0.3)
    raise DockerUnavailable(f"dockerd did not answer within {START_TIMEOUT} s:\n{_log_tail(log)}")


def unmount_under(root: Path) -> None:
    """Lazy-unmount anything still mounted under *root* (deepest first)."""
    with suppress(OSError):
        mounts = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(f"{root}/")
        ]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
