"""Request ids across the gateway, with the real Nova: the id the shim works under reaches
Nova's own log as the global request id, beside the id Nova answers the client with."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from yarl import URL

from tests.integration.conftest import MakeShim
from tests.integration.parity import REQUEST_ID
from tests.stack.info import StackInfo

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("client_sends_one", [True, False])
async def test_novas_log_joins_the_shims_request_id_to_its_own(
    make_shim: MakeShim, real_stack: StackInfo, tokens: dict[str, str], client_sends_one: bool
) -> None:
    client = await make_shim(nova_url=URL(real_stack.nova_url))
    headers = {"X-Auth-Token": tokens["alice"]}
    ours = f"req-{uuid.uuid4()}"
    if client_sends_one:
        headers["X-Openstack-Request-Id"] = ours  # then it is the shim's id too
    async with client.get("/v2.1/flavors", headers=headers) as response:
        assert response.status == 200
        novas = response.headers.getall("x-openstack-request-id")
    assert len(novas) == 1
    assert REQUEST_ID.fullmatch(novas[0])
    assert novas[0] != ours  # the client sees Nova's own id, as without the shim
    # Nova logs "[<global request id> <its own id> ...]": the global one is the shim's,
    # never "None" (which is what Nova logs when no id reaches it).
    line = re.compile(rf"\[({REQUEST_ID.pattern}|None) {novas[0]} ")
    log = real_stack.logs["nova"]
    async with asyncio.timeout(10):
        while not (found := line.search(log.read_text(errors="replace"))):
            await asyncio.sleep(0.1)  # Nova's request log line is written after the answer
    if client_sends_one:
        assert found.group(1) == ours
    else:
        assert found.group(1) != "None"
