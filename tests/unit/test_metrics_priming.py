"""Upstream series exist at zero from start-up, so rate() sees their first increase."""

from __future__ import annotations

import pytest
from yarl import URL

from shim import metrics
from shim.server import prime_metrics
from shim.settings import Settings


def sample(name: str, **labels: str) -> float | None:
    return metrics.get().registry.get_sample_value(name, labels)


def test_the_series_a_configuration_uses_are_primed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A registry of this test's own: other tests' calls create these series too.
    monkeypatch.setattr(metrics, "_metrics", None)
    assert sample("nova_image_shim_token_cache_lookups_total", result="hit") is None
    prime_metrics(
        Settings(glance_url=URL("http://glance"), auth="keystone",
                 keystone_url=URL("http://keystone"), nova_url=URL("http://nova"))
    )  # fmt: skip
    total = "nova_image_shim_upstream_requests_total"
    for upstream, operation in (("glance", "list"), ("glance", "show"),
                                ("keystone", "validate"), ("nova", "passthrough")):  # fmt: skip
        for outcome in ("2xx", "5xx", "timeout", "connect_error"):
            labels = {"upstream": upstream, "operation": operation, "outcome": outcome}
            assert sample(total, **labels) == 0, labels
        count = sample(
            "nova_image_shim_upstream_duration_seconds_count",
            upstream=upstream,
            operation=operation,
        )
        assert count == 0
    for result in ("hit", "miss"):
        assert sample("nova_image_shim_token_cache_lookups_total", result=result) == 0
