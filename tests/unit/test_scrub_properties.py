"""`scrub` skips a pattern only where it cannot match: for any text, the answer is the one
both patterns give when always applied (shim/observability.py)."""

from __future__ import annotations

import contextvars

from hypothesis import example, given
from hypothesis import strategies as st

from shim import observability
from shim.observability import REDACTED, bind_request_secrets, scrub

# Pieces that make the patterns match, or nearly match, mixed with arbitrary text.
FRAGMENTS = st.sampled_from(
    [
        "X-Auth-Token",
        "token",
        "PASSWORD",
        "secret",
        "authorization",
        "Cookie",
        ":",
        "=",
        " ",
        "'",
        '"',
        "Bearer ",
        "gAAAAA",
        "eyJ",
        "hdr0",
        ".",
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "9f2c4e1ab3d54f6e8a7b0c1d2e3f4a5b",
        "-",
        "_",
    ]
)
TEXTS = st.lists(FRAGMENTS | st.text(max_size=12), max_size=24).map("".join)


def always_both(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = observability._NAMED_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    return observability._TOKEN_SHAPES.sub(REDACTED, text)


@given(text=TEXTS)
@example(text="password=hunter22")
@example(text="{'X-Auth-Token': 'abc'}")
@example(text="eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl")
@example(text="gAAAAABl" + "x" * 30)
def test_scrub_is_both_patterns_applied(text: str) -> None:
    assert scrub(text) == always_both(text, ())


@given(text=TEXTS, secrets=st.lists(TEXTS.filter(lambda s: len(s) >= 8), max_size=2))
def test_scrub_with_the_request_secrets_is_both_patterns_applied(
    text: str, secrets: list[str]
) -> None:
    def inside() -> str:
        bind_request_secrets(secrets)
        return scrub(text)

    assert contextvars.copy_context().run(inside) == always_both(text, tuple(secrets))


def test_a_project_id_is_left_alone_and_a_fernet_token_is_not() -> None:
    project = "9f2c4e1ab3d54f6e8a7b0c1d2e3f4a5b"
    assert scrub(project) == project
    assert scrub("gAAAAA" + "x" * 40) == REDACTED
    assert scrub("x-auth-token: abc123") == "x-auth-token: " + REDACTED
