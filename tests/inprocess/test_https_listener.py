"""The API port over HTTPS (``SHIM_TLS_CERT``/``SHIM_TLS_KEY``), served by the production
runner: TLS 1.2 or newer, links that say https, the metrics port still plain HTTP, and
certificate files replaced on disk picked up by new handshakes while clients keep going.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from yarl import URL

from tests.fakes.logs import captured_logs
from tests.fakes.shim_server import LOCAL, local_settings, served_shim
from tests.stack.tls import Pair, Pki


def listener_files(pki: Pki, directory: Path, name: str = "listener") -> Pair:
    """The pair the shim is configured with: fixed paths whose contents tests replace."""
    issued = pki.issue(name, *("localhost", "127.0.0.1", "::1"))
    directory.mkdir(parents=True, exist_ok=True)
    pair = Pair(directory / "tls.crt", directory / "tls.key")
    pair.cert.write_bytes(issued.cert.read_bytes())
    pair.key.write_bytes(issued.key.read_bytes())
    return pair


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


async def presented_serial(port: int, context: ssl.SSLContext) -> int:
    """The serial number of the certificate a new handshake is shown."""
    _, writer = await asyncio.open_connection(LOCAL, port, ssl=context)
    try:
        peer: Any = writer.get_extra_info("peercert")
        return int(peer["serialNumber"], 16)
    finally:
        writer.close()
        await writer.wait_closed()


def https_settings(pair: Pair, **overrides: Any) -> Any:
    return local_settings(
        glance_url=URL("http://glance.invalid"),
        tls_cert=str(pair.cert),
        tls_key=str(pair.key),
        **overrides,
    )


async def test_api_speaks_https_and_metrics_stay_plain(pki: Pki, tmp_path: Path) -> None:
    pair = listener_files(pki, tmp_path)
    async with served_shim(https_settings(pair)) as shim, aiohttp.ClientSession() as client:
        base = shim.url.with_scheme("https")
        async with client.get(base / "v2.1", ssl=pki.client_context()) as answer:
            assert answer.status == 200
            links = (await answer.json())["version"]["links"]
        # Links name the scheme the client used.
        assert [link["href"] for link in links if link["rel"] == "self"] == [f"{base}/v2.1/"]
        async with client.get(shim.metrics_url / "healthz") as health:
            assert health.status == 200
        # Plain HTTP on the API port is no request at all.
        with pytest.raises(aiohttp.ClientError):
            async with client.get(shim.url / "v2.1") as answer:
                await answer.read()
        # Nor is a client the test CA does not vouch for.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with client.get(base / "v2.1", ssl=Pki(tmp_path / "x").client_context()):
                pass


# A client asking for TLS 1.1 is what this test is about.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_older_than_1_2_is_refused(pki: Pki, tmp_path: Path) -> None:
    pair = listener_files(pki, tmp_path)
    old = pki.client_context()
    old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    modern = pki.client_context()
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    async with served_shim(https_settings(pair)) as shim:
        with pytest.raises(ssl.SSLError):
            await presented_serial(shim.running.api_port, old)
        assert await presented_serial(shim.running.api_port, modern) == serial_of(pair.cert)


async def test_rotated_files_serve_new_handshakes_and_no_request_fails(
    pki: Pki, tmp_path: Path
) -> None:
    pair = listener_files(pki, tmp_path / "live")
    first = serial_of(pair.cert)
    renewed = pki.issue("renewed", "localhost", "127.0.0.1", "::1")
    context = pki.client_context()
    failures: list[BaseException] = []
    done = 0
    stop = asyncio.Event()

    async with served_shim(https_settings(pair)) as shim:
        url = shim.url.with_scheme("https") / "v2.1"
        port = shim.running.api_port

        async def loop_on_new_connections() -> None:
            nonlocal done
            connector = aiohttp.TCPConnector(ssl=context, force_close=True)
            async with aiohttp.ClientSession(connector=connector) as client:
                while not stop.is_set():
                    try:
                        async with client.get(url) as answer:
                            await answer.read()
                            if answer.status != 200:
                                failures.append(RuntimeError(f"status {answer.status}"))
                    except aiohttp.ClientError as exc:
                        failures.append(exc)
                    done += 1

        # A keep-alive connection opened before the renewal keeps working after it.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as kept:
            async with kept.get(url) as answer:
                assert answer.status == 200
            with captured_logs() as logs:
                looping = asyncio.create_task(loop_on_new_connections())
                await asyncio.sleep(0.2)
                # cert-manager's order is not ours to choose: the certificate first leaves
                # a pair that does not match for a moment; the old pair keeps serving.
                replace(pair.cert, renewed.cert.read_bytes())
                assert await presented_serial(port, context) == first
                await asyncio.sleep(0.2)
                replace(pair.key, renewed.key.read_bytes())
                serial = first
                for _ in range(100):
                    serial = await presented_serial(port, context)
                    if serial != first:
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.2)
                stop.set()
                await looping
            async with kept.get(url) as answer:
                assert answer.status == 200
    assert serial == serial_of(renewed.cert)
    assert failures == []
    assert done > 10
    events = [event["event"] for event in logs.events()]
    assert "listener_certificate_not_loaded" in events
    assert events.count("listener_certificate_reloaded") == 1


def replace(path: Path, data: bytes) -> None:
    """Write *data* to *path* as one atomic rename (as a Secret volume update lands)."""
    staging = path.with_suffix(".new")
    staging.write_bytes(data)
    os.replace(staging, path)
