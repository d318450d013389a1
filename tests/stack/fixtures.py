"""pytest fixtures over the real stack (registered from ``tests/conftest.py``).

- ``real_stack`` (session): `StackInfo` of a running Keystone + Glance + Nova. Reuses the stack
  named by the state file when it is up and healthy (and leaves it running); otherwise
  installs and starts one, and stops it at the end of the session. Never skips: a stack
  that cannot be provisioned is an error carrying the log tail.
- ``tokens`` (session): project-scoped tokens by user name: ``alice``, ``bob``,
  ``carol``, ``dave`` (demo-a), ``dave-b`` (dave on demo-b) and ``admin``.
- ``glance_api`` (session): `GlanceApi` for direct Glance calls as any user.
- ``catalogue`` (session): the standard catalogue (`catalogue.SPECS`), seeded once on a
  wiped database. Tests must not change its images; they use ``scratch_images``.
- ``scratch_images`` (function): a factory of images that are purged afterwards.
- ``bulk_images`` (function): `seed.bulk_insert` whose rows are purged afterwards.
- ``nova_url`` (session): base URL (no version) of the stack's Nova compute API, at
  Nova's default link settings (proxy headers ignored, no ``compute_link_prefix``).
- ``nova_proxy_headers_url`` (session): base URL of a second Nova on the same databases,
  Keystone and Glance, with ``[oslo_middleware] enable_proxy_headers_parsing = True``;
  started on first use, stopped at the end of the session.

These fixtures are blocking (stdlib HTTP and psycopg): call them outside the event loop.

`summary_line` adds a line to a named section of the terminal summary (``report_line``:
the "real stack" section); this module's `pytest_terminal_summary` writes every section.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any, Self

import pytest

from tests.stack.catalogue import Catalogue, seed_standard_catalogue
from tests.stack.info import StackInfo
from tests.stack.realstack import ensure_up, start_nova
from tests.stack.rest import JsonObject
from tests.stack.seed import GlanceApi, bulk_insert, purge


class _PurgedImages:
    """Ids of images made for a test, purged from Glance by `cleanup` (or on leaving a
    ``with`` block)."""

    def __init__(self, stack: StackInfo) -> None:
        self.stack = stack
        self.ids: list[str] = []

    def cleanup(self) -> None:
        purge(self.stack, self.ids)
        self.ids.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


class ScratchImages(_PurgedImages):
    """``scratch_images(owner="alice", data=None, **fields)`` creates an image, uploads
    `data` if given, and returns Glance's JSON for it; every image is purged at teardown."""

    def __init__(self, stack: StackInfo) -> None:
        super().__init__(stack)
        self.api = GlanceApi(stack)

    def __call__(
        self,
        owner: str = "alice",
        *,
        project: str | None = None,
        data: bytes | None = None,
        **fields: Any,
    ) -> JsonObject:
        image = self.api.create(owner, project, **fields)
        self.ids.append(image["id"])
        if data is not None:
            self.api.upload(owner, image["id"], data, project)
            image = self.api.get(owner, image["id"], project)
        return image


class BulkImages(_PurgedImages):
    """``bulk_images(n, owner_project_id, **kwargs)``: `seed.bulk_insert`, purged at teardown."""

    def __call__(self, n: int, owner: str, **kwargs: Any) -> list[str]:
        ids = bulk_insert(self.stack, n, owner, **kwargs)
        self.ids.extend(ids)
        return ids


_SUMMARY = pytest.StashKey[dict[str, list[str]]]()


def summary_line(config: pytest.Config, section: str, line: str) -> None:
    """Add `line` to the `section` part of the terminal summary (any test folder's)."""
    config.stash.setdefault(_SUMMARY, {}).setdefault(section, []).append(line)


def report_line(config: pytest.Config, line: str) -> None:
    """Add `line` to the "real stack" section of the terminal summary."""
    summary_line(config, "real stack", line)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for section, lines in config.stash.get(_SUMMARY, {}).items():
        terminalreporter.write_sep("-", section)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def real_stack(pytestconfig: pytest.Config) -> Iterator[StackInfo]:
    with closing(ensure_up()) as running:
        how = "started" if running.started else "reused"
        times = ", ".join(f"{key} {value:.1f}s" for key, value in running.timings.items())
        info = running.info
        report_line(pytestconfig, f"{how}: keystone {info.keystone_url}, "
                    f"glance {info.glance_url}, nova {info.nova_url} ({times})")  # fmt: skip
        yield info


@pytest.fixture(scope="session")
def tokens(real_stack: StackInfo) -> dict[str, str]:
    users: dict[str, tuple[str, str | None]] = {
        name: (name, None) for name in ("alice", "bob", "carol", "dave", "admin")
    }
    users["dave-b"] = ("dave", "demo-b")
    return {key: real_stack.token(user, project) for key, (user, project) in users.items()}


@pytest.fixture(scope="session")
def glance_api(real_stack: StackInfo) -> GlanceApi:
    return GlanceApi(real_stack)


@pytest.fixture(scope="session")
def catalogue(real_stack: StackInfo, pytestconfig: pytest.Config) -> Catalogue:
    seeded = seed_standard_catalogue(real_stack)
    report_line(
        pytestconfig, f"standard catalogue: {len(seeded.ids)} images in {seeded.seconds:.1f}s"
    )
    return seeded


@pytest.fixture
def scratch_images(real_stack: StackInfo) -> Iterator[ScratchImages]:
    with ScratchImages(real_stack) as factory:
        yield factory


@pytest.fixture
def bulk_images(real_stack: StackInfo) -> Iterator[BulkImages]:
    with BulkImages(real_stack) as factory:
        yield factory


@pytest.fixture(scope="session")
def nova_url(real_stack: StackInfo) -> str:
    return real_stack.nova_url


@pytest.fixture(scope="session")
def nova_proxy_headers_url(real_stack: StackInfo, pytestconfig: pytest.Config) -> Iterator[str]:
    server = start_nova(real_stack, proxy_headers=True)
    report_line(pytestconfig, f"nova with proxy headers parsed: {server.url} "
            f"(ready in {server.ready_seconds:.1f}s)")  # fmt: skip
    try:
        yield server.url
    finally:
        server.stop()
