"""Keystone: token validation, the service token, and the 401 challenge.

Validation asks Keystone with ``X-Subject-Token: <token>`` and, as ``X-Auth-Token``,
either a service token (password auth with ``SHIM_SERVICE_*``; cached, renewed before
it expires and once on a 401) or the token itself: Keystone's policy lets any token
validate itself. The catalogue is requested only when Glance must come from it.

It never logs, stores (other than as a SHA-256 key in `TokenCache`) or echoes a token.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import orjson
import structlog
from yarl import URL

from shim import metrics
from shim.bodies import read_capped
from shim.catalog import ImageEndpoints, image_endpoints, service_root
from shim.faults import ServiceUnavailable, Unauthorized
from shim.settings import Settings
from shim.tls import log_tls_failure, loggable_url, tls_failure
from shim.token_cache import TokenCache, Verdict

log = structlog.get_logger(__name__)

IDENTITY_UNAVAILABLE: Final = "The identity service is unavailable. Please retry later."
# Fernet tokens are ~200 bytes and JWS tokens ~1 KiB; 4 KiB leaves room, 8 KiB is
# already aiohttp's header line limit.
MAX_TOKEN_LENGTH: Final = 4096
MAX_KEYSTONE_BODY: Final = 4 * 1024 * 1024
# Renew the service token this long before it expires (or at half its life, if sooner).
SERVICE_TOKEN_MARGIN: Final = 300.0
NO_ENDPOINTS: Final = ImageEndpoints(api=None, public=None)
_TRANSPORT_ERRORS: Final = (aiohttp.ClientError, TimeoutError)


def www_authenticate(settings: Settings) -> str | None:
    if settings.keystone_url is None:
        return None
    return f'Keystone uri="{str(settings.keystone_url).rstrip("/")}"'


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What Keystone said about a valid token; cached, so it holds no token."""

    project_id: str | None
    user_id: str | None
    roles: tuple[str, ...]
    expires_at: datetime
    image: ImageEndpoints = field(default=NO_ENDPOINTS)


class KeystoneAnswerError(ValueError):
    """Keystone answered 200 with a body that is not a token document."""


def parse_token(doc: Any, interface: str, region: str | None, now: datetime) -> Verdict[TokenInfo]:
    """Keystone's ``{"token": {...}}`` → `TokenInfo` with its remaining lifetime."""
    token = doc.get("token") if isinstance(doc, dict) else None
    if not isinstance(token, dict):
        raise KeystoneAnswerError("no token object")
    expires = token.get("expires_at")
    try:
        expires_at = datetime.fromisoformat(str(expires))
    except ValueError:
        raise KeystoneAnswerError("bad expires_at") from None
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    roles = token.get("roles")
    info = TokenInfo(
        project_id=_id_of(token.get("project")),
        user_id=_id_of(token.get("user")),
        roles=tuple(
            r["name"]
            for r in (roles if isinstance(roles, list) else ())
            if isinstance(r, dict) and isinstance(r.get("name"), str)
        ),
        expires_at=expires_at,
        image=image_endpoints(token.get("catalog"), interface, region),
    )
    return Verdict(info, lifetime=(expires_at - now).total_seconds())


def _id_of(item: object) -> str | None:
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return str(item["id"])
    return None


def plausible_token(token: str) -> bool:
    """Visible ASCII of sane length: anything else cannot be a Keystone token, and is
    refused without asking Keystone (or putting it in a header)."""
    return len(token) <= MAX_TOKEN_LENGTH and token.isascii() and token.isprintable()


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    subject_token: str | None


