"""Token hygiene (docs/contract.md §5): a token never shows up in a log line, a metric label,
a fault message, a response header, or a query string or path sent upstream.

Every token here starts with `CANARY`, so one substring search covers all of them. The
fault and fuzz modules scan their captures the same way; this one drives the paths where
a token is most likely to slip out (rejections, upstream 401/5xx, garbage answers,
Keystone failures, tokens in odd places) twice: in-process with both the raw structlog
events and the production JSON rendering captured, and as ``python -m shim`` with its
real output and its ``/metrics``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer
from yarl import URL

from shim import metrics
from shim.app import create_app
from shim.observability import configure_logging
from shim.settings import Settings
from tests.fakes import RecordingUpstream, Reply, refused_url
from tests.fakes.entry import spawn_shim, until_ready
from tests.fakes.images import SCHEMA, page
from tests.reliability.support import CANARY, IMAGE, ShimOverFakes, capture, token
from tests.stack.procs import free_port

IMAGE_PATH: Final = f"/v2/images/{IMAGE['id']}"
GARBAGE_ANSWERS: Final = [
    Reply(status=401, headers=(("WWW-Authenticate", 'Keystone uri="http://ks"'),)),
    Reply(status=500, body=b"<html>boom</html>"),
    Reply(headers=(("Content-Type", "application/json"),), body=b"{not json"),
    Reply(abort_before_response=True),
]


@pytest.fixture
def rendered_logs() -> Iterator[io.StringIO]:
    """The production pipeline (JSON, redaction) writing to a buffer; restored afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    saved = structlog.get_config()
    configure_logging(Settings(glance_url=URL("http://x"), log_level="debug"),
                      stream=buffer, cache=False)  # fmt: skip
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**saved)


