"""Nova's metadata request schemas: accepted bodies and the exact 400 texts (appendix C)."""

from __future__ import annotations

from typing import Any

import pytest

from shim.faults import BadRequest
from shim.legacy.metadata_schema import validate_item, validate_metadata

PATTERN = "'^[a-zA-Z0-9-_:. ]{1,255}$'"


def refusal(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(BadRequest) as caught:
        call(*args, **kwargs)
    assert caught.value.status == 400
    assert caught.value.name == "badRequest"
    return caught.value.message


@pytest.mark.parametrize("legacy_v2", [False, True])
@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"k": "v"},
        {"Label": "UpdatedImage", "kernel_id": "False"},
        {"a-b_c:d.e f": ""},
        {"k" * 255: "v" * 255},
        {"block_device_mapping": '[{"boot_index": 0}]'},
        {"k": "ça va ☃"},
    ],
)
def test_valid_metadata_is_returned_as_sent(legacy_v2: bool, metadata: dict[str, str]) -> None:
    body = {"metadata": dict(metadata)}
    assert validate_metadata(body, legacy_v2=legacy_v2) == metadata


@pytest.mark.parametrize("legacy_v2", [False, True])
def test_valid_item_is_returned_as_sent(legacy_v2: bool) -> None:
    assert validate_item({"meta": {"auto_disk_config": "False"}}, legacy_v2=legacy_v2) == {
        "auto_disk_config": "False"
    }
    assert validate_item({"meta": {"a": ""}}, legacy_v2=legacy_v2) == {"a": ""}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # appendix C, "metadata post bad key"
        (
            {"metadata": {"bad/key": "x"}},
            "Invalid input for field/attribute metadata. Value: {'bad/key': 'x'}. "
            f"'bad/key' does not match any of the regexes: {PATTERN}",
        ),
        # appendix C, "metadata post non-string value"
        (
            {"metadata": {"k": 5}},
            "Invalid input for field/attribute k. Value: 5. 5 is not of type 'string'",
        ),
        # appendix C, "metadata post long value"
        (
            {"metadata": {"k": "x" * 256}},
            f"Invalid input for field/attribute k. Value: {'x' * 256}. '{'x' * 256}' is too long",
        ),
        # appendix C, "metadata post missing metadata"
        ({"meta": {"k": "v"}}, "'metadata' is a required property"),
        ({}, "'metadata' is a required property"),
        # an empty body decodes to None (docs/nova.md §7)
        (None, "None is not of type 'object'"),
        ([], "[] is not of type 'object'"),
        ("text", "'text' is not of type 'object'"),
        (
            {"metadata": "k=v"},
            "Invalid input for field/attribute metadata. Value: k=v. 'k=v' is not of type 'object'",
        ),
        (
            {"metadata": {"k": None}},
            "Invalid input for field/attribute k. Value: None. None is not of type 'string'",
        ),
        (
            {"metadata": {"k": True}},
            "Invalid input for field/attribute k. Value: True. True is not of type 'string'",
        ),
        (
            {"metadata": {"k": ["v"]}},
            "Invalid input for field/attribute k. Value: ['v']. ['v'] is not of type 'string'",
        ),
        (
            {"metadata": {"k" * 256: "v"}},
            f"Invalid input for field/attribute metadata. Value: {{'{'k' * 256}': 'v'}}. "
            f"'{'k' * 256}' does not match any of the regexes: {PATTERN}",
        ),
        (
            {"metadata": {"a/b": "x", "c~d": "y"}},
            "Invalid input for field/attribute metadata. Value: {'a/b': 'x', 'c~d': 'y'}. "
            f"'a/b', 'c~d' do not match any of the regexes: {PATTERN}",
        ),
        (
            {"metadata": {"k": "v"}, "extra": 1},
            "Additional properties are not allowed ('extra' was unexpected)",
        ),
        # the empty key fails the pattern, as Nova 34 says on /v2.1 (docs/nova.md appendix E)
        (
            {"metadata": {"": "empty key"}},
            "Invalid input for field/attribute metadata. Value: {'': 'empty key'}. "
            f"'' does not match any of the regexes: {PATTERN}",
        ),
        (
            {"metadata": {"": "x", "bad/key": "y"}},
            "Invalid input for field/attribute metadata. Value: {'': 'x', 'bad/key': 'y'}. "
            f"'', 'bad/key' do not match any of the regexes: {PATTERN}",
        ),
    ],
)
def test_metadata_refusals_carry_novas_text(body: Any, message: str) -> None:
    assert refusal(validate_metadata, body) == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # appendix C, "metadata put item two keys"
        (
            {"meta": {"a": "x", "b": "y"}},
            "Invalid input for field/attribute meta. Value: {'a': 'x', 'b': 'y'}. "
            "{'a': 'x', 'b': 'y'} has too many properties",
        ),
        (
            {"meta": {}},
            "Invalid input for field/attribute meta. Value: {}. {} should be non-empty",
        ),
        ({"metadata": {"a": "x"}}, "'meta' is a required property"),
        (None, "None is not of type 'object'"),
        (
            {"meta": {"a": 1}},
            "Invalid input for field/attribute a. Value: 1. 1 is not of type 'string'",
        ),
        (
            {"meta": {"a": "x"}, "metadata": {}},
            "Additional properties are not allowed ('metadata' was unexpected)",
        ),
    ],
)
def test_item_refusals_carry_novas_text(body: Any, message: str) -> None:
    assert refusal(validate_item, body) == message


