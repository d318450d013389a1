"""Settings: every ``SHIM_*`` environment variable and its ``--flag``, checked at start-up.

`load` is the only reader of the process environment's values (`shim.cli` hands it
``os.environ``); everything else receives a `Settings`. Each setting is one line of `SPECS`
(its variable, its kind from `shim.setting_kinds`, a few words for ``--help``) plus the
`Settings` field of the same name, which holds its type and default. A bad value raises
`SettingsError` naming the setting and what is wrong with the value, so start-up stops
(exit 2) before anything listens. Building `Settings` directly (tests, benchmarks) runs the
same checks, so no other module re-validates a setting.

Adding a setting is a field on `Settings` and one line in `SPECS`, for example::

    keystone_timeout: float = 10.0
    _spec("SHIM_KEYSTONE_TIMEOUT", Seconds(), "seconds per Keystone call"),

An empty value means "unset" only where the default is unset or empty; elsewhere
(``SHIM_AUTH=``) it is an error, so a template's blank never silently selects another mode.
A ``SHIM_*`` variable that is not a setting is reported with the closest name.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

from yarl import URL

from shim import __version__
from shim.deprecation import deprecation_headers
from shim.headers import Networks
from shim.setting_kinds import (
    DAY,
    Address,
    Choice,
    CidrList,
    Flag,
    GiB,
    Integer,
    KiB,
    Kind,
    Listen,
    MiB,
    Microversion,
    Password,
    ReadableFile,
    Seconds,
    Secret,
    Size,
    Text,
    Url,
)
from shim.tls import check_files

__all__ = ["SPECS", "Address", "Secret", "Settings", "SettingsError", "Spec", "load"]

GLANCE_MAX_PAGE: Final = 1000
# Below aiohttp's own parser limits (8190 bytes a line), so the shim answers a Nova fault.
DEFAULT_MAX_URL: Final = 8000

AuthMode = Literal["passthrough", "keystone", "trusted-headers"]
LogFormat = Literal["json", "console"]
MicroversionCap = Literal["nova", "off"]
RendererChoice = Literal["auto", "c", "python"]

PROG: Final = "nova-image-shim"
# SHIM_* variables the project's own test tooling reads; not settings, so never warned about.
TOOLING_VARIABLES: Final = ("SHIM_STACK_", "SHIM_FUZZ_SCALE", "SHIM_RENDER_SANITIZERS")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is wrong."""


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
    trusted_proxies: Networks = frozenset()
    nova_url: URL | None = None
    auth: AuthMode = "passthrough"
    keystone_url: URL | None = None
    service_username: str | None = None
    service_password: Secret | None = None
    service_project: str | None = None
    service_domain: str = "Default"
    catalog_interface: str = "public"
    catalog_region: str | None = None
    token_cache_ttl: float = 300.0
    keystone_timeout: float = 10.0
    token_cache_size: int = 10_000
    max_microversion: str = "2.104"
    microversion_cap: MicroversionCap = "nova"
    max_limit: int = 1000
    glance_page_size: int = 200
    glance_timeout: float = 30.0
    connect_timeout: float = 5.0
    glance_retries: int = 3
    retry_after: int = 5
    glance_max_body: int = 32 * MiB
    metadata_items: int = 128
    pool_size: int = 100
    keepalive_timeout: float = 10.0
    nova_read_timeout: float = 300.0
    max_body: int = MiB
    max_url: int = DEFAULT_MAX_URL
    max_header_bytes: int = 32 * KiB
    header_read_timeout: float = 10.0
    shutdown_timeout: float = 25.0
    workers: int = 1
    renderer: RendererChoice = "auto"
    log_format: LogFormat = "json"
    log_level: str = "info"
    deprecation: str | None = None
    sunset: str | None = None
    deprecation_link: str | None = None
    require_upstreams: bool = False
    caller_projects_max: int = 1000
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
        for spec in SPECS:
            value = getattr(self, spec.field)
            if value is None:  # unset (or off); the type says where None is allowed
                continue
            try:
                checked = spec.kind.check(value)
            except ValueError as exc:
                raise SettingsError(spec.complaint(exc, repr(value))) from None
            if checked is not value:
                object.__setattr__(self, spec.field, checked)
        _check_combinations(self)

    @property
    def glance_link_base(self) -> URL | None:
        """Base of ``alternate`` links: the public Glance URL, else the one the shim calls."""
        return self.glance_public_url or self.glance_url

    @property
    def mode(self) -> Literal["gateway", "standalone"]:
        """``gateway``: other compute calls go to Nova; ``standalone``: images only."""
        return "gateway" if self.nova_url is not None else "standalone"

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], argv: Sequence[str] = ()) -> Settings:
        """Build settings from ``SHIM_*`` variables, overridden by ``--flags`` in *argv*."""
        return load(environ, argv).settings


