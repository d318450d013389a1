"""TokenCache: TTL, expiry bound, LRU bound, negative cache, hashing, one load in flight."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest
from yarl import URL

from shim import metrics
from shim.keystone import Keystone
from shim.token_cache import TokenCache, Verdict, token_key
from tests.fakes.shim_server import local_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let spawned tasks run up to their first real wait."""
    for _ in range(10):
        await asyncio.sleep(0)


def make(
    clock: Clock, *, ttl: float = 10.0, size: int = 100, negative: float = 5.0
) -> tuple[TokenCache[str], list[bool]]:
    lookups: list[bool] = []
    cache: TokenCache[str] = TokenCache(
        ttl=ttl, max_size=size, negative_ttl=negative, clock=clock, on_lookup=lookups.append
    )
    return cache, lookups


class Load:
    """A load for ``cache.resolve``: counts its calls; held until released when ``held``."""

    def __init__(self, verdict: Verdict[str] | type[Exception], *, held: bool = False) -> None:
        self.verdict = verdict
        self.calls = 0
        self.release = asyncio.Event()
        if not held:
            self.release.set()

    async def __call__(self) -> Verdict[str]:
        self.calls += 1
        await self.release.wait()
        if isinstance(self.verdict, Verdict):
            return self.verdict
        raise self.verdict


def test_ttl_bounds_a_long_lived_token() -> None:
    clock = Clock()
    cache, _ = make(clock, ttl=10.0)
    cache.put("tok", Verdict("info", lifetime=3600.0))
    clock.now += 9.9
    assert cache.get("tok") == Verdict("info")
    clock.now += 0.1
    assert cache.get("tok") is None
    assert len(cache) == 0


def test_expiry_bounds_a_short_lived_token() -> None:
    clock = Clock()
    cache, _ = make(clock, ttl=300.0)
    cache.put("tok", Verdict("info", lifetime=2.0))
    clock.now += 1.9
    assert cache.get("tok") is not None
    clock.now += 0.1
    assert cache.get("tok") is None


@pytest.mark.parametrize("lifetime", [0.0, -5.0])
def test_expired_tokens_are_not_stored(lifetime: float) -> None:
    cache, _ = make(Clock())
    cache.put("tok", Verdict("info", lifetime=lifetime))
    assert cache.get("tok") is None
    assert len(cache) == 0


def test_negative_entries_are_short_and_bounded_by_ttl() -> None:
    clock = Clock()
    cache, _ = make(clock, ttl=300.0, negative=5.0)
    cache.put("bad", Verdict(None))
    clock.now += 4.9
    assert cache.get("bad") == Verdict(None)
    clock.now += 0.1
    assert cache.get("bad") is None
    short, _ = make(clock, ttl=2.0, negative=5.0)
    assert short.negative_ttl == 2.0


def test_lru_bound_drops_least_recently_used() -> None:
    clock = Clock()
    cache, _ = make(clock, size=3)
    for name in ("a", "b", "c"):
        cache.put(name, Verdict(name, lifetime=60.0))
    assert cache.get("a") is not None  # a becomes most recent
    cache.put("d", Verdict("d", lifetime=60.0))
    assert len(cache) == 3
    assert "b" not in cache
    assert all(name in cache for name in ("a", "c", "d"))


def test_size_zero_caches_nothing() -> None:
    cache, _ = make(Clock(), size=0)
    cache.put("a", Verdict("a", lifetime=60.0))
    assert len(cache) == 0


def test_keys_are_sha256_digests_never_the_token() -> None:
    token = "gAAAAABsecret-token-value"
    cache, _ = make(Clock())
    cache.put(token, Verdict("info", lifetime=60.0))
    assert cache.digests() == [hashlib.sha256(token.encode()).digest()]
    assert token_key(token) == hashlib.sha256(token.encode()).digest()
    assert all(token.encode() not in key for key in cache.digests())
    assert token not in repr(cache.__dict__)
    # Lone surrogates (undecodable header bytes) hash instead of raising.
    assert len(token_key("bad\udcff")) == 32


def test_invalidate_and_clear() -> None:
    cache, _ = make(Clock())
    cache.put("a", Verdict("a", lifetime=60.0))
    cache.put("b", Verdict("b", lifetime=60.0))
    cache.invalidate("a")
    assert "a" not in cache
    assert "b" in cache
    cache.clear()
    assert len(cache) == 0


async def test_resolve_loads_once_then_hits() -> None:
    clock = Clock()
    cache, lookups = make(clock)
    load = Load(Verdict("info", lifetime=60.0))
    assert await cache.resolve("tok", load) == "info"
    assert await cache.resolve("tok", load) == "info"
    assert load.calls == 1
    assert lookups == [False, True]
    clock.now += 10.0  # past the TTL: asks again
    assert await cache.resolve("tok", load) == "info"
    assert load.calls == 2


async def test_resolve_caches_invalid_tokens_briefly() -> None:
    clock = Clock()
    cache, _ = make(clock, negative=5.0)
    load = Load(Verdict(None))
    assert await cache.resolve("bad", load) is None
    assert await cache.resolve("bad", load) is None
    assert load.calls == 1
    clock.now += 5.0
    assert await cache.resolve("bad", load) is None
    assert load.calls == 2


async def test_concurrent_lookups_share_one_load() -> None:
    cache, _ = make(Clock())
    load = Load(Verdict("info", lifetime=60.0), held=True)
    waiters = [asyncio.ensure_future(cache.resolve("tok", load)) for _ in range(20)]
    other = asyncio.ensure_future(cache.resolve("other", load))
    await settle()
    assert load.calls == 2  # one per distinct token
    load.release.set()
    assert await asyncio.gather(*waiters) == ["info"] * 20
    assert await other == "info"
    assert load.calls == 2


async def test_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache, _ = make(Clock())
    failing = Load(TimeoutError, held=True)
    waiters = [asyncio.ensure_future(cache.resolve("tok", failing)) for _ in range(3)]
    await settle()
    failing.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in results)
    assert failing.calls == 1
    assert len(cache) == 0
    assert await cache.resolve("tok", Load(Verdict("info", lifetime=60.0))) == "info"


async def test_a_cancelled_caller_does_not_cancel_the_shared_load() -> None:
    cache, _ = make(Clock())
    load = Load(Verdict("info", lifetime=60.0), held=True)
    first = asyncio.ensure_future(cache.resolve("tok", load))
    second = asyncio.ensure_future(cache.resolve("tok", load))
    await settle()
    first.cancel()
    load.release.set()
    assert await second == "info"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert "tok" in cache


async def test_keystone_counts_its_lookups_in_metrics() -> None:
    settings = local_settings(auth="keystone", keystone_url=URL("http://127.0.0.1:9"))
    async with aiohttp.ClientSession() as session:
        assert Keystone(session, settings).cache._on_lookup is metrics.token_cache