def test_legacy_v2_drops_unknown_top_level_keys() -> None:
    body = {"metadata": {"k": "v"}, "extra": 1, "server": {"x": 1}}
    assert validate_metadata(body, legacy_v2=True) == {"k": "v"}
    assert body == {"metadata": {"k": "v"}, "extra": 1, "server": {"x": 1}}  # not mutated
    assert validate_item({"meta": {"a": "x"}, "metadata": {}}, legacy_v2=True) == {"a": "x"}
    assert validate_metadata({"": {}, "metadata": {"": "e"}}, legacy_v2=True) == {"": "e"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Nova's relaxed additionalProperties on /v2 names the key instead of the regex
        (
            {"metadata": {"bad/key": "x", "good": "y"}},
            "Invalid input for field/attribute metadata. Value: {'bad/key': 'x', 'good': 'y'}. "
            "Additional properties are not allowed ('bad/key' was unexpected)",
        ),
        (
            {"metadata": {"z/z": "x", "a/a": "y", "k": "v"}, "extra": 1},
            "Invalid input for field/attribute metadata. Value: "
            "{'z/z': 'x', 'a/a': 'y', 'k': 'v'}. "
            "Additional properties are not allowed ('a/a', 'z/z' were unexpected)",
        ),
        ({"extra": 1}, "'metadata' is a required property"),
        (
            {"metadata": {"k": 5}, "extra": 1},
            "Invalid input for field/attribute k. Value: 5. 5 is not of type 'string'",
        ),
        (None, "None is not of type 'object'"),
    ],
)
def test_legacy_v2_refusals(body: Any, message: str) -> None:
    assert refusal(validate_metadata, body, legacy_v2=True) == message


def test_legacy_v2_lets_an_object_of_bad_keys_through_as_nova_does() -> None:
    """Nova's relaxed check returns early when every key of the object is an extra."""
    assert validate_metadata({"metadata": {"bad/key": "x"}}, legacy_v2=True) == {"bad/key": "x"}
    # Values go unchecked too: Glance then refuses what is not a string.
    body = {"metadata": {"z/z": 5, "a/a": None}, "extra": 1}
    passed: object = validate_metadata(body, legacy_v2=True)
    assert passed == {"z/z": 5, "a/a": None}
    assert refusal(validate_metadata, {"metadata": {"bad/key": "x"}}) == (
        "Invalid input for field/attribute metadata. Value: {'bad/key': 'x'}. "
        f"'bad/key' does not match any of the regexes: {PATTERN}"
    )


def test_legacy_v2_item_still_wants_exactly_one_key() -> None:
    assert refusal(validate_item, {"meta": {"a": "x", "b": "y"}, "x": 1}, legacy_v2=True) == (
        "Invalid input for field/attribute meta. Value: {'a': 'x', 'b': 'y'}. "
        "{'a': 'x', 'b': 'y'} has too many properties"
    )
