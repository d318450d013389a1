"""The token's service catalogue: where Glance is, and how its URL becomes a base.

Pure: Keystone's ``token.catalog`` (a list of services, each with endpoints) in, plain
strings out; no aiohttp, no I/O. Lookup follows keystoneauth: the service by ``type``,
then the first endpoint whose ``interface`` is the configured one (``public``,
``internal``, ``admin``; the v2-style ``publicURL`` spelling is accepted too) and, when a
region is configured, whose ``region_id`` (or older ``region``) equals it.

An endpoint is normalised to a *service root*: a trailing version (``/v2``, ``/v2.0``,
``/v2/``) is removed, runs of ``/`` merged and a trailing ``/`` dropped, so
``http://h/image/v2/`` becomes ``http://h/image`` and ``root + "/v2/images"`` never holds
``//`` (docs/nova.md §4.3, docs/contract.md D8). It must not decide what to do when nothing is
found: callers answer 503.

`EndpointCache` keeps one client per discovered root (bounded), built by a factory the
app supplies, so Glance clients and their cached schema are reused across tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from shim.legacy.views import glance_base_url

IMAGE_SERVICE: Final = "image"
DEFAULT_ENDPOINT_CACHE_SIZE: Final = 64

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class ImageEndpoints:
    """Glance as one token's catalogue names it; ``None`` where the catalogue has nothing."""

    api: str | None  # the configured interface: where the shim calls Glance
    public: str | None  # the public interface: base of ``alternate`` links


def service_root(url: str) -> str:
    """``http://h/image/v2/`` -> ``http://h/image``; ``http://h:9292`` unchanged."""
    return glance_base_url(url.strip())


def find_endpoint(
    catalog: object, service_type: str, interface: str, region: str | None = None
) -> str | None:
    """The first matching endpoint URL of *service_type*, as the catalogue spells it."""
    if not isinstance(catalog, list):
        return None
    for service in catalog:
        if not isinstance(service, Mapping) or service.get("type") != service_type:
            continue
        endpoints = service.get("endpoints")
        if not isinstance(endpoints, list):
            continue
        for endpoint in endpoints:
            if isinstance(endpoint, Mapping) and _matches(endpoint, interface, region):
                url = endpoint.get("url")
                if isinstance(url, str) and url.strip():
                    return url
    return None


def _matches(endpoint: Mapping[str, Any], interface: str, region: str | None) -> bool:
    found = endpoint.get("interface")
    if not isinstance(found, str) or found.removesuffix("URL") != interface:
        return False
    if region is None:
        return True
    return region in (endpoint.get("region_id"), endpoint.get("region"))


def image_endpoints(catalog: object, interface: str, region: str | None) -> ImageEndpoints:
    """Service roots of Glance for the shim's calls and for links."""
    api = find_endpoint(catalog, IMAGE_SERVICE, interface, region)
    public = (
        api if interface == "public" else find_endpoint(catalog, IMAGE_SERVICE, "public", region)
    )
    return ImageEndpoints(
        api=service_root(api) if api is not None else None,
        public=service_root(public) if public is not None else None,
    )


class EndpointCache(Generic[C]):
    """One client per service root, built on first use, least recently used dropped first.

    The bound only matters if tokens name many different Glance endpoints (a catalogue
    per project); a dropped client is simply rebuilt on its next use.
    """

    def __init__(
        self, factory: Callable[[str], C], max_size: int = DEFAULT_ENDPOINT_CACHE_SIZE
    ) -> None:
        self._factory = factory
        self._max_size = max(1, max_size)
        self._clients: OrderedDict[str, C] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, root: str) -> C:
        client = self._clients.get(root)
        if client is None:
            client = self._clients[root] = self._factory(root)
            while len(self._clients) > self._max_size:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(root)
        return client
