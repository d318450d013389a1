"""Properties of the metadata request schemas (Hypothesis).

Any JSON body either validates to the dict the client sent (str → str, except where
Nova's relaxed /v2 check lets an object of only bad keys through unchecked) or raises
`BadRequest`; never another error. Which of the two is decided here by an oracle written
from docs/nova.md §7 and appendix E, not by the schema under test.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from shim.faults import BadRequest
from shim.legacy.metadata_schema import validate_item, validate_metadata
from tests.unit.strategies import json_trees

pytestmark = pytest.mark.hypothesis

# nova.md §7: letters, digits, "-", "_", ":", ".", space; 1-255 of them. jsonschema applies the
# pattern with re.search, so "$" also matches before one trailing newline.
_KEY_RE = re.compile(r"^[a-zA-Z0-9\-_:. ]{1,255}$")
_KEY_CHARS = "abcXYZ019-_:. "
_OTHER_CHARS = "/~\n\t\"'é☃\x00{}"

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what orjson can decode
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_JSON = json_trees(_SCALARS, keys=st.text(max_size=8), width=4)
_KEYS = st.one_of(
    st.text(alphabet=_KEY_CHARS, max_size=12),
    st.text(alphabet=_KEY_CHARS + _OTHER_CHARS, max_size=12),
    st.integers(min_value=250, max_value=260).map(lambda n: "k" * n),
    st.sampled_from(["", "a\n", "\n", "empty-key", "empty-key_", "os_glance_x"]),
)
_VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=250, max_value=260).map(lambda n: "v" * n),
    _SCALARS,
    _JSON,
)
_METADATA = st.one_of(st.dictionaries(_KEYS, _VALUES, max_size=5), _JSON)
_TOP_KEYS = st.sampled_from(["metadata", "meta", "extra", ""])


def _bodies(field: str) -> st.SearchStrategy[Any]:
    shaped = st.builds(
        lambda inner, extras: {field: inner, **extras},
        _METADATA,
        st.dictionaries(_TOP_KEYS.filter(lambda key: key != field), _JSON, max_size=2),
    )
    return st.one_of(shaped, st.dictionaries(_TOP_KEYS, _METADATA, max_size=3), _JSON)


def _valid_key(key: str) -> bool:
    return _KEY_RE.search(key) is not None


def _unchecked(body: Any, field: str, legacy_v2: bool) -> bool:
    """/v2: an object whose keys all fail the pattern passes Nova's relaxed check as is."""
    inner = body.get(field) if isinstance(body, dict) else None
    return legacy_v2 and isinstance(inner, dict) and bool(inner) and not any(map(_valid_key, inner))


def _acceptable(body: Any, field: str, legacy_v2: bool, exactly_one: bool) -> bool:
    if not isinstance(body, dict) or field not in body:
        return False
    if not legacy_v2 and set(body) != {field}:
        return False
    inner = body[field]
    if not isinstance(inner, dict) or (exactly_one and len(inner) != 1):
        return False
    if any(
        "\x00" in key or (isinstance(value, str) and "\x00" in value)
        for key, value in inner.items()
    ):
        return False  # contract.md D14: Glance on PostgreSQL cannot store a NUL
    if _unchecked(body, field, legacy_v2):
        return True
    return all(
        _valid_key(key) and isinstance(value, str) and len(value) <= 255
        for key, value in inner.items()
    )


def _check(body: Any, field: str, legacy_v2: bool) -> None:
    # What the shim validates is what orjson decoded from the wire.
    body = orjson.loads(orjson.dumps(body))
    sent = copy.deepcopy(body)
    validate = validate_metadata if field == "metadata" else validate_item
    expected = _acceptable(body, field, legacy_v2, exactly_one=field == "meta")
    outcome: dict[str, str] | BadRequest
    try:
        outcome = validate(body, legacy_v2=legacy_v2)
    except BadRequest as fault:
        outcome = fault
    if isinstance(outcome, BadRequest):
        assert not expected, outcome.message
        assert (outcome.status, outcome.name) == (400, "badRequest")
        assert isinstance(outcome.message, str)
        assert outcome.message
        if "empty-key" not in repr(sent):
            assert "empty-key" not in outcome.message
    else:
        assert expected
        if not _unchecked(body, field, legacy_v2):
            assert {type(item) for pair in outcome.items() for item in pair} <= {str}
        assert outcome == sent[field]
    assert body == sent  # the caller's body is never changed


@given(body=_bodies("metadata"), legacy_v2=st.booleans())
@example(body={"metadata": {"": "x"}}, legacy_v2=False)
@example(body={"metadata": {"": 5}}, legacy_v2=True)
@example(body={"metadata": {"k" * 255: "v" * 255}}, legacy_v2=False)
@example(body={"metadata": {"k" * 256: "v"}}, legacy_v2=False)
@example(body={"metadata": {"k": "v" * 256}}, legacy_v2=True)
@example(body={"metadata": {"a\n": "x"}}, legacy_v2=False)
@example(body={"metadata": {"": "x", "empty-key": 1}}, legacy_v2=False)
@example(body={"metadata": {}, "extra": None}, legacy_v2=True)
@example(body=None, legacy_v2=False)
@example(body={"metadata": {"k": "a\x00b"}}, legacy_v2=False)
@example(body={"metadata": {"\x00": "v"}}, legacy_v2=True)
def test_any_metadata_body_validates_or_is_a_bad_request(body: Any, legacy_v2: bool) -> None:
    _check(body, "metadata", legacy_v2)


@given(body=_bodies("meta"), legacy_v2=st.booleans())
@example(body={"meta": {}}, legacy_v2=False)
@example(body={"meta": {"a": "x", "b": "y"}}, legacy_v2=True)
@example(body={"meta": {"": "x"}, "metadata": {}}, legacy_v2=True)
def test_any_item_body_validates_or_is_a_bad_request(body: Any, legacy_v2: bool) -> None:
    _check(body, "meta", legacy_v2)
