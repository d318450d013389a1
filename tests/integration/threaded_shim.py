"""The shim served as a worker serves it, on an event loop in a background thread.

For synchronous tests (hypothesis-driven ones among them) that talk to the shim and the
real stack with blocking HTTP: the test thread never runs the shim's loop, so a blocking
call in the test cannot stall the server it is waiting for.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager

from shim.settings import Settings
from tests.fakes.shim_server import ServedShim, served_shim

START_TIMEOUT = 30.0


@contextmanager
def shim_in_thread(settings: Settings) -> Iterator[ServedShim]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="shim-loop", daemon=True)
    thread.start()
    context: AbstractAsyncContextManager[ServedShim] = served_shim(settings)
    try:
        served = asyncio.run_coroutine_threadsafe(context.__aenter__(), loop).result(START_TIMEOUT)
        try:
            yield served
        finally:
            asyncio.run_coroutine_threadsafe(context.__aexit__(None, None, None), loop).result(
                START_TIMEOUT
            )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT)
        loop.close()
