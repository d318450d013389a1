"""deploy/Dockerfile: its structure, parsed with BuildKit's own parser (PyPI `dockerfile`),
and its install steps replayed outside Docker, ending with the entry point serving /healthz.

No image can be built here (no registry for base images), so the second test runs the
builder stage's RUN instructions with /bin/sh in a scratch root: absolute paths of the
Dockerfile (ENV values, WORKDIR, COPY destinations) are moved under that root, `python`
is this interpreter's base installation (the image's is the same minor version), and pip
reuses the machine's cache as the RUN's cache mount does. Then it starts the runtime
stage's ENTRYPOINT with the runtime stage's environment.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found]
import pytest

from shim import settings as shim_settings
from tests.deploy.kube import DOCKERFILE, IMAGE_UID, REPO

BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|gcc|g\+\+|cc|clang|make|build-essential|pip3?|uv|poetry)\b"
)
OS_PACKAGES = re.compile(r"\bapt-get install\b")
PINNED_PYTHON = re.compile(
    r"^(docker\.io/(library/)?)?python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$"
)
START_TIMEOUT = 30.0


@dataclass
class Stage:
    name: str
    base: str
    commands: list[Any] = field(default_factory=list)

    def of(self, cmd: str) -> list[Any]:
        return [command for command in self.commands if command.cmd == cmd]


def parse() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with FROM's ${ARG}s resolved."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            image = string.Template(command.value[0]).substitute(global_args)
            name = command.value[2] if len(command.value) == 3 else str(len(stages))
            assert len(command.value) in (1, 3), command.original
            stages.append(Stage(name=name, base=image))
        elif not stages:
            assert command.cmd == "ARG", f"only ARG may precede FROM: {command.original}"
            key, _, default = command.value[0].partition("=")
            global_args[key] = default
        else:
            stages[-1].commands.append(command)
    return global_args, stages


def key_values(command: Any) -> dict[str, str]:
    """ENV/ARG/LABEL arguments as a dict (the parser flattens `K=V K2=V2` to pairs)."""
    if command.cmd == "ARG":
        key, _, default = command.value[0].partition("=")
        return {key: default}
    values = list(command.value)
    return dict(zip(values[::2], values[1::2], strict=True))


# -- structure ---------------------------------------------------------------------------


def test_multi_stage_on_one_pinned_slim_base() -> None:
    global_args, stages = parse()
    assert [stage.name for stage in stages] == ["builder", "runtime"]
    bases = {stage.base for stage in stages}
    assert len(bases) == 1, "both stages must share the interpreter the venv points into"
    (base,) = bases
    assert PINNED_PYTHON.match(base), f"base image {base!r} is not a pinned 3.11 slim tag"
    assert not base.endswith(":latest")
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["requires-python"] == ">=3.11"
    assert "PYTHON_IMAGE" in global_args


def test_runtime_stage_is_minimal_and_unprivileged() -> None:
    _, stages = parse()
    builder, runtime = stages
    users = runtime.of("USER")
    assert len(users) == 1
    user, _, group = users[0].value[0].partition(":")
    assert user.isdigit(), "USER must be a fixed numeric UID"
    assert int(user) == IMAGE_UID != 0
    assert not group or int(group) != 0
    assert runtime.commands[-1].cmd in ("ENTRYPOINT", "CMD", "EXPOSE")
    for run in runtime.of("RUN"):
        assert not BUILD_TOOLS.search(run.value[0]), (
            f"build tool in the runtime stage: {run.original}"
        )
    # Only the virtual environment comes over from the builder.
    copies = runtime.of("COPY") + runtime.of("ADD")
    assert [(c.flags, c.value) for c in copies] == [
        (("--from=builder",), ("/opt/venv", "/opt/venv"))
    ]
    env = {k: v for command in runtime.of("ENV") for k, v in key_values(command).items()}
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the root filesystem is read-only
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/")
    # The cache mount keeps pip's cache out of the builder's layers too.
    for run in builder.of("RUN"):
        if "pip" in run.value[0]:
            assert "--mount=type=cache,target=/root/.cache/pip" in run.flags


def test_entry_point_ports_and_no_healthcheck() -> None:
    _, stages = parse()
    runtime = stages[-1]
    (entrypoint,) = runtime.of("ENTRYPOINT")
    assert entrypoint.json, "ENTRYPOINT must be exec form so the shim gets SIGTERM as PID 1"
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    assert list(entrypoint.value) == ["nova-image-shim"]
    assert "nova-image-shim" in project["scripts"]
    (expose,) = runtime.of("EXPOSE")
    ports = {shim_settings.DEFAULT_LISTEN, shim_settings.DEFAULT_METRICS_LISTEN}
    assert set(expose.value) == {str(address.port) for address in ports}
    assert not any(stage.of("HEALTHCHECK") for stage in stages)
    assert "HEALTHCHECK" in DOCKERFILE.read_text("utf-8"), "say why there is none"


def test_build_context_sends_what_the_builder_copies() -> None:
    """/.dockerignore is an allow-list; every COPY source must be on it and exist."""
    lines = (REPO / ".dockerignore").read_text("utf-8").splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    _, stages = parse()
    for copy in stages[0].of("COPY"):
        for source in copy.value[:-1]:
            assert source in allowed, f"{source} is not sent in the build context"
            assert (REPO / source).exists(), f"COPY source {source} is missing"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        requirement = line.partition("#")[0].strip()
        if requirement:
            name, sep, version = requirement.partition("==")
            assert sep, f"not an exact pin: {requirement}"
            pins[_normalise(name)] = version
    return pins


CONSTRAINTS = REPO / "deploy" / "constraints.txt"


def test_constraints_agree_with_pyproject() -> None:
    """deploy/constraints.txt locks the image; its direct pins are pyproject's."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    direct = _pins([*project["dependencies"], *project["optional-dependencies"]["fast"]])
    locked = _pins(CONSTRAINTS.read_text("utf-8").splitlines())
    drift = {name: (version, locked.get(name)) for name, version in direct.items()}
    drift = {name: pair for name, pair in drift.items() if pair[0] != pair[1]}
    assert not drift, f"pyproject pin vs deploy/constraints.txt: {drift}"
    assert "nova-image-shim" not in locked
    _, stages = parse()
    assert any("--constraint constraints.txt" in run.value[0] for run in stages[0].of("RUN"))


