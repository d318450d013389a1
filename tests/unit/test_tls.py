"""How a TLS failure is named in the log line (`shim.tls.tls_failure`)."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from shim.tls import tls_failure


def verify_error(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_message = message
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    return error


def alert(reason: str) -> ssl.SSLError:
    error = ssl.SSLError(1, f"[SSL: {reason}] ...")
    error.reason = reason
    return error


def caused(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            verify_error("certificate has expired"),
            "certificate verify failed: certificate has expired",
        ),
        (
            # aiohttp's own class subclasses ssl's without its fields: its cause is read.
            caused(
                aiohttp.ClientSSLError(
                    aiohttp.client_reqrep.ConnectionKey(
                        "glance", 443, True, True, None, None, None, None
                    ),
                    OSError(),
                ),
                verify_error("unable to get local issuer certificate"),
            ),
            "certificate verify failed: unable to get local issuer certificate",
        ),
        (
            caused(
                aiohttp.ClientConnectionError("lost"), alert("TLSV13_ALERT_CERTIFICATE_REQUIRED")
            ),
            "tlsv13 alert certificate required",
        ),
        (alert("SSLV3_ALERT_HANDSHAKE_FAILURE"), "sslv3 alert handshake failure"),
        (aiohttp.ServerDisconnectedError(), None),
        (caused(aiohttp.ClientConnectionError("x"), ConnectionResetError()), None),
        (TimeoutError(), None),
    ],
)
def test_tls_reasons_are_openssls_words(error: BaseException, reason: str | None) -> None:
    assert tls_failure(error) == reason


def test_a_cause_cycle_ends() -> None:
    first, second = aiohttp.ClientConnectionError("a"), aiohttp.ClientConnectionError("b")
    first.__cause__, second.__cause__ = second, first
    assert tls_failure(first) is None
