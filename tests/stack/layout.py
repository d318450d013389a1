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
from typing import Final, overload

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
_PSYCOPG2: Final = f"psycopg2-binary=={PSYCOPG2_VERSION}"


class Below:
    """A read-only path attribute of a frozen dataclass that names the files of a directory:
    ``etc = Below("base", "etc")`` reads as ``self.base / "etc"``, each path written once."""

    __slots__ = ("parent", "parts")

    def __init__(self, parent: str, *parts: str) -> None:
        self.parent = parent  # the attribute (a `Path`) the parts are joined to
        self.parts = parts

    @overload
    def __get__(self, obj: None, owner: type) -> Below: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Path: ...
    def __get__(self, obj: object, owner: type | None = None) -> Path | Below:
        if obj is None:
            return self
        parent: Path = getattr(obj, self.parent)
        return parent.joinpath(*self.parts)


@dataclass(frozen=True, slots=True)
class Component:
    """One server's virtualenv: what is pinned in it and how to check it is current."""

    name: str
    requirements: tuple[str, ...]
    constraints: Path
    venv: Path

    bin = Below("venv", "bin")
    marker = Below("venv", ".nova-image-shim-stack.json")

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

    templates = Below("cache", "templates")
    logs = Below("cache", "logs")
    state_file = Below("run", "state.json")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StackPaths:
        env = os.environ if environ is None else environ
        cache = Path(env.get("SHIM_STACK_CACHE") or DEFAULT_CACHE).expanduser().resolve()
        python = env.get("SHIM_STACK_PYTHON") or _base_python()
        run = Path(env.get("SHIM_STACK_RUN_DIR") or cache / "run").expanduser().resolve()
        return cls(cache=cache, python=Path(python), run=run)

    def _component(self, name: str, version: str, *extra: str) -> Component:
        """`name`'s virtualenv: `name` at `version`, gunicorn, then `extra` requirements;
        pinned by ``constraints-<name>.txt``."""
        return Component(
            name=name,
            requirements=(f"{name}=={version}", f"gunicorn=={GUNICORN_VERSION}", *extra),
            constraints=_HERE / f"constraints-{name}.txt",
            venv=self.cache / "venvs" / name,
        )

    @property
    def glance(self) -> Component:
        return self._component("glance", GLANCE_VERSION, _PSYCOPG2)

    @property
    def keystone(self) -> Component:
        return self._component("keystone", KEYSTONE_VERSION)

    @property
    def nova(self) -> Component:
        return self._component("nova", NOVA_VERSION, _PSYCOPG2)

    @property
    def components(self) -> tuple[Component, ...]:
        """Every server's virtualenv, in the order they are installed."""
        return (self.glance, self.keystone, self.nova)

    @property
    def lock_file(self) -> Path:
        return self.run.parent / f".{self.run.name}.lock"


def _base_python() -> str:
    """The interpreter behind the project venv: the stack venvs must not nest in it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(Path(sys.base_prefix) / "bin" / version)
