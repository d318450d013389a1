"""Settings: environment and flags, the operator's messages, warnings, the start-up view."""

from __future__ import annotations

import dataclasses
import math
from ipaddress import ip_network

import pytest
from yarl import URL

from shim.settings import (
    SPECS,
    Address,
    Secret,
    Settings,
    SettingsError,
    command_line,
    effective,
    load,
)

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
    assert settings.renderer == "auto"
    assert settings.log_format == "json"
    assert settings.log_level == "info"
    assert settings.trusted_proxies == frozenset()


def test_every_field_has_exactly_one_spec() -> None:
    fields = [field.name for field in dataclasses.fields(Settings)]
    assert sorted(spec.field for spec in SPECS) == sorted(fields)
    assert all(spec.env == "SHIM_" + spec.field.upper() for spec in SPECS)


def test_flags_win_over_the_environment() -> None:
    settings = Settings.from_sources(
        {**GLANCE, "SHIM_LISTEN": "127.0.0.1:1", "SHIM_GLANCE_RETRIES": "1"},
        ["--listen", "127.0.0.1:2", "--glance-max-body", "2MiB", "--metrics-listen", "off"],
    )
    assert settings.listen == Address("127.0.0.1", 2)
    assert settings.glance_retries == 1
    assert settings.glance_max_body == 2 * 1024 * 1024
    assert settings.metrics_listen is None


def test_an_unknown_flag_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="unrecognized arguments: --glance-ulr"):
        Settings.from_sources(GLANCE, ["--glance-ulr", "http://g"])


def test_workers_default_to_available_cpus() -> None:
    settings = Settings.from_sources(GLANCE)
    assert settings.workers >= 1


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "SHIM_GLANCE_URL is required unless SHIM_AUTH=keystone"),
        (
            {"SHIM_GLANCE_URL": "ftp://x"},
            "SHIM_GLANCE_URL: expected an http(s) URL, e.g. http://glance:9292; got 'ftp://x'",
        ),
        (
            {"SHIM_LISTEN": "18821"},
            "SHIM_LISTEN: expected HOST:PORT, e.g. 0.0.0.0:8774; got '18821'",
        ),
        (
            {"SHIM_TOKEN_CACHE_TTL": "5m"},
            "SHIM_TOKEN_CACHE_TTL: expected seconds (above 0, at most 86400), e.g. 300; got '5m'",
        ),
        (
            {"SHIM_GLANCE_TIMEOUT": "nan"},
            "SHIM_GLANCE_TIMEOUT: expected seconds (above 0, at most 3600), e.g. 30; got 'nan'",
        ),
        ({"SHIM_GLANCE_TIMEOUT": "inf"}, "SHIM_GLANCE_TIMEOUT: expected seconds"),
        ({"SHIM_GLANCE_TIMEOUT": "0"}, "SHIM_GLANCE_TIMEOUT: expected seconds (above 0"),
        ({"SHIM_SHUTDOWN_TIMEOUT": "-1"}, "SHIM_SHUTDOWN_TIMEOUT: expected seconds (from 0"),
        (
            {"SHIM_TRUSTED_PROXIES": "10.0.0.0/8,bogus/99"},
            "SHIM_TRUSTED_PROXIES: 'bogus/99' is not an IP address or CIDR",
        ),
        (
            {"SHIM_AUTH": "magic"},
            "SHIM_AUTH: expected one of passthrough, keystone, trusted-headers",
        ),
        ({"SHIM_AUTH": "keystone"}, "SHIM_KEYSTONE_URL is required when SHIM_AUTH=keystone"),
        ({"SHIM_MAX_MICROVERSION": "2.01"}, "SHIM_MAX_MICROVERSION: expected a 2.N microversion"),
        (
            {"SHIM_GLANCE_PAGE_SIZE": "1001"},
            "SHIM_GLANCE_PAGE_SIZE: expected a whole number from 1",
        ),
        ({"SHIM_METADATA_ITEMS": "-2"}, "SHIM_METADATA_ITEMS: expected a whole number from -1"),
        ({"SHIM_GLANCE_MAX_BODY": "lots"}, "SHIM_GLANCE_MAX_BODY: expected a size from 1KiB"),
        ({"SHIM_WORKERS": "0"}, "SHIM_WORKERS: expected a whole number from 1 to 1024"),
        ({"SHIM_RENDERER": "rust"}, "SHIM_RENDERER: expected one of auto, c, python"),
        (
            {"SHIM_KEYSTONE_URL": "http://admin:hunter2@keystone:5000"},
            "SHIM_KEYSTONE_URL: credentials do not belong in the URL",
        ),
        ({"SHIM_NOVA_URL": "http://nova:8774/?x=1"}, "SHIM_NOVA_URL: 'http://nova:8774/?x=1' has"),
        ({"SHIM_SERVICE_USERNAME": "shim"}, "SHIM_SERVICE_USERNAME and SHIM_SERVICE_PASSWORD go"),
        ({"SHIM_METRICS_LISTEN": ":8774"}, "SHIM_METRICS_LISTEN: 0.0.0.0:8774 is SHIM_LISTEN's"),
        ({"SHIM_LISTEN": "not a host:80"}, "SHIM_LISTEN: 'not a host' is not an IP address"),
    ],
)
def test_bad_values_stop_start_up_with_the_setting_and_the_problem(
    environ: dict[str, str], message: str
) -> None:
    environ = {**GLANCE, **environ} if environ else environ
    with pytest.raises(SettingsError) as raised:
        Settings.from_sources(environ)
    assert str(raised.value).startswith(message)
    assert "hunter2" not in str(raised.value)


