"""Settings: every ``SHIM_*`` environment variable and its ``--flag``, parsed once.

`Settings.from_sources(environ, argv)` is the only reader of the process environment's
values (``cli`` hands it ``os.environ``); everything else receives a `Settings`. A bad
value raises `SettingsError` naming the setting, so start-up stops with a clear message.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from yarl import URL

from shim.deprecation import deprecation_headers
from shim.tls import check_files

DEFAULT_MAX_MICROVERSION: Final = "2.104"
DEFAULT_MAX_LIMIT: Final = 1000
DEFAULT_GLANCE_PAGE_SIZE: Final = 200
GLANCE_MAX_PAGE: Final = 1000
DEFAULT_GLANCE_TIMEOUT: Final = 30.0
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_GLANCE_RETRIES: Final = 3
DEFAULT_RETRY_AFTER: Final = 5
DEFAULT_GLANCE_MAX_BODY: Final = 32 * 1024 * 1024
DEFAULT_METADATA_ITEMS: Final = 128
DEFAULT_TOKEN_CACHE_TTL: Final = 300.0
DEFAULT_KEYSTONE_TIMEOUT: Final = 10.0
DEFAULT_TOKEN_CACHE_SIZE: Final = 10_000
DEFAULT_POOL_SIZE: Final = 100
DEFAULT_KEEPALIVE: Final = 10.0
DEFAULT_NOVA_READ_TIMEOUT: Final = 300.0
DEFAULT_SHUTDOWN_TIMEOUT: Final = 25.0
DEFAULT_HEADER_READ_TIMEOUT: Final = 10.0
DEFAULT_MAX_BODY: Final = 1024 * 1024
# Below aiohttp's own parser limits (8190 bytes a line), so the shim answers a Nova fault.
DEFAULT_MAX_URL: Final = 8000
DEFAULT_MAX_HEADER_BYTES: Final = 32 * 1024
DEFAULT_CALLER_PROJECTS_MAX: Final = 1000

AuthMode = Literal["passthrough", "keystone", "trusted-headers"]
LogFormat = Literal["json", "console"]
MicroversionCap = Literal["nova", "off"]
_VERSION_RE: Final = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


class Secret(str):
    """A string whose repr never shows the value (passwords)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# A gateway listens on every interface; the chart and a sidecar narrow it.
DEFAULT_LISTEN: Final = Address("0.0.0.0", 8774)  # noqa: S104
DEFAULT_METRICS_LISTEN: Final = Address("0.0.0.0", 9102)  # noqa: S104


