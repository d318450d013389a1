"""Logging: one structlog pipeline for the shim, aiohttp and the stdlib; never a token.

`configure_logging(settings)` runs once per process. JSON lines in production, console in
development. Every event passes `redact`, which masks token-bearing keys and any value
that looks like it carries ``X-Auth-Token``/``X-Subject-Token``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shim.settings import Settings

REDACTED: Final = "***"
_SECRET_KEYS: Final = frozenset(
    {"token", "x-auth-token", "x_auth_token", "x-subject-token", "subject_token", "password"}
)
_HEADER_RE: Final = re.compile(
    r"(?i)((?:x-auth-token|x-subject-token|x_auth_token)['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"
)


def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = REDACTED
        else:
            event[key] = _scrub(event[key])
    return event


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _HEADER_RE.sub(lambda m: m.group(1) + REDACTED, value)
    if isinstance(value, MutableMapping):
        return {
            k: REDACTED if str(k).lower() in _SECRET_KEYS else _scrub(v) for k, v in value.items()
        }
    return value


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    if settings.log_format == "json":
        renderer: Processor = structlog.processors.JSONRenderer()
        exceptions: list[Processor] = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer()
        exceptions = []
    structlog.configure(
        processors=[
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exceptions,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
