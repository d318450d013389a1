"""Reading an upstream answer whole, but never more than a bound (docs/contract.md D13)."""

from __future__ import annotations

import aiohttp


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to pass *limit* bytes."""
    length = response.content_length
    if length is not None:
        return None if length > limit else await response.read()
    chunks = bytearray()
    async for chunk in response.content.iter_any():
        chunks += chunk
        if len(chunks) > limit:
            return None
    return bytes(chunks)
