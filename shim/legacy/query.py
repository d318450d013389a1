"""Query strings of the image list routes: Nova parameters in, Glance v2 parameters out.

Pure: decoded ``(name, value)`` pairs in, plain data or `BadRequest` out. No aiohttp, no
I/O, no URL building (callers URL-encode every value they send to Glance).

Filter mapping (docs/nova.md §3.1, with docs/contract.md D1, D2):

=====================  ==========================================  ==========================
Nova parameter         Glance ``GET /v2/images`` parameter         note
=====================  ==========================================  ==========================
``name``               ``name``                                    verbatim (Glance operators
                                                                   such as ``in:`` apply)
``status``             ``status``                                  D2, see `glance_status`
``changes-since``      ``updated_at=gte:<value>``                  value verbatim
``server``             ``instance_uuid``                           text after the last ``/``
``type``               ``image_type``
``minRam``             ``min_ram``                                 exact equality (as Nova)
``minDisk``            ``min_disk``                                exact equality (as Nova)
``property-<X>``       ``<X>``                                     D1: exactly the prefix
                                                                   ``property-`` is removed
anything else          —                                           ignored (as Nova)
=====================  ==========================================  ==========================

* Repeated parameters: the last value is used (webob ``MultiDict.get``). When two
  parameters become the same Glance parameter (``server`` and ``property-instance_uuid``,
  ``name`` and ``property-name``), the later one in the query string wins. The text after
  the last ``/`` is taken from the final ``instance_uuid`` value whichever parameter set it,
  as Nova does.
* ``property-`` with an empty name, and ``property-limit``, ``property-marker``,
  ``property-sort``, ``property-sort_key``, ``property-sort_dir`` are dropped: those are
  Glance's paging and ordering controls, which the shim sets itself, not properties one
  can filter on (Nova's mangled ``lstrip`` sent some of them raw, nova.md §12 B1).
* Pagination (nova.md §3.2): ``limit``, ``page_size`` and ``offset`` are validated like Nova >= 30
  (every repeated value; ``^[0-9]*$``, minimum 1, non-empty; first failure in the order
  limit, page_size, offset), then the last value is used; ``offset`` is then ignored
  (nova.md §12 B14); ``page_size`` is capped at Glance's largest page; an empty ``marker``
  means none.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, get_args
from urllib.parse import unquote_to_bytes, urlencode

from shim.faults import BadRequest
from shim.legacy.types import GlanceStatus
from shim.settings import GLANCE_MAX_PAGE

KNOWN_PARAMS: Final = frozenset(
    {
        "name",
        "status",
        "changes-since",
        "server",
        "type",
        "minRam",
        "minDisk",
        "limit",
        "page_size",
        "marker",
        "offset",
    }
)
"""What Nova >= 30 keeps in the request after its query schema (plus ``property-*``)."""

PROPERTY_PREFIX: Final = "property-"

# Nova filter name -> Glance parameter (the ones that need no value rewriting here).
GLANCE_INT_MAX: Final = 2**31 - 1
_GLANCE_INTEGERS: Final = ("min_ram", "min_disk")
_ASCII_DIGITS: Final = re.compile("[0-9]+")
_FILTERS: Final[dict[str, str]] = {
    "name": "name",
    "type": "image_type",
    "minRam": "min_ram",
    "minDisk": "min_disk",
}
_UNFILTERABLE: Final = frozenset({"", "limit", "marker", "sort", "sort_key", "sort_dir"})

# contract.md D2: a Nova status filters on every Glance status displayed as it (nova.md §4.2).
_NOVA_STATUS: Final[dict[str, str]] = {
    "ACTIVE": "active",
    "SAVING": "in:queued,saving",
    "ERROR": "killed",
    "DELETED": "in:deleted,pending_delete",
    "UNKNOWN": "in:uploading,importing,deactivated",
}
_GLANCE_STATUSES: Final = frozenset(get_args(GlanceStatus))

# Nova's positive_integer: jsonschema ``pattern`` uses re.search, so "$" also matches
# before a final newline; reproduced with the very same expression.
_DIGITS: Final = re.compile(r"^[0-9]*$")
_SEPARATORS: Final = re.compile(rb"[&;]")
NOT_UTF8_MESSAGE: Final = "Query string is not UTF-8 encoded"


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What a Nova list request asks Glance for."""

    filters: tuple[tuple[str, str], ...]  # Glance params, unencoded values, in query order
    limit: int | None  # None => every image (unpaged)
    marker: str | None
    page_size: int | None  # the client's page_size capped at Glance's maximum; None if absent


