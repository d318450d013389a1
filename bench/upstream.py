"""nginx as the fast, real Glance stand-in: canned pages mapped from ``limit``/``marker``.

``GET /v2/images?limit=L&marker=M`` serves ``pages/L/m_M.json`` (no ``limit``: Glance's 25),
``GET /v2/images/<id>`` serves ``images/<id>.json``, ``GET /v2/schemas/image(s)`` the schemas,
``GET /nova/<key>.json|.bin`` the canned Nova answers (``nova_answers.py``) and ``GET /`` Nova's
version document.
A request for a page that was not generated gets a Glance-style 404 and is logged to
``missing.log`` (the only access log), so a cell never silently measures error pages. A marker
that is not UUID-shaped gets Glance's 400. ``/_bench/status`` (stub_status) counts requests, so
the bench can report Glance calls per client request.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Service, StartError, free_port, http_get, taskset

_NOT_FOUND = '{"message": "No canned page", "code": "404 Not Found", "title": "Not Found"}'
_BAD_MARKER = '{"message": "Invalid marker", "code": "400 Bad Request", "title": "Bad Request"}'


def nginx_conf(prefix: Path, root: Path, port: int, tls_port: int | None = None) -> str:
    """One server on *port*; with *tls_port* the same canned Glance over HTTPS too (nginx
    terminates TLS with ``tls.crt``/``tls.key`` under *prefix*, see `make_certificate`)."""
    listen = f"listen 127.0.0.1:{port} backlog=4096;"
    if tls_port is not None:
        listen += f"""
        listen 127.0.0.1:{tls_port} ssl backlog=4096;
        ssl_certificate {prefix}/tls.crt;
        ssl_certificate_key {prefix}/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:bench:10m;"""
    return f"""
worker_processes 1;
daemon off;
master_process on;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    open_file_cache max=20000 inactive=300s;
    open_file_cache_valid 300s;
    etag off;
    server_tokens off;
    charset off;
    types {{ application/json json; application/octet-stream bin; }}
    default_type application/json;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    map $arg_limit $glance_limit {{ "" 25; default $arg_limit; }}
    server {{
        {listen}
        root {root};
        add_header x-openstack-request-id req-6b5e1f0c-2d4a-4c3b-9e8f-7a6b5c4d3e2f always;
        location = /v2/images {{
            if ($arg_marker !~ "^[0-9a-f-]*$") {{ return 400 '{_BAD_MARKER}'; }}
            try_files /pages/$glance_limit/m_$arg_marker.json @missing;
        }}
        location ~ "^/v2/images/([0-9a-f-]{{36}})$" {{
            try_files /images/$1.json @missing;
        }}
        location = /versions {{ try_files /versions.json @missing; }}
        location = /v2/schemas/image {{ try_files /schemas/image.json @missing; }}
        location = /v2/schemas/images {{ try_files /schemas/images.json @missing; }}
        location = /_bench/status {{ stub_status; }}
        location @missing {{
            access_log {prefix}/missing.log;
            return 404 '{_NOT_FOUND}';
        }}
        location /nova/ {{ try_files $uri @missing; }}
        location = / {{ try_files /nova/versions.json @missing; }}
        location / {{
            access_log {prefix}/missing.log;
            return 404 '{_NOT_FOUND}';
        }}
    }}
}}
"""


@dataclass
class Nginx:
    service: Service
    prefix: Path
    port: int
    tls_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate nginx presents, which is its own CA."""
        return self.prefix / "tls.crt"

    def requests_served(self) -> int:
        """Total requests so far (stub_status counts the status request itself too)."""
        _, body = http_get(self.url + "/_bench/status")
        match = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)", body)
        return int(match.group(3)) if match else 0

    def quiesce(self, timeout: float = 3.0) -> None:
        """Wait until nothing but our own status reads reaches nginx (late calls of a proxy
        still finishing the previous cell's requests would be counted as this cell's)."""
        deadline = time.monotonic() + timeout
        last = self.requests_served()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.requests_served()
            if now - last == 1:
                return
            last = now

    def missing(self, limit: int = 5) -> list[str]:
        """Requests that hit no canned file (first few), for the run's warnings."""
        path = self.prefix / "missing.log"
        if not path.exists():
            return []
        lines = path.read_text(errors="replace").splitlines()
        return [line.split('"')[1] if '"' in line else line for line in lines[:limit]]

    def stop(self) -> None:
        self.service.stop()


def make_certificate(prefix: Path) -> None:
    """A self-signed P-256 certificate for 127.0.0.1 (openssl's command line)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(prefix / "tls.key"), "-out", str(prefix / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip


def start_nginx(prefix: Path, root: Path, cpus: str | None, *, tls: bool = False) -> Nginx:
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    tls_port = free_port() if tls else None
    if tls:
        make_certificate(prefix)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, root, port, tls_port))
    service = Service(
        "nginx",
        [*taskset(cpus), "nginx", "-p", str(prefix), "-c", str(conf)],
        prefix / "nginx.out",
    )
    service.start()
    upstream = Nginx(service, prefix, port, tls_port)
    status, body = service.wait_ready(upstream.url + "/v2/schemas/image")
    if status != 200:
        service.stop()
        raise StartError(f"nginx answered {status} for the schema: {body[:200]!r}")
    return upstream