async def drive(client: TestClient[Any, Any], glance: RecordingUpstream, n: int) -> list[str]:
    """Requests that end in every kind of answer; returns what the client saw."""
    seen: list[str] = []

    async def call(method: str, path: str, tok: str | None, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", {}))
        if tok is not None:
            headers["X-Auth-Token"] = tok
        async with client.request(method, path, headers=headers, **kwargs) as response:
            try:
                body = await response.read()
            except aiohttp.ClientPayloadError:
                body = b"<aborted>"  # a stream whose upstream failed midway
            seen.append(f"{response.status} {dict(response.headers)} {body!r}")

    await call("GET", "/v2.1/images", None)
    for i, reply in enumerate(GARBAGE_ANSWERS):
        glance.on("/v2/images", reply)
        glance.on(IMAGE_PATH, reply)
        await call("GET", "/v2.1/images/detail?limit=2", token(f"{n}-list-{i}"))
        await call("GET", f"/v2.1/images/{IMAGE['id']}", token(f"{n}-show-{i}"))
    glance.on("/v2/images", page(0, 2), page(2, 2), Reply(abort_before_response=True))
    await call("GET", "/v2.1/images/detail", token(f"{n}-stream"))
    glance.on(IMAGE_PATH, Reply.json(IMAGE), method="GET")
    glance.on(IMAGE_PATH, Reply(status=500), method="PATCH")
    await call("POST", f"/v2.1/images/{IMAGE['id']}/metadata", token(f"{n}-patch"),
               json={"metadata": {"k": "v"}})  # fmt: skip
    # Tokens where no token belongs: a query parameter, a metadata value, a bad header.
    await call("GET", f"/v2.1/images?X-Auth-Token={token(n)}&limit=1", token(n))
    await call("GET", "/v2.1/images", f"{token(n)}\u00e9")
    await call("GET", "/v2.1/images", token(n), headers={"X-Subject-Token": token(f"{n}-sub")})
    await call("GET", "/v2.1/images", token(n), headers={"Authorization": f"Bearer {token(n)}"})
    await call("GET", "/v2.1/servers/detail", token(f"{n}-nova"))
    await call("GET", "/v2.1/os-keypairs", token(f"{n}-nova-down"))
    return seen


def assert_clean(texts: list[str], where: str) -> None:
    leaks = [text for text in texts if CANARY in text]
    assert not leaks, f"token canary in {where}: {leaks[:3]}"


async def test_tokens_stay_out_of_logs_answers_upstream_urls_and_metrics(
    shim_over_fakes: ShimOverFakes, rendered_logs: io.StringIO
) -> None:
    client, glance, nova = await shim_over_fakes(glance_retries=1, glance_timeout=2.0)
    nova.on("/v2.1/servers/detail", Reply(status=401))
    nova.on("/v2.1/os-keypairs", Reply(abort_before_response=True))
    with capture() as logs:
        answers = await drive(client, glance, 1)
    assert_clean(answers, "answers to the client")
    # aiohttp.access here is the test server's request-line log, not the shim's (which logs
    # a query's length only); the real access logger is checked in the process test below.
    logs.assert_no_canary(skip_loggers=("aiohttp.access",))
    assert_clean(rendered_logs.getvalue().splitlines(), "rendered JSON logs")
    assert "request" in rendered_logs.getvalue()  # the pipeline did write access lines
    for recorded in glance.requests:
        assert_clean([recorded.raw_path, recorded.query_string], "a Glance URL")
    for recorded in nova.requests:
        assert CANARY not in recorded.raw_path
    body, _ = metrics.render(None)
    assert_clean(body.decode().splitlines(), "/metrics")


async def test_glance_error_text_that_echoes_the_token_is_masked(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient
) -> None:
    """Glance's explanation reaches the client (docs/contract.md §5), but never the caller's token,
    even if a Glance (or a proxy in front of it) repeats the token in its error text."""
    statuses = {"GET": 400, "DELETE": 409, "PATCH": 413}

    async def echo(request: web.Request) -> web.Response:
        if request.path == "/v2/schemas/image":
            return web.json_response(SCHEMA)
        if request.method == "GET" and request.path == IMAGE_PATH:
            return web.json_response(IMAGE)
        sent = request.headers.get("X-Auth-Token", "")
        message = f"Token {sent} is not valid here (token={sent})"
        return web.json_response({"message": message}, status=statuses[request.method])

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = await aiohttp_server(app)
    client = await aiohttp_client(
        create_app(Settings(glance_url=server.make_url("/"), metrics_listen=None))
    )
    image = f"/v2.1/images/{IMAGE['id']}"
    for method, path, body in (
        ("GET", "/v2.1/images?limit=1", None),
        ("DELETE", image, None),
        ("POST", f"{image}/metadata", {"metadata": {"k": "v"}}),
    ):
        async with client.request(
            method, path, json=body, headers={"X-Auth-Token": token(f"echo-{method}")}
        ) as response:
            text = await response.text()
            assert response.status in (400, 409, 413), text
            assert "is not valid here" in text  # Glance's words still reach the client
            assert CANARY not in text, text


async def test_keystone_mode_failures_never_echo_the_token(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, rendered_logs: io.StringIO
) -> None:
    glance, keystone = RecordingUpstream(), RecordingUpstream()
    glance_url = await glance.start(aiohttp_server)
    keystone_url = await keystone.start(aiohttp_server)
    glance.on("/v2/schemas/image", Reply.json(SCHEMA))
    glance.on(IMAGE_PATH, Reply.json(IMAGE))
    answers = [
        Reply(status=404),
        Reply(status=503),
        Reply.json({"error": {"message": f"bad {CANARY}-echoed-by-keystone"}}, status=500),
        Reply(headers=(("Content-Type", "application/json"),), body=b"{nope"),
        Reply(abort_before_response=True),
    ]
    seen: list[str] = []
    with capture() as logs:
        for i, reply in enumerate(answers):
            keystone.on("/v3/auth/tokens", reply)
            client = await aiohttp_client(create_app(Settings(
                glance_url=glance_url, keystone_url=keystone_url, auth="keystone",
                metrics_listen=None, glance_timeout=2.0)))  # fmt: skip
            async with client.get(
                f"/v2.1/images/{IMAGE['id']}", headers={"X-Auth-Token": token(f"ks-{i}")}
            ) as response:
                seen.append(f"{response.status} {dict(response.headers)} {await response.read()!r}")
                assert response.status in (401, 503)
            await client.close()
        # The shim refuses a refused Keystone too.
        client = await aiohttp_client(create_app(Settings(
            glance_url=glance_url, keystone_url=refused_url(), auth="keystone",
            metrics_listen=None, glance_timeout=2.0)))  # fmt: skip
        async with client.get("/v2.1/images", headers={"X-Auth-Token": token("ks-x")}) as r:
            seen.append(f"{r.status} {dict(r.headers)} {await r.read()!r}")
            assert r.status == 503
    assert_clean(seen, "answers to the client")
    logs.assert_no_canary()
    assert_clean(rendered_logs.getvalue().splitlines(), "rendered JSON logs")
    for recorded in keystone.requests:
        assert_clean([recorded.raw_path, recorded.query_string], "a Keystone URL")
    body, _ = metrics.render(None)
    assert_clean(body.decode().splitlines(), "/metrics")


async def test_a_real_shim_process_keeps_tokens_out_of_its_output_and_metrics(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    glance = RecordingUpstream()
    glance_url = await glance.start(aiohttp_server)
    glance.on("/v2/schemas/image", Reply.json(SCHEMA))
    api, metrics_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    settings = {
        "SHIM_GLANCE_URL": str(glance_url),
        "SHIM_NOVA_URL": str(refused_url()),
        "SHIM_LISTEN": f"127.0.0.1:{api}",
        "SHIM_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "SHIM_WORKERS": "2",
        "SHIM_LOG_LEVEL": "debug",
        "SHIM_GLANCE_RETRIES": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    (tmp_path / "prom").mkdir()
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = await spawn_shim(settings, stdout=stdout, stderr=stderr)
    try:
        await until_ready(f"http://127.0.0.1:{metrics_port}")
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{api}"
            seen: list[str] = []
            for i, reply in enumerate(GARBAGE_ANSWERS):
                glance.on("/v2/images", reply)
                for path in ("/v2.1/images/detail", "/v2.1/servers", f"/v2/images?token={token()}"):
                    async with session.get(
                        base + path, headers={"X-Auth-Token": token(f"proc-{i}")}
                    ) as response:
                        seen.append(f"{dict(response.headers)} {await response.read()!r}")
            async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                exposition = await response.text()
        assert "nova_image_shim_requests_total" in exposition
        assert_clean(exposition.splitlines(), "/metrics of the process")
        assert_clean(seen, "answers of the process")
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()
    output = out.read_text() + err.read_text()
    assert '"event": "request"' in output or '"event":"request"' in output
    assert_clean(output.splitlines(), "the process's stdout/stderr")
    for recorded in glance.requests:
        assert_clean([recorded.raw_path, recorded.query_string], "a Glance URL")
