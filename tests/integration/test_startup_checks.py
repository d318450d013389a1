"""The start-up check of each upstream, as an operator sees it: the real CLI in a
subprocess in front of the real Keystone and Glance, its log lines and exit status."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Mapping
from typing import Any, Final

from tests.fakes.entry import spawn_shim
from tests.fakes.net import refused_url
from tests.stack.info import StackInfo

TIMEOUT = 30.0
Event = dict[str, Any]
ONE_WORKER_ON_FREE_PORTS: Final = {
    "SHIM_LISTEN": "127.0.0.1:0",
    "SHIM_METRICS_LISTEN": "127.0.0.1:0",
    "SHIM_WORKERS": "1",
    "SHIM_LOG_FORMAT": "json",
}


async def run_shim(env: Mapping[str, str], *, until_listening: bool) -> tuple[int, list[Event]]:
    """Run ``python -m shim`` on free ports with *env*; stop it (SIGTERM) once it listens,
    or let it exit by itself. Its exit status and JSON log lines."""
    proc = await spawn_shim(
        {**ONE_WORKER_ON_FREE_PORTS, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    events: list[Event] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            async for raw in proc.stdout:
                events.append(json.loads(raw))
                if until_listening and events[-1]["event"] == "listening":
                    proc.send_signal(signal.SIGTERM)
            return await proc.wait(), events
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def checks(events: list[Event]) -> dict[str, Event]:
    return {e["setting"]: e for e in events if e["event"] == "upstream_check"}


async def test_the_right_upstreams_are_named_and_recognised(real_stack: StackInfo) -> None:
    status, events = await run_shim(
        {
            "SHIM_GLANCE_URL": real_stack.glance_url,
            "SHIM_AUTH": "keystone",
            "SHIM_KEYSTONE_URL": real_stack.keystone_url,
            "SHIM_NOVA_URL": real_stack.nova_url,
        },
        until_listening=True,
    )
    assert status == 0
    found = checks(events)
    assert set(found) == {"SHIM_GLANCE_URL", "SHIM_KEYSTONE_URL", "SHIM_NOVA_URL"}
    nova = found["SHIM_NOVA_URL"]
    assert (nova["ok"], nova["url"]) == (True, f"{real_stack.nova_url}/")
    assert nova["found"] == "the compute API (Nova), versions v2.1"
    glance, keystone = found["SHIM_GLANCE_URL"], found["SHIM_KEYSTONE_URL"]
    assert (glance["ok"], glance["level"]) == (True, "info")
    assert glance["url"] == f"{real_stack.glance_url}/versions"
    assert glance["found"].startswith("the image service (Glance), versions v2.")
    assert (keystone["ok"], keystone["url"]) == (True, f"{real_stack.keystone_url}/v3")
    assert keystone["found"].startswith("the identity service (Keystone), version v3.")
    # The checks come before the server starts serving.
    names = [e["event"] for e in events]
    assert names.index("upstream_check") < names.index("listening")


async def test_swapped_urls_are_named_with_what_answered_and_the_shim_still_serves(
    real_stack: StackInfo,
) -> None:
    status, events = await run_shim(
        {"SHIM_GLANCE_URL": real_stack.keystone_url, "SHIM_NOVA_URL": real_stack.glance_url},
        until_listening=True,
    )
    assert status == 0  # upstreams may come later: a warning, not a refusal, by default
    found = checks(events)
    glance, nova = found["SHIM_GLANCE_URL"], found["SHIM_NOVA_URL"]
    assert (glance["ok"], glance["level"]) == (False, "warning")
    # Keystone has no /versions: what answered is named, with its content type.
    assert glance["found"] == "answered 404 (text/html), not the image service (Glance)"
    assert (nova["ok"], nova["level"]) == (False, "warning")
    assert nova["found"].endswith("as the image service (Glance), not the compute API (Nova)"), (
        nova["found"]
    )
    assert "SHIM_REQUIRE_UPSTREAMS" in nova["hint"]


async def test_a_required_upstream_that_fails_its_check_stops_start_up(
    real_stack: StackInfo,
) -> None:
    refused = refused_url()
    status, events = await run_shim(
        {
            "SHIM_GLANCE_URL": str(refused),
            "SHIM_AUTH": "keystone",
            "SHIM_KEYSTONE_URL": real_stack.keystone_url,
            "SHIM_REQUIRE_UPSTREAMS": "true",
        },
        until_listening=False,
    )
    assert status == 3
    found = checks(events)
    assert found["SHIM_KEYSTONE_URL"]["ok"] is True
    glance = found["SHIM_GLANCE_URL"]
    assert (glance["ok"], glance["level"]) == (False, "error")
    assert glance["found"].startswith("unreachable: ClientConnectorError")
    [failed] = [e for e in events if e["event"] == "startup_failed"]
    assert failed["error"] == "upstream check failed: SHIM_GLANCE_URL"
    assert not [e for e in events if e["event"] == "listening"]