def decode_query(raw_query: str | bytes) -> list[tuple[str, str]]:
    """Split a raw (still percent-encoded) query string into decoded pairs, like webob.

    Pass ``request.rel_url.raw_query_string``. Pairs are separated by ``&`` or ``;``,
    empty pairs are skipped, ``+`` is a space, a name without ``=`` has the value ``""``
    (so ``?limit`` and ``?limit=`` are both seen), a ``%`` not followed by two hex digits
    stays literal. Every name and value must be UTF-8 once decoded, else `BadRequest`
    "Query string is not UTF-8 encoded" (Nova >= 30).
    """
    if isinstance(raw_query, str):
        if not raw_query:
            return []
        try:
            # aiohttp decodes the request target as UTF-8 with surrogateescape.
            data = raw_query.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raise BadRequest(NOT_UTF8_MESSAGE) from None
    else:
        data = raw_query
    pairs: list[tuple[str, str]] = []
    try:
        for part in _SEPARATORS.split(data):
            if not part:
                continue
            name, _, value = part.partition(b"=")
            pairs.append((_unquote(name), _unquote(value)))
    except UnicodeDecodeError:
        raise BadRequest(NOT_UTF8_MESSAGE) from None
    return pairs


def _unquote(raw: bytes) -> str:
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8")


def glance_status(value: str) -> str:
    """The Glance ``status`` filter for a Nova ``status`` value (contract.md D2).

    A Glance status name, exactly as Glance spells it (lower case), is sent as is. A Nova
    status (any case: ``SAVING``, ``saving`` is Glance's own, ``Error``) becomes the Glance
    statuses shown as it. Anything else is lower-cased and sent as is, like Nova (an
    unknown status then lists nothing; ``in:a,b`` keeps working).
    """
    if value in _GLANCE_STATUSES:
        return value
    mapped = _NOVA_STATUS.get(value.upper())
    if mapped is not None:
        return mapped
    return value.lower()


def to_glance_query(params: Sequence[tuple[str, str]]) -> ListQuery:
    """Translate decoded Nova list parameters (in request order) into a `ListQuery`."""
    limits: list[str] = []
    page_sizes: list[str] = []
    offsets: list[str] = []
    marker: str | None = None
    filters: dict[str, str] = {}
    given_as: dict[str, str] = {}  # Glance filter -> the Nova parameter that set it last
    for name, value in params:
        glance_name = _FILTERS.get(name)
        if glance_name is not None:
            filters[glance_name] = value
            given_as[glance_name] = name
        elif name.startswith(PROPERTY_PREFIX):
            glance_name = name[len(PROPERTY_PREFIX) :]
            if glance_name in _UNFILTERABLE:
                continue
            if glance_name == "instance_uuid":
                value = _server_id(value)
            filters[glance_name] = value
            given_as[glance_name] = name
        elif name == "status":
            filters["status"] = glance_status(value)
            given_as["status"] = name
        elif name == "changes-since":
            filters["updated_at"] = "gte:" + value
            given_as["updated_at"] = name
        elif name == "server":
            filters["instance_uuid"] = _server_id(value)
            given_as["instance_uuid"] = name
        elif name == "limit":
            limits.append(value)
        elif name == "page_size":
            page_sizes.append(value)
        elif name == "marker":
            marker = value
        elif name == "offset":
            offsets.append(value)
    for glance_name, value in filters.items():
        if "\x00" in value:  # contract.md D14: Glance on PostgreSQL answers 500 to it
            raise BadRequest(
                f"Invalid input for query parameters {given_as.get(glance_name, glance_name)}. "
                "The value contains a NUL character."
            )
    if marker is not None and "\x00" in marker:
        # What Glance answers for any marker that is no image id (docs/nova.md §6.2).
        raise BadRequest(f"HTTP 400 Bad Request: No image found with ID {html.escape(marker)}")
    for glance_name in _GLANCE_INTEGERS:
        if glance_name in filters:
            _validate_glance_integer(given_as[glance_name], filters[glance_name])
    # Nova's schema validates every value, limit before page_size before offset ...
    for name, values in (("limit", limits), ("page_size", page_sizes), ("offset", offsets)):
        for value in values:
            _validate_positive(name, value)
    # ... then get_pagination_params converts the last value of each, in this order.
    limit = _to_int("limit", limits[-1]) if limits else None
    page_size = min(_to_int("page_size", page_sizes[-1]), GLANCE_MAX_PAGE) if page_sizes else None
    if offsets:
        _to_int("offset", offsets[-1])
    return ListQuery(tuple(filters.items()), limit, marker or None, page_size)


