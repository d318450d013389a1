"""Kinds of setting: which text a ``SHIM_*`` value may be, and which values are in range.

A `Kind` turns text into a value (`Kind.parse`), accepts or refuses a value however it was
made (`Kind.check`, also run when `shim.settings.Settings` is built directly) and writes a
value back as text (`Kind.show`: ``--help`` defaults and the start-up line). Failures are
``ValueError``: with the problem in words, or empty for "not what was expected", which
`shim.settings` turns into ``SHIM_X: expected <expected>, e.g. <example>; got '<text>'``.

Rules: numbers are plain ASCII decimals (no ``nan``, ``inf``, ``1e3``, ``1_000``), finite and
inside a stated range; lists are parsed into their final form here, never at request time;
URLs are http(s) with a host and no credentials, query or fragment, and a trailing API
version (``/v2``, ``/v2.1``, ``/v3``) is removed with a note, as `shim.catalog.service_root`
does for catalogue endpoints; files are opened once to prove they can be read.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from yarl import URL

from shim.catalog import service_root
from shim.headers import Networks
from shim.legacy.microversion import MIN_VERSION, parse_version

HOUR: Final = 3600.0
DAY: Final = 86400.0
KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB


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


T = TypeVar("T")


class Kind(Generic[T]):
    """How one setting's text becomes a value, and which values are acceptable.

    `parse` turns text into a value (``ValueError`` if it cannot), `check` accepts or
    refuses a value however it was made (``ValueError`` with the problem in words, or empty
    for "not what was expected") and may return a normalised copy; `show` writes a value
    back as text (``--help`` defaults, the start-up line).
    """

    expected: str = "a value"
    example: str = ""
    metavar: str = "VALUE"
    unset: str | None = None
    """How ``None`` is shown: unset, or a word such as ``off``."""

    def parse(self, raw: str, notes: list[str]) -> T:
        raise NotImplementedError

    def check(self, value: Any) -> T:
        return value  # type: ignore[no-any-return]

    def show(self, value: T) -> str:
        return str(value)


_DECIMAL: Final = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?", re.ASCII)
_INTEGER: Final = re.compile(r"-?[0-9]{1,15}", re.ASCII)
_SIZE: Final = re.compile(r"([0-9]{1,15})\s*(?:([KMG])(?:i?B)?|B)?", re.ASCII | re.IGNORECASE)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("")
    if not math.isfinite(value):
        raise ValueError("")
    return value


def _show_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class Seconds(Kind[float]):
    """A finite number of seconds: above 0 (or from 0 with ``zero=True``) and at most *most*."""

    metavar = "SECONDS"

    def __init__(self, *, most: float = HOUR, zero: bool = False) -> None:
        self.most, self.zero = most, zero
        low = "from 0" if zero else "above 0"
        self.expected = f"seconds ({low}, at most {_show_number(most)})"
        self.example = "30"

    def parse(self, raw: str, notes: list[str]) -> float:
        if not _DECIMAL.fullmatch(raw.strip()):
            raise ValueError("")
        return float(raw)

    def check(self, value: Any) -> float:
        number = _number(value)
        if not (number >= 0 if self.zero else number > 0) or number > self.most:
            raise ValueError("")
        return value  # type: ignore[no-any-return]

    def show(self, value: float) -> str:
        return _show_number(value)


class Integer(Kind[int]):
    """A whole number from *low* to *high*."""

    metavar = "N"

    def __init__(self, low: int, high: int, *, meaning: str = "a whole number") -> None:
        self.low, self.high = low, high
        self.expected = f"{meaning} from {low} to {high}"
        self.example = str(max(low, 1))

    def parse(self, raw: str, notes: list[str]) -> int:
        if not _INTEGER.fullmatch(raw.strip()):
            raise ValueError("")
        return int(raw)

    def check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("")
        if not self.low <= value <= self.high:
            raise ValueError("")
        return value


def _show_size(value: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


class Size(Integer):
    """A byte count, optionally with a unit: ``32MiB``, ``512K``, ``1G`` (powers of 1024)."""

    metavar = "SIZE"

    def __init__(self, low: int, high: int) -> None:
        super().__init__(low, high)
        self.expected = f"a size from {_show_size(low)} to {_show_size(high)}"
        self.example = "32MiB"

    def parse(self, raw: str, notes: list[str]) -> int:
        match = _SIZE.fullmatch(raw.strip())
        if not match:
            raise ValueError("")
        unit = (match.group(2) or "").upper()
        return int(match.group(1)) * {"": 1, "K": KiB, "M": MiB, "G": GiB}[unit]

    def show(self, value: int) -> str:
        return _show_size(value)


class Stripped(Kind[str]):
    """A value that is its text without the spaces around it."""

    def parse(self, raw: str, notes: list[str]) -> str:
        return raw.strip()


class Choice(Stripped):
    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.expected = "one of " + ", ".join(choices)
        self.example = choices[0]
        self.metavar = "{" + ",".join(choices) + "}"

    def check(self, value: Any) -> str:
        if value not in self.choices:
            raise ValueError("")
        return value  # type: ignore[no-any-return]


class Flag(Kind[bool]):
    expected = "true or false"
    example = "true"
    metavar = "BOOL"

    def parse(self, raw: str, notes: list[str]) -> bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("")

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("")
        return value

    def show(self, value: bool) -> str:
        return "true" if value else "false"


class Text(Kind[str]):
    expected = "text without control characters"
    example = "nova"
    metavar = "TEXT"

    def __init__(self, wrap: Callable[[str], str] = str) -> None:
        self.wrap = wrap

    def parse(self, raw: str, notes: list[str]) -> str:
        return self.wrap(raw.strip())

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value or not value.isprintable():
            raise ValueError("")
        return value


class Password(Text):
    expected = "a password"
    example = "********"
    metavar = "PASSWORD"
    # A string either way: the log scrubber masks whatever follows a "password" key as
    # text, and would turn a JSON null there into invalid JSON.
    unset = "unset"

    def __init__(self) -> None:
        super().__init__(Secret)

    def parse(self, raw: str, notes: list[str]) -> str:
        return Secret(raw)  # spaces may be part of a password

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError("")
        return value if isinstance(value, Secret) else Secret(value)

    def show(self, value: str) -> str:
        return "********"


class Microversion(Stripped):
    expected = "a 2.N microversion"
    example = "2.90"
    metavar = "2.N"

    def check(self, value: Any) -> str:
        version = parse_version(value) if isinstance(value, str) else None
        if version is None or version.major != 2 or version < MIN_VERSION:
            raise ValueError("")
        return str(value)


_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?",
    re.ASCII,
)


class Listen(Kind[Address | None]):
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6; an empty host is every IPv4 interface), or
    ``off`` where *may_be_off*."""

    metavar = "HOST:PORT"

    def __init__(self, *, may_be_off: bool = False) -> None:
        self.may_be_off = may_be_off
        self.unset = "off" if may_be_off else None
        self.metavar = "HOST:PORT|off" if may_be_off else "HOST:PORT"
        self.expected = "HOST:PORT" + (" or 'off'" if may_be_off else "")
        self.example = "0.0.0.0:8774"

    def parse(self, raw: str, notes: list[str]) -> Address | None:
        text = raw.strip()
        if self.may_be_off and text == "off":
            return None
        host, sep, port = text.rpartition(":")
        if not sep or not re.fullmatch(r"[0-9]{1,5}", port, re.ASCII):
            raise ValueError("")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return Address(host or "0.0.0.0", int(port))  # noqa: S104

    def check(self, value: Any) -> Address:
        if not isinstance(value, Address) or not 0 <= value.port <= 65535:
            raise ValueError("")
        try:
            ipaddress.ip_address(value.host)
        except ValueError:
            if not _HOSTNAME.fullmatch(value.host):
                raise ValueError(f"{value.host!r} is not an IP address or host name") from None
        return value

    def show(self, value: Address | None) -> str:
        return str(value)


