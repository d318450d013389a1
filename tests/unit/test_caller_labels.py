"""The ``project`` label of the legacy-caller series: bounded, and never free text."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shim.metrics import OTHER_PROJECT, UNKNOWN_PROJECT, caller_project_label

PROJECT_IDS = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


def test_a_project_id_is_its_own_label_until_the_bound() -> None:
    seen: set[str] = set()
    projects = [uuid.uuid4().hex for _ in range(5)]
    labels = [caller_project_label(p, seen, 3) for p in projects]
    assert labels == [*projects[:3], OTHER_PROJECT, OTHER_PROJECT]
    # Projects seen before the bound keep their own label afterwards.
    assert caller_project_label(projects[1], seen, 3) == projects[1]
    assert seen == set(projects[:3])


def test_a_bound_of_zero_counts_every_project_as_other() -> None:
    seen: set[str] = set()
    assert caller_project_label(uuid.uuid4().hex, seen, 0) == OTHER_PROJECT
    assert not seen


def test_missing_or_odd_projects_are_unknown_and_use_no_slot() -> None:
    seen: set[str] = set()
    for value in (None, "", "has space", "x" * 65, "gAAAAA/tok+en", "é", "a\nb", "p/q"):
        assert caller_project_label(value, seen, 10) == UNKNOWN_PROJECT, value
    assert not seen


@given(st.lists(st.one_of(PROJECT_IDS, st.text(max_size=80), st.none()), max_size=60),
       st.integers(min_value=0, max_value=20))  # fmt: skip
def test_labels_stay_within_the_bound(values: list[str | None], limit: int) -> None:
    seen: set[str] = set()
    labels = {caller_project_label(value, seen, limit) for value in values}
    assert len(seen) <= limit
    assert labels <= seen | {OTHER_PROJECT, UNKNOWN_PROJECT}
    for label in labels - {OTHER_PROJECT, UNKNOWN_PROJECT}:
        assert label in values
