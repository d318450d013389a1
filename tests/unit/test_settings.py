"""Settings: environment, flags, validation messages, masked secrets."""

from __future__ import annotations

import pytest
from yarl import URL

from shim.settings import Address, Secret, Settings, SettingsError

GLANCE = {"SHIM_GLANCE_URL": "http://glance:9292"}


def test_defaults_match_the_spec_table() -> None:
    settings = Settings.from_sources({**GLANCE, "SHIM_WORKERS": "1"})
    assert settings.glance_url == URL("http://glance:9292")
    assert settings.listen == Address("0.0.0.0", 8774)
    assert settings.metrics_listen == Address("0.0.0.0", 9102)
    assert settings.auth == "passthrough"
    assert settings.token_cache_ttl == 300
    assert settings.max_microversion == "2.104"
    assert settings.microversion_cap == "nova"
    assert settings.max_limit == 1000
    assert settings.glance_timeout == 30
    assert settings.glance_retries == 3
    assert settings.retry_after == 5
    assert settings.glance_max_body == 32 * 1024 * 1024
    assert settings.metadata_items == 128
    assert settings.log_format == "json"
    assert settings.log_level == "info"


def test_flags_win_over_the_environment() -> None:
    settings = Settings.from_sources(
        {**GLANCE, "SHIM_LISTEN": "127.0.0.1:1", "SHIM_GLANCE_RETRIES": "1"},
        ["--listen", "127.0.0.1:2", "--glance-max-body", "2MiB", "--metrics-listen", "off"],
    )
    assert settings.listen == Address("127.0.0.1", 2)
    assert settings.glance_retries == 1
    assert settings.glance_max_body == 2 * 1024 * 1024
    assert settings.metrics_listen is None


def test_workers_default_to_available_cpus() -> None:
    settings = Settings.from_sources(GLANCE)
    assert settings.workers >= 1


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "SHIM_GLANCE_URL"),
        ({**GLANCE, "SHIM_GLANCE_URL": "ftp://x"}, "SHIM_GLANCE_URL"),
        ({**GLANCE, "SHIM_LISTEN": "8774"}, "SHIM_LISTEN"),
        ({**GLANCE, "SHIM_GLANCE_TIMEOUT": "soon"}, "SHIM_GLANCE_TIMEOUT"),
        ({**GLANCE, "SHIM_GLANCE_TIMEOUT": "-1"}, "SHIM_GLANCE_TIMEOUT"),
        ({**GLANCE, "SHIM_AUTH": "magic"}, "SHIM_AUTH"),
        ({**GLANCE, "SHIM_AUTH": "keystone"}, "SHIM_KEYSTONE_URL"),
        ({**GLANCE, "SHIM_MAX_MICROVERSION": "2.01"}, "SHIM_MAX_MICROVERSION"),
        ({**GLANCE, "SHIM_GLANCE_PAGE_SIZE": "1001"}, "SHIM_GLANCE_PAGE_SIZE"),
        ({**GLANCE, "SHIM_METADATA_ITEMS": "-2"}, "SHIM_METADATA_ITEMS"),
        ({**GLANCE, "SHIM_GLANCE_MAX_BODY": "lots"}, "SHIM_GLANCE_MAX_BODY"),
    ],
)
def test_bad_values_stop_start_up_naming_the_setting(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_sources(environ)


def test_glance_is_optional_when_the_catalogue_can_supply_it() -> None:
    settings = Settings.from_sources(
        {"SHIM_AUTH": "keystone", "SHIM_KEYSTONE_URL": "http://keystone:5000"}
    )
    assert settings.glance_url is None


def test_secrets_never_show_in_reprs() -> None:
    settings = Settings.from_sources({**GLANCE, "SHIM_SERVICE_PASSWORD": "hunter2"})
    assert settings.service_password == "hunter2"
    assert "hunter2" not in repr(settings)
    assert repr(Secret("x")) == "Secret('**********')"


def test_alternate_links_default_to_the_glance_url() -> None:
    settings = Settings.from_sources(GLANCE)
    assert settings.glance_link_base == URL("http://glance:9292")
    public = Settings.from_sources({**GLANCE, "SHIM_GLANCE_PUBLIC_URL": "https://img.example"})
    assert public.glance_link_base == URL("https://img.example")