_API_VERSION: Final = re.compile(r"/v[0-9]+(?:\.[0-9]+)?/*\Z", re.ASCII)


class Url(Kind[URL]):
    """An http(s) URL with a host; its service root, without a trailing API version."""

    expected = "an http(s) URL"
    example = "http://glance:9292"
    metavar = "URL"

    def parse(self, raw: str, notes: list[str]) -> URL:
        text = raw.strip()
        try:
            url = URL(text)
        except (ValueError, TypeError):
            raise ValueError("") from None
        root = self.check(url)
        version = _API_VERSION.search(url.path)
        if version is not None:
            notes.append(
                f"{text!r} ends in the API version {version.group().rstrip('/')!r}, "
                f"which the shim adds itself; using {root} (write that to silence this warning)"
            )
        return root

    def check(self, value: Any) -> URL:
        if not isinstance(value, URL):
            raise ValueError("")
        try:
            if value.scheme not in ("http", "https") or not value.host:
                raise ValueError("")
            value.port  # noqa: B018 - yarl raises here for a port out of range
        except (ValueError, TypeError):
            raise ValueError("") from None
        if value.user is not None or value.password is not None:
            raise ValueError("credentials do not belong in the URL; remove 'user:password@'")
        if value.query_string or value.fragment:
            raise ValueError(f"{str(value)!r} has a query or fragment; give the URL without it")
        root = URL(service_root(str(value)))
        return value if root == value else root


class CidrList(Kind[Networks]):
    """Comma-separated IP addresses and CIDRs (an address is its own /32 or /128)."""

    expected = "IP addresses or CIDRs separated by commas"
    example = "10.0.0.0/8,192.0.2.7"
    metavar = "CIDR[,CIDR...]"

    def parse(self, raw: str, notes: list[str]) -> Networks:
        return self.check([part.strip() for part in raw.split(",") if part.strip()])

    def check(self, value: Any) -> Networks:
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise ValueError("")
        networks = []
        for entry in value:
            if isinstance(entry, ipaddress.IPv4Network | ipaddress.IPv6Network):
                networks.append(entry)
                continue
            try:
                networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or CIDR "
                    f"(expected {self.expected}, e.g. {self.example})"
                ) from None
        parsed = frozenset(networks)
        return value if parsed == value else parsed

    def show(self, value: Networks) -> str:
        return ",".join(sorted(str(network) for network in value))


class ReadableFile(Stripped):
    """The path of a regular file this process can read (checked by opening it); what the
    file must hold is for its user to check (`shim.tls.check_files` for PEM files)."""

    expected = "the path of a readable file"
    example = "/etc/nova-image-shim/tls/ca.crt"
    metavar = "PATH"

    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError("")
        path = Path(value)
        try:
            if path.exists() and not path.is_file() and not path.is_dir():
                raise ValueError(f"cannot read {value}: not a regular file")  # a FIFO would block
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        return value
