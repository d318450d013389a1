"""Routing of legacy image paths: which request the shim answers itself, and how.

Pure: takes the decoded request path and method, returns a `LegacyTarget` or ``None``
(not an image route: pass it through to Nova). No aiohttp, no I/O. Called on every
request, so it is one compiled regex plus a few string operations.

Route table (docs/nova.md §1.1; docs/contract.md §1), after ``/v2[.1][/{project_id}]``:

=========  ===================================  =================
method     path                                 action
=========  ===================================  =================
GET        ``/images``                          ``index``
GET        ``/images/detail``                   ``detail``
GET        ``/images/{id}``                     ``show``
DELETE     ``/images/{id}``                     ``delete`` (also id ``detail``)
GET        ``/images/{id}/metadata``            ``meta_index``
POST       ``/images/{id}/metadata``            ``meta_create``
PUT        ``/images/{id}/metadata``            ``meta_update_all``
GET        ``/images/{id}/metadata/{key}``      ``meta_show``
PUT        ``/images/{id}/metadata/{key}``      ``meta_update``
DELETE     ``/images/{id}/metadata/{key}``      ``meta_delete``
=========  ===================================  =================

Decisions (each mirrors Nova's router, whose unmatched requests are a bare 404):

* Runs of ``/`` are merged first (contract.md §1; fog sends ``//images``), inside `match_legacy`.
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
from dataclasses import dataclass
from typing import Final, Literal

from shim.legacy.types import Action

__all__ = ["Action", "LegacyTarget", "match_legacy", "merge_slashes"]

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

_ITEM_ACTIONS: Final[dict[str, Action]] = {"GET": "show", "DELETE": "delete"}
_METADATA_ACTIONS: Final[dict[str, Action]] = {
    "GET": "meta_index",
    "POST": "meta_create",
    "PUT": "meta_update_all",
}
_KEY_ACTIONS: Final[dict[str, Action]] = {
    "GET": "meta_show",
    "PUT": "meta_update",
    "DELETE": "meta_delete",
}


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


def match_legacy(method: str, path: str) -> LegacyTarget | None:
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
    if tail is None:
        return LegacyTarget(prefix, project_id, "index" if method == "GET" else None)
    parts = tail[1:].split("/")
    image_id = parts[0]
    count = len(parts)
    if not image_id:
        return LegacyTarget(prefix, project_id, None)
    if count == 1:
        if image_id == "detail" and method == "GET":
            return LegacyTarget(prefix, project_id, "detail")
        action = _ITEM_ACTIONS.get(method)
    elif parts[1] != "metadata":
        action = None
    elif count == 2:
        action = _METADATA_ACTIONS.get(method)
    elif count == 3 and parts[2]:
        action = _KEY_ACTIONS.get(method)
        if action is not None:
            return LegacyTarget(prefix, project_id, action, image_id, parts[2])
    else:
        action = None
    if action is None:
        return LegacyTarget(prefix, project_id, None)
    return LegacyTarget(prefix, project_id, action, image_id)
