"""deploy/Dockerfile's structure, parsed with BuildKit's own parser (PyPI `dockerfile`).

These are the quick checks of what the file says; tests/deploy/test_image.py builds the
image with Docker and runs it.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass, field
from typing import Any

import dockerfile  # type: ignore[import-not-found]

from shim import settings as shim_settings
from tests.deploy.kube import DOCKERFILE, IMAGE_UID, REPO

# Installers and compilers the runtime stage must not run (it may delete the base's pip).
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|dnf|yum|gcc|g\+\+|cc|clang|make|build-essential|uv|poetry)\b"
    r"|\bpip3?\s+(install|wheel|download)\b|-m\s+pip\b"
)
PINNED_PYTHON = re.compile(
    r"^(docker\.io/(library/)?)?python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$"
)


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
    # Left unset: with several workers the shim makes its directory under /tmp, which a
    # read-only container mounts as a tmpfs (the chart sets it to an emptyDir).
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
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


def exact_pins(lines: list[str]) -> dict[str, str]:
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
    direct = exact_pins([*project["dependencies"], *project["optional-dependencies"]["fast"]])
    locked = exact_pins(CONSTRAINTS.read_text("utf-8").splitlines())
    drift = {name: (version, locked.get(name)) for name, version in direct.items()}
    drift = {name: pair for name, pair in drift.items() if pair[0] != pair[1]}
    assert not drift, f"pyproject pin vs deploy/constraints.txt: {drift}"
    assert "nova-image-shim" not in locked
    _, stages = parse()
    assert any("--constraint constraints.txt" in run.value[0] for run in stages[0].of("RUN"))


def test_dependencies_install_as_wheels_only() -> None:
    """No dependency may build from source (slow, and it needs headers the image lacks): a
    pin that lost its wheel fails the build instead."""
    _, (builder, _) = parse()
    installs = [c.value[0] for c in builder.of("RUN") if "pip --python" in c.value[0]]
    assert installs, "the builder installs into the venv with a pip of its own"
    assert all("--only-binary :all:" in script for script in installs)
