"""Logging: one pipeline, one access line per request, tracebacks without locals, no token.

The token tests run the shim as a worker runs it (`tests.fakes.shim_server`) in front of
recording fakes of Glance and Nova, with every log line captured through the production
pipeline (`tests.fakes.logs`), and drive it through successes, every kind of upstream
failure, malformed HTTP carrying the token, and an unexpected exception whose message
contains the token.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import aiohttp
import pytest
import structlog
from pytest_aiohttp import AiohttpServer
from structlog.testing import capture_logs
from yarl import URL

from shim.glance import GlanceClient
from shim.observability import (
    REDACTED,
    bind_request_secrets,
    configure_logging,
    redact,
    scrub,
)
from shim.settings import Settings
from tests.fakes import RecordingUpstream, Reply
from tests.fakes.images import IMAGE_ID, glance_image
from tests.fakes.logs import LogCapture, captured_logs
from tests.fakes.net import raw_exchange, refused_url
from tests.fakes.shim_server import local_settings, served_shim
from tests.inprocess.conftest import TOKEN

PROJECT = "0c1c1d2b3e4f40b6a4b1e1c2d3e4f5a6"
SDK_UA = "openstacksdk/4.5.0 keystoneauth1/5.11.0 python-requests/2.32.3 CPython/3.12.3"


# --- redaction, unit ------------------------------------------------------------------------


def test_redact_masks_credential_keys_at_any_depth() -> None:
    event = {
        "event": "x",
        "token": "abc",
        "X-Auth-Token": "abc",
        "headers": {"x-subject-token": "abc", "Accept": "application/json"},
        "calls": [{"password": "pw", "ok": 1}],
    }
    out = redact(None, "info", event)
    assert out["token"] == REDACTED
    assert out["X-Auth-Token"] == REDACTED
    assert out["headers"] == {"x-subject-token": REDACTED, "Accept": "application/json"}
    assert out["calls"] == [{"password": REDACTED, "ok": 1}]


@pytest.mark.parametrize(
    "text",
    [
        "X-Auth-Token: SECRETVALUE1",
        "headers={'X-Auth-Token': 'SECRETVALUE1', 'Accept': '*/*'}",
        "<CIMultiDict('X-Subject-Token': 'SECRETVALUE1')>",
        "x_auth_token=SECRETVALUE1&other=1",
        "Authorization: Bearer SECRETVALUE1",
        "fernet gAAAAABlSECRETVALUE1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx here",
        "jws eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJTRUNSRVRWQUxVRTEifQ.SECRETVALUE1sig here",
    ],
)
def test_scrub_masks_token_shapes_in_text(text: str) -> None:
    assert "SECRETVALUE1" not in scrub(text)
    assert REDACTED in scrub(text)


async def test_request_secrets_are_masked_verbatim_in_their_context() -> None:
    async def in_request() -> str:
        bind_request_secrets([TOKEN, "short"])
        return scrub(f"failed for {TOKEN} and short")

    assert await asyncio.create_task(in_request()) == f"failed for {REDACTED} and short"
    # another request (task context) is unaffected
    assert scrub(TOKEN) == TOKEN


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "GET /v2.1/images/5a1e0c6e-2a6f status=200 tokens_total=3"
    assert scrub(text) == text


# --- the pipeline ---------------------------------------------------------------------------


def _boom(secret: str) -> None:
    reversed_secret = secret[::-1]  # a frame local whose value must never be printed
    raise RuntimeError("upstream said no" + ("" if reversed_secret else "!"))


def test_json_pipeline_renders_structlog_and_stdlib_alike_without_locals() -> None:
    with captured_logs() as logs:
        structlog.get_logger("shim.test").info("hello", answer=42)
        logging.getLogger("aiohttp.server").warning("from %s", "aiohttp")
        try:
            _boom(TOKEN)
        except RuntimeError:
            structlog.get_logger("shim.test").exception("failed")
            logging.getLogger("aiohttp.server").exception("stdlib failed")
    events = logs.events()
    assert [e["event"] for e in events] == ["hello", "from aiohttp", "failed", "stdlib failed"]
    for event in events:
        assert {"timestamp", "level", "logger", "pid"} <= event.keys()
    assert events[0]["answer"] == 42
    assert events[1]["logger"] == "aiohttp.server"
    for event in events[2:]:
        (exception,) = event["exception"]
        assert exception["exc_type"] == "RuntimeError"
        assert exception["frames"][-1]["name"] == "_boom"
        assert all("locals" not in frame for frame in exception["frames"])
    logs.assert_free_of(TOKEN, TOKEN[::-1])


def test_exceptions_logged_outside_except_blocks_keep_their_traceback() -> None:
    error: RuntimeError | None = None
    try:
        _boom(TOKEN)
    except RuntimeError as exc:
        error = exc
    assert error is not None
    with captured_logs() as logs:
        # as asyncio does for "Task exception was never retrieved", and aiohttp for errors
        logging.getLogger("asyncio").error("never retrieved", exc_info=error)
        structlog.get_logger("shim.test").error("later", exc_info=error)
    for event in logs.events():
        (exception,) = event["exception"]
        assert exception["exc_type"] == "RuntimeError"
        assert exception["frames"][-1]["name"] == "_boom"
    logs.assert_free_of(TOKEN[::-1])


def test_console_pipeline_has_plain_tracebacks_without_locals() -> None:
    settings = Settings(glance_url=URL("http://glance.invalid"), log_format="console")
    with captured_logs(settings) as logs:
        try:
            _boom(TOKEN)
        except RuntimeError:
            structlog.get_logger("shim.test").exception("failed", token=TOKEN)
            logging.getLogger("aiohttp.server").exception("stdlib failed")
    assert "Traceback (most recent call last)" in logs.text
    assert "RuntimeError: upstream said no" in logs.text
    assert TOKEN[::-1] not in logs.text
    assert not logs.text.startswith("{")
    logs.assert_free_of(TOKEN)


def test_level_filters_structlog_and_stdlib() -> None:
    settings = Settings(glance_url=URL("http://glance.invalid"), log_level="warning")
    with captured_logs(settings) as logs:
        structlog.get_logger("shim.test").info("quiet")
        logging.getLogger("aiohttp.server").info("quiet too")
        structlog.get_logger("shim.test").warning("loud")
    assert [e["event"] for e in logs.events()] == ["loud"]


def test_configure_logging_returns_the_root_handler() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        handler = configure_logging(
            Settings(glance_url=URL("http://glance.invalid")), stream=io.StringIO(), cache=False
        )
        assert root.handlers == [handler]
    finally:
        root.handlers[:], root.level = saved
        structlog.reset_defaults()


# --- a full run -----------------------------------------------------------------------------


@pytest.fixture
async def nova(aiohttp_server: AiohttpServer) -> tuple[RecordingUpstream, URL]:
    fake = RecordingUpstream(default=Reply.json({"servers": []}))
    return fake, await fake.start(aiohttp_server)


def _access_lines(logs: LogCapture) -> list[dict[str, Any]]:
    return [e for e in logs.events() if e.get("logger") == "shim.access"]


async def test_full_run_logs_no_token_and_one_access_line_per_request(
    glance: tuple[RecordingUpstream, URL],
    nova: tuple[RecordingUpstream, URL],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_glance, glance_url = glance
    _, nova_url = nova
    original_show = GlanceClient.show

    async def buggy_show(self: GlanceClient, caller: Any, image_id: str, op: Any = "show") -> Any:
        if image_id == "bug":
            raise RuntimeError(f"bug while using token {caller.token}")
        return await original_show(self, caller, image_id, op)

    monkeypatch.setattr(GlanceClient, "show", buggy_show)
    settings = local_settings(glance_url=glance_url, nova_url=nova_url, log_level="debug")
    auth = {"X-Auth-Token": TOKEN, "User-Agent": SDK_UA}
    calls: list[tuple[str, str, int]] = [
        ("GET", "/v2.1/images", 200),
        ("GET", f"/v2.1/{PROJECT}/images/detail", 200),
        ("GET", f"/v2/images/{IMAGE_ID}", 200),
        ("GET", "/v2.1/images/missing", 404),
        ("GET", "/v2.1/images/unauthorized", 401),
        ("GET", "/v2.1/images/broken", 503),
        ("GET", "/v2.1/images/garbage", 502),
        ("GET", "/v2.1/images/bug", 500),
        ("DELETE", f"/v2.1/images/{IMAGE_ID}", 204),
        ("HEAD", "/v2.1/images", 404),
        ("GET", f"/v2.1/servers?all_tenants=1&token={TOKEN}", 200),
    ]
    with captured_logs() as logs:
        async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
            for method, path, status in calls:
                async with client.request(
                    method, shim.url.join(URL(path)), headers=auth
                ) as response:
                    await response.read()
                    assert response.status == status, (method, path)
            async with client.get(shim.url / "v2.1/images") as response:  # no token
                assert response.status == 401
            too_long_line = await raw_exchange(
                shim.url,
                f"GET /v2.1/images?token={TOKEN}{'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            )
            too_long_header = await raw_exchange(
                shim.url,
                f"GET /v2.1/images HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}{'a' * 9000}"
                "\r\n\r\n".encode(),
            )
    # aiohttp answers a head it could not parse as HTTP/1.0, then closes.
    assert too_long_line.split(b"\r\n")[0] == b"HTTP/1.0 414 Request-URI Too Long"
    assert too_long_header.split(b"\r\n")[0] == b"HTTP/1.0 431 Request Header Fields Too Large"
    # Glance saw the token (it is forwarded), the logs never did.
    assert any(r.header("X-Auth-Token") == TOKEN for r in fake_glance.requests)
    logs.assert_free_of(TOKEN)
    (bug,) = [e for e in logs.events() if e["event"] == "unexpected_error"]
    assert f"bug while using token {REDACTED}" in json.dumps(bug["exception"])
    access = _access_lines(logs)
    assert len(access) == len(calls) + 3
    statuses = [line["status"] for line in access]
    assert statuses == [status for _, _, status in calls] + [401, 414, 431]
    assert {line["route"] for line in access[-2:]} == {"malformed"}


async def test_access_line_fields(
    glance: tuple[RecordingUpstream, URL], aiohttp_server: AiohttpServer
) -> None:
    _, glance_url = glance
    settings = local_settings(glance_url=glance_url, auth="trusted-headers")
    headers = {
        "X-Auth-Token": TOKEN,
        "User-Agent": "gophercloud/v2.4.0",
        "X-Project-Id": PROJECT,
        "X-User-Id": "u-123",
        "X-Identity-Status": "Confirmed",
        "OpenStack-API-Version": "compute 2.20",
    }
    with captured_logs() as logs:
        async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
            url = (shim.url / f"v2.1/{PROJECT}/images/detail").with_query(limit="5")
            async with client.get(url, headers=headers) as response:
                body = await response.read()
                assert response.status == 200
                request_id = response.headers["x-openstack-request-id"]
    (line,) = _access_lines(logs)
    assert line["event"] == "request"
    assert line["request_id"] == request_id
    assert line["method"] == "GET"
    assert line["route"] == "/v2.1/{project_id}/images/detail"
    assert line["path"] == f"/v2.1/{PROJECT}/images/detail"
    assert "limit" not in json.dumps(line)  # the query is never logged, only its length
    assert line["query_length"] == len("limit=5")
    assert line["status"] == 200
    assert line["bytes_sent"] > len(body)
    assert line["duration_ms"] > 0
    assert line["microversion"] == "2.20"
    assert line["client"] == "gophercloud"
    assert line["user_agent"] == "gophercloud/v2.4.0"
    assert line["project_id"] == PROJECT
    assert line["user_id"] == "u-123"
    assert line["upstream_status"] == 200
    assert line["upstream_calls"] == 2  # the schema (404: built-in fallback), the page
    assert [(c["service"], c["op"], c["status"]) for c in line["upstream"]] == [
        ("glance", "schema", 404),
        ("glance", "list", 200),
    ]
    assert line["upstream_ms"] >= sum(c["ms"] for c in line["upstream"]) - 0.01
    assert line["level"] == "info"


async def test_client_gone_mid_request_is_logged_once(
    glance: tuple[RecordingUpstream, URL],
) -> None:
    _, glance_url = glance
    settings = local_settings(glance_url=glance_url)
    with captured_logs() as logs:
        async with served_shim(settings) as shim:
            async with aiohttp.ClientSession() as client:
                with pytest.raises(TimeoutError):
                    async with client.get(
                        shim.url / "v2.1/images/slow",
                        headers={"X-Auth-Token": TOKEN},
                        timeout=aiohttp.ClientTimeout(total=0.2),
                    ):
                        pass
            await asyncio.sleep(2.2)  # the handler finishes; its answer cannot be sent
    (line,) = _access_lines(logs)
    assert line["route"] == "/v2.1/images/{image_id}"
    logs.assert_free_of(TOKEN)


async def test_shim_code_never_puts_a_token_in_an_event(
    glance: tuple[RecordingUpstream, URL], nova: tuple[RecordingUpstream, URL]
) -> None:
    """Independent of redaction: structlog's capture_logs sees events before any processor."""
    _, glance_url = glance
    _, nova_url = nova
    settings = local_settings(glance_url=glance_url, nova_url=nova_url)
    with capture_logs() as events:
        async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
            for path in (
                "v2.1/images",
                f"v2.1/{PROJECT}/images/detail",
                "v2.1/images/missing",
                "v2.1/images/unauthorized",
                "v2.1/images/broken",
                "v2.1/images/garbage",
                "v2.1/servers/detail",
            ):
                async with client.get(shim.url / path, headers={"X-Auth-Token": TOKEN}) as r:
                    await r.read()
    assert events, "nothing was logged"
    for event in events:
        assert TOKEN not in repr(event), event


