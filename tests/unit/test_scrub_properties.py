"""`scrub` is fast without changing a byte: for any text, its answer is the one of the plain
patterns below (the named-value pattern tried from every position, both patterns always
applied), which is what the shim did before it skipped patterns that cannot match
(shim/observability.py)."""

from __future__ import annotations

import contextvars
import re

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
        "Proxy-",
        "\u0131",
        "\u0130",
        "\u017f",
        "\u212a",
        "x",
        "{",
        "}",
        ",",
        "&",
        ";",
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


PLAIN_NAMED_VALUE = re.compile(
    r"(?i)((?:[\w-]*(?:token|password|passwd|secret)|authorization|cookie)['\"]?\s*[:=]\s*['\"]?)"
    r"(?:bearer\s+|basic\s+)?[^'\"\s,;}&]+"
)


def always_both(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = PLAIN_NAMED_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    return observability._TOKEN_SHAPES.sub(REDACTED, text)


@given(text=TEXTS)
@example(text="password=hunter22")
@example(text="{'X-Auth-Token': 'abc'}")
@example(text="eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl")
@example(text="gAAAAABl" + "x" * 30)
@example(text="Proxy-Authorization: Basic abc, setcookie=1; my-x-auth-token=v")
@example(text="AUTHOR\u0131ZATION: x")
@example(text="x-auth-toKen=x pa\u017f\u017fword=y")
@example(text='{"path": "/v2.1/p/images", "X-Subject-Token": "t", "a_token": 1}')
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
