"""Event-loop choice shared by the floors and the clients: uvloop when asked for or available."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def loop_factory(choice: str = "auto") -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """(factory, name) for ``auto`` (uvloop if installed), ``uvloop`` or ``asyncio``."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop  # optional, like the shim's "fast" extra
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"
