"""Pure: Nova's request schemas for metadata writes, with Nova's exact error texts.

The schemas are those of ``nova/api/openstack/compute/schemas/image_metadata.py`` and
``parameter_types.metadata``, checked with jsonschema as Nova's ``_SchemaValidator`` does:
the first error of ``iter_errors`` wins; a top-level problem is the bare jsonschema
message, a nested one reads ``Invalid input for field/attribute <last path element>.
Value: <instance>. <message>``.

On ``/v2`` Nova swaps in its relaxed ``additionalProperties`` check (``nova/api/validation/
validators.py`` ``_soft_validate_additional_properties``, docs/nova.md §2.4): unknown
top-level keys are dropped, and a metadata key that fails the key pattern is reported as
``Additional properties are not allowed ('<key>' was unexpected)`` instead of jsonschema's
``... does not match any of the regexes ...`` — unless every key of that object fails it:
then Nova's check returns early and the object passes unchecked, values included (observed
against Nova 34, docs/nova.md appendix E).

The empty key fails the pattern like any other key outside it (Nova 34 refuses it on
``/v2.1``; on ``/v2`` it passes only as part of an object whose keys all fail).

Nothing here does I/O or knows about aiohttp; every failure is a `BadRequest`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import jsonschema
from jsonschema.exceptions import ValidationError

from shim.faults import BadRequest

KEY_PATTERN: Final = "^[a-zA-Z0-9-_:. ]{1,255}$"
_METADATA: Final[dict[str, Any]] = {
    "type": "object",
    "patternProperties": {KEY_PATTERN: {"type": "string", "maxLength": 255}},
    "additionalProperties": False,
}
_MANY: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"metadata": _METADATA},
    "required": ["metadata"],
    "additionalProperties": False,
}
_ONE: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"meta": {**_METADATA, "minProperties": 1, "maxProperties": 1}},
    "required": ["meta"],
    "additionalProperties": False,
}


def _soft_additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """Nova's legacy-v2 ``additionalProperties``: strip plain extras, name bad keys.

    Nova lists the bad keys in set order; they are sorted here so the text is stable.
    """
    if not validator.is_type(instance, "object") or allowed:
        return
    properties = schema.get("properties", {})
    patterns = "|".join(schema.get("patternProperties", {}))
    extras = sorted(
        key
        for key in instance
        if key not in properties and not (patterns and re.search(patterns, key))
    )
    # Nova returns here too when every key is an extra (a guard meant for oneOf schemas),
    # so on /v2 a metadata object whose keys all fail the pattern is not refused.
    if not extras or set(extras) == set(instance):
        return
    if patterns:
        verb = "was" if len(extras) == 1 else "were"
        names = ", ".join(repr(key) for key in extras)
        yield ValidationError(f"Additional properties are not allowed ({names} {verb} unexpected)")
    else:
        for key in extras:
            del instance[key]


_LEGACY_CLASS: Final = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator, {"additionalProperties": _soft_additional_properties}
)
_VALIDATORS: Final = {
    ("metadata", False): jsonschema.Draft202012Validator(_MANY),
    ("metadata", True): _LEGACY_CLASS(_MANY),
    ("meta", False): jsonschema.Draft202012Validator(_ONE),
    ("meta", True): _LEGACY_CLASS(_ONE),
}


def validate_metadata(body: Any, *, legacy_v2: bool = False) -> dict[str, str]:
    """``{"metadata": {...}}`` of POST/PUT .../metadata → the metadata dict."""
    return _validate("metadata", body, legacy_v2)


def validate_item(body: Any, *, legacy_v2: bool = False) -> dict[str, str]:
    """``{"meta": {key: value}}`` of PUT .../metadata/{key} → the one-entry dict."""
    return _validate("meta", body, legacy_v2)


def _validate(field: str, body: Any, legacy_v2: bool) -> dict[str, str]:
    validator = _VALIDATORS[(field, legacy_v2)]
    if isinstance(body, dict):
        body = dict(body)  # the legacy check strips keys: never touch the caller's dict
    for error in validator.iter_errors(body):
        if error.path:
            message = (
                f"Invalid input for field/attribute {error.path[-1]}. "
                f"Value: {error.instance}. {error.message}"
            )
        else:
            message = error.message
        raise BadRequest(message)
    result: dict[str, str] = body[field]
    return result