async def test_client_gone_mid_stream_is_one_aborted_line(aiohttp_server: AiohttpServer) -> None:
    fake = RecordingUpstream()
    fake.on(
        "/v2/images",
        Reply.json({"images": [glance_image()], "next": f"/v2/images?marker={IMAGE_ID}"}),
        Reply.json({"images": [glance_image("b" * 8, "two")]}, delay=0.5),
    )
    server = await aiohttp_server(fake.app)
    settings = local_settings(glance_url=server.make_url("/"))
    with captured_logs() as logs:
        async with served_shim(settings) as shim:
            reader, writer = await asyncio.open_connection(shim.url.host, shim.url.port)
            writer.write(
                f"GET /v2.1/images HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {TOKEN}\r\n\r\n".encode()
            )
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            writer.close()  # gone while the second Glance page is on its way
            await writer.wait_closed()
            await fake.wait_for(2)
            await asyncio.sleep(0.8)
    (line,) = _access_lines(logs)
    assert line["status"] == 200
    assert line["aborted"] in ("ClientConnectionResetError", "ConnectionResetError")
    assert line["upstream_calls"] == 2
    assert line["bytes_sent"] > 0  # the head and the first page went out
    assert not [e for e in logs.events() if e["level"] == "error"]
    logs.assert_free_of(TOKEN)


