"""Routing of legacy image paths: which request the shim answers itself, and how.

Pure: takes the decoded request path and method, returns a `LegacyTarget` or ``None``
(not an image route: pass it through to Nova). No aiohttp, no I/O. Called on every
request, so it is one compiled regex plus a few string operations.

The routes themselves are the rows of `shim.legacy.table.ROUTES` (method, path template,
action); a `Matcher` compiles them. Templates are literal segments and the parameters
``{image_id}`` and ``{key}``, after ``/v2[.1][/{project_id}]/images``. Rows are tried in
table order and the first whose segments and method fit wins, as in Nova's router: so
``GET /images/detail`` is the list, while ``DELETE /images/detail`` deletes the image
``detail`` (docs/nova.md §1.1).

Decisions (each mirrors Nova's router, whose unmatched requests are a bare 404):

* Runs of ``/`` are merged first (contract.md §1; fog sends ``//images``), inside `Matcher.match`.
  So ``/images//metadata`` is the show of image ``metadata``, as Nova serves
  ``/v2.1//images`` as the list (appendix D).
* Anything else under ``/images`` — another method (HEAD, OPTIONS, POST on ``/images`` ...),
  a deeper sub-path, or an empty segment from a trailing slash (``/images/``,
  ``/images/{id}/``, ``/images/{id}/metadata/``) — gives ``action=None``: the caller
  answers the JSON ``itemNotFound`` 404 (contract.md D10) with no microversion headers, because
  Nova's router answers before any microversion is parsed. Nova's routes are exact
  (Routes without minimization adds no optional trailing ``/``), and Tempest expects 404
  for ``DELETE /images/`` (blank id).
* The project segment must match ``[0-9a-f-]+`` (lower-case hex and dashes). A segment
  that does not, for example ``/v2.1/demo/images`` or upper-case hex, matches no Nova
  route: ``action=None`` and ``project_id=None``. Exception: when that segment is one of
  Nova's own top-level collections (``servers``, ``flavors``, ``limits``, ``extensions``,
  ``os-*``), the path is Nova's resource named ``images`` (``GET /v2.1/os-keypairs/images``
  is the keypair called "images"), so it is not an image route and goes to Nova.
* ``images`` is never a project id (it is not hex), so ``/v2.1/images/images`` is the show
  of image ``images``, as in Nova.
* Matching is case-sensitive and exact on the prefix (``/v2.10``, ``/V2.1``, ``/v2.1images``
  are not image routes). Segments are not unquoted again: *path* is already decoded, so
  ``/images/a%2Fb`` arrives as ``/images/a/b`` and is unroutable, as in Nova.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from shim.legacy.types import Action

__all__ = ["Action", "LegacyTarget", "Matcher", "RouteRow", "merge_slashes"]

_SLASHES: Final = re.compile(r"//+")

# prefix, then either a valid project id, or any other segment except "images" (which
# is then the collection itself), then the collection and everything after it.
_LEGACY: Final = re.compile(
    r"/(?P<prefix>v2|v2\.1)"
    r"(?:/(?:(?P<pid>[0-9a-f-]+)|(?!images(?:/|\Z))(?P<bad>[^/]+)))?"
    r"/images"
    r"(?P<tail>/.*)?",
    re.DOTALL,
)

# Nova's static top-level collections (nova/api/openstack/compute/routes.py ROUTE_LIST):
# "/<collection>/images..." is one of their resources, not a mistyped project id.
_NOVA_COLLECTIONS: Final = frozenset({"servers", "flavors", "limits", "extensions"})

_COLLECTION: Final = "/images"
_PARAMETERS: Final = frozenset({"{image_id}", "{key}"})


class RouteRow(Protocol):
    """What matching needs of a row of the route table."""

    @property
    def method(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def action(self) -> Action: ...


@dataclass(frozen=True, slots=True)
class LegacyTarget:
    """A request under a legacy ``/images`` path.

    ``action is None`` means "answer a 404 ``itemNotFound`` fault now", before any other
    check (project id, microversion, auth); the other fields are then informational.
    """

    prefix: Literal["v2", "v2.1"]
    project_id: str | None  # None when the URL has no (valid) project segment
    action: Action | None  # None => under /images but unroutable => 404 fault
    image_id: str | None = None
    key: str | None = None


def merge_slashes(path: str) -> str:
    """Collapse every run of ``/`` into one (``/v2.1//images`` -> ``/v2.1/images``)."""
    if "//" not in path:
        return path
    return _SLASHES.sub("/", path)


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A template after ``/images``, compiled: literal segments, parameter positions."""

    action: Action
    literals: tuple[tuple[int, str], ...]
    image_id: int | None
    key: int | None

    def fits(self, parts: list[str]) -> bool:
        for index, text in self.literals:
            if parts[index] != text:
                return False
        # A parameter is never empty: a trailing "/" matches no route.
        return (self.image_id is None or bool(parts[self.image_id])) and (
            self.key is None or bool(parts[self.key])
        )


def _compile(row: RouteRow) -> tuple[int, _Pattern]:
    if not row.template.startswith(_COLLECTION):
        raise ValueError(f"{row.action}: a legacy template starts with /images: {row.template}")
    parts = row.template[len(_COLLECTION) :].split("/")[1:]
    literals = tuple((i, part) for i, part in enumerate(parts) if part not in _PARAMETERS)
    if any(not text or "{" in text for _, text in literals):
        raise ValueError(f"{row.action}: unknown parameter or empty segment: {row.template}")
    image_id = parts.index("{image_id}") if "{image_id}" in parts else None
    key = parts.index("{key}") if "{key}" in parts else None
    return len(parts), _Pattern(row.action, literals, image_id, key)


class Matcher:
    """`match` for the rows of a route table (compiled once, at import)."""

    def __init__(self, rows: Iterable[RouteRow]) -> None:
        patterns: dict[tuple[int, str], list[_Pattern]] = {}
        for row in rows:
            count, pattern = _compile(row)
            patterns.setdefault((count, row.method), []).append(pattern)
        self._patterns = {shape: tuple(found) for shape, found in patterns.items()}

    def match(self, method: str, path: str) -> LegacyTarget | None:
        """Route *method* and the decoded request *path*; ``None`` means "not ours".

        *path* is ``request.path`` (percent-decoded, no query string). Slashes are merged
        here, so callers pass the path unchanged. *method* is compared exactly (upper case).
        """
        if "//" in path:
            path = _SLASHES.sub("/", path)
        match = _LEGACY.fullmatch(path)
        if match is None:
            return None
        prefix: Literal["v2", "v2.1"] = "v2" if match.group("prefix") == "v2" else "v2.1"
        bad = match.group("bad")
        if bad is not None:
            if bad in _NOVA_COLLECTIONS or bad.startswith("os-"):
                return None
            return LegacyTarget(prefix, None, None)
        project_id = match.group("pid")
        tail = match.group("tail")
        parts = [] if tail is None else tail[1:].split("/")
        for pattern in self._patterns.get((len(parts), method), ()):
            if pattern.fits(parts):
                return LegacyTarget(
                    prefix,
                    project_id,
                    pattern.action,
                    None if pattern.image_id is None else parts[pattern.image_id],
                    None if pattern.key is None else parts[pattern.key],
                )
        return LegacyTarget(prefix, project_id, None)