def _check_combinations(settings: Settings) -> None:
    """Rules that involve more than one setting."""
    if settings.glance_url is None and settings.auth != "keystone":
        raise SettingsError(
            "SHIM_GLANCE_URL is required unless SHIM_AUTH=keystone finds Glance "
            "in the token's catalogue"
        )
    if settings.auth == "keystone" and settings.keystone_url is None:
        raise SettingsError("SHIM_KEYSTONE_URL is required when SHIM_AUTH=keystone")
    if (settings.service_username is None) != (settings.service_password is None):
        raise SettingsError(
            "SHIM_SERVICE_USERNAME and SHIM_SERVICE_PASSWORD go together: set both or neither"
        )
    metrics = settings.metrics_listen
    if metrics is not None and metrics == settings.listen and metrics.port != 0:
        raise SettingsError(
            f"SHIM_METRICS_LISTEN: {metrics} is SHIM_LISTEN's address too; "
            "give it another port, or 'off'"
        )
    try:
        deprecation_headers(settings.deprecation, settings.sunset, settings.deprecation_link)
        check_files(
            {
                "SHIM_CA_FILE": settings.ca_file,
                "SHIM_GLANCE_CA_FILE": settings.glance_ca_file,
                "SHIM_KEYSTONE_CA_FILE": settings.keystone_ca_file,
                "SHIM_NOVA_CA_FILE": settings.nova_ca_file,
            },
            (settings.client_cert, settings.client_key),
            (settings.tls_cert, settings.tls_key),
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


# --- the table --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """One setting: its variable (the field is its lower-cased name without ``SHIM_``)."""

    env: str
    kind: Kind[Any]
    help: str
    default_text: str | None = None
    """Shown instead of the field's default in ``--help`` (a computed default)."""

    @property
    def field(self) -> str:
        return self.env.removeprefix("SHIM_").lower()

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def default(self) -> Any:
        return _DEFAULTS[self.field]

    @property
    def default_shown(self) -> str:
        if self.default_text is not None:
            return self.default_text
        return self.show(self.default) or "unset"  # None, or an empty list

    @property
    def example(self) -> str:
        """The default when it is a plain value, else the kind's own example."""
        shown = self.show(self.default) if self.default_text is None else None
        return shown or self.kind.example

    def show(self, value: Any) -> str | None:
        return self.kind.unset if value is None else self.kind.show(value)

    def complaint(self, exc: ValueError, got: str) -> str:
        """``SHIM_X: <problem>`` — the kind's own words, else what was expected."""
        if str(exc):
            return f"{self.env}: {exc}"
        return f"{self.env}: expected {self.kind.expected}, e.g. {self.example}; got {got}"


def _spec(env: str, kind: Kind[Any], help: str, default_text: str | None = None) -> Spec:
    return Spec(env, kind, help, default_text)


_URL: Final = Url()
_TEXT: Final = Text()
_FILE: Final = ReadableFile()

SPECS: Final[tuple[Spec, ...]] = (
    _spec("SHIM_LISTEN", Listen(), "API address"),
    _spec("SHIM_METRICS_LISTEN", Listen(may_be_off=True), "metrics and health address, or off"),
    _spec("SHIM_GLANCE_URL", _URL, "Glance endpoint the shim calls", "the token's catalogue"),
    _spec("SHIM_GLANCE_PUBLIC_URL", _URL, "base of alternate links", "SHIM_GLANCE_URL"),
    _spec("SHIM_PUBLIC_URL", _URL, "base of self/bookmark/next links", "the request's"),
    _spec("SHIM_TRUSTED_PROXIES", CidrList(), "peers whose Forwarded/X-Forwarded-* count"),
    _spec("SHIM_NOVA_URL", _URL, "Nova, for every other compute call", "unset: standalone"),
    _spec("SHIM_AUTH", Choice("passthrough", "keystone", "trusted-headers"), "who checks tokens"),
    _spec("SHIM_KEYSTONE_URL", _URL, "Keystone for validation, catalogue and 401s"),
    _spec("SHIM_SERVICE_USERNAME", _TEXT, "service user that validates tokens"),
    _spec("SHIM_SERVICE_PASSWORD", Password(), "its password"),
    _spec("SHIM_SERVICE_PROJECT", _TEXT, "its project"),
    _spec("SHIM_SERVICE_DOMAIN", _TEXT, "its user and project domain"),
    _spec("SHIM_CATALOG_INTERFACE", Choice("public", "internal", "admin"), "catalogue interface"),
    _spec("SHIM_CATALOG_REGION", _TEXT, "catalogue region", "any"),
    _spec("SHIM_TOKEN_CACHE_TTL", Seconds(most=DAY), "longest a token validation is reused"),
    _spec("SHIM_TOKEN_CACHE_SIZE", Integer(1, 10_000_000), "tokens cached per worker"),
    _spec("SHIM_KEYSTONE_TIMEOUT", Seconds(), "seconds per Keystone call"),
    _spec("SHIM_MAX_MICROVERSION", Microversion(), "top of the accepted microversion range"),
    _spec("SHIM_MICROVERSION_CAP", Choice("nova", "off"), "cap image routes at Nova's range"),
    _spec("SHIM_MAX_LIMIT", Integer(1, 1_000_000), "Nova's max_limit, for next links"),
    _spec("SHIM_GLANCE_PAGE_SIZE", Integer(1, GLANCE_MAX_PAGE), "page size walking Glance"),
    _spec("SHIM_GLANCE_TIMEOUT", Seconds(), "seconds per Glance call, retries included"),
    _spec("SHIM_CONNECT_TIMEOUT", Seconds(), "seconds to connect to an upstream"),
    _spec("SHIM_GLANCE_RETRIES", Integer(0, 20), "retries of a failed Glance GET"),
    _spec("SHIM_RETRY_AFTER", Integer(0, 3600, meaning="seconds"), "Retry-After on a 503"),
    _spec("SHIM_GLANCE_MAX_BODY", Size(KiB, GiB), "largest Glance answer"),
    _spec("SHIM_METADATA_ITEMS", Integer(-1, 1_000_000), "metadata quota per image, -1 none"),
    _spec("SHIM_POOL_SIZE", Integer(1, 100_000), "upstream connections per worker"),
    _spec("SHIM_KEEPALIVE_TIMEOUT", Seconds(), "seconds an idle upstream connection is kept"),
    _spec("SHIM_NOVA_READ_TIMEOUT", Seconds(most=DAY), "idle seconds between Nova's chunks"),
    _spec("SHIM_MAX_BODY", Size(1, GiB), "largest request body on image routes (413)"),
    _spec("SHIM_MAX_URL", Integer(64, DEFAULT_MAX_URL), "longest path and query, bytes (414)"),
    _spec("SHIM_MAX_HEADER_BYTES", Size(KiB, MiB), "largest request header block (431)"),
    _spec("SHIM_HEADER_READ_TIMEOUT", Seconds(), "seconds to send the request head"),
    _spec("SHIM_SHUTDOWN_TIMEOUT", Seconds(zero=True), "seconds to drain after SIGTERM"),
    _spec("SHIM_WORKERS", Integer(1, 1024), "worker processes", "CPUs available"),
    _spec("SHIM_RENDERER", Choice("auto", "c", "python"), "image JSON writer: auto, c, python"),
    _spec("SHIM_LOG_FORMAT", Choice("json", "console"), "log format"),
    _spec("SHIM_LOG_LEVEL", Choice("debug", "info", "warning", "error"), "log level"),
    _spec("SHIM_DEPRECATION", _TEXT, "Deprecation header date (RFC 9745)"),
    _spec("SHIM_SUNSET", _TEXT, "Sunset header date (RFC 8594)"),
    _spec("SHIM_DEPRECATION_LINK", _TEXT, "Link rel=deprecation target"),
    _spec("SHIM_REQUIRE_UPSTREAMS", Flag(), "stop start-up when an upstream fails its check"),
    _spec("SHIM_CALLER_PROJECTS_MAX", Integer(0, 100_000), "projects in caller series"),
    _spec("SHIM_CA_FILE", _FILE, "PEM bundle verifying every upstream"),
    _spec("SHIM_GLANCE_CA_FILE", _FILE, "PEM bundle verifying Glance"),
    _spec("SHIM_KEYSTONE_CA_FILE", _FILE, "PEM bundle verifying Keystone"),
    _spec("SHIM_NOVA_CA_FILE", _FILE, "PEM bundle verifying Nova"),
    _spec("SHIM_CLIENT_CERT", _FILE, "client certificate for upstreams (PEM)"),
    _spec("SHIM_CLIENT_KEY", _FILE, "its private key (PEM)"),
    _spec("SHIM_TLS_VERIFY", Flag(), "false: do not verify upstreams"),
    _spec("SHIM_TLS_CERT", _FILE, "HTTPS listener certificate chain (PEM)"),
    _spec("SHIM_TLS_KEY", _FILE, "HTTPS listener private key (PEM)"),
)
BY_ENV: Final = {spec.env: spec for spec in SPECS}
_DEFAULTS: Final[dict[str, Any]] = {
    field.name: field.default for field in dataclasses.fields(Settings)
}


# --- sources: environment and flags -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    settings: Settings
    warnings: tuple[tuple[str, str], ...]
    """(variable, words) start-up should log: stripped URL versions, unknown variables."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print usage and exit
        raise SettingsError(message)


def command_line() -> argparse.ArgumentParser:
    """Every flag with its variable and default (``--help``), and ``--version``."""
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [--FLAG VALUE ...]  (or SHIM_FLAG=VALUE in the environment)",
        description=(
            "Serves the legacy Nova compute image API (/images) from Glance v2 and, with "
            "--nova-url, passes every other compute call to Nova. Every flag is also an "
            "environment variable, shown in brackets; a flag wins over its variable."
        ),
        epilog=(
            "Exit status: 0 after a clean shutdown, 2 for a bad setting (the message names "
            "it), 3 when the server cannot start, 1 otherwise."
        ),
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    for spec in SPECS:
        parser.add_argument(
            spec.flag,
            dest=spec.env,
            metavar=spec.kind.metavar,
            help=f"{spec.help} [{spec.env}; default: {spec.default_shown}]".replace("%", "%%"),
        )
    return parser


def load(environ: Mapping[str, str], argv: Sequence[str] = ()) -> Loaded:
    """Settings from ``SHIM_*`` variables overridden by *argv*'s flags, and the warnings."""
    flags = vars(command_line().parse_args(list(argv)))
    notes: list[tuple[str, str]] = []
    values: dict[str, object] = {}
    for spec in SPECS:
        raw = flags.get(spec.env)
        if raw is None:
            raw = environ.get(spec.env)
        if raw is None:
            continue
        if not raw.strip():
            if spec.default is None or spec.default == frozenset():
                continue
            raise SettingsError(
                f"{spec.env} is empty; unset it for the default ({spec.default_shown}) or "
                f"give {spec.kind.expected}, e.g. {spec.example}"
            )
        values[spec.field] = _parse(spec, raw, notes)
    if "workers" not in values:
        values["workers"] = available_cpus()
    settings = Settings(**values)  # type: ignore[arg-type]
    return Loaded(settings, tuple(notes) + tuple(unknown_variables(environ)))


def _parse(spec: Spec, raw: str, notes: list[tuple[str, str]]) -> object:
    found: list[str] = []
    try:
        value = spec.kind.parse(raw, found)
        if value is not None:
            value = spec.kind.check(value)
    except ValueError as exc:
        raise SettingsError(spec.complaint(exc, repr(raw))) from None
    notes.extend((spec.env, note) for note in found)
    return value


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """A warning for each ``SHIM_*`` variable that is not a setting, with the closest name."""
    known = [name.removeprefix("SHIM_") for name in BY_ENV]  # the shared prefix is no hint
    warnings = []
    for name in sorted(environ):
        if not name.startswith("SHIM_") or name in BY_ENV or name.startswith(TOOLING_VARIABLES):
            continue
        close = difflib.get_close_matches(name.removeprefix("SHIM_"), known, n=1, cutoff=0.6)
        hint = f"; did you mean SHIM_{close[0]}?" if close else ""
        warnings.append((name, f"not a setting, ignored{hint}"))
    return warnings


def effective(settings: Settings, renderer: str) -> dict[str, str | None]:
    """Every setting as the shim runs it, secrets masked, for the start-up line.

    *renderer* is the one actually running (``c`` or ``python``); ``renderer_setting``
    the choice that picked it.
    """
    shown: dict[str, str | None] = {"mode": settings.mode, "version": __version__}
    for spec in SPECS:
        shown[spec.field] = spec.show(getattr(settings, spec.field))
    shown["renderer"] = renderer
    shown["renderer_setting"] = settings.renderer
    if settings.glance_url is None:
        region = settings.catalog_region or "any region"
        shown["glance_url"] = f"catalogue ({settings.catalog_interface}, {region})"
    return shown


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
