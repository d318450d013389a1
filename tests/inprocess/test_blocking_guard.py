"""The in-process tests' guard against blocking the event loop (tests/inprocess/conftest.py)
is live: a blocking call from the shim's code while the loop runs fails, the same call off the
loop does not, and only the listed exceptions may block."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from blockbuster import BlockingError

from shim import tls
from tests.stack.tls import Pki


async def test_a_file_read_by_the_shim_on_the_loop_fails_the_test(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(BlockingError):
        tls.check_files({"SHIM_CA_FILE": str(pem)}, (None, None), (None, None))


async def test_the_same_read_in_a_thread_passes(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match="SHIM_CA_FILE: cannot read"):
        await asyncio.to_thread(
            tls.check_files, {"SHIM_CA_FILE": str(missing)}, (None, None), (None, None)
        )


async def test_the_listener_certificate_may_stat_its_files_per_handshake(tmp_path: Path) -> None:
    pair = Pki(tmp_path).server
    listener = await asyncio.to_thread(tls.ListenerCertificate, str(pair.cert), str(pair.key))
    assert listener.current() is listener.context  # two stat() calls, on the loop
