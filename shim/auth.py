"""Who is calling: the three auth modes of docs/contract.md §6 and Nova's project-id check.

=================  ===================================================================
``SHIM_AUTH``      what `authenticate` does
=================  ===================================================================
``passthrough``    forwards the token; Glance decides. No token → 401 here, without
                   calling Glance (contract.md §5). The URL project id is not checked.
``keystone``       validates the token with Keystone (``GET /v3/auth/tokens``), through
                   `TokenCache`; invalid or expired → 401; Keystone unreachable, 5xx,
                   timed out or answering nonsense → 503 + Retry-After (never let
                   through). The URL project id must be the token's. When
                   ``SHIM_GLANCE_URL`` is unset, Glance is the token catalogue's
                   ``image`` endpoint (`shim.catalog`).
``trusted-headers`` takes project, user and roles from ``X-Project-Id`` (or
                   ``X-Tenant-Id``), ``X-User-Id`` and ``X-Roles``, as keystonemiddleware
                   sets them in front of the shim; checks the URL project id; forwards
                   the token if there is one. Anyone who can reach the shim can forge
                   these headers: only for a shim that untrusted clients cannot reach.
=================  ===================================================================

It must never log, store (other than as a SHA-256 key) or echo a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from aiohttp import web

from shim.catalog import ImageEndpoints
from shim.faults import BadRequest, Unauthorized
from shim.keys import KEYSTONE, SETTINGS
from shim.keystone import NO_ENDPOINTS, www_authenticate

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller as far as the shim knows it.

    ``checked`` is true when the mode knows the token's project (``keystone``,
    ``trusted-headers``): then Nova's project-id check applies, even to a token scoped to
    no project (Nova renders that project as ``None``).
    """

    token: str | None
    project_id: str | None = None
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    checked: bool = False
    image: ImageEndpoints = NO_ENDPOINTS

    def check_project(self, url_project_id: str | None) -> None:
        """Nova's check (wsgi.Resource): a URL project id must be the token's project."""
        if not self.checked or not url_project_id:
            return
        if url_project_id != self.project_id:
            raise BadRequest(
                f"Malformed request URL: URL's project_id '{url_project_id}' "
                f"doesn't match Context's project_id '{self.project_id}'"
            )


async def authenticate(request: web.Request) -> Identity:
    settings = request.app[SETTINGS]
    token = request.headers.get("X-Auth-Token") or None
    if settings.auth == "trusted-headers":
        return trusted_identity(request.headers, token, www_authenticate(settings))
    if token is None:
        raise Unauthorized(www_authenticate(settings))
    if settings.auth == "keystone":
        info = await request.app[KEYSTONE].identify(token)
        return Identity(
            token=token,
            project_id=info.project_id,
            user_id=info.user_id,
            roles=info.roles,
            checked=True,
            image=info.image,
        )
    return Identity(token=token)


def forget_rejected(app: web.Application, token: str | None) -> None:
    """Glance refused a token the cache holds as valid (revoked since it was validated).

    In ``keystone`` mode the cached verdict is dropped, so the next request asks Keystone
    again instead of trusting it for the rest of ``SHIM_TOKEN_CACHE_TTL``.
    """
    if token is not None and app[SETTINGS].auth == "keystone":
        app[KEYSTONE].cache.invalidate(token)
        log.info("token_rejected_by_glance")


def trusted_identity(
    headers: Mapping[str, str], token: str | None, challenge: str | None
) -> Identity:
    """The identity a trusted front (keystonemiddleware) put in the request headers.

    ``X-Identity-Status`` other than ``Confirmed`` (keystonemiddleware with
    ``delay_auth_decision``) or no project at all means nobody vouched: 401.
    """
    status = headers.get("X-Identity-Status")
    project = headers.get("X-Project-Id") or headers.get("X-Tenant-Id")
    if (status is not None and status.strip().lower() != "confirmed") or not project:
        raise Unauthorized(challenge)
    roles = tuple(r.strip() for r in headers.get("X-Roles", "").split(",") if r.strip())
    return Identity(
        token=token,
        project_id=project.strip(),
        user_id=(headers.get("X-User-Id") or "").strip() or None,
        roles=roles,
        checked=True,
    )