@dataclass(frozen=True, slots=True)
class Settings:
    glance_url: URL | None = None
    listen: Address = DEFAULT_LISTEN
    metrics_listen: Address | None = DEFAULT_METRICS_LISTEN
    glance_public_url: URL | None = None
    public_url: URL | None = None
    trusted_proxies: frozenset[str] = frozenset()
    nova_url: URL | None = None
    auth: AuthMode = "passthrough"
    keystone_url: URL | None = None
    service_username: str | None = None
    service_password: Secret | None = None
    service_project: str | None = None
    service_domain: str = "Default"
    catalog_interface: str = "public"
    catalog_region: str | None = None
    token_cache_ttl: float = DEFAULT_TOKEN_CACHE_TTL
    keystone_timeout: float = DEFAULT_KEYSTONE_TIMEOUT
    token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE
    max_microversion: str = DEFAULT_MAX_MICROVERSION
    microversion_cap: MicroversionCap = "nova"
    max_limit: int = DEFAULT_MAX_LIMIT
    glance_page_size: int = DEFAULT_GLANCE_PAGE_SIZE
    glance_timeout: float = DEFAULT_GLANCE_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    glance_retries: int = DEFAULT_GLANCE_RETRIES
    retry_after: int = DEFAULT_RETRY_AFTER
    glance_max_body: int = DEFAULT_GLANCE_MAX_BODY
    metadata_items: int = DEFAULT_METADATA_ITEMS
    pool_size: int = DEFAULT_POOL_SIZE
    keepalive_timeout: float = DEFAULT_KEEPALIVE
    nova_read_timeout: float = DEFAULT_NOVA_READ_TIMEOUT
    max_body: int = DEFAULT_MAX_BODY
    max_url: int = DEFAULT_MAX_URL
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_read_timeout: float = DEFAULT_HEADER_READ_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    workers: int = 1
    log_format: LogFormat = "json"
    log_level: str = "info"
    deprecation: str | None = None
    sunset: str | None = None
    deprecation_link: str | None = None
    require_upstreams: bool = False
    caller_projects_max: int = DEFAULT_CALLER_PROJECTS_MAX
    # TLS (shim.tls): upstream trust, the client certificate, the HTTPS listener's pair.
    ca_file: str | None = None
    glance_ca_file: str | None = None
    keystone_ca_file: str | None = None
    nova_ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_verify: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        _check_version("SHIM_MAX_MICROVERSION", self.max_microversion)
        _check_range("SHIM_GLANCE_PAGE_SIZE", self.glance_page_size, 1, GLANCE_MAX_PAGE)
        _check_range("SHIM_MAX_LIMIT", self.max_limit, 1, 1_000_000)
        _check_range("SHIM_GLANCE_RETRIES", self.glance_retries, 0, 20)
        _check_range("SHIM_WORKERS", self.workers, 1, 1024)
        _check_range("SHIM_POOL_SIZE", self.pool_size, 1, 100_000)
        _check_range("SHIM_MAX_URL", self.max_url, 64, DEFAULT_MAX_URL)
        _check_range("SHIM_MAX_HEADER_BYTES", self.max_header_bytes, 1024, 1024 * 1024)
        _check_range("SHIM_CALLER_PROJECTS_MAX", self.caller_projects_max, 0, 100_000)
        if self.metadata_items < -1:
            raise SettingsError("SHIM_METADATA_ITEMS must be -1 (unlimited) or >= 0")
        for name, value in (
            ("SHIM_GLANCE_TIMEOUT", self.glance_timeout),
            ("SHIM_CONNECT_TIMEOUT", self.connect_timeout),
            ("SHIM_TOKEN_CACHE_TTL", self.token_cache_ttl),
            ("SHIM_KEYSTONE_TIMEOUT", self.keystone_timeout),
            ("SHIM_NOVA_READ_TIMEOUT", self.nova_read_timeout),
            ("SHIM_HEADER_READ_TIMEOUT", self.header_read_timeout),
        ):
            if value <= 0:
                raise SettingsError(f"{name} must be a positive number of seconds, got {value}")
        if self.glance_url is None and self.auth != "keystone":
            raise SettingsError(
                "SHIM_GLANCE_URL is required unless SHIM_AUTH=keystone finds Glance "
                "in the token's catalogue"
            )
        if self.auth == "keystone" and self.keystone_url is None:
            raise SettingsError("SHIM_KEYSTONE_URL is required when SHIM_AUTH=keystone")
        try:
            deprecation_headers(self.deprecation, self.sunset, self.deprecation_link)
            check_files(
                {
                    "SHIM_CA_FILE": self.ca_file,
                    "SHIM_GLANCE_CA_FILE": self.glance_ca_file,
                    "SHIM_KEYSTONE_CA_FILE": self.keystone_ca_file,
                    "SHIM_NOVA_CA_FILE": self.nova_ca_file,
                },
                (self.client_cert, self.client_key),
                (self.tls_cert, self.tls_key),
            )
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    @property
    def glance_link_base(self) -> URL | None:
        """Base of ``alternate`` links: the public Glance URL, else the one the shim calls."""
        return self.glance_public_url or self.glance_url

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
        """Build settings from ``SHIM_*`` variables, overridden by ``--flags`` in *argv*."""
        parser = argparse.ArgumentParser(prog="nova-image-shim", description=__doc__)
        for spec in _SPECS:
            parser.add_argument(
                "--" + spec.env[5:].lower().replace("_", "-"), dest=spec.env, help=spec.help
            )
        flags = vars(parser.parse_args(list(argv)))
        values: dict[str, object] = {}
        for spec in _SPECS:
            raw = flags.get(spec.env)
            if raw is None:
                raw = environ.get(spec.env)
            if raw is None or raw == "":
                continue
            try:
                values[spec.field] = spec.parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{spec.env}: {exc}") from None
        if "workers" not in values:
            values["workers"] = available_cpus()
        return cls(**values)  # type: ignore[arg-type]


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as handle:
            quota, period = handle.read().split()
        if quota != "max":
            count = min(count, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, count)


