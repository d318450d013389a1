"""Pure: the success content type Nova would pick from a request's ``Accept`` header.

Nova offers ``application/json`` and ``application/vnd.openstack.compute+json``
(``wsgi.Request.best_match_content_type``): the offer the client rates highest wins,
``application/json`` on a tie, when nothing matches, or when there is no ``Accept``.
Each offer is rated by the most specific media range that matches it (RFC 9110 §12.5.1).
"""

from __future__ import annotations

from typing import Final

JSON: Final = "application/json"
COMPUTE_JSON: Final = "application/vnd.openstack.compute+json"
_OFFERS: Final = (JSON, COMPUTE_JSON)


def negotiate(accept: str | None) -> str:
    if not accept or COMPUTE_JSON not in accept.lower():
        return JSON  # the common case, decided without parsing
    best, best_q = JSON, 0.0
    ranges = [_parse(part) for part in accept.split(",")]
    for offer in _OFFERS:
        q = _quality(offer, ranges)
        if q > best_q:
            best, best_q = offer, q
    return best


def _parse(part: str) -> tuple[str, float]:
    media, *params = (piece.strip() for piece in part.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return media.lower(), min(max(q, 0.0), 1.0)


def _quality(offer: str, ranges: list[tuple[str, float]]) -> float:
    kind = offer.split("/", 1)[0]
    found: tuple[int, float] | None = None
    for media, q in ranges:
        if media == offer:
            specificity = 2
        elif media == f"{kind}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if found is None or specificity > found[0]:
            found = (specificity, q)
    return found[1] if found is not None else 0.0
