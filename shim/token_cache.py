"""A bounded, time-limited cache of token verdicts, with one validation in flight per token.

Owns how long the shim may trust an answer from Keystone (docs/contract.md §6):

* keys are the SHA-256 digest of the token: the raw token is never a key, so a heap dump
  or a debug print of the cache shows no credential;
* a valid token is kept for at most ``ttl`` seconds and never past its own expiry
  (``lifetime``, seconds left until ``expires_at``), so a revoked token stops working
  within ``ttl``;
* an invalid token is remembered for ``negative_ttl`` (short: a token Keystone has not
  yet replicated should not stay refused for long), which keeps a client hammering with a
  bad token from hammering Keystone;
* at most ``max_size`` entries, the least recently used dropped first;
* concurrent lookups of the same uncached token share one load (one Keystone call).

It must not talk to Keystone or know what a verdict contains; `shim.keystone` does both.
A load that raises (Keystone unreachable) is not cached: every waiter gets the error.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

DEFAULT_NEGATIVE_TTL: Final = 5.0

V = TypeVar("V")


def token_key(token: str) -> bytes:
    """The cache key of *token*: its SHA-256 digest (surrogates kept, never an error)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Verdict(Generic[V]):
    """What a load found: ``value`` ``None`` means the token is invalid."""

    value: V | None
    lifetime: float = 0.0  # seconds until the token expires; ignored when invalid


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V | None
    deadline: float


class TokenCache(Generic[V]):
    def __init__(
        self,
        *,
        ttl: float,
        max_size: int,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[bool], None] = lambda hit: None,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = min(ttl, negative_ttl)
        self.max_size = max(0, max_size)
        self._clock = clock
        self._on_lookup = on_lookup  # hit/miss counter: Keystone passes shim.metrics'
        self._entries: OrderedDict[bytes, _Entry[V]] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[Verdict[V]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self._lookup(token_key(token)) is not None

    def digests(self) -> list[bytes]:
        """The keys held: SHA-256 digests of tokens."""
        return list(self._entries)

    def get(self, token: str) -> Verdict[V] | None:
        """The cached verdict, or ``None`` on a miss (absent or expired)."""
        entry = self._lookup(token_key(token))
        return None if entry is None else Verdict(entry.value)

    def put(self, token: str, verdict: Verdict[V]) -> None:
        self._store(token_key(token), verdict)

    def invalidate(self, token: str) -> None:
        self._entries.pop(token_key(token), None)

    def clear(self) -> None:
        self._entries.clear()

    async def resolve(self, token: str, load: Callable[[], Awaitable[Verdict[V]]]) -> V | None:
        """The token's value (``None``: invalid), from the cache or from one shared load.

        The load runs as its own task, so a caller that goes away does not cancel it for
        the others waiting on the same token.
        """
        key = token_key(token)
        entry = self._lookup(key)
        self._on_lookup(entry is not None)
        if entry is not None:
            return entry.value
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(load())
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        verdict = await asyncio.shield(pending)
        return verdict.value

    def _settle(self, key: bytes, done: asyncio.Future[Verdict[V]]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if done.cancelled() or done.exception() is not None:
            return  # never cache a failure to ask: the next request asks again
        self._store(key, done.result())

    def _lookup(self, key: bytes) -> _Entry[V] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry.deadline:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def _store(self, key: bytes, verdict: Verdict[V]) -> None:
        keep = self.negative_ttl if verdict.value is None else min(self.ttl, verdict.lifetime)
        if keep <= 0 or self.max_size == 0:
            self._entries.pop(key, None)
            return
        self._entries[key] = _Entry(verdict.value, self._clock() + keep)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
