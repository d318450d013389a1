"""TLS settings at start-up: files that cannot serve stop it (exit 2, the setting named),
``SHIM_TLS_VERIFY=false`` is said out loud, and the real entry point serves HTTPS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shim.settings import Settings, SettingsError
from shim.tls import UpstreamTrust
from tests.fakes.entry import spawn_shim
from tests.stack.procs import free_port
from tests.stack.tls import Pki


def pem_cases(pki: Pki, tmp: Path) -> dict[str, tuple[dict[str, str], str]]:
    """environment → the text the error must contain (which names the setting)."""
    garbage = tmp / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = str(tmp / "nowhere.pem")
    other = pki.issue("other", "localhost")
    return {
        "missing CA file": ({"SHIM_CA_FILE": missing}, f"SHIM_CA_FILE: cannot read {missing}"),
        "CA file is a directory": ({"SHIM_NOVA_CA_FILE": str(tmp)}, "SHIM_NOVA_CA_FILE: cannot"),
        "CA file not PEM": (
            {"SHIM_GLANCE_CA_FILE": str(garbage)},
            f"SHIM_GLANCE_CA_FILE: {garbage} is not a PEM file",
        ),
        "CA file holds a key": (
            {"SHIM_KEYSTONE_CA_FILE": str(pki.client.key)},
            "SHIM_KEYSTONE_CA_FILE: ",
        ),
        "client key without certificate": (
            {"SHIM_CLIENT_KEY": str(pki.client.key)},
            "SHIM_CLIENT_KEY is set but SHIM_CLIENT_CERT is not",
        ),
        "client certificate without its key": (
            {"SHIM_CLIENT_CERT": str(pki.client.cert)},
            "SHIM_CLIENT_CERT/SHIM_CLIENT_KEY: the certificate and key do not load together",
        ),
        "listener key of another certificate": (
            {"SHIM_TLS_CERT": str(pki.server.cert), "SHIM_TLS_KEY": str(other.key)},
            "SHIM_TLS_CERT/SHIM_TLS_KEY: the certificate and key do not load together",
        ),
        "listener key missing": (
            {"SHIM_TLS_CERT": str(pki.server.cert), "SHIM_TLS_KEY": missing},
            f"SHIM_TLS_KEY: cannot read {missing}",
        ),
        "bad verify switch": ({"SHIM_TLS_VERIFY": "maybe"}, "SHIM_TLS_VERIFY: expected"),
    }


CASE_NAMES = [
    "missing CA file",
    "CA file is a directory",
    "CA file not PEM",
    "CA file holds a key",
    "client key without certificate",
    "client certificate without its key",
    "listener key of another certificate",
    "listener key missing",
    "bad verify switch",
]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_files_that_cannot_serve_stop_start_up_naming_the_setting(
    pki: Pki, tmp_path: Path, case: str
) -> None:
    env, text = pem_cases(pki, tmp_path)[case]
    with pytest.raises(SettingsError) as raised:
        Settings.from_sources({"SHIM_GLANCE_URL": "https://glance:9292", **env})
    assert text in str(raised.value)


def test_good_files_are_accepted(pki: Pki) -> None:
    settings = Settings.from_sources(
        {
            "SHIM_GLANCE_URL": "https://glance:9292",
            "SHIM_CA_FILE": str(pki.ca_file),
            "SHIM_CLIENT_CERT": str(pki.client.cert),
            "SHIM_CLIENT_KEY": str(pki.client.key),
            "SHIM_TLS_CERT": str(pki.server.cert),
            "SHIM_TLS_KEY": str(pki.server.key),
        },
        ["--tls-verify", "true", "--nova-ca-file", str(pki.ca_file)],
    )
    assert (settings.ca_file, settings.nova_ca_file, settings.tls_verify) == (
        str(pki.ca_file),
        str(pki.ca_file),
        True,
    )


async def run_shim(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await spawn_shim(
        env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def test_the_entry_point_exits_2_naming_the_file_setting(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    proc = await run_shim({"SHIM_GLANCE_URL": "https://glance:9292", "SHIM_CA_FILE": str(missing)})
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert f"SHIM_CA_FILE: cannot read {missing}".encode() in stderr


async def test_verification_off_is_warned_and_https_is_served(pki: Pki) -> None:
    """Two workers behind the real entry point: one warning at start-up, then HTTPS."""
    api, metrics = free_port(), free_port()
    proc = await run_shim(
        {
            "SHIM_GLANCE_URL": "https://glance.invalid:9292",
            "SHIM_LISTEN": f"127.0.0.1:{api}",
            "SHIM_METRICS_LISTEN": f"127.0.0.1:{metrics}",
            "SHIM_WORKERS": "2",
            "SHIM_TLS_VERIFY": "false",
            "SHIM_TLS_CERT": str(pki.server.cert),
            "SHIM_TLS_KEY": str(pki.server.key),
        }
    )
    events: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            while sum(e["event"] == "listening" for e in events) < 2:
                line = await proc.stdout.readline()
                assert line, "the shim exited before listening"
                events.append(json.loads(line))
        async with aiohttp.ClientSession() as client:
            for _ in range(4):
                async with client.get(
                    f"https://localhost:{api}/v2.1", ssl=pki.client_context()
                ) as answer:
                    assert answer.status == 200
            async with client.get(f"http://127.0.0.1:{metrics}/healthz") as health:
                assert health.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    warnings = [e for e in events if e["event"] == "tls_verification_off"]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning"
    assert events.index(warnings[0]) < events.index(
        next(e for e in events if e["event"] == "listening")
    )
    assert {e["scheme"] for e in events if e["event"] == "listening"} == {"https"}


def test_upstream_contexts_verify_with_tls_1_2_or_newer(pki: Pki) -> None:
    trust = UpstreamTrust.build(ca_file=str(pki.ca_file), nova_ca_file=str(pki.client.cert))
    assert trust.glance is trust.keystone  # one pool key for Glance and Keystone calls
    assert trust.nova is not trust.glance
    for context in (trust.glance, trust.nova):
        assert context.minimum_version == ssl.TLSVersion.TLSv1_2
        assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    off = UpstreamTrust.build(ca_file=None, verify=False)
    assert (off.glance.verify_mode, off.glance.check_hostname) == (ssl.CERT_NONE, False)
    assert off.glance.minimum_version == ssl.TLSVersion.TLSv1_2
