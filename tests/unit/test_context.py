"""Request ids: Nova's ``req-<uuid4>`` shape, fresh per request, kept when well formed."""

from __future__ import annotations

import multiprocessing
import uuid

from shim.context import new_request_id, request_id_from


def test_new_ids_are_version_4_uuids_and_do_not_repeat() -> None:
    ids = {new_request_id() for _ in range(20_000)}
    assert len(ids) == 20_000
    for request_id in list(ids)[:2000]:
        assert request_id.startswith("req-")
        parsed = uuid.UUID(request_id[4:])
        assert str(parsed) == request_id[4:]
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def _child_ids(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([new_request_id() for _ in range(5)])


def test_forked_workers_draw_different_ids() -> None:
    # Workers are forked from one master; each must not replay its siblings' ids.
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    children = [context.Process(target=_child_ids, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    drawn = [queue.get(timeout=10) for _ in children]
    for child in children:
        child.join(timeout=10)
    assert set(drawn[0]).isdisjoint(drawn[1])


def test_a_well_formed_client_id_is_kept_anything_else_replaced() -> None:
    kept = "req-0b6a5f2e-8a9c-4c61-9d3a-5e0d7c2b1a40"
    assert request_id_from(kept) == kept
    for offered in (None, "", "req-XYZ", kept.upper(), kept + "\r\nX: y", "0b6a5f2e"):
        fresh = request_id_from(offered)
        assert fresh != offered
        assert uuid.UUID(fresh[4:]).version == 4
