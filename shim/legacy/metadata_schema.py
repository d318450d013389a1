"""Pure: Nova's request schemas for metadata writes, with Nova's exact error texts.

The schemas are those of ``nova/api/openstack/compute/schemas/image_metadata.py`` and
``parameter_types.metadata``; errors are rendered as Nova's validator does: a top-level
problem is the bare jsonschema message, a nested one reads ``Invalid input for
field/attribute <last path element>. Value: <instance>. <message>``. On ``/v2`` unknown
top-level keys are dropped instead of refused (NOVA_IMAGE_API.md §2.4).
"""

from __future__ import annotations

from typing import Any, Final

import jsonschema

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
_MANY_VALIDATOR: Final = jsonschema.Draft202012Validator(_MANY)
_ONE_VALIDATOR: Final = jsonschema.Draft202012Validator(_ONE)


def validate_metadata(body: Any, *, legacy_v2: bool = False) -> dict[str, str]:
    """``{"metadata": {...}}`` of POST/PUT .../metadata → the metadata dict."""
    return _validate(_MANY_VALIDATOR, "metadata", body, legacy_v2)


def validate_item(body: Any, *, legacy_v2: bool = False) -> dict[str, str]:
    """``{"meta": {key: value}}`` of PUT .../metadata/{key} → the one-entry dict."""
    return _validate(_ONE_VALIDATOR, "meta", body, legacy_v2)


def _validate(
    validator: jsonschema.Draft202012Validator, field: str, body: Any, legacy_v2: bool
) -> dict[str, str]:
    if legacy_v2 and isinstance(body, dict):
        body = {k: v for k, v in body.items() if k == field}
    placeholder = None
    if isinstance(body, dict) and isinstance(body.get(field), dict) and "" in body[field]:
        # Nova 34 accepts the empty key although the pattern asks for one character
        # (NOVA_IMAGE_API.md appendix D): validate it under a stand-in name.
        placeholder = "empty-key"
        while placeholder in body[field]:
            placeholder += "_"
        stand_in = {(placeholder if k == "" else k): v for k, v in body[field].items()}
        _raise_first(validator, {**body, field: stand_in}, placeholder)
    else:
        _raise_first(validator, body, None)
    result: dict[str, str] = body[field]
    return result


def _raise_first(
    validator: jsonschema.Draft202012Validator, instance: Any, placeholder: str | None
) -> None:
    for error in validator.iter_errors(instance):
        if error.path:
            name = error.path[-1]
            message = (
                f"Invalid input for field/attribute {'' if name == placeholder else name}. "
                f"Value: {error.instance}. {error.message}"
            )
        else:
            message = error.message
        if placeholder is not None:
            message = message.replace(repr(placeholder), "''")
        raise BadRequest(message)