class Keystone:
    """Token validation (and the service token) over the app's one ClientSession."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: Settings,
        cache: TokenCache[TokenInfo] | None = None,
        *,
        tls: ssl.SSLContext | bool = True,
    ) -> None:
        if settings.keystone_url is None:
            raise ValueError("SHIM_KEYSTONE_URL is required for keystone validation")
        self._session = session
        self._settings = settings
        self._tls = tls
        self._challenge = www_authenticate(settings)
        tokens = URL(service_root(str(settings.keystone_url)) + "/v3/auth/tokens")
        # The catalogue can be tens of KiB: ask for it only when Glance must come from it.
        self._validate_url = (
            tokens if settings.glance_url is None else tokens.with_query("nocatalog")
        )
        self._issue_url = tokens.with_query("nocatalog")
        self.cache = (
            cache
            if cache is not None
            else TokenCache(
                ttl=settings.token_cache_ttl,
                max_size=settings.token_cache_size,
                on_lookup=metrics.token_cache,
            )
        )
        self._service = (
            _ServiceToken(self._issue_service_token) if settings.service_username else None
        )

    async def identify(self, token: str) -> TokenInfo:
        """The token's `TokenInfo`, or `Unauthorized`/`ServiceUnavailable`."""
        if not plausible_token(token):
            raise Unauthorized(self._challenge)
        info = await self.cache.resolve(token, lambda: self._validate(token))
        if info is None:
            raise Unauthorized(self._challenge)
        return info

    async def _validate(self, token: str) -> Verdict[TokenInfo]:
        auth = token if self._service is None else await self._service.get()
        answer = await self._call("GET", self._validate_url, auth, subject=token)
        if answer.status == 401 and self._service is not None:
            # Our service token was revoked or expired early: renew it once and ask again.
            self._service.discard(auth)
            auth = await self._service.get()
            answer = await self._call("GET", self._validate_url, auth, subject=token)
            if answer.status == 401:
                log.error("keystone_service_token_refused")
                raise self._unavailable()
        if answer.status in (401, 404):
            return Verdict(None)  # 404: unknown, expired or revoked; 401: so, as its own auth
        if answer.status != 200:
            log.warning(
                "keystone_validation_failed",
                status=answer.status,
                url=str(self._validate_url.with_query(None)),
            )
            raise self._unavailable()
        settings = self._settings
        try:
            return parse_token(
                orjson.loads(answer.body),
                settings.catalog_interface,
                settings.catalog_region,
                datetime.now(UTC),
            )
        except (orjson.JSONDecodeError, KeystoneAnswerError) as exc:
            log.warning("keystone_bad_answer", reason=str(exc))
            raise self._unavailable() from None

    async def _call(
        self,
        method: str,
        url: URL,
        auth: str | None,
        *,
        subject: str | None = None,
        body: bytes | None = None,
    ) -> _Answer:
        settings = self._settings
        headers = {"Accept": "application/json"}
        if auth is not None:
            headers["X-Auth-Token"] = auth
        if subject is not None:
            headers["X-Subject-Token"] = subject
        if body is not None:
            headers["Content-Type"] = "application/json"
        # One deadline per call (SHIM_KEYSTONE_TIMEOUT), so validation plus a service-token
        # renewal can take two; running out is a 503 like any unreachable Keystone.
        timeout = aiohttp.ClientTimeout(
            total=settings.keystone_timeout, connect=settings.connect_timeout
        )
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                data=body,
                timeout=timeout,
                allow_redirects=False,
                ssl=self._tls,
            ) as response:
                payload = await read_capped(response, MAX_KEYSTONE_BODY)
                if payload is None:
                    raise aiohttp.ClientPayloadError("Keystone answer too large")
                return _Answer(response.status, payload, response.headers.get("X-Subject-Token"))
        except _TRANSPORT_ERRORS as exc:
            if (reason := tls_failure(exc)) is not None:
                log_tls_failure("keystone", url, reason)
            else:
                log.warning(
                    "keystone_unavailable",
                    op="validate" if method == "GET" else "issue",
                    url=loggable_url(url),
                    failure=type(exc).__name__,
                )
            raise self._unavailable() from None

    def _unavailable(self) -> ServiceUnavailable:
        return ServiceUnavailable(IDENTITY_UNAVAILABLE, retry_after=self._settings.retry_after)

    async def _issue_service_token(self) -> tuple[str, float]:
        """Password auth with ``SHIM_SERVICE_*``: ``(token, seconds until it expires)``."""
        settings = self._settings
        domain = {"name": settings.service_domain}
        auth: dict[str, Any] = {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": settings.service_username,
                        "domain": domain,
                        "password": str(settings.service_password or ""),
                    }
                },
            }
        }
        if settings.service_project:
            auth["scope"] = {"project": {"name": settings.service_project, "domain": domain}}
        answer = await self._call("POST", self._issue_url, None, body=orjson.dumps({"auth": auth}))
        if answer.status != 201 or not answer.subject_token:
            log.error("keystone_service_auth_failed", status=answer.status)
            raise self._unavailable()
        try:
            verdict = parse_token(orjson.loads(answer.body), "public", None, datetime.now(UTC))
        except (orjson.JSONDecodeError, KeystoneAnswerError):
            log.error("keystone_service_auth_failed", status=answer.status, reason="bad body")
            raise self._unavailable() from None
        return answer.subject_token, max(0.0, verdict.lifetime)


class _ServiceToken:
    """The shim's own token (``SHIM_SERVICE_*``), fetched once and renewed before expiry."""

    def __init__(self, issue: Callable[[], Awaitable[tuple[str, float]]]) -> None:
        self._issue = issue
        self._lock = asyncio.Lock()
        self._value: str | None = None
        self._renew_at = 0.0

    def discard(self, value: str) -> None:
        if self._value == value:
            self._value = None

    async def get(self) -> str:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._value is not None and loop.time() < self._renew_at:
                return self._value
            value, lifetime = await self._issue()
            self._value = value
            self._renew_at = loop.time() + lifetime - min(SERVICE_TOKEN_MARGIN, lifetime / 2)
            return value
