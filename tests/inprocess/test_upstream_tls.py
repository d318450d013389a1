"""Upstream certificates that do not verify, against real TLS servers (a recording app
served over HTTPS with certificates from the test CA): an unknown CA, the wrong host name,
an expired certificate; at Glance, at Keystone and at Nova.

Each case checks what the client sees (503 ``serviceUnavailable`` + ``Retry-After`` for a
Glance or Keystone call, 502 for the passthrough, never a 500), that it comes at once
rather than after the upstream deadline (a TLS failure is not retried: no retry can fix
a certificate), the one log line naming the upstream and OpenSSL's reason, and that no
pooled connection is left checked out. A refused client certificate is checked against
the real Glance (tests/integration/test_tls_upstreams.py), whose server sends the alert.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from shim.glance import UNAVAILABLE
from shim.keys import NOVA_SESSION, SESSION
from shim.keystone import IDENTITY_UNAVAILABLE
from shim.passthrough import MSG_TLS
from tests.fakes import RecordingUpstream
from tests.fakes.logs import captured_logs
from tests.fakes.net import acquired_connections
from tests.fakes.serving import running
from tests.fakes.shim_server import local_settings, served_shim
from tests.stack.tls import Pair, Pki

DEADLINE: Final = 5.0
TOKEN: Final = "gAAAAAtlsTestTokenNeverLogged0123456789"


def unknown_ca(pki: Pki, tmp: Path) -> Pair:
    return Pki(tmp / "stranger").server


def wrong_host(pki: Pki, tmp: Path) -> Pair:
    return pki.issue("wrong-host", "images.example")


def expired(pki: Pki, tmp: Path) -> Pair:
    return pki.expired()


CASES: Final[dict[str, tuple[Callable[[Pki, Path], Pair], str]]] = {
    # OpenSSL's words: the shim logs them as they are.
    "unknown CA": (unknown_ca, "certificate verify failed: unable to get local issuer certificate"),
    "wrong host name": (
        wrong_host,
        "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'.",
    ),
    "expired": (expired, "certificate verify failed: certificate has expired"),
}


@asynccontextmanager
async def tls_upstream(pki: Pki, pair: Pair) -> AsyncIterator[tuple[RecordingUpstream, URL]]:
    fake = RecordingUpstream()
    async with running(fake.app, tls=pki.server_context(pair)) as url:
        yield fake, url


async def call(url: URL) -> tuple[int, dict[str, str], Any, float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with (
        aiohttp.ClientSession() as client,
        client.get(url, headers={"X-Auth-Token": TOKEN}) as answer,
    ):
        body = await answer.read()
        return answer.status, dict(answer.headers), json.loads(body), loop.time() - started


def in_use(session: aiohttp.ClientSession) -> int:
    assert session.connector is not None
    return acquired_connections(session.connector)


def tls_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if event.get("event") == "upstream_tls_failed"]


@dataclass(frozen=True, slots=True)
class Upstream:
    """An upstream the shim reaches over TLS, and what a client sees when its certificate
    does not verify."""

    name: str
    settings: Callable[[URL], dict[str, Any]]
    """The settings that put this upstream at a URL."""
    called: str
    """What the shim asks of the upstream (its log line names it)."""
    status: int
    fault: dict[str, Any]
    asked: str = "v2.1/images"
    """What the client asks of the shim."""
    session: web.AppKey[aiohttp.ClientSession] = SESSION
    """The shim's client session for this upstream."""
    retry_after: str | None = "5"


UPSTREAMS: Final = [
    Upstream(
        name="glance",
        settings=lambda url: {"glance_url": url, "glance_retries": 3},
        called="v2/images",
        status=503,
        fault={"serviceUnavailable": {"code": 503, "message": UNAVAILABLE}},
    ),
    Upstream(
        name="keystone",
        settings=lambda url: {
            "auth": "keystone",
            "keystone_url": url,
            "glance_url": URL("https://glance.invalid"),
        },
        called="v3/auth/tokens",
        status=503,
        fault={"serviceUnavailable": {"code": 503, "message": IDENTITY_UNAVAILABLE}},
    ),
    Upstream(
        name="nova",
        settings=lambda url: {"nova_url": url, "glance_url": URL("https://glance.invalid")},
        called="v2.1/servers",
        status=502,
        fault={"computeFault": {"code": 502, "message": MSG_TLS}},
        asked="v2.1/servers",
        session=NOVA_SESSION,
        retry_after=None,
    ),
]


@pytest.mark.parametrize("upstream", UPSTREAMS, ids=lambda upstream: upstream.name)
@pytest.mark.parametrize("case", list(CASES))
async def test_certificate_that_does_not_verify(
    pki: Pki, tmp_path: Path, case: str, upstream: Upstream
) -> None:
    issue, reason = CASES[case]
    async with tls_upstream(pki, issue(pki, tmp_path)) as (fake, url):
        settings = local_settings(
            ca_file=str(pki.ca_file), glance_timeout=DEADLINE, **upstream.settings(url)
        )
        async with served_shim(settings) as shim:
            with captured_logs() as logs:
                status, headers, body, seconds = await call(shim.url / upstream.asked)
            assert in_use(shim.running.api.app[upstream.session]) == 0
    assert (status, body) == (upstream.status, upstream.fault)
    assert headers.get("Retry-After") == upstream.retry_after
    assert seconds < DEADLINE  # not retried until the deadline
    assert fake.requests == []  # no request ever crossed an unverified connection
    [line] = tls_lines(logs.events())
    assert (line["upstream"], line["url"], line["reason"]) == (
        upstream.name,
        str(url / upstream.called),
        reason,
    )


async def test_each_upstream_trusts_its_own_ca_file(pki: Pki, tmp_path: Path) -> None:
    """``SHIM_NOVA_CA_FILE`` wins over ``SHIM_CA_FILE`` for Nova, and only for Nova."""
    other = Pki(tmp_path / "other")

    async def servers(_: web.Request) -> web.Response:
        return web.json_response({"servers": []})

    nova_app = web.Application()
    nova_app.router.add_get("/v2.1/servers", servers)
    async with running(nova_app, tls=other.server_context()) as nova:
        settings = local_settings(
            glance_url=URL("https://glance.invalid"),
            nova_url=nova,
            ca_file=str(pki.ca_file),
            nova_ca_file=str(other.ca_file),
        )
        async with served_shim(settings) as shim:
            status, _, body, _ = await call(shim.url / "v2.1" / "servers")
        assert (status, body) == (200, {"servers": []})
        async with served_shim(settings.replace(nova_ca_file=None)) as shim:
            status, _, _, _ = await call(shim.url / "v2.1" / "servers")
        assert status == 502
