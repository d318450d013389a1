"""Compute microversions: reading the request headers and the ranges of the image routes.

Pure: headers in, `Version` or a `NovaFault` out; no aiohttp, no I/O. Follows Nova's
``Request.set_api_version_request`` (docs/nova.md §2.2) with the same library,
``microversion_parse.get_version``:

* ``OpenStack-API-Version`` first: comma-separated entries scanned from the right, the
  first ``compute <v>`` entry (service case-insensitive) wins; then the legacy
  ``X-OpenStack-Nova-API-Version`` (last comma-separated item); repeated headers fold with
  ``,``. No header -> 2.1.
* exactly ``latest`` -> the configured maximum; otherwise ``^([1-9]\\d*)\\.([1-9]\\d*|0)$``
  with ASCII digits (Nova's WSGI server hands it Latin-1 text, so non-ASCII digits never
  match there either), else 400 without version headers; outside [2.1, max] -> 406
  ``computeFault`` echoing the requested version in the version headers (nova.md §2.2, §12 B13).
* Versions compare numerically (``2.1000 > 2.104``).

Route ranges (nova.md §2.1): images 2.1-2.35, image metadata 2.1-2.38, the ``until`` of
each row of `shim.legacy.table`; ``SHIM_MICROVERSION_CAP=off`` serves both at every
version. The ``/v2`` prefix ignores all of this (nova.md §2.4): callers do not call
`requested_version` there and send no version headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import microversion_parse

from shim.faults import BadRequest, NotAcceptable

STANDARD_HEADER: Final = "OpenStack-API-Version"
LEGACY_HEADER: Final = "X-OpenStack-Nova-API-Version"
_HEADER_NAMES: Final = frozenset({STANDARD_HEADER.lower(), LEGACY_HEADER.lower()})
_LEGACY_HEADERS: Final = [LEGACY_HEADER.lower()]
_VERSION_RE: Final = re.compile(r"^([1-9][0-9]*)\.([1-9][0-9]*|0)$")
_MAX_DIGITS: Final = 9  # per part, for the configured maximum as for requests


@dataclass(frozen=True, order=True, slots=True)
class Version:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


MIN_VERSION: Final = Version(2, 1)
IMAGES_MAX: Final = Version(2, 35)
METADATA_MAX: Final = Version(2, 38)


def parse_version(value: str) -> Version | None:
    """``major.minor`` as Nova writes it (no sign, no leading zeros, at most nine digits a
    part), else ``None``. The one definition of a version's text in the shim."""
    match = _VERSION_RE.fullmatch(value)
    if match is None or max(len(part) for part in match.groups()) > _MAX_DIGITS:
        return None
    return Version(int(match.group(1)), int(match.group(2)))


def parse_max(value: str) -> Version:
    """Parse a configured maximum such as ``2.104``; `ValueError` if malformed."""
    version = parse_version(value)
    if version is None:
        raise ValueError(f"expected a microversion such as 2.104, got {value!r}")
    if version < MIN_VERSION:
        raise ValueError(f"the maximum microversion must be at least {MIN_VERSION}")
    return version


def requested_version(headers: Iterable[tuple[str, str]], max_version: Version) -> Version:
    """The microversion a request asks for (nova.md §2.2), or `BadRequest` / `NotAcceptable`.

    *headers* are ``(name, value)`` pairs, repeated names included
    (``request.headers.items()``).
    """
    # Only the two version headers go to the parser: it would otherwise also accept a
    # WSGI-style "http_openstack_api_version" header name, which never reaches Nova.
    pairs = [(name, value) for name, value in headers if name.lower() in _HEADER_NAMES]
    if not pairs:
        return MIN_VERSION
    raw: str | None = microversion_parse.get_version(
        pairs, service_type="compute", legacy_headers=_LEGACY_HEADERS
    )
    if raw is None:
        return MIN_VERSION
    if raw == "latest":
        return max_version
    match = _VERSION_RE.match(raw)
    if match is None:
        raise BadRequest(
            f"API Version String {raw} is of invalid format. Must be of format MajorNum.MinorNum."
        )
    major, minor = match.groups()
    if len(major) > _MAX_DIGITS or len(minor) > _MAX_DIGITS:
        # Beyond any configurable maximum (and beyond int() for 4300+ digits, where Nova
        # answers 500): out of range. The regex admits no leading zeros, so the text is
        # already Nova's normalised "major.minor".
        raise _not_supported(f"{major}.{minor}", max_version)
    version = Version(int(major), int(minor))
    if not MIN_VERSION <= version <= max_version:
        raise _not_supported(str(version), max_version)
    return version


def _not_supported(text: str, max_version: Version) -> NotAcceptable:
    return NotAcceptable(
        f"Version {text} is not supported by the API. "
        f"Minimum is {MIN_VERSION} and maximum is {max_version}.",
        headers=_headers(text),
    )


def version_headers(version: Version) -> tuple[tuple[str, str], ...]:
    """Response headers at *version* (nova.md §2.3): two ``Vary`` lines, not merged."""
    return _headers(str(version))


def _headers(text: str) -> tuple[tuple[str, str], ...]:
    return (
        (STANDARD_HEADER, f"compute {text}"),
        (LEGACY_HEADER, text),
        ("Vary", STANDARD_HEADER),
        ("Vary", LEGACY_HEADER),
    )


def route_allows(until: Version, version: Version, cap: Literal["nova", "off"]) -> bool:
    """Whether a route Nova served up to *until* answers at *version*; ``False`` means
    Nova's plain 404 (nova.md §2.1)."""
    return cap == "off" or MIN_VERSION <= version <= until