NOVA_REQUEST_ID = "req-0b7f3c8e-4f6d-4a2e-9c1b-5d8e7f6a9b0c"


@pytest.mark.parametrize("client_id", [None, "req-11111111-2222-4333-8444-555555555555"])
async def test_passthrough_request_ids_join_the_shims_log_and_novas(
    glance: tuple[RecordingUpstream, URL],
    nova: tuple[RecordingUpstream, URL],
    client_id: str | None,
) -> None:
    """Nova gets the shim's id (its global request id); the client sees Nova's, and the
    access line holds both, so either log leads to the other."""
    fake_nova, nova_url = nova
    fake_nova.on(
        "/v2.1/servers",
        Reply.json({"servers": []}, headers=[("X-Openstack-Request-Id", NOVA_REQUEST_ID)]),
    )
    settings = local_settings(glance_url=glance[1], nova_url=nova_url)
    headers = {"X-Auth-Token": TOKEN}
    if client_id is not None:
        headers["X-Openstack-Request-Id"] = client_id
    with captured_logs() as logs:
        async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
            response = await client.get(shim.url / "v2.1/servers", headers=headers)
            assert response.status == 200
            seen_by_client = response.headers.getall("x-openstack-request-id")
            response.release()
    sent = fake_nova.last.header_all("X-Openstack-Request-Id")
    assert len(sent) == 1
    if client_id is not None:
        assert sent == [client_id]  # a client's well-formed id is kept end to end
    (line,) = _access_lines(logs)
    assert line["route"] == "passthrough"
    assert line["request_id"] == sent[0]
    assert seen_by_client == [NOVA_REQUEST_ID]
    assert line["upstream_request_id"] == NOVA_REQUEST_ID
    assert line["upstream"][0]["request_id"] == NOVA_REQUEST_ID


