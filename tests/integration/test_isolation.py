"""No route ever shows (or touches) one project's private image from another project.

For each auth mode (passthrough, keystone with Glance from the catalogue, trusted-headers)
and each URL form (``/v2.1`` and ``/v2``, with the caller's project, the owner's project
or none), callers scoped to demo-b — bob, and dave, who is also a member of demo-a —
try every image route on a private image of demo-a: list, detail, show, every metadata
verb and delete. Each attempt must be a 404 (or, where the mode knows the caller's
project and the URL names the owner's, Nova's 400), lists must not contain the image,
no answer may carry its name, and afterwards the owner finds it untouched.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.integration.conftest import MakeShim
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo
from tests.stack.seed import GlanceApi

pytestmark = pytest.mark.integration

Client = TestClient[Any, Any]
MODES = ("passthrough", "keystone", "trusted-headers")
INTRUDERS = ("bob", "dave-b")


def mode_settings(mode: str) -> dict[str, Any]:
    if mode == "keystone":
        return {"auth": "keystone", "glance_url": None}  # Glance from the token's catalogue
    return {"auth": mode}


def front_headers(stack: StackInfo, user: str, project_id: str) -> dict[str, str]:
    """What keystonemiddleware in front of a trusted-headers shim would have set."""
    return {
        "X-Identity-Status": "Confirmed",
        "X-Project-Id": project_id,
        "X-User-Id": stack.user_ids[user.removesuffix("-b")],
        "X-Roles": "member,reader",
    }


def attempts(image_id: str, name: str) -> list[tuple[str, str, Any]]:
    """(method, path under the prefix, JSON body) of every image route."""
    return [
        ("GET", "/images", None),
        ("GET", f"/images?name={name}", None),
        ("GET", "/images/detail", None),
        ("GET", f"/images/detail?name={name}", None),
        ("GET", f"/images/{image_id}", None),
        ("GET", f"/images/{image_id}/metadata", None),
        ("GET", f"/images/{image_id}/metadata/secret_key", None),
        ("POST", f"/images/{image_id}/metadata", {"metadata": {"intruder": "was-here"}}),
        ("PUT", f"/images/{image_id}/metadata", {"metadata": {"intruder": "was-here"}}),
        ("PUT", f"/images/{image_id}/metadata/secret_key", {"meta": {"secret_key": "pwned"}}),
        ("DELETE", f"/images/{image_id}/metadata/secret_key", None),
        ("DELETE", f"/images/{image_id}", None),
    ]


async def call(
    client: Client, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    send = dict(headers)
    if data is not None:
        send["Content-Type"] = "application/json"
    async with client.request(method, path, data=data, headers=send) as response:
        return response.status, await response.read()


@pytest.mark.parametrize("mode", MODES)
async def test_private_image_of_one_project_is_invisible_to_the_other(
    make_shim: MakeShim,
    real_stack: StackInfo,
    tokens: dict[str, str],
    scratch_images: ScratchImages,
    glance_api: GlanceApi,
    mode: str,
) -> None:
    name = f"isolation-secret-{uuid.uuid4().hex[:8]}"
    secret = await asyncio.to_thread(
        scratch_images,
        "alice",
        name=name,
        visibility="private",
        disk_format="raw",
        container_format="bare",
        secret_key="v",
        data=b"s" * 64,
    )
    image_id = secret["id"]
    owner, intruder_project = real_stack.demo_a, real_stack.demo_b
    client = await make_shim(**mode_settings(mode))
    checks_project = mode != "passthrough"
    seen: list[str] = []
    for intruder in INTRUDERS:
        headers = {"X-Auth-Token": tokens[intruder]}
        if mode == "trusted-headers":
            headers.update(front_headers(real_stack, intruder, intruder_project))
        for version in ("v2.1", "v2"):
            for scope in (intruder_project, None, owner):
                prefix = f"/{version}/{scope}" if scope else f"/{version}"
                for method, path, body in attempts(image_id, name):
                    status, answer = await call(client, method, prefix + path, body, headers)
                    where = f"{mode} {intruder} {method} {prefix}{path}"
                    seen.append(where)
                    assert name.encode() not in answer, where
                    if checks_project and scope == owner:
                        assert status == 400, where
                        assert b"Malformed request URL" in answer, where
                    elif path.startswith(("/images?", "/images/detail")) or path == "/images":
                        assert status == 200, where
                        listed = [image["id"] for image in json.loads(answer)["images"]]
                        assert image_id not in listed, where
                    else:
                        assert status == 404, (where, status, answer)
    assert len(seen) == len(INTRUDERS) * 2 * 3 * len(attempts(image_id, name))
    # The owner still has it, untouched.
    after = await asyncio.to_thread(glance_api.get, "alice", image_id)
    assert (after["status"], after["name"], after["secret_key"]) == ("active", name, "v")
    assert "intruder" not in after


async def test_forged_front_headers_do_not_open_another_projects_image(
    make_shim: MakeShim,
    real_stack: StackInfo,
    tokens: dict[str, str],
    scratch_images: ScratchImages,
) -> None:
    """trusted-headers must not face clients; if it does, Glance's token check still holds."""
    secret = await asyncio.to_thread(
        scratch_images, "alice", name="forged-headers-target", visibility="private"
    )
    client = await make_shim(auth="trusted-headers")
    forged = front_headers(real_stack, "bob", real_stack.demo_a)  # claims alice's project
    forged["X-Auth-Token"] = tokens["bob"]
    prefix = f"/v2.1/{real_stack.demo_a}"
    status, _ = await call(client, "GET", f"{prefix}/images/{secret['id']}", None, forged)
    assert status == 404
    status, answer = await call(client, "GET", f"{prefix}/images/detail", None, forged)
    assert status == 200
    assert secret["id"] not in {image["id"] for image in json.loads(answer)["images"]}
