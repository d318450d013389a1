"""The stack's database server: Glance really runs on it, and it behaves as docs/stack.md says."""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.stack import postgres
from tests.stack.catalogue import Catalogue
from tests.stack.fixtures import ScratchImages
from tests.stack.info import StackInfo
from tests.stack.layout import PG_MAJOR, StackPaths
from tests.stack.procs import pid_runs_in
from tests.stack.seed import PATCH_TYPE, GlanceApi

pytestmark = pytest.mark.integration


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def test_glance_keeps_its_images_in_the_stack_postgresql(
    real_stack: StackInfo, catalogue: Catalogue, glance_api: GlanceApi
) -> None:
    glance_api.get("alice", catalogue.ids["cirros-active"])
    with psycopg.connect(real_stack.glance_db_url) as conn:
        version = conn.execute("SHOW server_version").fetchone() or ("",)
        rows = conn.execute("SELECT id, status FROM images WHERE id = ANY(%s)",
                            (list(catalogue.ids.values()),)).fetchall()  # fmt: skip
        # Glance's own pooled connections, from its gunicorn worker.
        glance = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'glance'"
            " AND pid <> pg_backend_pid()"
        ).fetchone() or (0,)
    assert version[0].startswith(f"{PG_MAJOR}.")
    statuses: dict[str, str] = dict(rows)
    assert len(statuses) == len(catalogue.ids)
    assert statuses[catalogue.ids["status-killed"]] == "killed"
    assert statuses[catalogue.ids["cirros-active"]] == "active"
    assert glance[0] >= 1


def test_server_is_unprivileged_and_reachable_on_loopback_only(real_stack: StackInfo) -> None:
    assert pid_runs_in(real_stack.db_pid, real_stack.db_dir)
    if os.geteuid() == 0:
        assert _uid(real_stack.db_pid) != 0
    with psycopg.connect(postgres.url(real_stack.db_port, postgres.ADMIN_DATABASE)) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        sockets = conn.execute("SHOW unix_socket_directories").fetchone()
    assert listen == ("127.0.0.1",)
    assert sockets == ("",)


def test_concurrent_metadata_writes_to_one_image_get_no_5xx(
    scratch_images: ScratchImages, glance_api: GlanceApi
) -> None:
    # sqlite's single writer answered such bursts with 500 ("database is locked").
    image = scratch_images("alice", name="concurrent-writes")
    path = f"/v2/images/{image['id']}"

    def write(n: int) -> int:
        ops = json.dumps([{"op": "add", "path": f"/burst_{n}", "value": str(n)}]).encode()
        # No expected status: the raw answer, as a 409 is a fair outcome of a race.
        return glance_api.call("alice", "PATCH", path, data=ops, content_type=PATCH_TYPE).status

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(write, range(36)))
    assert set(statuses) <= {200, 409}, statuses
    assert statuses.count(200) >= 1


def test_a_copy_of_the_template_starts_and_stops_with_nothing_left(
    real_stack: StackInfo, tmp_path: Path
) -> None:
    paths = StackPaths.from_env()
    run = tmp_path / "run"
    run.mkdir()
    server = postgres.start(paths.templates / "postgres", run, run / "postgres.log")
    try:
        with psycopg.connect(server.url("glance")) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'images'"
            ).fetchone()
            images = conn.execute("SELECT count(*) FROM images").fetchone()
        assert tables == (1,)
        assert images == (0,)
    finally:
        server.stop()
        postgres.discard(server.data)
    assert not pid_runs_in(server.pid, server.data)
    assert not server.data.exists()
    shutil.rmtree(run)
