"""Catalogues past one Glance page and past max_limit; flat memory for unpaged lists."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.test_read_api import get_json
from tests.shim_fixtures import MakeShim
from tests.stack.fixtures import BulkImages
from tests.stack.info import StackInfo
from tests.stack.procs import free_port

pytestmark = pytest.mark.integration


async def test_over_a_thousand_images(
    make_shim: MakeShim,
    real_stack: StackInfo,
    tokens: dict[str, str],
    bulk_images: BulkImages,
) -> None:
    """bob's project gets 1100 more images: unpaged lists return all, limit=1000 pages."""
    # Glance pages of 1000 (its own maximum), to cross that boundary too.
    client = await make_shim(glance_page_size=1000)
    before = len((await get_json(client, "/v2.1/images", tokens["bob"]))[2]["images"])
    created = set(bulk_images(1100, real_stack.demo_b, name_prefix="many"))
    status, _, body = await get_json(client, "/v2.1/images/detail", tokens["bob"])
    assert status == 200
    ids = [image["id"] for image in body["images"]]
    assert len(ids) == before + 1100 == len(set(ids))
    assert created <= set(ids)
    assert "images_links" not in body

    status, _, body = await get_json(client, "/v2.1/images?limit=1000", tokens["bob"])
    assert len(body["images"]) == 1000
    assert body["images_links"][0]["href"].endswith(
        f"/v2.1/images?limit=1000&marker={body['images'][-1]['id']}"
    )
    # limit above max_limit: every image up to the limit, no link (min(limit, 1000) != 1200).
    status, _, body = await get_json(client, "/v2.1/images?limit=1200", tokens["bob"])
    assert len(body["images"]) == min(1200, before + 1100)
    assert [image["id"] for image in body["images"]] == ids[: len(body["images"])]
    assert "images_links" not in body


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture
def shim_process(real_stack: StackInfo) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "SHIM_GLANCE_URL": real_stack.glance_url,
        "SHIM_LISTEN": f"127.0.0.1:{port}",
        "SHIM_METRICS_LISTEN": "off",
        "SHIM_WORKERS": "1",
        "SHIM_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "shim"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError("the shim did not start") from None
            time.sleep(0.1)
    try:
        yield process, url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _list_all(url: str, token: str) -> list[Any]:
    request = urllib.request.Request(f"{url}/v2.1/images/detail", headers={"X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        images: list[Any] = orjson.loads(response.read())["images"]
        return images


def test_unpaged_list_memory_is_flat(
    shim_process: tuple[subprocess.Popen[bytes], str],
    real_stack: StackInfo,
    tokens: dict[str, str],
    bulk_images: BulkImages,
) -> None:
    """Peak RSS grows by < 10 MB between unpaged lists of 500 and of 5000 images."""
    process, url = shim_process
    token = tokens["bob"]
    baseline = len(_list_all(url, token))
    bulk_images(500, real_stack.demo_b, name_prefix="rss")
    assert len(_list_all(url, token)) == baseline + 500
    small = _peak_rss_kib(process.pid)
    bulk_images(4500, real_stack.demo_b, name_prefix="rss-more")
    assert len(_list_all(url, token)) == baseline + 5000
    large = _peak_rss_kib(process.pid)
    growth_mb = (large - small) / 1024
    print(f"peak RSS: {small / 1024:.1f} MiB at 500 images, {large / 1024:.1f} MiB at 5000")
    assert growth_mb < 10, f"peak RSS grew {growth_mb:.1f} MB"
