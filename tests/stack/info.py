"""`StackInfo`: what a running stack is (URLs, pids, ids, paths) and tokens for its users.

Owns the state file's format and the per-process token cache. It must not start or stop
servers (see `realstack`).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from tests.stack import identity
from tests.stack.layout import GLANCE_VERSION, KEYSTONE_VERSION, NOVA_VERSION, REGION

# Reissue a cached token this long before Keystone would expire it.
TOKEN_MARGIN: Final = timedelta(minutes=10)


class OutdatedState(ValueError):
    """The state file names a stack started by an older layout of this package."""


class _ProjectId:
    """A read-only attribute of `StackInfo`: the id of the project named so."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, info: StackInfo | None, owner: type | None = None) -> str:
        if info is None:
            raise AttributeError(f"the id of project {self.name} belongs to a running stack")
        return info.project_ids[self.name]


@dataclass(frozen=True, slots=True)
class StackInfo:
    keystone_url: str  # http://127.0.0.1:PORT (no /v3)
    glance_url: str  # http://127.0.0.1:PORT (no /v2); also the catalogue's image endpoint
    keystone_port: int
    glance_port: int
    keystone_pid: int  # gunicorn master, leader of its process group
    glance_pid: int
    project_ids: dict[str, str]  # "demo-a", "demo-b", "service", "admin" -> id
    user_ids: dict[str, str]  # "alice", "bob", "carol", "dave", "glance", "nova", "admin" -> id
    run_dir: Path
    db_port: int  # the stack's PostgreSQL on 127.0.0.1
    db_pid: int  # its postmaster, leader of its process group
    db_dir: Path  # its data directory (the postmaster's working directory)
    glance_db_url: str  # libpq URL of Glance's database (seed.py writes what the API cannot)
    glance_data_dir: Path  # fs store: one file per image with data
    glance_staging_dir: Path
    keystone_db: Path
    logs: dict[str, Path]  # "glance", "keystone", "nova", each also with "-server"
    glance_token_cache_time: int  # keystonemiddleware trusts a validated token this long
    nova_url: str  # http://127.0.0.1:PORT (no /v2.1): Nova's compute API at its defaults
    nova_port: int
    nova_pid: int
    nova_dir: Path  # Nova's run dir: etc/, log/ (its databases are on the stack's PostgreSQL)
    region: str = REGION
    glance_version: str = GLANCE_VERSION
    keystone_version: str = KEYSTONE_VERSION
    nova_version: str = NOVA_VERSION
    _tokens: dict[tuple[str, str], tuple[str, datetime]] = field(
        default_factory=dict, compare=False, repr=False
    )

    demo_a = _ProjectId("demo-a")
    demo_b = _ProjectId("demo-b")
    service_project = _ProjectId("service")
    admin_project = _ProjectId("admin")

    @property
    def keystone_v3(self) -> str:
        return f"{self.keystone_url}/v3"

    def password(self, user: str) -> str:
        return identity.password(user)

    def default_project(self, user: str) -> str:
        """Project name a user's token is scoped to unless told otherwise."""
        if user == identity.ADMIN:
            return identity.ADMIN_PROJECT
        return next(iter(identity.ROLES[user]))

    def token(self, user: str, project: str | None = None) -> str:
        """A project-scoped password token, cached per (user, project) until near expiry.

        `project` is a project *name* (``demo-a``); the user's default project if omitted.
        Do not revoke a cached token; use `new_token` for that.
        """
        project = project or self.default_project(user)
        cached = self._tokens.get((user, project))
        if cached is not None and cached[1] - TOKEN_MARGIN > datetime.now(UTC):
            return cached[0]
        self._tokens[(user, project)] = self._issue(user, project)
        return self._tokens[(user, project)][0]

    def new_token(self, user: str, project: str | None = None) -> str:
        """A fresh, uncached project-scoped token (safe to revoke)."""
        return self._issue(user, project or self.default_project(user))[0]

    def _issue(self, user: str, project: str) -> tuple[str, datetime]:
        project_id = self.project_ids[project]
        value, expires = identity.issue_token(self.keystone_url, user, project_id=project_id)
        return value, datetime.fromisoformat(expires)

    def system_admin_token(self) -> str:
        """System-scoped admin token, for Keystone's own admin calls (revoke, validate)."""
        cached = self._tokens.get(("admin", "<system>"))
        if cached is not None and cached[1] - TOKEN_MARGIN > datetime.now(UTC):
            return cached[0]
        value, expires = identity.issue_token(self.keystone_url, identity.ADMIN, system=True)
        self._tokens[("admin", "<system>")] = value, datetime.fromisoformat(expires)
        return value

    def revoke_token(self, token: str) -> None:
        """``DELETE /v3/auth/tokens``. Glance may still accept it for `glance_token_cache_time`."""
        identity.revoke_token(self.keystone_url, self.system_admin_token(), token)
        for key, (value, _) in list(self._tokens.items()):
            if value == token:
                del self._tokens[key]

    def token_valid(self, token: str) -> bool:
        """Keystone's own verdict (``HEAD /v3/auth/tokens``)."""
        return identity.token_valid(self.keystone_url, self.system_admin_token(), token)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("_tokens")
        return json.dumps(data, indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> StackInfo:
        """Raises `OutdatedState` for a state file written before a field was added."""
        raw: dict[str, Any] = json.loads(text)
        missing = [f.name for f in fields(cls) if f.name not in raw and f.name != "_tokens"]
        missing = [name for name in missing if cls.__dataclass_fields__[name].default is MISSING]
        if missing:
            raise OutdatedState(f"state file lacks {missing}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "_tokens" or f.name not in raw:
                continue
            value = raw[f.name]
            if f.type == "Path":
                value = Path(value)
            elif f.name == "logs":
                value = {k: Path(v) for k, v in value.items()}
            kwargs[f.name] = value
        return cls(**kwargs)
