"""deploy/Dockerfile built with Docker and run as an operator runs it, by the suite.

A Docker daemon of our own (`tests.deploy.dockerd`: Debian's docker.io, no bridge, host
network) builds the image on a Debian base made with debootstrap (`tests.deploy.base_image`),
with the machine's CA bundle as the optional ``pip-ca`` build secret, as a build farm behind
a TLS-inspecting proxy would. The container then runs read-only, without capabilities,
with no-new-privileges, as UID 10001, in front of the real Glance and Keystone.

Never a skip: where Docker cannot run, every test here fails and says why. The sizes and
times land in the run's summary ("container image").
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tarfile
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer
from yarl import URL

from tests.deploy import base_image, dockerd
from tests.deploy.conftest import report
from tests.deploy.dockerd import Docker, DockerUnavailable
from tests.deploy.kube import DOCKERFILE, IMAGE_UID, REPO
from tests.deploy.test_dockerfile import CONSTRAINTS, exact_pins
from tests.fakes import RecordingUpstream, Reply
from tests.fakes.images import glance_image
from tests.shim_fixtures import TEST_PAGE_SIZE, MakeShim
from tests.stack.catalogue import Catalogue
from tests.stack.info import StackInfo
from tests.stack.procs import free_port

TAG = "nova-image-shim:suite"
BUILDER_TAG = "nova-image-shim:suite-builder"
BUILD_TIMEOUT = 1800.0
START_TIMEOUT = 60.0
PUBLIC_URL = "http://compute.example.test:8774"
# What deploy/README.md's `docker run` line asks for, minus the ports (host network here).
HARDENED = (
    "--network", "host",
    "--read-only",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
    "--user", f"{IMAGE_UID}:{IMAGE_UID}",
)  # fmt: skip
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# A line only the build secret holds, so no layer may contain it. Fixed, not random: layers
# cached by an earlier run were built with the same secret and are checked as well.
SECRET_MARKER = b"# nova-image-shim build secret: this line must be in no image layer"
# Names of C compilers and pip in any form (executables, packages, bundled wheels).
COMPILER = re.compile(
    r"(^|/)(s?bin/(([\w.+-]+-)?(gcc|g\+\+|cc|c\+\+|clang|tcc|c89|c99)(-[\d.]+)?)|"
    r"lib(exec)?/gcc/.*/cc1(plus)?)$"
)
PIP = re.compile(
    r"(^|/)(bin/pip[\d.]*|(site|dist)-packages/pip/__init__\.py|[^/]*/pip-[^/]*\.whl)$"
)


@dataclass(frozen=True, slots=True)
class Built:
    reference: str
    builder: str
    base: str


@contextmanager
def _fail_unless_docker_runs() -> Iterator[None]:
    try:
        yield
    except DockerUnavailable as exc:
        pytest.fail(f"Docker cannot run here, so the image cannot be tested:\n{exc}", False)


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    with _fail_unless_docker_runs(), dockerd.daemon() as engine:
        yield engine


def _pip_ca_bundle() -> Path:
    """The CA bundle pip on this machine trusts (PIP_CERT, as a build farm's would be)."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return SYSTEM_CA_BUNDLE


@pytest.fixture(scope="module")
def image(docker: Docker, pytestconfig: pytest.Config) -> Iterator[Built]:
    with _fail_unless_docker_runs():
        base = base_image.ensure(docker)
    how = "reused" if base.built_seconds is None else f"built in {base.built_seconds:.0f} s"
    report(pytestconfig, f"base {base.reference}: {how}")
    with tempfile.TemporaryDirectory(prefix="nis-build-") as scratch:
        secret = Path(scratch) / "pip-ca.pem"
        # OpenSSL reads certificates between BEGIN/END lines only: the marker is inert.
        secret.write_bytes(SECRET_MARKER + b"\n" + _pip_ca_bundle().read_bytes())
        common = [
            "build", "--network", "host", "--progress", "plain",
            "--build-arg", f"PYTHON_IMAGE={base.reference}",
            "--secret", f"id=pip-ca,src={secret}",
            "--file", str(DOCKERFILE),
        ]  # fmt: skip
        started = time.monotonic()
        docker.run(*common, "--tag", TAG, str(REPO), timeout=BUILD_TIMEOUT)
        seconds = time.monotonic() - started
        docker.run(*common, "--target", "builder", "--tag", BUILDER_TAG, str(REPO))
    size = int(docker.run("image", "inspect", "--format", "{{.Size}}", TAG).stdout)
    report(pytestconfig, f"image {TAG}: built in {seconds:.0f} s, {size / 1e6:.0f} MB")
    try:
        yield Built(TAG, BUILDER_TAG, base.reference)
    finally:
        docker.run("image", "rm", "--force", TAG, BUILDER_TAG, check=False)
        docker.run("image", "prune", "--force", check=False)
        # Layers stay cached for the next run, within a bound.
        docker.run("builder", "prune", "--force", "--keep-storage", "4GB", check=False)


# -- contents ----------------------------------------------------------------------------


@contextmanager
def _stream(docker: Docker, *args: str) -> Iterator[IO[bytes]]:
    """The standard output of ``docker ARGS``, read as it comes."""
    proc = subprocess.Popen(docker.command(*args), env=docker.env(), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        yield proc.stdout
    finally:
        proc.stdout.close()
        assert proc.wait(timeout=120) == 0, f"docker {' '.join(args)} failed"


def test_image_holds_no_compiler_no_pip_and_no_build_secret(docker: Docker, image: Built) -> None:
    container = docker.run("create", image.reference).stdout.strip()
    try:
        with (
            _stream(docker, "export", container) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            names = [member.name.removeprefix("./") for member in tar]
    finally:
        docker.run("rm", container)
    assert "opt/venv/bin/nova-image-shim" in names, "the export is not the shim's image"
    assert any(re.search(r"usr/bin/python3\.11$", name) for name in names)
    compilers = [name for name in names if COMPILER.search(name)]
    assert not compilers, f"compilers in the final image: {compilers}"
    pips = [name for name in names if PIP.search(name)]
    assert not pips, f"pip in the final image: {pips}"

    # Every distribution in the venv is locked by deploy/constraints.txt (none floats).
    listing = docker.run(
        "run", "--rm", *HARDENED, "--entrypoint", "/opt/venv/bin/python", image.reference,
        "-I", "-c", "import importlib.metadata as m\nfor d in m.distributions(): "
        "print(f\"{d.metadata['Name']}=={d.version}\")",
    ).stdout  # fmt: skip
    installed = exact_pins(listing.splitlines())
    assert installed.pop("nova-image-shim") == _project_version()
    assert installed == exact_pins(CONSTRAINTS.read_text("utf-8").splitlines())

    # The secret was read by the builder's pip steps, yet no layer of either stage holds it
    # (the imported base's layer, made before any build, is left out).
    base_layers = json.loads(
        docker.run("image", "inspect", "--format", "{{json .RootFS.Layers}}", image.base).stdout
    )
    with tempfile.TemporaryDirectory(prefix="nis-save-") as scratch:
        archive = Path(scratch) / "images.tar"
        docker.run("save", "--output", str(archive), image.reference, image.builder)
        with tarfile.open(archive) as saved:
            manifest = json.load(_member(saved, "manifest.json"))
            layers = {path for entry in manifest for path in entry["Layers"][len(base_layers) :]}
            leaks = {
                path: _files_containing(_member(saved, path), SECRET_MARKER) for path in layers
            }
    assert layers, "no layer above the base"
    assert not any(leaks.values()), f"the build secret is in layers: {leaks}"


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    member = archive.extractfile(name)
    assert member is not None, f"{name} is not a file in the saved archive"
    return member


def _project_version() -> str:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    version: str = project["version"]
    return version


def _files_containing(layer: IO[bytes], needle: bytes) -> list[str]:
    found = []
    with tarfile.open(fileobj=layer, mode="r:") as tar:
        for member in tar:
            if member.isfile():
                content = tar.extractfile(member)
                if content is not None and needle in content.read():
                    found.append(member.name)
    return found


# -- running -----------------------------------------------------------------------------


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@dataclass
class Container:
    docker: Docker
    name: str
    api: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)

    @property
    def api_url(self) -> URL:
        return URL(f"http://127.0.0.1:{self.api}")

    def metrics_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics}{path}"

    def state(self) -> dict[str, Any]:
        out = self.docker.run("inspect", "--format", "{{json .State}}", self.name).stdout
        state: dict[str, Any] = json.loads(out)
        return state

    def logs(self) -> str:
        proc = self.docker.run("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def events(self) -> list[dict[str, Any]]:
        lines = [line for line in self.logs().splitlines() if line.startswith("{")]
        return [json.loads(line) for line in lines]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if _status(self.metrics_url("/readyz")) == 200:
                return
            if not self.state()["Running"]:
                break
            time.sleep(0.3)
        pytest.fail(
            f"container {self.name} not ready ({self.state()['Status']}):\n{self.logs()[-4000:]}"
        )


_serial = iter(range(1_000_000))


@contextmanager
def running(docker: Docker, image: Built, env: dict[str, str], *extra: str) -> Iterator[Container]:
    """``docker run --detach`` the image, hardened, with *env*; removed at the end."""
    container = Container(docker, f"nis-suite-{os.getpid()}-{next(_serial)}")
    settings = {
        "SHIM_LISTEN": f"127.0.0.1:{container.api}",
        "SHIM_METRICS_LISTEN": f"127.0.0.1:{container.metrics}",
        "SHIM_LOG_FORMAT": "json",
        **env,
    }
    variables = [arg for key, value in settings.items() for arg in ("--env", f"{key}={value}")]
    docker.run("run", "--detach", "--name", container.name, *HARDENED, *extra, *variables,
               image.reference)  # fmt: skip
    try:
        yield container
    finally:
        docker.run("rm", "--force", container.name, check=False)


def _process_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


async def test_hardened_container_serves_the_real_stack_like_the_shim_outside(
    docker: Docker,
    image: Built,
    make_shim: MakeShim,
    real_stack: StackInfo,
    tokens: dict[str, str],
    catalogue: Catalogue,
) -> None:
    env = {
        "SHIM_GLANCE_URL": real_stack.glance_url,
        "SHIM_KEYSTONE_URL": real_stack.keystone_url,
        "SHIM_PUBLIC_URL": PUBLIC_URL,
        "SHIM_GLANCE_PAGE_SIZE": str(TEST_PAGE_SIZE),
        "SHIM_WORKERS": "2",
        "SHIM_RENDERER": "c",
    }
    with running(docker, image, env, "--tmpfs", "/tmp") as container:
        await asyncio.to_thread(container.wait_ready)
        assert await asyncio.to_thread(_status, container.metrics_url("/healthz")) == 200

        # As the kernel sees PID 1 of the container: UID 10001, no capability, no way to
        # gain privileges, and a read-only root.
        pid = int(container.state()["Pid"])
        status = _process_status(pid)
        assert status["Uid"].split() == [str(IMAGE_UID)] * 4
        assert status["Gid"].split() == [str(IMAGE_UID)] * 4
        assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
        assert status["NoNewPrivs"] == "1"
        root = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
        (root_options,) = [fields[5] for fields in root if fields[4] == "/"]
        assert "ro" in root_options.split(",")

        headers = {"X-Auth-Token": tokens["alice"]}
        async with (
            aiohttp.ClientSession() as session,
            session.get(container.api_url / "v2.1/images/detail", headers=headers) as answer,
        ):
            assert answer.status == 200, await answer.text()
            inside = await answer.json()
        outside_client = await make_shim(public_url=URL(PUBLIC_URL))
        outside = await outside_client.get("/v2.1/images/detail", headers=headers)
        assert outside.status == 200
        assert inside == await outside.json()
        ids = [listed["id"] for listed in inside["images"]]
        assert len(ids) > TEST_PAGE_SIZE  # several Glance pages
        assert set(ids) <= set(catalogue.listings["alice"])

        events = container.events()
    # The start-up line: the C renderer runs (SHIM_RENDERER=c would have refused to start
    # without it), with the settings given.
    (starting,) = [event for event in events if event["event"] == "starting"]
    assert (starting["renderer"], starting["renderer_setting"]) == ("c", "c")
    assert starting["workers"] == "2"
    assert starting["glance_url"].rstrip("/") == real_stack.glance_url.rstrip("/")


def test_read_only_container_needs_a_tmpfs_only_for_several_workers(
    docker: Docker, image: Built
) -> None:
    env = {"SHIM_GLANCE_URL": "http://127.0.0.1:9"}
    # One worker: single-process metrics, nothing written anywhere.
    with running(docker, image, {**env, "SHIM_WORKERS": "1"}) as container:
        container.wait_ready()
        assert _status(container.metrics_url("/metrics")) == 200
    # Several workers with metrics on need a directory: the shim says which and how.
    with running(docker, image, {**env, "SHIM_WORKERS": "2"}) as container:
        exit_code = int(docker.run("wait", container.name, timeout=60).stdout)
        output = container.logs()
    assert exit_code == 2, output
    assert "PROMETHEUS_MULTIPROC_DIR" in output
    assert "mount a tmpfs on /tmp" in output
    # ... and with metrics off they do not.
    with running(
        docker, image, {**env, "SHIM_WORKERS": "2", "SHIM_METRICS_LISTEN": "off"}
    ) as container:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and _status(f"{container.api_url}/") is None:
            assert container.state()["Running"], container.logs()
            time.sleep(0.3)
        assert _status(f"{container.api_url}/") is not None, container.logs()


async def test_sigterm_during_a_slow_request_drains_it_and_exits_0(
    docker: Docker, image: Built, aiohttp_server: AiohttpServer
) -> None:
    glance = RecordingUpstream()
    glance_url = await glance.start(aiohttp_server)
    glance.on("/v2/images/slow", Reply.json(glance_image("slow"), delay=3.0))
    grace = 30
    env = {"SHIM_GLANCE_URL": str(glance_url), "SHIM_WORKERS": "2", "SHIM_SHUTDOWN_TIMEOUT": "10"}
    with running(docker, image, env, "--tmpfs", "/tmp") as container:
        await asyncio.to_thread(container.wait_ready)
        async with aiohttp.ClientSession() as session:
            request = asyncio.create_task(
                session.get(container.api_url / "v2.1/images/slow", headers={"X-Auth-Token": "t"})
            )
            await glance.wait_for(1, timeout=30)
            # `docker stop` is SIGTERM, then SIGKILL once the grace period is over.
            stop = asyncio.create_task(
                asyncio.to_thread(docker.run, "stop", "--time", str(grace), container.name)
            )
            async with await request as answer:
                assert answer.status == 200
                assert (await answer.json())["image"]["id"] == "slow"
            await stop
        state = container.state()
        assert state["ExitCode"] == 0, f"{state}\n{container.logs()[-4000:]}"
        assert not state["OOMKilled"]
