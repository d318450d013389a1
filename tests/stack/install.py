"""Install the pinned Glance, Keystone and Nova virtualenvs, PostgreSQL, and pre-synced templates.

Idempotent: a virtualenv whose marker matches the pins, the constraints file and the
interpreter is reused; anything else is rebuilt from scratch. Debian's PostgreSQL server is
installed with apt-get where it is missing (as root, as on CI). Failures raise `StackError`
with the log tail. It must not leave servers running: the database server it starts to
sync the schemas into the template cluster is stopped before it returns.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.stack import identity, nova, postgres
from tests.stack.configs import GlanceDirs, KeystoneDirs
from tests.stack.layout import Component, StackPaths
from tests.stack.procs import StackError, file_lock, run_logged

# Bump when the templates' content changes, so that existing caches rebuild them.
TEMPLATE_LAYOUT: Final = 3


@dataclass(frozen=True, slots=True)
class InstallReport:
    installed: tuple[str, ...]  # components (re)built by this call; empty when all reused
    seconds: float

    def describe(self) -> str:
        what = ", ".join(self.installed) if self.installed else "nothing (venvs reused)"
        return f"installed {what} in {self.seconds:.1f}s"


def ensure_installed(paths: StackPaths) -> InstallReport:
    """Make the database server, every virtualenv and the templates current; safe to call
    concurrently."""
    start = time.monotonic()
    if not paths.python.exists():
        raise StackError(f"interpreter for the stack venvs not found: {paths.python}")
    with file_lock(paths.cache / "install.lock"):
        postgres.ensure_server(paths.logs / "postgres-install.log")
        stale = [c for c in paths.components if not _is_current(c, paths.python)]
        with ThreadPoolExecutor(max_workers=len(paths.components)) as pool:
            for future in [pool.submit(_install, c, paths) for c in stale]:
                future.result()
        _ensure_templates(paths)
    return InstallReport(tuple(c.name for c in stale), time.monotonic() - start)


def _is_current(component: Component, python: Path) -> bool:
    try:
        marker = json.loads(component.marker.read_text())
    except (OSError, ValueError):
        return False
    return bool(marker == component.fingerprint(python))


def _install(component: Component, paths: StackPaths) -> None:
    log = paths.logs / f"pip-{component.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    if component.venv.exists():
        shutil.rmtree(component.venv)
    run_logged([paths.python, "-m", "venv", component.venv], log)
    pip: list[str | Path] = [
        component.bin / "python",
        "-m",
        "pip",
        "install",
        "--no-input",
        "--progress-bar=off",
    ]
    run_logged([*pip, "-c", component.constraints, *component.requirements], log)
    # The marker goes last: an interrupted install is never mistaken for a finished one.
    component.marker.write_text(json.dumps(component.fingerprint(paths.python)))


def _ensure_templates(paths: StackPaths) -> None:
    """Synced schemas and Keystone's key repositories, made once per install and copied
    into each fresh run (db_sync and key setup cost seconds per ``*-manage`` call).

    Glance's and Nova's schemas are synced into a PostgreSQL cluster that every run copies
    (docs/stack.md §8); Keystone keeps sqlite (it writes little: Fernet tokens are not
    stored).
    """
    fingerprint = json.dumps(
        [
            TEMPLATE_LAYOUT,
            postgres.DATABASES,
            postgres.SERVER_SETTINGS,
            *(c.fingerprint(paths.python) for c in paths.components),
        ]
    )
    marker = paths.templates / "fingerprint.json"
    if marker.exists() and marker.read_text() == fingerprint:
        return
    if paths.templates.exists():
        shutil.rmtree(paths.templates)
    log = paths.logs / "templates.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    with tempfile.TemporaryDirectory(dir=paths.cache) as tmp:
        server = postgres.build_template(log)
        try:
            glance = GlanceDirs(Path(tmp) / "glance")
            database = server.url("glance", postgres.SQLALCHEMY_DRIVER)
            glance.write("http://127.0.0.1:1", "unused", database)
            manage = paths.glance.bin / "glance-manage"
            run_logged([manage, "--config-file", glance.conf, "db_sync"], log)
            nova.sync_databases(paths, nova.NovaDirs(Path(tmp) / "nova"), server.port, log)
            postgres.keep_template(server, paths.templates / "postgres")
        except BaseException:
            server.stop()
            postgres.discard(server.data)
            raise
        keystone = KeystoneDirs(Path(tmp) / "keystone")
        keystone.write()
        manage = paths.keystone.bin / "keystone-manage"
        run_logged([manage, "--config-file", keystone.conf, "db_sync"], log)
        identity.setup_keys(paths, keystone, log)
        template = KeystoneDirs(paths.templates / "keystone")
        shutil.copytree(keystone.fernet_keys, template.fernet_keys)
        shutil.copytree(keystone.credential_keys, template.credential_keys)
        shutil.copyfile(keystone.db, template.db)
    marker.write_text(fingerprint)


def copy_templates(paths: StackPaths, keystone: KeystoneDirs) -> None:
    template = KeystoneDirs(paths.templates / "keystone")
    shutil.copytree(template.fernet_keys, keystone.fernet_keys)
    shutil.copytree(template.credential_keys, keystone.credential_keys)
    shutil.copyfile(template.db, keystone.db)
