"""Hostile values for every setting: refused with a message naming it, or accepted in range.

Whatever text a setting gets — NaN, ±inf, negative, zero, empty, huge, a bad CIDR or URL —
`load` either raises `SettingsError` whose message starts with that setting's name, or
returns settings whose value its kind accepts (finite, inside the range, parsed). Nothing
else escapes: no ``ValueError`` from ``float()``, no ``OverflowError``, no value that fails
later, at request time.
"""

from __future__ import annotations

import ipaddress
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from shim.setting_kinds import Integer, ReadableFile, Seconds, Size, Url
from shim.settings import BY_ENV, SPECS, Settings, SettingsError, Spec, load

pytestmark = pytest.mark.hypothesis

# Enough for Settings to be complete, so only the setting under test can be wrong.
BASE = {"SHIM_GLANCE_URL": "http://glance:9292", "SHIM_WORKERS": "1"}
NUMERIC = [spec for spec in SPECS if isinstance(spec.kind, Seconds | Integer)]
URLS = [spec for spec in SPECS if isinstance(spec.kind, Url)]

HOSTILE_NUMBERS = st.sampled_from(
    [
        "nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "1e309", "-1e309", "-1",
        "-0.5", "0", "0.0", "-0", "", "   ", "1_000", "1e3", "0x10", "\u0663", "\uff15",
        "1,5", "10s", "5m", "1 000", "9" * 40, "9" * 5000, "18446744073709551616",
        "2147483648", "1.", ".5", "\x00", "true", "None", "null", "32MiBB", "-1KiB", "1TiB",
    ]
)  # fmt: skip
NUMBER_TEXT = (
    HOSTILE_NUMBERS
    | st.floats().map(repr)
    | st.integers(-(10**30), 10**30).map(str)
    | st.text(max_size=12)
)


def _outcome(spec: Spec, raw: str) -> Any:
    """The parsed value, or the message, checking the message names *spec* first."""
    try:
        settings = load({**BASE, spec.env: raw}).settings
    except SettingsError as error:
        named = str(error).startswith(spec.env)
        if not named:
            raise AssertionError(f"{spec.env}={raw!r}: {error}") from error
        return error
    return getattr(settings, spec.field)


@given(spec=st.sampled_from(NUMERIC), raw=NUMBER_TEXT)
@example(spec=BY_ENV["SHIM_GLANCE_TIMEOUT"], raw="nan")
@example(spec=BY_ENV["SHIM_GLANCE_TIMEOUT"], raw="inf")
@example(spec=BY_ENV["SHIM_SHUTDOWN_TIMEOUT"], raw="-1")
@example(spec=BY_ENV["SHIM_WORKERS"], raw="0")
@example(spec=BY_ENV["SHIM_GLANCE_MAX_BODY"], raw="9" * 5000)
def test_numbers_are_finite_and_in_range_or_refused(spec: Spec, raw: str) -> None:
    value = _outcome(spec, raw)
    if isinstance(value, SettingsError):
        return
    assert not isinstance(value, bool)
    assert math.isfinite(value)
    kind = spec.kind
    if isinstance(kind, Seconds):
        assert value >= 0 if kind.zero else value > 0
        assert value <= kind.most
    else:
        assert isinstance(kind, Integer)
        assert isinstance(value, int)
        assert kind.low <= value <= kind.high


@given(data=st.data(), spec=st.sampled_from(NUMERIC))
def test_every_value_in_range_is_accepted(data: st.DataObject, spec: Spec) -> None:
    kind = spec.kind
    if isinstance(kind, Seconds):
        value = data.draw(st.decimals(0, kind.most, places=3, allow_nan=False))
        if value == 0 and not kind.zero:
            return
        assert _outcome(spec, str(value)) == float(value)
    else:
        assert isinstance(kind, Integer)
        number = data.draw(st.integers(kind.low, kind.high))
        if isinstance(kind, Size) and number % 1024 == 0 and number > 0:
            text = f"{number // 1024}KiB"
        else:
            text = str(number)
        assert _outcome(spec, text) == number


@given(
    entries=st.lists(
        st.ip_addresses().map(str)
        | st.tuples(st.ip_addresses(v=4), st.integers(0, 40)).map(lambda t: f"{t[0]}/{t[1]}")
        | st.tuples(st.ip_addresses(v=6), st.integers(0, 140)).map(lambda t: f"{t[0]}/{t[1]}")
        | st.sampled_from(["bogus/99", "10.0.0.0/33", "::1/129", "10.0.0", "*", "10.0.0.0/8/8"])
        | st.text(max_size=10),
        max_size=4,
    )
)
@example(entries=["bogus/99"])
def test_trusted_proxies_are_networks_or_refused(entries: list[str]) -> None:
    spec = BY_ENV["SHIM_TRUSTED_PROXIES"]
    value = _outcome(spec, ",".join(entries))
    if isinstance(value, SettingsError):
        # The message quotes the offending entry and says what an entry looks like.
        assert "is not an IP address or CIDR" in str(value)
        return
    assert all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in value)
    for entry in filter(None, (e.strip() for e in ",".join(entries).split(","))):
        assert ipaddress.ip_network(entry, strict=False) in value


