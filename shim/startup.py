"""Start-up checks: is each configured upstream reachable, and the service it should be?

The commonest first-hour mistakes start a shim that looks healthy (``/readyz`` is 200)
while every call fails: a Glance URL that is really Keystone's, a Nova URL pointing at
Glance, a host that does not answer. Before serving, the shim fetches each configured
upstream's unauthenticated version document once and logs one ``upstream_check`` line per
upstream, naming the setting, the URL and what answered. A failed check is a warning by
default (upstreams may start after the shim); ``SHIM_REQUIRE_UPSTREAMS=true`` makes it
stop start-up instead.

`judge` is pure: it reads one answer and says whether it is the expected kind of service.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import aiohttp
import orjson
import structlog
from yarl import URL

from shim.app import upstream_trust
from shim.settings import Settings
from shim.tls import loggable_url
from shim.upstream import upstream_session

log = structlog.get_logger(__name__)

Kind = Literal["image", "identity", "compute"]
MAX_DOCUMENT: Final = 64 * 1024
CHECK_TIMEOUT: Final = 5.0
_SERVICE_NAMES: Final[dict[Kind, str]] = {
    "image": "the image service (Glance)",
    "identity": "the identity service (Keystone)",
    "compute": "the compute API (Nova)",
}


@dataclass(frozen=True, slots=True)
class Probe:
    setting: str
    kind: Kind
    url: URL


@dataclass(frozen=True, slots=True)
class Finding:
    probe: Probe
    ok: bool
    detail: str


def probes(settings: Settings) -> list[Probe]:
    """What to fetch: Glance's ``/versions``, Keystone's ``/v3``, Nova's ``/``."""
    found = []
    if settings.glance_url is not None:
        found.append(Probe("SHIM_GLANCE_URL", "image", _under(settings.glance_url, "versions")))
    if settings.keystone_url is not None:
        found.append(Probe("SHIM_KEYSTONE_URL", "identity", _under(settings.keystone_url, "v3")))
    if settings.nova_url is not None:
        found.append(Probe("SHIM_NOVA_URL", "compute", _under(settings.nova_url, "")))
    return found


def _under(base: URL, path: str) -> URL:
    return base.with_path(base.path.rstrip("/") + "/" + path).with_query(None)


def judge(kind: Kind, status: int, content_type: str, body: bytes) -> tuple[bool, str]:
    """Whether *body* (answered with *status*) is *kind*'s version document; a description."""
    expected = _SERVICE_NAMES[kind]
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False, f"answered {status} ({content_type or 'no type'}), not {expected}"
    seen = _identify(doc)
    if seen == kind:
        return True, f"{expected}, {_version_text(doc)}"
    if seen is not None:
        return False, f"answered {status} as {_SERVICE_NAMES[seen]}, not {expected}"
    return False, f"answered {status} with JSON that is not {expected}"


def _identify(doc: Any) -> Kind | None:
    if isinstance(doc, dict) and isinstance(doc.get("version"), dict):
        ident = str(doc["version"].get("id", ""))
        return "identity" if ident.startswith("v3") else None
    versions = doc.get("versions") if isinstance(doc, dict) else None
    if isinstance(versions, dict):  # Keystone's root: {"versions": {"values": [...]}}
        return "identity"
    if not isinstance(versions, list) or not versions:
        return None
    entries = [entry for entry in versions if isinstance(entry, dict)]
    # Nova's documents carry a microversion range; Glance's list only ids and links.
    if any("min_version" in entry for entry in entries):
        return "compute"
    if any(str(entry.get("id", "")).startswith("v2.") for entry in entries):
        return "image"
    return None


def _version_text(doc: Any) -> str:
    if isinstance(doc.get("version"), dict):
        return f"version {doc['version'].get('id')}"
    ids = [str(e.get("id")) for e in doc["versions"] if isinstance(e, dict)]
    current = [
        str(e.get("id"))
        for e in doc["versions"]
        if isinstance(e, dict) and e.get("status") == "CURRENT"
    ]
    return f"versions {', '.join(current or ids)}"


async def check_upstreams(settings: Settings) -> list[Finding]:
    """Fetch every probe once, concurrently, each bounded by `CHECK_TIMEOUT`; log each."""
    wanted = probes(settings)
    if not wanted:
        return []
    trust = upstream_trust(settings)  # the same trust the calls will use
    contexts = {"image": trust.glance, "identity": trust.keystone, "compute": trust.nova}
    session = upstream_session(settings, trust.glance)
    try:
        findings = await asyncio.gather(
            *(_check(session, probe, contexts[probe.kind]) for probe in wanted)
        )
    finally:
        await session.close()
    for finding in findings:
        _log(finding, settings)
    return list(findings)


async def _check(session: aiohttp.ClientSession, probe: Probe, tls: ssl.SSLContext) -> Finding:
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
    try:
        async with session.get(
            probe.url,
            headers={"Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,
            ssl=tls,
        ) as response:
            body = await response.content.read(MAX_DOCUMENT)
            status, content_type = response.status, response.content_type
    except TimeoutError:
        return Finding(probe, False, f"no answer within {CHECK_TIMEOUT:.0f} s")
    except aiohttp.ClientError as exc:
        return Finding(probe, False, f"unreachable: {_reason(exc)}")
    ok, detail = judge(probe.kind, status, content_type, body)
    return Finding(probe, ok, detail)


def _reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__} ({exc.os_error.strerror or exc.os_error})"
    return type(exc).__name__


def _log(finding: Finding, settings: Settings) -> None:
    fields = {
        "setting": finding.probe.setting,
        "url": loggable_url(finding.probe.url),
        "ok": finding.ok,
        "found": finding.detail,
    }
    if finding.ok:
        log.info("upstream_check", **fields)
    elif settings.require_upstreams:
        log.error("upstream_check", **fields)
    else:
        log.warning("upstream_check", **fields, hint="serving anyway: SHIM_REQUIRE_UPSTREAMS=false")


def failed(findings: Sequence[Finding]) -> list[Finding]:
    return [finding for finding in findings if not finding.ok]