def _address(name: str, raw: str) -> Address:
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name}: expected HOST:PORT, got {raw!r}")
    return Address(host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104


def _url(raw: str) -> URL:
    url = URL(raw.strip())
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"expected an http(s) URL, got {raw!r}")
    return url


def _positive_float(raw: str) -> float:
    return float(raw)


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return raw

    return parse


def _proxies(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _size(raw: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?)?\s*", raw, re.IGNORECASE)
    if not match:
        raise ValueError(f"expected a size such as 32MiB, got {raw!r}")
    unit = (match.group(2) or "").upper()[:1]
    return int(match.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]


def _check_version(name: str, value: str) -> None:
    if not _VERSION_RE.match(value) or not value.startswith("2."):
        raise SettingsError(f"{name}: expected a 2.N microversion, got {value!r}")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")


@dataclass(frozen=True, slots=True)
class _Spec:
    env: str
    field: str
    parse: Callable[[str], object]
    help: str


_SPECS: Final[tuple[_Spec, ...]] = (
    _Spec("SHIM_LISTEN", "listen", lambda raw: _address("SHIM_LISTEN", raw), "API address"),
    _Spec(
        "SHIM_METRICS_LISTEN",
        "metrics_listen",
        lambda raw: None if raw == "off" else _address("SHIM_METRICS_LISTEN", raw),
        "metrics and health address, or 'off'",
    ),
    _Spec("SHIM_GLANCE_URL", "glance_url", _url, "Glance endpoint the shim calls"),
    _Spec("SHIM_GLANCE_PUBLIC_URL", "glance_public_url", _url, "base of alternate links"),
    _Spec("SHIM_PUBLIC_URL", "public_url", _url, "base of self/bookmark/next links"),
    _Spec("SHIM_TRUSTED_PROXIES", "trusted_proxies", _proxies, "peers whose X-Forwarded-* count"),
    _Spec("SHIM_NOVA_URL", "nova_url", _url, "passthrough upstream (unset: standalone)"),
    _Spec(
        "SHIM_AUTH",
        "auth",
        _choice("passthrough", "keystone", "trusted-headers"),
        "passthrough, keystone or trusted-headers",
    ),
    _Spec("SHIM_KEYSTONE_URL", "keystone_url", _url, "Keystone for validation and 401s"),
    _Spec("SHIM_SERVICE_USERNAME", "service_username", str, "service user for validation"),
    _Spec("SHIM_SERVICE_PASSWORD", "service_password", Secret, "service user password"),
    _Spec("SHIM_SERVICE_PROJECT", "service_project", str, "service user project"),
    _Spec("SHIM_SERVICE_DOMAIN", "service_domain", str, "service user and project domain"),
    _Spec(
        "SHIM_CATALOG_INTERFACE",
        "catalog_interface",
        _choice("public", "internal", "admin"),
        "catalogue interface for Glance",
    ),
    _Spec("SHIM_CATALOG_REGION", "catalog_region", str, "catalogue region for Glance"),
    _Spec("SHIM_TOKEN_CACHE_TTL", "token_cache_ttl", _positive_float, "seconds a token is cached"),
    _Spec("SHIM_TOKEN_CACHE_SIZE", "token_cache_size", int, "tokens cached at most"),
    _Spec(
        "SHIM_KEYSTONE_TIMEOUT", "keystone_timeout", _positive_float, "seconds per Keystone call"
    ),
    _Spec("SHIM_MAX_MICROVERSION", "max_microversion", str, "top of the accepted range"),
    _Spec("SHIM_MICROVERSION_CAP", "microversion_cap", _choice("nova", "off"), "nova or off"),
    _Spec("SHIM_MAX_LIMIT", "max_limit", int, "Nova's max_limit for next links"),
    _Spec("SHIM_GLANCE_PAGE_SIZE", "glance_page_size", int, "page size when walking Glance"),
    _Spec("SHIM_GLANCE_TIMEOUT", "glance_timeout", _positive_float, "seconds per Glance call"),
    _Spec("SHIM_CONNECT_TIMEOUT", "connect_timeout", _positive_float, "seconds to connect"),
    _Spec("SHIM_GLANCE_RETRIES", "glance_retries", int, "GET retries"),
    _Spec("SHIM_RETRY_AFTER", "retry_after", int, "Retry-After seconds on 503"),
    _Spec("SHIM_GLANCE_MAX_BODY", "glance_max_body", _size, "largest Glance answer"),
    _Spec("SHIM_METADATA_ITEMS", "metadata_items", int, "metadata quota (-1 unlimited)"),
    _Spec("SHIM_POOL_SIZE", "pool_size", int, "upstream connections per worker"),
    _Spec("SHIM_KEEPALIVE_TIMEOUT", "keepalive_timeout", _positive_float, "idle pooled seconds"),
    _Spec(
        "SHIM_NOVA_READ_TIMEOUT",
        "nova_read_timeout",
        _positive_float,
        "idle seconds between passthrough chunks",
    ),
    _Spec("SHIM_MAX_BODY", "max_body", _size, "largest request body on image routes"),
    _Spec("SHIM_MAX_URL", "max_url", int, "longest request path and query, bytes (414)"),
    _Spec("SHIM_MAX_HEADER_BYTES", "max_header_bytes", _size, "largest request header block (431)"),
    _Spec(
        "SHIM_HEADER_READ_TIMEOUT",
        "header_read_timeout",
        _positive_float,
        "seconds a client may take to send its request head",
    ),
    _Spec("SHIM_SHUTDOWN_TIMEOUT", "shutdown_timeout", _positive_float, "drain bound on SIGTERM"),
    _Spec("SHIM_WORKERS", "workers", int, "worker processes (default: CPUs available)"),
    _Spec("SHIM_LOG_FORMAT", "log_format", _choice("json", "console"), "json or console"),
    _Spec("SHIM_LOG_LEVEL", "log_level", _choice("debug", "info", "warning", "error"), "log level"),
    _Spec("SHIM_DEPRECATION", "deprecation", str, "Deprecation header value (RFC 9745)"),
    _Spec("SHIM_SUNSET", "sunset", str, "Sunset header value (RFC 8594)"),
    _Spec("SHIM_DEPRECATION_LINK", "deprecation_link", str, "Link rel=deprecation target"),
    _Spec(
        "SHIM_REQUIRE_UPSTREAMS",
        "require_upstreams",
        _bool,
        "stop start-up when an upstream fails its start-up check",
    ),
    _Spec("SHIM_CALLER_PROJECTS_MAX", "caller_projects_max", int, "projects in caller series"),
    _Spec("SHIM_CA_FILE", "ca_file", str, "PEM bundle verifying every upstream"),
    _Spec("SHIM_GLANCE_CA_FILE", "glance_ca_file", str, "PEM bundle verifying Glance"),
    _Spec("SHIM_KEYSTONE_CA_FILE", "keystone_ca_file", str, "PEM bundle verifying Keystone"),
    _Spec("SHIM_NOVA_CA_FILE", "nova_ca_file", str, "PEM bundle verifying Nova"),
    _Spec("SHIM_CLIENT_CERT", "client_cert", str, "client certificate for upstreams (PEM)"),
    _Spec("SHIM_CLIENT_KEY", "client_key", str, "its private key (PEM)"),
    _Spec("SHIM_TLS_VERIFY", "tls_verify", _bool, "false: do not verify upstreams"),
    _Spec("SHIM_TLS_CERT", "tls_cert", str, "HTTPS listener certificate chain (PEM)"),
    _Spec("SHIM_TLS_KEY", "tls_key", str, "HTTPS listener private key (PEM)"),
)
