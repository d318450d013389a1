"""``make_shim``: the shim in-process in front of the real Glance and Keystone of ``real_stack``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from yarl import URL

from shim.access import ACCESS_LOGGER, AccessLogger
from shim.app import create_app
from shim.settings import RendererChoice, Settings
from tests.stack.info import StackInfo

MakeShim = Callable[..., Awaitable[TestClient[Any, Any]]]

# Small Glance pages so the standard catalogue (67 images for alice) spans several.
TEST_PAGE_SIZE = 10


def stack_settings(stack: StackInfo, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "glance_url": URL(stack.glance_url),
        "keystone_url": URL(stack.keystone_url),
        "metrics_listen": None,
        "glance_page_size": TEST_PAGE_SIZE,
        "workers": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def shim_renderer() -> RendererChoice:
    """``SHIM_RENDERER`` of ``make_shim``'s shims; a module overrides this fixture with
    parameters to run its tests with each renderer (tests/integration/test_read_api.py)."""
    return "auto"


@pytest.fixture
def make_shim(
    aiohttp_client: AiohttpClient, real_stack: StackInfo, shim_renderer: RendererChoice
) -> MakeShim:
    """``await make_shim(**settings)``: a test client of a shim over the real stack."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        overrides.setdefault("renderer", shim_renderer)
        return await aiohttp_client(
            create_app(stack_settings(real_stack, **overrides)),
            # The shim's own access log and request metrics, as in production.
            server_kwargs={
                "access_log_class": AccessLogger,
                "access_log": logging.getLogger(ACCESS_LOGGER),
            },
        )

    return make
