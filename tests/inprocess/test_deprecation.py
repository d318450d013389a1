"""Deprecation signals: RFC 9745 ``Deprecation``, RFC 8594 ``Sunset``, ``Link rel=deprecation``."""

from __future__ import annotations

import aiohttp
import pytest
from pytest_aiohttp import AiohttpServer

from shim.deprecation import deprecation_headers, parse_instant
from shim.settings import Settings, SettingsError
from tests.fakes import RecordingUpstream, Reply
from tests.fakes.images import IMAGE_ID, glance_image
from tests.fakes.shim_server import local_settings, served_shim

EPOCH_2026_06_30 = 1782777600  # 2026-06-30T00:00:00Z
SUNSET_HTTP_DATE = "Thu, 31 Dec 2026 00:00:00 GMT"
LINK = "https://docs.example.com/compute-images-retired"


@pytest.mark.parametrize(
    "raw",
    [
        "@1782777600",
        "2026-06-30",
        "2026-06-30T00:00:00Z",
        "2026-06-30T02:00:00+02:00",
        "2026-06-30T00:00:00",  # no zone: UTC
        "Tue, 30 Jun 2026 00:00:00 GMT",  # IMF-fixdate
        "Tuesday, 30-Jun-26 00:00:00 GMT",  # RFC 850
        "Tue Jun 30 00:00:00 2026",  # asctime
    ],
)
def test_every_accepted_form_renders_the_same_structured_date(raw: str) -> None:
    assert deprecation_headers(raw, None, None) == (("Deprecation", f"@{EPOCH_2026_06_30}"),)


def test_sunset_is_an_imf_fixdate() -> None:
    assert deprecation_headers(None, "2026-12-31", None) == (("Sunset", SUNSET_HTTP_DATE),)
    assert deprecation_headers(None, "@1798675200", None) == (("Sunset", SUNSET_HTTP_DATE),)
    assert deprecation_headers(None, "2026-12-31T01:00:00.75+01:00", None) == (
        ("Sunset", SUNSET_HTTP_DATE),
    )


def test_link_header() -> None:
    assert deprecation_headers(None, None, LINK) == (
        ("Link", f'<{LINK}>; rel="deprecation"; type="text/html"'),
    )


def test_nothing_configured_means_no_headers() -> None:
    assert deprecation_headers(None, None, None) == ()


@pytest.mark.parametrize(
    ("deprecation", "sunset", "link", "message"),
    [
        ("soon", None, None, "SHIM_DEPRECATION: expected"),
        ("@12x", None, None, "SHIM_DEPRECATION: expected"),
        ("2026-02-30", None, None, "SHIM_DEPRECATION: expected"),
        (None, "next year", None, "SHIM_SUNSET: expected"),
        ("2027-01-01", "2026-12-31", None, "SHIM_SUNSET must not be earlier"),
        (None, None, "docs/retired", "SHIM_DEPRECATION_LINK: expected an absolute"),
        (None, None, "ftp://example.com/x", "SHIM_DEPRECATION_LINK: expected an absolute"),
        (None, None, 'https://e.com/a>; rel="x', "SHIM_DEPRECATION_LINK: expected an absolute"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_setting(
    deprecation: str | None, sunset: str | None, link: str | None, message: str
) -> None:
    environ = {"SHIM_GLANCE_URL": "http://glance:9292"}
    for name, value in (
        ("SHIM_DEPRECATION", deprecation),
        ("SHIM_SUNSET", sunset),
        ("SHIM_DEPRECATION_LINK", link),
    ):
        if value is not None:
            environ[name] = value
    with pytest.raises(SettingsError, match=message):
        Settings.from_sources(environ)


def test_parse_instant_returns_utc() -> None:
    assert parse_instant("X", "2026-06-30T02:00:00+02:00").isoformat() == (
        "2026-06-30T00:00:00+00:00"
    )


async def test_headers_on_legacy_image_answers_only(aiohttp_server: AiohttpServer) -> None:
    glance = RecordingUpstream()
    glance.on(f"/v2/images/{IMAGE_ID}", Reply.json(glance_image()))
    glance.on("/v2/images/missing", Reply.json({"message": "gone"}, status=404))
    nova = RecordingUpstream(default=Reply.json({"servers": []}))
    glance_server = await aiohttp_server(glance.app)
    nova_server = await aiohttp_server(nova.app)
    settings = local_settings(
        glance_url=glance_server.make_url("/"),
        nova_url=nova_server.make_url("/"),
        deprecation="2026-06-30",
        sunset=SUNSET_HTTP_DATE,
        deprecation_link=LINK,
    )
    token = {"X-Auth-Token": "tok-deprecation-test"}
    async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
        for path, headers, status in [
            (f"v2.1/images/{IMAGE_ID}", token, 200),
            ("v2.1/images/missing", token, 404),
            ("v2/images", {}, 401),
        ]:
            async with client.get(shim.url / path, headers=headers) as response:
                assert response.status == status
                assert response.headers["Deprecation"] == f"@{EPOCH_2026_06_30}"
                assert response.headers["Sunset"] == SUNSET_HTTP_DATE
                assert response.headers["Link"] == f'<{LINK}>; rel="deprecation"; type="text/html"'
        async with client.get(shim.url / "v2.1/servers", headers=token) as response:
            assert response.status == 200
            assert "Deprecation" not in response.headers
            assert "Sunset" not in response.headers
            assert "Link" not in response.headers