# -- install steps and entry point -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Replay:
    """Runs a stage's instructions with the Dockerfile's absolute paths under *root*."""

    def __init__(self, root: Path, base_path: str) -> None:
        self.root = root
        self.env: dict[str, str] = {"PATH": base_path}
        self.workdir = root

    def path(self, value: str) -> str:
        """Move each absolute, ':'-separated part of *value* under the root."""
        if "://" in value:
            return value
        return ":".join(
            str(self.root) + part if part.startswith("/") else part for part in value.split(":")
        )

    def set(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.env[key] = string.Template(self.path(value)).safe_substitute(self.env)

    def workdir_to(self, value: str) -> None:
        self.workdir = Path(self.path(value)) if value.startswith("/") else self.workdir / value
        self.workdir.mkdir(parents=True, exist_ok=True)

    def copy(self, sources: tuple[str, ...], dest: str) -> None:
        target = Path(self.path(dest)) if dest.startswith("/") else self.workdir / dest
        for source in sources:
            origin = REPO / source
            assert origin.exists(), f"COPY {source}: missing, so `docker build` fails too"
            if origin.is_dir():
                shutil.copytree(
                    origin,
                    target if len(sources) == 1 else target / origin.name,
                    ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]", "*.so"),
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)

    def run(self, script: str, timeout: float) -> None:
        proc = subprocess.run(
            ["/bin/sh", "-c", script],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        assert proc.returncode == 0, f"RUN failed ({proc.returncode}): {script}\n{output}"


def _base_python_bin(tmp_path: Path) -> Path:
    """A directory with `python`/`python3` for this interpreter's base installation."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    base = Path(sys.base_prefix) / "bin" / version
    assert base.exists(), f"no base interpreter at {base}"
    probe = subprocess.run(
        [str(base), "-m", "pip", "--version"], capture_output=True, text=True, check=False
    )
    assert probe.returncode == 0, f"{base} has no pip, unlike the python image: {probe.stderr}"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("python", "python3", version):
        (bindir / name).symlink_to(base)
    return bindir


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_install_steps_then_entry_point_serves_healthz_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    _, (builder, runtime) = parse()
    # No dependency may build from source (slow, and it needs headers the image lacks):
    # the install takes wheels only, so a pin without a wheel fails the replay below.
    installs = [c.value[0] for c in builder.of("RUN") if "pip --python" in c.value[0]]
    assert installs, "the builder installs into the venv with the base pip"
    assert all("--only-binary :all:" in script for script in installs)
    root = tmp_path / "root"
    base_path = f"{_base_python_bin(tmp_path)}:/usr/local/bin:/usr/bin:/bin"

    # Builder stage.
    stage = Replay(root, base_path)
    # HOME stays: pip's cache there plays the RUN's cache mount, so reruns download nothing.
    stage.env.update({"HOME": str(Path.home()), "LANG": "C.UTF-8"})
    if "PIP_CACHE_DIR" in os.environ:
        stage.env["PIP_CACHE_DIR"] = os.environ["PIP_CACHE_DIR"]
    started = time.monotonic()
    for command in builder.commands:
        match command.cmd:
            case "ARG" | "ENV":
                stage.set(key_values(command))
            case "WORKDIR":
                stage.workdir_to(command.value[0])
            case "COPY":
                assert not command.flags, f"unexpected flags: {command.original}"
                stage.copy(command.value[:-1], command.value[-1])
            case "RUN" if OS_PACKAGES.search(command.value[0]):
                # The image's compiler comes from apt; this machine's is already here.
                assert shutil.which("gcc"), "the builder installs gcc; so must this machine"
            case "RUN":
                stage.run(command.value[0], timeout=300)
            case "LABEL":
                pass
            case other:
                pytest.fail(f"the replay does not know {other}: {command.original}")
    build_seconds = time.monotonic() - started

    # Every package in the venv is locked by deploy/constraints.txt (none floats).
    venv_python = root / "opt" / "venv" / "bin" / "python"
    base_python = stage.env["PATH"].split(":")[0] + "/python"
    freeze = subprocess.run(
        [base_python, "-m", "pip", "--python", str(venv_python), "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = _pins(freeze.stdout.splitlines())
    installed.pop("nova-image-shim")
    assert installed == _pins(CONSTRAINTS.read_text("utf-8").splitlines())

    # Runtime stage: only what it copies from the builder, then its environment.
    final = Replay(root, "/usr/bin:/bin")
    for copy in runtime.of("COPY"):
        source = Path(final.path(copy.value[0]))
        assert source.is_dir(), f"the builder left no {copy.value[0]}"
    for command in runtime.commands:
        if command.cmd == "ENV":
            final.set(key_values(command))
    (entrypoint,) = runtime.of("ENTRYPOINT")
    executable = shutil.which(entrypoint.value[0], path=final.env["PATH"])
    assert executable is not None, f"{entrypoint.value[0]} is not on the image's PATH"
    assert Path(executable).is_relative_to(root / "opt" / "venv")
    pip_check = subprocess.run(
        [str(venv_python), "-c", "import importlib.util as u; print(u.find_spec('pip'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert pip_check.stdout.strip() == "None", "the runtime venv must not carry pip"
    Path(final.env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)  # the chart's emptyDir

    api, metrics = _free_port(), _free_port()
    env = {
        **final.env,
        "HOME": str(tmp_path),
        "SHIM_GLANCE_URL": "http://127.0.0.1:9",
        "SHIM_LISTEN": f"127.0.0.1:{api}",
        "SHIM_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        "SHIM_WORKERS": "1",
        "SHIM_SHUTDOWN_TIMEOUT": "5",
    }
    log = (tmp_path / "shim.log").open("w+")
    proc = subprocess.Popen(
        [executable, *entrypoint.value[1:]],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                status = _get(f"http://127.0.0.1:{metrics}/healthz")
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.2)
        log.seek(0)
        output = log.read()[-4000:]
        assert proc.poll() is None, f"the entry point exited with {proc.returncode}:\n{output}"
        assert status == 200, (
            f"/healthz never answered 200 within {START_TIMEOUT} s (last: {status}; the "
            f"install steps took {build_seconds:.1f} s):\n{output}"
        )
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=15)
        log.seek(0)
        assert returncode == 0, f"exit {returncode} after SIGTERM:\n{log.read()[-4000:]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
