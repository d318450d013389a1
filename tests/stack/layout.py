"""Where the test stack lives on disk, and the versions it pins.

Owns the cache layout (virtualenvs, database templates, the run directory and its state
file) and the single place that reads the stack's environment variables. It must not
create, start or delete anything.

Layout under ``$SHIM_STACK_CACHE`` (default ``~/.cache/nova-image-shim/stack``)::

    venvs/glance/    venvs/keystone/    venvs/nova/    one virtualenv per server, with a marker
    templates/       postgres/ (a PostgreSQL cluster holding Glance's and Nova's synced
                     schemas), keystone/ (sqlite db, fernet and credential keys): made once
    logs/            pip logs of the last install
    run/             the running stack: keystone/, glance/, nova/, postgres/, state.json

``$SHIM_STACK_RUN_DIR`` moves the run directory elsewhere, so that two sessions on one
machine can run separate stacks (seeding wipes Glance) while sharing the virtualenvs.
``$SHIM_STACK_PYTHON`` names the interpreter for the virtualenvs (default: the one
behind the running interpreter's venv).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

GLANCE_VERSION: Final = "33.0.0"
KEYSTONE_VERSION: Final = "30.0.0"
NOVA_VERSION: Final = "34.0.0"
GUNICORN_VERSION: Final = "27.0.1"
# Glance's and Nova's database driver (SQLAlchemy's postgresql+psycopg2), as clouds use.
PSYCOPG2_VERSION: Final = "2.9.13"
PG_MAJOR: Final = 15
HOST: Final = "127.0.0.1"
REGION: Final = "RegionOne"

_HERE: Final = Path(__file__).resolve().parent
DEFAULT_CACHE: Final = Path("~/.cache/nova-image-shim/stack")


@dataclass(frozen=True, slots=True)
class Component:
    """One server's virtualenv: what is pinned in it and how to check it is current."""

    name: str
    requirements: tuple[str, ...]
    constraints: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def marker(self) -> Path:
        return self.venv / ".nova-image-shim-stack.json"

    def fingerprint(self, python: Path) -> dict[str, str]:
        """What the marker must hold for the venv to be reused."""
        digest = hashlib.sha256(self.constraints.read_bytes()).hexdigest()
        return {
            "requirements": " ".join(self.requirements),
            "constraints_sha256": digest,
            "python": str(python),
        }


@dataclass(frozen=True, slots=True)
class StackPaths:
    cache: Path
    python: Path
    run: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackPaths:
        env = os.environ if environ is None else environ
        cache = Path(env.get("SHIM_STACK_CACHE") or DEFAULT_CACHE).expanduser().resolve()
        python = env.get("SHIM_STACK_PYTHON") or _base_python()
        run = Path(env.get("SHIM_STACK_RUN_DIR") or cache / "run").expanduser().resolve()
        return cls(cache=cache, python=Path(python), run=run)

    @property
    def glance(self) -> Component:
        return Component(
            name="glance",
            requirements=(
                f"glance=={GLANCE_VERSION}",
                f"gunicorn=={GUNICORN_VERSION}",
                f"psycopg2-binary=={PSYCOPG2_VERSION}",
            ),
            constraints=_HERE / "constraints-glance.txt",
            venv=self.cache / "venvs" / "glance",
        )

    @property
    def keystone(self) -> Component:
        return Component(
            name="keystone",
            requirements=(f"keystone=={KEYSTONE_VERSION}", f"gunicorn=={GUNICORN_VERSION}"),
            constraints=_HERE / "constraints-keystone.txt",
            venv=self.cache / "venvs" / "keystone",
        )

    @property
    def nova(self) -> Component:
        return Component(
            name="nova",
            requirements=(
                f"nova=={NOVA_VERSION}",
                f"gunicorn=={GUNICORN_VERSION}",
                f"psycopg2-binary=={PSYCOPG2_VERSION}",
            ),
            constraints=_HERE / "constraints-nova.txt",
            venv=self.cache / "venvs" / "nova",
        )

    @property
    def components(self) -> tuple[Component, ...]:
        """Every server's virtualenv, in the order they are installed."""
        return (self.glance, self.keystone, self.nova)

    @property
    def templates(self) -> Path:
        return self.cache / "templates"

    @property
    def logs(self) -> Path:
        return self.cache / "logs"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.run.parent / f".{self.run.name}.lock"


def _base_python() -> str:
    """The interpreter behind the project venv: the stack venvs must not nest in it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(Path(sys.base_prefix) / "bin" / version)
