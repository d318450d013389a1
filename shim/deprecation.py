"""Deprecation signals for the legacy image routes: ``Deprecation``, ``Sunset``, ``Link``.

Pure (no aiohttp, no I/O). `deprecation_headers` turns the three settings into the header
pairs added to every legacy image response (never to passthrough answers), and raises
`ValueError` naming the setting when one is malformed, so start-up stops (docs/contract.md §8).

=========================  ==========================================  ========================
setting                    accepted                                    header sent
=========================  ==========================================  ========================
``SHIM_DEPRECATION``       ``@<epoch>``, an HTTP-date, an ISO 8601     ``Deprecation: @<epoch>``
                           date or date-time (no zone = UTC)           (RFC 9745 §2: an RFC 9651
                                                                       Date structured field)
``SHIM_SUNSET``            the same                                    ``Sunset: <IMF-fixdate>``
                                                                       (RFC 8594 §3)
``SHIM_DEPRECATION_LINK``  an absolute http(s) URL                     ``Link: <url>;
                                                                       rel="deprecation";
                                                                       type="text/html"``
                                                                       (RFC 9745 §3)
=========================  ==========================================  ========================

A sunset earlier than the deprecation is refused (RFC 9745 §4: the resource must not go
away before it is deprecated).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from email.utils import format_datetime, parsedate_to_datetime
from typing import Final
from urllib.parse import urlsplit

Headers = tuple[tuple[str, str], ...]

_EPOCH: Final = re.compile(r"@(-?\d{1,12})")
# Characters that would break out of the Link header's <...> (RFC 8288 §3) or the field.
_LINK_FORBIDDEN: Final = re.compile(r"[\s<>\"\x00-\x1f\x7f]")


def parse_instant(name: str, raw: str) -> datetime:
    """An aware UTC datetime from ``@epoch``, an HTTP-date or ISO 8601; ValueError names *name*."""
    text = raw.strip()
    try:
        if match := _EPOCH.fullmatch(text):
            return datetime.fromtimestamp(int(match.group(1)), UTC)
        if text[:1].isdigit():
            if len(text) == 10:
                return datetime.combine(date.fromisoformat(text), time(), UTC)
            parsed = datetime.fromisoformat(text)
        else:
            # IMF-fixdate, and the obsolete RFC 850 and asctime forms (RFC 9110 §5.6.7).
            parsed = parsedate_to_datetime(text)
    except (ValueError, TypeError, OverflowError, OSError, IndexError):
        raise ValueError(
            f"{name}: expected @<epoch seconds>, an HTTP-date or an ISO 8601 date, got {raw!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def deprecation_value(when: datetime) -> str:
    """RFC 9745 §2.1: ``@`` and the integer seconds since the epoch."""
    return f"@{int(when.timestamp())}"


def sunset_value(when: datetime) -> str:
    """RFC 8594 §3: an HTTP-date in IMF-fixdate form."""
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def link_value(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or _LINK_FORBIDDEN.search(url):
        raise ValueError(f"{name}: expected an absolute http(s) URL, got {url!r}")
    return f'<{url}>; rel="deprecation"; type="text/html"'


def deprecation_headers(deprecation: str | None, sunset: str | None, link: str | None) -> Headers:
    """The header pairs for the three settings (each optional); ValueError if malformed."""
    headers: list[tuple[str, str]] = []
    deprecated_at = None
    if deprecation:
        deprecated_at = parse_instant("SHIM_DEPRECATION", deprecation)
        headers.append(("Deprecation", deprecation_value(deprecated_at)))
    if sunset:
        sunset_at = parse_instant("SHIM_SUNSET", sunset)
        if deprecated_at is not None and sunset_at < deprecated_at:
            raise ValueError("SHIM_SUNSET must not be earlier than SHIM_DEPRECATION")
        headers.append(("Sunset", sunset_value(sunset_at)))
    if link:
        headers.append(("Link", link_value("SHIM_DEPRECATION_LINK", link.strip())))
    return tuple(headers)