def test_messages_name_the_setting_once() -> None:
    for environ in ({"SHIM_LISTEN": "18821"}, {"SHIM_METRICS_LISTEN": "x"}):
        with pytest.raises(SettingsError) as raised:
            Settings.from_sources({**GLANCE, **environ})
        [name] = environ
        assert str(raised.value).count(name) == 1


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("SHIM_AUTH", "passthrough"),
        ("SHIM_LISTEN", "0.0.0.0:8774"),
        ("SHIM_WORKERS", "CPUs available"),
        ("SHIM_GLANCE_TIMEOUT", "30"),
        ("SHIM_SERVICE_DOMAIN", "Default"),
    ],
)
def test_an_empty_value_where_the_default_differs_is_an_error(name: str, default: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_sources({**GLANCE, name: "  "})
    assert str(raised.value).startswith(f"{name} is empty; unset it for the default ({default})")


def test_an_empty_value_where_the_default_is_unset_means_unset() -> None:
    settings = Settings.from_sources(
        {**GLANCE, "SHIM_NOVA_URL": "", "SHIM_TRUSTED_PROXIES": "", "SHIM_CATALOG_REGION": ""}
    )
    assert settings.nova_url is None
    assert settings.mode == "standalone"
    assert settings.trusted_proxies == frozenset()


@pytest.mark.parametrize(
    ("name", "written", "used"),
    [
        ("SHIM_GLANCE_URL", "http://glance:9292/v2", "http://glance:9292"),
        ("SHIM_GLANCE_URL", "https://cloud.example/image/v2/", "https://cloud.example/image"),
        ("SHIM_NOVA_URL", "http://nova:8774/v2.1", "http://nova:8774"),
        ("SHIM_NOVA_URL", "http://cloud.example/compute/v2", "http://cloud.example/compute"),
        ("SHIM_KEYSTONE_URL", "http://keystone:5000/v3", "http://keystone:5000"),
        ("SHIM_KEYSTONE_URL", "http://keystone/identity/v2.0/", "http://keystone/identity"),
        ("SHIM_GLANCE_PUBLIC_URL", "https://images.example/v2", "https://images.example"),
        ("SHIM_PUBLIC_URL", "https://compute.example/v2.1", "https://compute.example"),
    ],
)
def test_a_url_ending_in_an_api_version_is_stripped_with_a_warning(
    name: str, written: str, used: str
) -> None:
    loaded = load(
        {**GLANCE, "SHIM_AUTH": "keystone", "SHIM_KEYSTONE_URL": "http://k", name: written}
    )
    assert str(getattr(loaded.settings, name[5:].lower())) == used
    [(variable, warning)] = loaded.warnings
    assert variable == name
    assert warning.startswith(f"{written!r} ends in the API version")
    assert f"using {used} (write that" in warning


def test_urls_without_a_version_are_kept_without_a_warning() -> None:
    loaded = load({"SHIM_GLANCE_URL": "http://glance:9292/", "SHIM_NOVA_URL": "http://nova/v2x"})
    assert loaded.warnings == ()
    assert loaded.settings.glance_url == URL("http://glance:9292")
    assert loaded.settings.nova_url == URL("http://nova/v2x")


def test_unknown_shim_variables_are_named_with_the_closest_setting() -> None:
    loaded = load(
        {
            **GLANCE,
            "SHIM_NOVA_ULR": "http://nova:8774",
            "SHIM_FROBNICATE": "1",
            "SHIM_STACK_RUN_DIR": "/tmp/x",  # the test stack's own variable
            "NOT_SHIM_AUTH": "x",
        }
    )
    assert loaded.warnings == (
        ("SHIM_FROBNICATE", "not a setting, ignored"),
        ("SHIM_NOVA_ULR", "not a setting, ignored; did you mean SHIM_NOVA_URL?"),
    )
    assert loaded.settings.mode == "standalone"


def test_building_settings_directly_runs_the_same_checks() -> None:
    with pytest.raises(SettingsError, match=r"^SHIM_GLANCE_TIMEOUT: expected seconds .*; got nan"):
        Settings(glance_url=URL("http://g"), glance_timeout=math.nan)
    with pytest.raises(SettingsError, match="SHIM_TRUSTED_PROXIES: 'bogus/99' is not"):
        Settings(glance_url=URL("http://g"), trusted_proxies=frozenset({"bogus/99"}))  # type: ignore[arg-type]
    built = Settings(glance_url=URL("http://g/v2/"), trusted_proxies=frozenset({"10.1.2.3"}))  # type: ignore[arg-type]
    assert built.glance_url == URL("http://g")
    assert built.trusted_proxies == frozenset({ip_network("10.1.2.3/32")})


def test_trusted_proxies_are_parsed_into_networks_at_start_up() -> None:
    settings = Settings.from_sources(
        {**GLANCE, "SHIM_TRUSTED_PROXIES": " 10.0.0.0/8 , 192.0.2.7,2001:db8::/32,10.1.2.3/8"}
    )
    assert settings.trusted_proxies == frozenset(
        map(ip_network, ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"))
    )


def test_glance_is_optional_when_the_catalogue_can_supply_it() -> None:
    settings = Settings.from_sources(
        {"SHIM_AUTH": "keystone", "SHIM_KEYSTONE_URL": "http://keystone:5000"}
    )
    assert settings.glance_url is None


def test_secrets_never_show_in_reprs() -> None:
    settings = Settings.from_sources(
        {**GLANCE, "SHIM_SERVICE_USERNAME": "shim", "SHIM_SERVICE_PASSWORD": "hunter2"}
    )
    assert settings.service_password == "hunter2"
    assert "hunter2" not in repr(settings)
    assert repr(Secret("x")) == "Secret('**********')"


def test_alternate_links_default_to_the_glance_url() -> None:
    settings = Settings.from_sources(GLANCE)
    assert settings.glance_link_base == URL("http://glance:9292")
    public = Settings.from_sources({**GLANCE, "SHIM_GLANCE_PUBLIC_URL": "https://img.example"})
    assert public.glance_link_base == URL("https://img.example")


def test_the_effective_configuration_shows_every_setting_with_secrets_masked() -> None:
    settings = Settings.from_sources(
        {
            "SHIM_AUTH": "keystone",
            "SHIM_KEYSTONE_URL": "http://keystone:5000",
            "SHIM_NOVA_URL": "http://nova:8774",
            "SHIM_SERVICE_USERNAME": "shim",
            "SHIM_SERVICE_PASSWORD": "hunter2",
            "SHIM_TRUSTED_PROXIES": "10.0.0.0/8",
            "SHIM_WORKERS": "4",
        }
    )
    shown = effective(settings, "python")
    assert "hunter2" not in repr(shown)
    assert shown["service_password"] == "********"
    assert shown["mode"] == "gateway"
    assert shown["auth"] == "keystone"
    assert shown["glance_url"] == "catalogue (public, any region)"
    assert shown["nova_url"] == "http://nova:8774"
    assert shown["keystone_url"] == "http://keystone:5000"
    assert shown["public_url"] is None
    assert shown["trusted_proxies"] == "10.0.0.0/8"
    assert shown["renderer"] == "python"
    assert shown["renderer_setting"] == "auto"
    assert shown["workers"] == "4"
    assert shown["max_body"] == "1MiB"
    assert shown["metrics_listen"] == "0.0.0.0:9102"
    assert {spec.field for spec in SPECS} <= set(shown)


def test_help_lists_every_flag_with_its_variable_and_default() -> None:
    text = " ".join(command_line().format_help().split())
    for spec in SPECS:
        assert spec.flag in text
        assert spec.env in text
    assert "[SHIM_GLANCE_TIMEOUT; default: 30]" in text
    assert "[SHIM_WORKERS; default: CPUs available]" in text
    assert "--version" in text
    assert "Exit status" in text
