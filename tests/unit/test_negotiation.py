"""The success content type Nova picks from Accept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shim.legacy.negotiation import COMPUTE_JSON, JSON, negotiate


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/json", JSON),
        ("text/html", JSON),  # nothing acceptable: Nova falls back to JSON
        (COMPUTE_JSON, COMPUTE_JSON),
        (f"{COMPUTE_JSON}, application/json", JSON),  # a tie goes to the first offer
        (f"application/json;q=0.5, {COMPUTE_JSON}", COMPUTE_JSON),
        (f"application/*;q=0.2, {COMPUTE_JSON};q=0.9", COMPUTE_JSON),
        (f"*/*;q=0.9, {COMPUTE_JSON};q=0.1", JSON),
        (f"{COMPUTE_JSON};q=0", JSON),
        ("APPLICATION/VND.OPENSTACK.COMPUTE+JSON;Q=1, application/json;q=0.8", COMPUTE_JSON),
        (f"{COMPUTE_JSON};q=oops, application/json", JSON),
    ],
)
def test_negotiation(accept: str | None, chosen: str) -> None:
    assert negotiate(accept) == chosen


@pytest.mark.hypothesis
@given(st.text(max_size=200))
def test_any_accept_header_yields_one_of_the_offers(accept: str) -> None:
    assert negotiate(accept) in (JSON, COMPUTE_JSON)