def _server_id(value: str) -> str:
    # A server href or a bare uuid both work; a trailing "/" leaves "" (Nova's rsplit).
    _, slash, tail = value.rpartition("/")
    return tail if slash else value


def _validate_positive(name: str, value: str) -> None:
    """Nova's ``positive_integer`` query schema, keyword order pattern, minimum, minLength."""
    prefix = f"Invalid input for query parameters {name}. Value: {value}. "
    if _DIGITS.search(value) is None:
        raise BadRequest(f"{prefix}{value!r} does not match '^[0-9]*$'")
    number = _number_from_str(value)
    if number is not None and number < 1:
        raise BadRequest(f"{prefix}{number!r} is less than the minimum of 1")
    if not value:
        raise BadRequest(f"{prefix}'' should be non-empty")


def _number_from_str(value: str) -> int | float | None:
    # Nova's validator compares numeric strings with ``minimum``: int, else float, else skip.
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return None


def _validate_glance_integer(name: str, value: str) -> None:
    """contract.md D15: ``min_ram``/``min_disk`` are 32-bit integer columns in Glance's
    database; anything else makes Glance on PostgreSQL answer 500 (sqlite and MySQL
    compare loosely instead), so it is refused here as the bad input it is. An empty value
    goes on as before."""
    if not value:
        return
    digits = value.lstrip("0")
    if not (
        _ASCII_DIGITS.fullmatch(value)
        and len(digits) <= 10
        and int(digits or "0") <= GLANCE_INT_MAX
    ):
        raise BadRequest(
            f"Invalid input for query parameters {name}. Value: {value}. "
            f"{value!r} is not an integer from 0 to {GLANCE_INT_MAX}"
        )


def _to_int(name: str, value: str) -> int:
    # oslo's validate_integer, reached only by values the schema let through that int()
    # still refuses: "\n", or more digits than Python's int-from-str limit.
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Invalid input received: {name} must be an integer") from None


def next_link_query(params: Sequence[tuple[str, str]], last_id: str) -> str:
    """The encoded query string of the ``next`` link (nova.md §4.6 with contract.md D9).

    Keeps the parameters Nova >= 30 keeps (`KNOWN_PARAMS` and ``property-*``), each once
    with its last value (the one that was applied, contract.md D9), sorted by name; ``marker`` takes
    *last_id* in place, or is appended last when absent; encoded by
    ``urllib.parse.urlencode`` as Nova does (space as ``+``).
    """
    kept: dict[str, str] = {}
    for name, value in params:
        if name in KNOWN_PARAMS or name.startswith(PROPERTY_PREFIX):
            kept[name] = value
    pairs = [(name, last_id if name == "marker" else kept[name]) for name in sorted(kept)]
    if "marker" not in kept:
        pairs.append(("marker", last_id))
    return urlencode(pairs)


def wants_next_link(limit: int | None, max_limit: int, returned: int) -> bool:
    """Nova's rule (nova.md §4.6): a next link iff ``min(limit or max_limit, max_limit)`` came."""
    max_items = min(max_limit if limit is None else limit, max_limit)
    return max_items != 0 and max_items == returned
