"""Integration tests share ``make_shim`` (``tests.shim_fixtures``, registered globally)."""

from tests.shim_fixtures import TEST_PAGE_SIZE, MakeShim, stack_settings

__all__ = ["TEST_PAGE_SIZE", "MakeShim", "stack_settings"]
