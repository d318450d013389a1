"""Hypothesis strategies shared by the property tests of tests/unit."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_trees(
    leaves: st.SearchStrategy[Any],
    *,
    keys: st.SearchStrategy[str],
    width: int,
    max_leaves: int = 12,
) -> st.SearchStrategy[Any]:
    """JSON-shaped values: `leaves`, and lists and objects (keyed by `keys`) nesting them.

    `width` bounds the items of each list and object, `max_leaves` the leaves of a whole tree.
    """
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=width) | st.dictionaries(keys, children, max_size=width)
        ),
        max_leaves=max_leaves,
    )
