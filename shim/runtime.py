"""`Runtime`: the mutable state of one worker that its probes read.

Owned by the worker (`shim.server`), written by the API app's lifecycle and by draining, read
by ``/readyz`` on the metrics port. It imports nothing from the shim.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Runtime:
    """Mutable process state read by /readyz (the app's mapping is frozen once started)."""

    session_open: bool = False
    draining: bool = False
