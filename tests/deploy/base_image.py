"""The base image the test builds on: a Debian root from ``debootstrap``, ``docker import``ed.

No registry for base images is reachable from here, so the base comes from Debian packages:
``debootstrap --variant=minbase`` with python3, python3-venv, python3-dev and ca-certificates,
from the Debian mirror and release apt is configured with. It is tagged by a hash of those
inputs (and debootstrap's version), so later runs whose inputs are the same reuse it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.deploy.dockerd import Docker, DockerUnavailable, cache_root, unmount_under

VARIANT: Final = "minbase"
PACKAGES: Final = ("python3", "python3-venv", "python3-dev", "ca-certificates")
RECIPE: Final = 1
"""Bump when the way the root is made or imported changes (a new tag, a new build)."""
REPOSITORY: Final = "nova-image-shim-base"
IMPORT_CHANGES: Final = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/sh"]',
)
DEBOOTSTRAP_TIMEOUT: Final = 1800.0


@dataclass(frozen=True, slots=True)
class Base:
    reference: str
    built_seconds: float | None
    """Seconds spent on debootstrap and import; None when the cached image was reused."""


def _output(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def apt_mirror() -> tuple[str, str]:
    """The mirror URL and release of the machine's own Debian ``main`` package index."""
    codename = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME":
            codename = value.strip('"')
    targets = _output(
        "apt-get", "indextargets", "--format", "$(REPO_URI) $(CODENAME) $(COMPONENT)",
        "Identifier: Packages",
    )  # fmt: skip
    for line in targets.splitlines():
        uri, release, component = line.split()
        if release == codename and component == "main":
            return uri, release
    raise DockerUnavailable(
        f"apt has no Debian 'main' index for {codename!r} (run apt-get update):\n{targets}"
    )


def inputs() -> dict[str, object]:
    mirror, release = apt_mirror()
    return {
        "mirror": mirror,
        "release": release,
        "architecture": _output("dpkg", "--print-architecture"),
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "debootstrap": _output("dpkg-query", "--show", "--showformat=${Version}", "debootstrap"),
        "recipe": RECIPE,
    }


def ensure(docker: Docker) -> Base:
    """The base image for these inputs: reused when present, else built and imported."""
    wanted = inputs()
    key = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:16]
    reference = f"{REPOSITORY}:{key}"
    if docker.has_image(reference):
        return Base(reference, None)
    started = time.monotonic()
    root = cache_root() / "docker" / f"debootstrap-{key}"
    shutil.rmtree(root, ignore_errors=True)
    try:
        command = [
            "debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
            str(wanted["release"]), str(root), str(wanted["mirror"]),
        ]  # fmt: skip
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=DEBOOTSTRAP_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.exists() else proc.stderr
            raise DockerUnavailable(f"debootstrap failed (exit {proc.returncode}):\n{detail}")
        # Downloaded packages and indexes: the build runs apt-get update itself.
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."],
            stdout=subprocess.PIPE,
        )
        assert tar.stdout is not None
        changes = [arg for change in IMPORT_CHANGES for arg in ("--change", change)]
        with tar.stdout:
            docker.run("import", *changes, "-", reference, stdin=tar.stdout.fileno(), timeout=600)
        if tar.wait() != 0:
            raise DockerUnavailable(f"tar of {root} failed (exit {tar.returncode})")
    finally:
        unmount_under(root)  # debootstrap mounts /proc and /sys in the root while it works
        shutil.rmtree(root, ignore_errors=True)
    return Base(reference, time.monotonic() - started)
