"""Nova 34's compute API in the test stack: its config, databases, and starting it.

Only the API runs (no conductor, scheduler or compute), served by gunicorn on threads
through our own entry module (``nova_wsgi.py``), with keystonemiddleware against the
stack's Keystone and ``[glance] api_servers`` at the stack's Glance. Link settings stay
at Nova's defaults (no ``compute_link_prefix``; proxy headers ignored) unless a second
Nova is asked for with ``proxy_headers=True`` (``[oslo_middleware]
enable_proxy_headers_parsing``). docs/stack.md §6 explains the choices.

Owns Nova's run directory layout, its config text and the database templates' commands.
It must not start servers (see `realstack`) nor provision Keystone (see `identity`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.stack import postgres
from tests.stack.configs import ServerDirs, authtoken_section
from tests.stack.layout import REGION, Below, StackPaths
from tests.stack.procs import run_logged

SERVICE_USER: Final = "nova"
# Nova's API database and its one cell's database, on the stack's PostgreSQL.
API_DATABASE: Final = "nova_api"
CELL_DATABASE: Final = "nova"
# Nova's default [quota] metadata_items (no quota rows in the database: defaults apply);
# the shim's SHIM_METADATA_ITEMS default matches it.
METADATA_ITEMS: Final = 128
# Our WSGI entry module; `realstack` copies it next to gunicorn's wrapper.
ENTRY: Final = Path(__file__).resolve().parent / "nova_wsgi.py"
_MANAGE_ENV: Final = {"OS_NOVA_DISABLE_EVENTLET_PATCHING": "1"}


@dataclass(frozen=True, slots=True)
class NovaDirs(ServerDirs):
    wsgi_app = f"{ENTRY.stem}:application"
    config_dir_variable = "OS_NOVA_CONFIG_DIR"
    # gunicorn itself would turn X-Forwarded-Proto from 127.0.0.1 into wsgi.url_scheme,
    # which Nova's own WSGI servers (uwsgi, mod_wsgi) never do: Nova builds its links from
    # the request alone unless its own proxy-header parsing is on.
    gunicorn_flags = ("--forwarded-allow-ips=",)
    conf = Below("etc", "nova.conf")
    paste = Below("etc", "api-paste.ini")
    app_log = Below("base", "log", "nova-api.log")

    def write(
        self,
        paths: StackPaths,
        *,
        keystone_url: str,
        glance_url: str,
        service_password: str,
        db_port: int,
        proxy_headers: bool = False,
    ) -> None:
        """nova.conf and Nova's own api-paste.ini; `db_port`: the stack's PostgreSQL, which
        holds Nova's API and cell databases."""
        self.make_dirs(self.base / "state", self.base / "locks")
        shutil.copyfile(paths.nova.venv / "etc" / "nova" / "api-paste.ini", self.paste)
        proxy = "True" if proxy_headers else "False"
        authtoken = authtoken_section(keystone_url, SERVICE_USER, service_password)
        # transport_url fake://: APIRouterV21 builds RPC clients at start-up; the routes the
        # stack serves send no RPC, and the in-memory driver satisfies the constructors.
        self.conf.write_text(
            f"""[DEFAULT]
transport_url = fake://
state_path = {self.base / "state"}
log_file = {self.app_log}
debug = false

[api]
auth_strategy = keystone

[wsgi]
api_paste_config = {self.paste}

[api_database]
connection = {postgres.url(db_port, API_DATABASE, postgres.SQLALCHEMY_DRIVER)}

[database]
connection = {postgres.url(db_port, CELL_DATABASE, postgres.SQLALCHEMY_DRIVER)}

[glance]
api_servers = {glance_url}
region_name = {REGION}

{authtoken}
[oslo_concurrency]
lock_path = {self.base / "locks"}

[oslo_middleware]
enable_proxy_headers_parsing = {proxy}

[oslo_policy]
enforce_scope = true
enforce_new_defaults = true
"""
        )


def sync_databases(paths: StackPaths, dirs: NovaDirs, db_port: int, log: Path) -> None:
    """``nova-manage api_db sync`` and ``db sync --local_cell`` (once, into the template
    cluster listening on `db_port`)."""
    dirs.write(
        paths, keystone_url="http://127.0.0.1:1", glance_url="http://127.0.0.1:1",
        service_password="unused", db_port=db_port,
    )  # fmt: skip
    manage: list[str | Path] = [paths.nova.bin / "nova-manage", "--config-file", dirs.conf]
    env = {**os.environ, **_MANAGE_ENV}
    run_logged([*manage, "api_db", "sync"], log, env=env)
    run_logged([*manage, "db", "sync", "--local_cell"], log, env=env)
