"""`RequestRecord`: what is known about one request while it is answered, for its access line.

`shim.access` opens one per request (its route label, whether it is a legacy image route)
and writes the access line and the request metrics from it; the auth step adds who called
(`note_identity`), the upstream client middleware each call to Glance, Keystone or Nova. It
must not log, count or decide anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from shim.legacy.microversion import MIN_VERSION, Version

MAX_LOGGED_UPSTREAM_CALLS: Final = 10


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    service: str
    operation: str
    status: int | None
    outcome: str
    seconds: float
    request_id: str | None = None  # the upstream's own x-openstack-request-id


@dataclass(slots=True)
class RequestRecord:
    route: str
    legacy: bool
    started: float
    max_version: Version = MIN_VERSION
    project_id: str | None = None
    user_id: str | None = None
    # The caller's project for the legacy-caller series: the token's (keystone,
    # trusted-headers) or the URL's (passthrough); None when unknown.
    caller_project: str | None = None
    caller_projects_max: int = 0
    calls: list[UpstreamCall] = field(default_factory=list)
    call_count: int = 0
    upstream_seconds: float = 0.0
    response: web.StreamResponse | None = None
    logged: bool = False

    def add_call(self, call: UpstreamCall) -> None:
        self.call_count += 1
        self.upstream_seconds += call.seconds
        if len(self.calls) < MAX_LOGGED_UPSTREAM_CALLS:
            self.calls.append(call)

    def note_identity(self, project_id: str | None, user_id: str | None) -> None:
        """Who the caller is, once known (keystone and trusted-headers modes)."""
        self.project_id = project_id
        self.user_id = user_id
        if project_id is not None:
            self.caller_project = project_id
