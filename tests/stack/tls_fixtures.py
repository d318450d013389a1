"""pytest fixtures for TLS (registered from ``tests/conftest.py``).

- ``pki`` (session): `tls.Pki`, the test CA and its certificates in a temporary directory.
- ``https_stack`` (session): the real stack's Keystone, Glance and Nova served over HTTPS as
  well (`tls.start_https`), Glance demanding a client certificate; stopped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stack.info import StackInfo
from tests.stack.tls import HttpsStack, Pki, start_https


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def https_stack(real_stack: StackInfo, pki: Pki) -> Iterator[HttpsStack]:
    running = start_https(real_stack, pki)
    try:
        yield running
    finally:
        running.close()
