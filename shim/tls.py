"""TLS: how the shim verifies its upstreams, the HTTPS listener's certificate, and the
name of a TLS failure in a log line.

- `UpstreamTrust` holds one client `ssl.SSLContext` per upstream (Glance, including the
  Glance endpoints of a token's catalogue; Keystone; Nova): chain and host name checked,
  TLS 1.2 or newer, trusting ``SHIM_<UPSTREAM>_CA_FILE``, else ``SHIM_CA_FILE``, else the
  system store, and presenting ``SHIM_CLIENT_CERT`` when set. ``SHIM_TLS_VERIFY=false``
  turns checking off (the command line warns at start-up).
- `ListenerCertificate` serves ``SHIM_TLS_CERT``/``SHIM_TLS_KEY`` and re-reads them when
  they change on disk (cert-manager rewrites the mounted Secret): every new handshake
  checks the files' identity and, when it moved, switches to a context built from the
  new files. Connections already open keep theirs, so no request in flight fails; files
  that do not load (a key written before its certificate) leave the last good pair in use.
- `tls_failure` names the TLS reason behind a client error (unknown CA, host name,
  expiry, a refused client certificate), or None for any other failure; `loggable_url`
  is how every upstream failure line writes the URL.
- `check_files` is start-up validation: a file that is missing, unreadable, not PEM, or
  that OpenSSL refuses stops start-up with a message naming the setting.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
import structlog
from yarl import URL

log = structlog.get_logger(__name__)

MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2
_PEM_MARK: Final = b"-----BEGIN "


def client_context(
    cafile: str | None, *, verify: bool = True, cert: str | None = None, key: str | None = None
) -> ssl.SSLContext:
    """A client context: *cafile* (else the system store) verifies the server."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = MINIMUM_VERSION
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def server_context(cert: str, key: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True, slots=True)
class UpstreamTrust:
    """The client context for each upstream (one shared object when they agree, so the
    pool keys of Glance and Keystone calls stay the same)."""

    glance: ssl.SSLContext
    keystone: ssl.SSLContext
    nova: ssl.SSLContext

    @classmethod
    def build(
        cls,
        *,
        ca_file: str | None,
        glance_ca_file: str | None = None,
        keystone_ca_file: str | None = None,
        nova_ca_file: str | None = None,
        verify: bool = True,
        client_cert: str | None = None,
        client_key: str | None = None,
    ) -> UpstreamTrust:
        contexts: dict[str | None, ssl.SSLContext] = {}

        def context(cafile: str | None) -> ssl.SSLContext:
            chosen = cafile or ca_file
            if chosen not in contexts:
                contexts[chosen] = client_context(
                    chosen, verify=verify, cert=client_cert, key=client_key
                )
            return contexts[chosen]

        return cls(context(glance_ca_file), context(keystone_ca_file), context(nova_ca_file))


def check_files(
    ca_files: Mapping[str, str | None],
    client: tuple[str | None, str | None],
    listener: tuple[str | None, str | None],
) -> None:
    """Raise `ValueError` naming the setting whose file cannot serve (module docstring).

    *client* and *listener* are (certificate, key) pairs; a key without its certificate is
    an error, a certificate without a key must hold the key itself.
    """
    for setting, path in ca_files.items():
        if path is not None:
            _check_pem(setting, path)
            try:
                ssl.create_default_context(cafile=path)
            except ssl.SSLError as exc:
                raise ValueError(
                    f"{setting}: {path} holds no usable CA certificate: {exc}"
                ) from None
    for prefix, (cert, key) in (("SHIM_CLIENT", client), ("SHIM_TLS", listener)):
        if cert is None:
            if key is not None:
                raise ValueError(f"{prefix}_KEY is set but {prefix}_CERT is not")
            continue
        _check_pem(f"{prefix}_CERT", cert)
        if key is not None:
            _check_pem(f"{prefix}_KEY", key)
        try:
            server_context(cert, key)
        except ssl.SSLError as exc:
            raise ValueError(
                f"{prefix}_CERT/{prefix}_KEY: the certificate and key do not load "
                f"together ({exc.reason or exc})"
            ) from None


def _check_pem(setting: str, path: str) -> None:
    try:
        with open(path, "rb") as handle:
            head = handle.read(64 * 1024)
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None
    if _PEM_MARK not in head:
        raise ValueError(f"{setting}: {path} is not a PEM file")


class ListenerCertificate:
    """The HTTPS listener's context, switched to re-read files on the next handshake."""

    def __init__(self, cert: str, key: str | None) -> None:
        self._files = (cert, key or cert)
        self._stamp = self._identity()
        self._current = server_context(cert, key)
        self.context = self._current
        self.context.sni_callback = self._on_hello

    def _identity(self) -> tuple[tuple[int, int, int], ...] | None:
        try:
            stats = [os.stat(path) for path in self._files]
        except OSError:
            return None
        return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)

    def current(self) -> ssl.SSLContext:
        """The context for a new connection: the files' pair, re-read if they changed."""
        stamp = self._identity()
        if stamp is None or stamp == self._stamp:
            return self._current
        cert, key = self._files
        try:
            fresh = server_context(cert, key)
        except (OSError, ssl.SSLError) as exc:
            # Half-written (a key before its certificate): keep serving the last good pair
            # and try again on the next handshake.
            log.warning("listener_certificate_not_loaded", cert=cert, reason=str(exc))
            return self._current
        self._stamp, self._current = stamp, fresh
        log.info("listener_certificate_reloaded", cert=cert)
        return fresh

    def _on_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        fresh = self.current()
        if fresh is not connection.context:
            connection.context = fresh


def tls_failure(error: BaseException) -> str | None:
    """The TLS reason somewhere in *error*'s chain, in OpenSSL's words, or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ClientError):
            pass  # aiohttp's SSL errors subclass ssl's without its fields: see their cause
        elif isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        elif isinstance(current, ssl.SSLError):
            reason = current.reason or current.strerror or str(current)
            return str(reason).lower().replace("_", " ")
        current = current.__cause__ or current.__context__
    return None


def log_tls_failure(upstream: str, url: URL, reason: str) -> None:
    """The one line a TLS failure leaves: which upstream, where, and why."""
    log.warning(
        "upstream_tls_failed",
        upstream=upstream,
        url=loggable_url(url),
        reason=reason,
    )


def loggable_url(url: URL) -> str:
    """*url* without its query (filter values are the caller's) or any user info."""
    return str(url.with_query(None).with_user(None))
