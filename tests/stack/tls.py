"""TLS for the tests: a private CA made on the spot, and the stack's real servers over HTTPS.

`Pki` writes PEM files (trustme) into a directory: the test CA, a server certificate for
``localhost``, ``127.0.0.1`` and ``::1``, a client certificate, and any other certificate
a test asks for (another host name, already expired, from a CA nobody trusts).

`start_https` serves the running stack's Keystone, Glance and Nova over HTTPS as well: a
second gunicorn for each, on the same configuration, databases and keys as the plain one,
with the test CA's server certificate, and for Glance a client certificate demanded
(mutual TLS), as a cloud that authenticates its services would; that Glance also listens
on ``[::1]`` (the IPv6 tests). Tokens issued by either Keystone are valid at both (one
Fernet key repository). It adds three gunicorn start-ups (seconds each) to the run, once
per session; nothing here changes the plain stack.
"""

from __future__ import annotations

import datetime
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from tests.stack import nova
from tests.stack.configs import GlanceDirs, KeystoneDirs
from tests.stack.info import StackInfo
from tests.stack.layout import HOST, StackPaths
from tests.stack.procs import free_port, stop_spawned, wait_ready
from tests.stack.realstack import spawn_server

SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
READY_TIMEOUT = 120.0


@dataclass(frozen=True, slots=True)
class Pair:
    cert: Path
    key: Path


@dataclass
class Pki:
    """A test CA and the files it issued, under *directory*."""

    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA)
    ca_file: Path = field(init=False)
    server: Pair = field(init=False)
    client: Pair = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server = self.issue("server", *SERVER_NAMES)
        self.client = self.issue("client", "nova-image-shim")

    def issue(self, name: str, *hosts: str, not_after: datetime.datetime | None = None) -> Pair:
        leaf = self.ca.issue_cert(*hosts, not_after=not_after)
        pair = Pair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        pair.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        pair.key.write_bytes(leaf.private_key_pem.bytes())
        return pair

    def expired(self, name: str = "expired") -> Pair:
        yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
        return self.issue(name, *SERVER_NAMES, not_after=yesterday)

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts this CA uses (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def server_context(
        self, pair: Pair | None = None, *, client_ca: bool = False
    ) -> ssl.SSLContext:
        pair = pair or self.server
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pair.cert, pair.key)
        if client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.ca_file))
        return context


@dataclass
class HttpsStack:
    """The stack's Keystone, Glance and Nova over HTTPS (`start_https`); `close` stops them."""

    keystone_url: str
    glance_url: str
    glance_url_v6: str  # the same Glance on [::1]
    nova_url: str
    procs: list[subprocess.Popen[bytes]]

    def close(self) -> None:
        for proc in self.procs:
            stop_spawned(proc)
        self.procs.clear()


def start_https(info: StackInfo, pki: Pki, paths: StackPaths | None = None) -> HttpsStack:
    """Serve *info*'s Keystone, Glance and Nova over HTTPS too (module docstring)."""
    paths = paths or StackPaths.from_env()
    keystone, glance = KeystoneDirs(info.run_dir / "keystone"), GlanceDirs(info.run_dir / "glance")
    nova_dirs = nova.NovaDirs(info.nova_dir)
    tls = [f"--certfile={pki.server.cert}", f"--keyfile={pki.server.key}"]
    mutual = ["--cert-reqs=2", f"--ca-certs={pki.ca_file}"]
    procs: list[subprocess.Popen[bytes]] = []
    port_v6 = free_port("::1")
    context = pki.client_context()
    context.load_cert_chain(pki.client.cert, pki.client.key)
    try:
        urls = []
        glance_binds = [f"--bind=[::1]:{port_v6}"]
        for name, dirs, bin_dir, extra, probe in (
            ("keystone", keystone, paths.keystone.bin, tls, "/v3"),
            ("glance", glance, paths.glance.bin, [*tls, *mutual, *glance_binds], "/healthcheck"),
            ("nova", nova_dirs, paths.nova.bin, tls, "/"),
        ):
            port = free_port(HOST)
            pid_file = dirs.base / "gunicorn_https.pid"
            log = dirs.base / "log" / "gunicorn-https.log"
            server = spawn_server(
                bin_dir, dirs, port, info.run_dir, *extra, pid_file=pid_file, log=log
            )
            procs.append(server)
            url = f"https://{HOST}:{port}"
            wait_ready(f"{name} (https)", url + probe, server, [log], READY_TIMEOUT, context)
            urls.append(url)
    except BaseException:
        for proc in procs:
            stop_spawned(proc)
        raise
    return HttpsStack(urls[0], urls[1], f"https://[::1]:{port_v6}", urls[2], procs)
