"""Glance v2 image records -> Nova image views (docs/nova.md §4, §5; docs/contract.md D3, D8, D12).

Pure: plain mappings in, plain dicts out (ready for ``orjson.dumps``); no aiohttp, no I/O,
no URL objects. `to_nova_image` runs for every image of every page, so links are built
by concatenating prefixes computed once per request (`LinkContext`).

Detailed image, keys in Nova's order (nova.md §4.1):

=========================  ===========================================================
Nova field                 from the Glance record
=========================  ===========================================================
``id``, ``name``           ``id``, ``name`` (``null`` when unnamed)
``minRam``, ``minDisk``    ``int(min_ram or 0)``, ``int(min_disk or 0)``
``metadata``               every attribute that is not base (`ImageSchema`);
                           ``block_device_mapping``/``mappings`` JSON-decoded (contract.md D3: kept
                           as the raw string when that fails)
``created``, ``updated``   ``created_at``, ``updated_at`` via `isotime`
``status``, ``progress``   ``status`` via the table below
``OS-EXT-IMG-SIZE:size``   ``size``, ``null`` -> 0
``links``                  self, bookmark, alternate (`LinkContext`)
``server``                 only when metadata ``instance_uuid`` is not null
``OS-DCF:diskConfig``      only when metadata ``auto_disk_config`` is not null: ``AUTO``
                           if oslo ``bool_from_string`` (non-strict) says true, else
                           ``MANUAL``
=========================  ===========================================================

Status (nova.md §4.2): active -> ACTIVE/100, queued -> SAVING/25, saving -> SAVING/50,
deleted and pending_delete -> DELETED/0, killed -> ERROR/0, anything else -> UNKNOWN/0.

A record that cannot be rendered (no ``id``, a non-string ``id``, a ``min_ram`` that is
not a number, an unparsable date ...) raises `BadUpstreamResponse` (contract.md D13, 502) instead of
Nova's 500.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

from shim.faults import BadUpstreamResponse

IMAGE_LINK_TYPE: Final = "application/vnd.openstack.image"

_STATUS: Final[dict[Any, tuple[str, int]]] = {
    "active": ("ACTIVE", 100),
    "queued": ("SAVING", 25),
    "saving": ("SAVING", 50),
    "deleted": ("DELETED", 0),
    "pending_delete": ("DELETED", 0),
    "killed": ("ERROR", 0),
}
_UNKNOWN: Final = ("UNKNOWN", 0)

# oslo_utils.strutils.TRUE_STRINGS (bool_from_string, strict=False, default=False).
_TRUE_STRINGS: Final = frozenset({"1", "t", "true", "on", "y", "yes"})

_JSON_PROPERTIES: Final = ("block_device_mapping", "mappings")
_MAX_JSON_DEPTH: Final = 64  # well inside orjson's 254 levels once nested in the response

# Attributes Nova never shows in metadata whatever the schema says: dropped
# (_extract_attributes_v2 omit list, locations), turned into is_public, or rendered as
# their own Nova field.
ALWAYS_HIDDEN: Final = frozenset(
    {
        "self",
        "schema",
        "protected",
        "virtual_size",
        "file",
        "tags",
        "direct_url",
        "locations",
        "visibility",
        "id",
        "name",
        "status",
        "size",
        "min_ram",
        "min_disk",
        "created_at",
        "updated_at",
    }
)

# Glance 33 get_base_properties() (nova.md §5 table): the base attributes of its image schema,
# which include every attribute in ALWAYS_HIDDEN.
GLANCE_BASE_PROPERTIES: Final = ALWAYS_HIDDEN | frozenset(
    {
        "os_hidden",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "owner",
        "container_format",
        "disk_format",
        "stores",
    }
)

_GLANCE_TIME: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,][0-9]+)?"
    r"(?:(Z)|([-+])([0-9]{2})(?::?([0-9]{2}))?)?"
)
_VERSION_SUFFIX: Final = re.compile(r"/v[0-9]+(?:\.[0-9]+)?/?\Z")
_SLASHES: Final = re.compile(r"//+")


@dataclass(frozen=True, slots=True)
class LinkContext:
    """Link bases of one request; build it with `link_context`."""

    self_base: str  # "http://h:8774/v2.1/<pid>" or "http://h:8774/v2.1" (no trailing slash)
    bookmark_base: str  # "http://h:8774/<pid>" or "http://h:8774"
    glance_base: str  # "http://glance:9292" (no trailing slash)
    image_self: str = field(init=False, repr=False, compare=False)
    image_bookmark: str = field(init=False, repr=False, compare=False)
    image_alternate: str = field(init=False, repr=False, compare=False)
    server_self: str = field(init=False, repr=False, compare=False)
    server_bookmark: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_self", self.self_base + "/images/")
        object.__setattr__(self, "image_bookmark", self.bookmark_base + "/images/")
        object.__setattr__(self, "image_alternate", self.glance_base + "/images/")
        object.__setattr__(self, "server_self", self.self_base + "/servers/")
        object.__setattr__(self, "server_bookmark", self.bookmark_base + "/servers/")


@functools.lru_cache(maxsize=256)  # per request, from few distinct bases and projects
def link_context(
    public_base: str, prefix: str, project_id: str | None, glance_base: str
) -> LinkContext:
    """Link bases for a request under ``/<prefix>[/<project_id>]``.

    *public_base* is ``scheme://host[:port][/path]`` (``SHIM_PUBLIC_URL``, like Nova's
    ``compute_link_prefix``, or the request's scheme and host); its path is kept for
    path-mounted deployments, runs of ``/`` in it are merged, a trailing ``/``, query and
    fragment are dropped. The project id appears iff the request path had one (contract.md D12).
    *glance_base* is used as given apart from the same slash clean-up: pass the result of
    `glance_base_url` (computed once; it is not idempotent on ``.../v2/v2``).
    """
    base = _clean_base(public_base)
    project = f"/{project_id}" if project_id else ""
    return LinkContext(
        self_base=f"{base}/{prefix}{project}",
        bookmark_base=base + project,
        glance_base=_clean_base(glance_base),
    )


def glance_base_url(url: str) -> str:
    """Base of ``alternate`` links from a Glance endpoint URL (nova.md §4.3, contract.md D8).

    Nova's rule for a catalogue endpoint: a trailing ``/vN[.M][/]`` is removed from the
    path (``http://h/image/v2/`` -> ``http://h/image``, ``http://h/v2`` -> ``http://h``,
    ``http://h/image`` unchanged); then, unlike Nova, a trailing ``/`` is removed too and
    runs of ``/`` merged, so ``base + "/images/" + id`` never contains ``//``.
    """
    origin, path = _split_base(url)
    return origin + _VERSION_SUFFIX.sub("", path).rstrip("/")


def _clean_base(url: str) -> str:
    origin, path = _split_base(url)
    return origin + path


def _split_base(url: str) -> tuple[str, str]:
    """``scheme://authority`` and the path: query and fragment dropped, runs of ``/``
    merged, no trailing ``/``."""
    scheme_end = url.find("://")
    rest_start = 0 if scheme_end < 0 else scheme_end + 3
    for mark in ("?", "#"):
        cut = url.find(mark, rest_start)
        if cut >= 0:
            url = url[:cut]
    path_start = url.find("/", rest_start)
    if path_start < 0:
        return url, ""
    path = url[path_start:]
    if "//" in path:
        path = _SLASHES.sub("/", path)
    return url[:path_start], path.rstrip("/")


@dataclass(frozen=True, slots=True)
class ImageSchema:
    """Which Glance attributes are hidden from ``metadata`` (base or always dropped)."""

    base: frozenset[str]


def schema_from_glance(doc: Mapping[str, Any]) -> ImageSchema:
    """Build the hidden set from ``GET /v2/schemas/image`` (nova.md §5).

    A property is base unless its schema has a false ``is_base`` (glanceclient's
    ``SchemaProperty``), so ``os_distro``, ``instance_uuid``, ... stay in ``metadata``.
    `ALWAYS_HIDDEN` is added. `ValueError` when *doc* is not an image schema (callers
    then keep `FALLBACK_SCHEMA`).
    """
    properties = doc.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        raise ValueError("the image schema has no properties")
    base = set(ALWAYS_HIDDEN)
    for name, spec in properties.items():
        if not isinstance(name, str) or not isinstance(spec, Mapping):
            raise ValueError(f"malformed image schema property {name!r}")
        if spec.get("is_base", True):
            base.add(name)
    return ImageSchema(frozenset(base))


FALLBACK_SCHEMA: Final = ImageSchema(GLANCE_BASE_PROPERTIES | ALWAYS_HIDDEN)


def isotime(value: str | None) -> str | None:
    """Nova's ``isotime(parse_isotime(value))`` for a Glance timestamp (nova.md §4.1).

    ``YYYY-MM-DDTHH:MM:SS`` with fractional seconds dropped, then ``Z`` for ``Z`` or no
    zone, else the offset as iso8601 names it (``+01:00``, also ``+00:00``); the local
    time is not converted. ``None`` and ``""`` give ``None`` (Nova would print the current
    time for ``""``). `ValueError` if *value* is not such a timestamp.
    """
    if not value:
        return None
    if (
        len(value) == 20
        and value[19] == "Z"
        and value[10] == "T"
        and value[4] == "-"
        and value[7] == "-"
        and value[13] == ":"
        and value[16] == ":"
    ):
        # What Glance sends: with the separators in place, fromisoformat checks the
        # ASCII digits and the ranges, and the text is already Nova's.
        _check_datetime(value[:19], value)
        return value
    match = _GLANCE_TIME.fullmatch(value)
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    year, month, day, hour, minute, second, _zulu, sign, tz_hour, tz_minute = match.groups()
    text = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    _check_datetime(text, value)
    if sign is None:
        return text + "Z"
    offset_minutes = int(tz_minute or 0)
    if int(tz_hour) * 60 + offset_minutes >= 24 * 60:
        raise ValueError(f"not a valid time zone offset: {value!r}")
    return f"{text}{sign}{tz_hour}:{offset_minutes:02d}"


def _check_datetime(text: str, value: str) -> None:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a valid date and time: {value!r}") from None


def _bool_from_string(subject: object) -> bool:
    if isinstance(subject, bool):
        return subject
    text = subject if isinstance(subject, str) else str(subject)
    return text.strip().lower() in _TRUE_STRINGS


def _to_int(value: Any) -> int:
    # Nova: int(image.get("min_ram") or 0)
    if type(value) is int:
        return value
    return int(value or 0)


def to_nova_metadata(image: Mapping[str, Any], schema: ImageSchema) -> dict[str, Any]:
    """The image's ``metadata``: every attribute not hidden by *schema* (nova.md §5).

    ``block_device_mapping`` and ``mappings`` strings are JSON-decoded; a value that is not
    valid JSON, or that JSON cannot carry back (NaN, infinities, integers beyond 64 bits,
    nesting deeper than 64), stays the raw string (contract.md D3).
    """
    hidden = schema.base
    metadata = {key: value for key, value in image.items() if key not in hidden}
    for key in _JSON_PROPERTIES:
        raw = metadata.get(key)
        if isinstance(raw, str):
            metadata[key] = _json_property(raw)
    return metadata


def _json_property(raw: str) -> Any:
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    verdict = _json_verdict(decoded, _MAX_JSON_DEPTH)
    if verdict is _HAS_FLOAT:
        # orjson reads integers beyond 64 bits as floats; Nova's json.loads keeps them
        # exact, which JSON output cannot carry: ask the stdlib decoder which it was.
        try:
            decoded = _STDLIB_JSON.decode(raw)
        except (ValueError, RecursionError):
            return raw
        verdict = _json_verdict(decoded, _MAX_JSON_DEPTH)
    return raw if verdict is _UNSAFE else decoded


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_STDLIB_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant)
_SAFE: Final = 0
_HAS_FLOAT: Final = 1
_UNSAFE: Final = 2


def _json_verdict(value: Any, depth: int) -> int:
    """`_SAFE` / `_HAS_FLOAT` if ``orjson.dumps`` can write *value* nested in a response."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return _SAFE
    if kind is int:
        return _SAFE if -(2**63) <= value < 2**64 else _UNSAFE
    if kind is float:
        return _HAS_FLOAT if math.isfinite(value) else _UNSAFE
    if depth <= 0:
        return _UNSAFE
    if kind is list:
        items = value
    elif kind is dict:
        items = value.values()
    else:
        return _UNSAFE
    verdict = _SAFE
    for item in items:
        verdict = max(verdict, _json_verdict(item, depth - 1))
        if verdict == _UNSAFE:
            break
    return verdict


def to_nova_image(
    image: Mapping[str, Any], links: LinkContext, schema: ImageSchema
) -> dict[str, Any]:
    """One detailed image (show, and each item of the detailed list), nova.md §4.1."""
    try:
        metadata = to_nova_metadata(image, schema)
        image_id = image["id"]
        status, progress = _STATUS.get(image.get("status"), _UNKNOWN)
        size = image.get("size")
        min_ram = image.get("min_ram")
        if type(min_ram) is not int:
            min_ram = _to_int(min_ram)
        min_disk = image.get("min_disk")
        if type(min_disk) is not int:
            min_disk = _to_int(min_disk)
        created_at = image.get("created_at")
        updated_at = image.get("updated_at")
        created = isotime(created_at)
        view: dict[str, Any] = {
            "id": image_id,
            "name": image.get("name"),
            "minRam": min_ram,
            "minDisk": min_disk,
            "metadata": metadata,
            "created": created,
            # Glance sets both at creation; most images were never updated since.
            "updated": created if updated_at == created_at else isotime(updated_at),
            "status": status,
            "progress": progress,
            "OS-EXT-IMG-SIZE:size": 0 if size is None else size,
            "links": [
                {"rel": "self", "href": links.image_self + image_id},
                {"rel": "bookmark", "href": links.image_bookmark + image_id},
                {
                    "rel": "alternate",
                    "type": IMAGE_LINK_TYPE,
                    "href": links.image_alternate + image_id,
                },
            ],
        }
        server = metadata.get("instance_uuid")
        if server is not None:
            server_id = str(server)
            view["server"] = {
                "id": server,
                "links": [
                    {"rel": "self", "href": links.server_self + server_id},
                    {"rel": "bookmark", "href": links.server_bookmark + server_id},
                ],
            }
        disk_config = metadata.get("auto_disk_config")
        if disk_config is not None:
            view["OS-DCF:diskConfig"] = "AUTO" if _bool_from_string(disk_config) else "MANUAL"
    except (KeyError, TypeError, ValueError) as exc:
        raise BadUpstreamResponse() from exc
    return view


def to_nova_image_basic(image: Mapping[str, Any], links: LinkContext) -> dict[str, Any]:
    """One item of the basic list (nova.md §4.5): ``id``, ``name``, ``links`` in Nova's order."""
    try:
        image_id = image["id"]
        return {
            "id": image_id,
            "name": image.get("name"),
            "links": [
                {"rel": "self", "href": links.image_self + image_id},
                {"rel": "bookmark", "href": links.image_bookmark + image_id},
                {
                    "rel": "alternate",
                    "type": IMAGE_LINK_TYPE,
                    "href": links.image_alternate + image_id,
                },
            ],
        }
    except (KeyError, TypeError) as exc:
        raise BadUpstreamResponse() from exc