HOSTILE_URLS = st.sampled_from(
    [
        "", " ", "glance:9292", "ftp://glance", "http://", "http:///v2", "http://[::1",
        "http://glance:99999", "http://glance:-1", "http://u:p@glance", "http://glance/?a=1",
        "http://glance/#x", "file:///etc/passwd", "javascript:alert(1)", "http://gla nce",
        "http://\x00", "//glance:9292", "HTTP://GLANCE:9292/V2",
    ]
)  # fmt: skip


@given(spec=st.sampled_from(URLS), raw=HOSTILE_URLS | st.text(max_size=30))
def test_urls_are_http_roots_or_refused(spec: Spec, raw: str) -> None:
    value = _outcome(spec, raw)
    if isinstance(value, SettingsError) or value is None:
        return
    assert isinstance(value, URL)
    assert value.scheme in ("http", "https")
    assert value.host
    assert value.user is None
    assert value.password is None
    assert not value.query_string
    assert not value.fragment
    assert Url().check(value) == value  # already a service root


@given(
    spec=st.sampled_from(URLS),
    host=st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5})?", fullmatch=True),
    prefix=st.sampled_from(["", "/image", "/compute/", "/a/b"]),
    version=st.sampled_from(["/v2", "/v2/", "/v2.1", "/v3", "/v2.0//"]),
)
def test_a_trailing_api_version_is_always_stripped_and_reported(
    spec: Spec, host: str, prefix: str, version: str
) -> None:
    written = f"http://{host}:8000{prefix}{version}"
    loaded = load(
        {**BASE, "SHIM_AUTH": "keystone", "SHIM_KEYSTONE_URL": "http://k", spec.env: written}
    )
    used = getattr(loaded.settings, spec.field)
    assert str(used) == f"http://{host}:8000{prefix.rstrip('/')}"
    assert [variable for variable, _ in loaded.warnings] == [spec.env]


@given(spec=st.sampled_from(SPECS), blank=st.sampled_from(["", " ", "\t", "\n "]))
def test_empty_means_unset_only_where_the_default_is_unset(spec: Spec, blank: str) -> None:
    try:
        settings = load({**BASE, spec.env: blank}).settings
    except SettingsError as error:
        message = str(error)
        if spec.default in (None, frozenset()):
            # Unset is allowed; only a rule about the combination may complain.
            assert not message.startswith(f"{spec.env} is empty")
        else:
            assert message.startswith(f"{spec.env} is empty; unset it for the default")
        return
    assert spec.default in (None, frozenset())
    assert getattr(settings, spec.field) == getattr(load(BASE).settings, spec.field)


FILES = [spec for spec in SPECS if isinstance(spec.kind, ReadableFile)]


@pytest.mark.parametrize("spec", FILES, ids=[spec.env for spec in FILES])
def test_file_settings_name_a_regular_file_that_can_be_read(spec: Spec, tmp_path: Path) -> None:
    readable = tmp_path / "tls.crt"
    readable.write_text("-----BEGIN CERTIFICATE-----\n")
    assert spec.kind.check(spec.kind.parse(f" {readable} ", [])) == str(readable)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block: refused before that
    cases = {
        tmp_path / "missing.pem": "No such file or directory",
        tmp_path: "Is a directory",
        fifo: "not a regular file",
        # Mode 0200 in procfs: unreadable for root too, so the case means the same for all.
        Path("/proc/sys/vm/drop_caches"): "Permission denied",
    }
    for path, problem in cases.items():
        with pytest.raises(SettingsError) as raised:
            load({**BASE, spec.env: str(path)})
        assert str(raised.value) == f"{spec.env}: cannot read {path}: {problem}"


def test_settings_built_directly_refuse_what_the_environment_would() -> None:
    bad_values: tuple[tuple[str, object], ...] = (
        ("glance_timeout", math.inf),
        ("shutdown_timeout", -1.0),
        ("keepalive_timeout", 0),
        ("workers", 0),
        ("pool_size", True),
        ("max_body", 2**70),
        ("trusted_proxies", frozenset({"bogus/99"})),
        ("listen", "0.0.0.0:8774"),
        ("glance_url", "http://glance:9292"),
    )
    for field, bad in bad_values:
        with pytest.raises(SettingsError, match=f"^SHIM_{field.upper()}: "):
            Settings(**{"glance_url": URL("http://g"), field: bad})  # type: ignore[arg-type]
