"""A page of Glance records -> the Nova image views as JSON bytes, the fast way when it can.

`shim/legacy/views.py` defines every view. Translating through it builds a dict per image,
a list and three dicts for its links, and its metadata dict, then serialises them: several
microseconds per image, more than parsing and serialising Glance's page costs
(BENCHMARKS.md). `shim.legacy._render`, a small C extension built with the package, writes
the same bytes straight from the records orjson decoded. It takes only the common road:
for a page holding anything unusual (a non-string id, a ``min_ram`` that is not an integer,
a timestamp that is not Glance's ``YYYY-MM-DDTHH:MM:SSZ`` ...) it answers ``None`` and the
page goes through views.py, which gives its usual answer or fault.
tests/unit/test_render_properties.py checks the two agree byte for byte.

Without a C compiler at install time the extension is absent and every page goes through
views.py: slower, same bytes. ``SHIM_RENDERER`` chooses (`select_renderer`): ``auto`` uses
the extension when it was built, ``c`` insists on it (start-up fails without it) and
``python`` never imports it. The choice is per application, so one process can hold both.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Literal

import orjson

from shim.legacy import views
from shim.legacy.views import ImageSchema, LinkContext, to_nova_image, to_nova_image_basic


class RendererUnavailable(RuntimeError):
    """``SHIM_RENDERER=c`` on an installation built without the C extension."""


@dataclass(frozen=True, slots=True)
class Renderer:
    """The image writer an application uses: the C extension, or views.py alone."""

    name: Literal["c", "python"]
    accelerator: ModuleType | None


PYTHON: Final = Renderer("python", None)


@functools.cache
def _load_accelerator() -> ModuleType | None:
    try:
        from shim.legacy import _render
    except ImportError:  # built without a compiler: views.py renders everything
        return None
    _render.configure(views._json_property, views._bool_from_string, orjson.dumps)
    return _render


def select_renderer(choice: Literal["auto", "c", "python"]) -> Renderer:
    """The renderer ``SHIM_RENDERER`` asks for; `RendererUnavailable` if it cannot run."""
    if choice == "python":
        return PYTHON
    accelerator = _load_accelerator()
    if accelerator is not None:
        return Renderer("c", accelerator)
    if choice == "c":
        raise RendererUnavailable(
            "SHIM_RENDERER: c asks for the C renderer, but this installation was built "
            "without it (no C compiler when it was installed); use auto or python, or "
            "reinstall with a compiler"
        )
    return PYTHON


class PageRenderer:
    """Renders pages of one request: link prefixes escaped once, then one call per page."""

    __slots__ = ("_accelerator", "_links", "_prefixes", "_schema")

    def __init__(self, links: LinkContext, schema: ImageSchema | None, renderer: Renderer) -> None:
        """*schema* ``None``: the basic list (docs/nova.md §4.5), else detailed images (§4.1)."""
        self._accelerator = renderer.accelerator
        self._links = links
        self._schema = schema
        self._prefixes = _escaped_prefixes(links, detailed=schema is not None)

    def render(self, images: list[dict[str, Any]]) -> bytes:
        """The page's views joined by commas, without the brackets."""
        fast = self.render_fast(images)
        return self.render_slow(images) if fast is None else fast

    def render_fast(self, images: list[dict[str, Any]]) -> bytes | None:
        """The same bytes from the C renderer, or ``None`` when it steps aside."""
        accelerator = self._accelerator
        if accelerator is None:
            return None
        fast: bytes | None
        if self._schema is None:
            fast = accelerator.basic(images, None, *self._prefixes)
        else:
            fast = accelerator.detail(images, self._schema.base, *self._prefixes)
        return fast

    def render_slow(self, images: list[dict[str, Any]]) -> bytes:
        """The same bytes through views.py alone (the definition; the fallback)."""
        links = self._links
        schema = self._schema
        if schema is None:
            return orjson.dumps([to_nova_image_basic(image, links) for image in images])[1:-1]
        return orjson.dumps([to_nova_image(image, links, schema) for image in images])[1:-1]


@functools.lru_cache(maxsize=256)  # link_context's own cache returns equal contexts
def _escaped_prefixes(links: LinkContext, *, detailed: bool) -> tuple[bytes, ...]:
    """The link prefixes as JSON string content. Escaping is per character, so
    ``escape(prefix) + escape(id) == escape(prefix + id)``."""
    bases: tuple[str, ...] = (links.image_self, links.image_bookmark, links.image_alternate)
    if detailed:
        bases += (links.server_self, links.server_bookmark)
    return tuple(orjson.dumps(base)[1:-1] for base in bases)
