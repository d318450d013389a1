# Stub for the C extension shim/legacy/_render.c (see shim/legacy/render.py).
from collections.abc import Callable, Set
from typing import Any

def configure(
    json_property: Callable[[str], Any],
    bool_from_string: Callable[[object], bool],
    dumps: Callable[[Any], bytes],
) -> None: ...
def detail(
    images: list[dict[str, Any]],
    hidden: Set[str],
    image_self: bytes,
    image_bookmark: bytes,
    image_alternate: bytes,
    server_self: bytes,
    server_bookmark: bytes,
    /,
) -> bytes | None: ...
def basic(
    images: list[dict[str, Any]],
    hidden: None,
    image_self: bytes,
    image_bookmark: bytes,
    image_alternate: bytes,
    /,
) -> bytes | None: ...