async def test_upstream_failure_lines_say_where_and_name_the_call_as_the_access_line() -> None:
    glance_url = refused_url() / "image"
    keystone_url = refused_url()
    settings = local_settings(glance_url=glance_url, glance_retries=2, glance_timeout=5.0)
    with captured_logs() as logs:
        async with served_shim(settings) as shim, aiohttp.ClientSession() as client:
            url = (shim.url / "v2.1/images/detail").with_query(name="secret-name")
            response = await client.get(url, headers={"X-Auth-Token": TOKEN})
            assert response.status == 503
            response.release()
    events = logs.events()
    retries = [e for e in events if e["event"] == "glance_retry"]
    [failed] = [e for e in events if e["event"] == "glance_unavailable"]
    (access,) = _access_lines(logs)
    # The schema comes first: the access line and the failure lines agree on its name.
    assert [c["op"] for c in access["upstream"]] == ["schema"] * 3
    assert {e["op"] for e in [*retries, failed]} == {"schema"}
    assert failed["url"] == f"{glance_url}/v2/schemas/image"
    assert failed["failure"] == "ClientConnectorError"
    assert "secret-name" not in logs.text  # query values are the caller's: never logged

    keystone_settings = local_settings(
        glance_url=glance_url, auth="keystone", keystone_url=keystone_url
    )
    with captured_logs() as logs:
        async with served_shim(keystone_settings) as shim, aiohttp.ClientSession() as client:
            response = await client.get(shim.url / "v2.1/images", headers={"X-Auth-Token": TOKEN})
            assert response.status == 503
            response.release()
    [failed] = [e for e in logs.events() if e["event"] == "keystone_unavailable"]
    assert (failed["op"], failed["url"]) == ("validate", f"{keystone_url}/v3/auth/tokens")
