"""Logging: one structlog pipeline for the shim, aiohttp and the stdlib; never a token.

`configure_logging(settings)` runs once per process: JSON lines in production, console in
development (``SHIM_LOG_FORMAT``). Stdlib records (aiohttp's ``aiohttp.*`` loggers, asyncio,
warnings) go through `structlog.stdlib.ProcessorFormatter` with the same pre-chain as
structlog's own events, so every line has the same shape and passes the same redaction.
Tracebacks are rendered without frame locals (``show_locals=False``; structlog's default
would log them, tokens included).

Redaction, in three layers, because a token can hide in a header dump, a URL, an exception
message or aiohttp's own error text:

1. `redact` masks the value of any key that names a credential (``token``,
   ``x-auth-token``, ``password`` ...), in nested dicts and lists too;
2. it also rewrites strings: ``X-Auth-Token: <value>``-style pairs, anything shaped like a
   Keystone Fernet or JWS token, and the exact credentials of the request being served
   (`bind_request_secrets`, a context variable set by the access middleware);
3. the rendered line goes through the same string rewrite once more, which covers
   exception text the renderers format themselves.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shim.settings import Settings

REDACTED: Final = "***"
# Header and field names whose values are credentials, compared lower-cased with "_" and
# "-" treated alike.
_SECRET_NAMES: Final = frozenset(
    {
        "token",
        "auth_token",
        "x_auth_token",
        "x_subject_token",
        "subject_token",
        "x_service_token",
        "service_token",
        "authorization",
        "proxy_authorization",
        "password",
        "secret",
        "cookie",
        "set_cookie",
    }
)
# "<name>: value" / "<name>=value" / "'<name>': 'value'" where the name ends in token,
# password or secret (X-Auth-Token, x_subject_token, ?token=, password=) or is a credential
# header: headers, query strings, dict and multidict reprs. A name ending in token is
# matched from the start of its run of word characters only: from anywhere inside the run
# the answer is the same, and trying each start made a long run quadratic (a rendered log
# line: most of the cost of writing it).
_NAMED_VALUE: Final = re.compile(
    r"(?i)((?:(?<![\w-])[\w-]*(?:token|password|passwd|secret)|authorization|cookie)"
    r"['\"]?\s*[:=]\s*['\"]?)(?:bearer\s+|basic\s+)?[^'\"\s,;}&]+"
)
# Keystone Fernet tokens are url-safe base64 starting "gAAAAA"; JWS tokens are three
# base64url parts starting "eyJ" (a JSON header).
_NAME_HINTS: Final = ("token", "passw", "secret", "author", "cookie")
_FERNET_START: Final = "gAAAAA"
_JWS_START: Final = "eyJ"
_TOKEN_SHAPES: Final = re.compile(
    rf"{_FERNET_START}[A-Za-z0-9_\-=]{{20,}}"
    rf"|{_JWS_START}[A-Za-z0-9_\-]{{8,}}\.[A-Za-z0-9_\-]{{8,}}\.[A-Za-z0-9_\-]{{8,}}"
)
_RENDERED_LATER: Final = frozenset({"exc_info", "stack_info"})
# Shorter values are not masked by exact match: "abc" would garble unrelated text.
MIN_SECRET_LENGTH: Final = 8

_request_secrets: ContextVar[tuple[str, ...]] = ContextVar("shim_request_secrets", default=())


def bind_request_secrets(values: Iterable[str]) -> None:
    """Mask these exact strings in every log line written in the current context."""
    _request_secrets.set(tuple(v for v in values if len(v) >= MIN_SECRET_LENGTH))


def scrub(text: str) -> str:
    """*text* with credential-looking substrings and the request's own secrets masked.

    Each pattern runs only on text holding what any of its matches must hold: a ``:`` or
    ``=`` and a credential's name for a named value, a token shape's literal start. Most
    fields and most log lines have none of them, and a regular expression walks every
    position of its text (a rendered access line: about 600).
    """
    for secret in _request_secrets.get():
        if secret in text:
            text = text.replace(secret, REDACTED)
    if (":" in text or "=" in text) and _could_name_a_credential(text):
        text = _NAMED_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    if _FERNET_START in text or _JWS_START in text:
        text = _TOKEN_SHAPES.sub(REDACTED, text)
    return text


def _could_name_a_credential(text: str) -> bool:
    """False only if `_NAMED_VALUE` cannot match: none of its names is in *text*.

    Case-folded as the pattern's ``(?i)`` folds, except that it also takes the Turkish
    dotted and dotless i for ``i``: hence ``author``, not ``authorization``.
    """
    folded = text.casefold()
    return any(hint in folded for hint in _NAME_HINTS)


def _is_secret_name(name: object) -> bool:
    return str(name).lower().replace("-", "_") in _SECRET_NAMES


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if _is_secret_name(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(v) for v in value)
    return value


def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Processor: mask credential keys and credential-looking text in every field."""
    for key in list(event):
        # ProcessorFormatter's record and flags; exc_info is redacted once rendered.
        if key.startswith("_") or key in _RENDERED_LATER:
            continue
        event[key] = REDACTED if _is_secret_name(key) else _redact_value(event[key])
    return event


class ScrubbedRenderer:
    """Wraps the final renderer: the rendered line gets `scrub` once more."""

    def __init__(self, renderer: Callable[[WrappedLogger, str, EventDict], str | bytes]) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> str:
        rendered = self._renderer(logger, name, event)
        if isinstance(rendered, bytes):
            rendered = rendered.decode("utf-8", "replace")
        return scrub(rendered)


def add_pid(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Processor: the worker's pid (several workers share one stdout)."""
    event["pid"] = os.getpid()
    return event


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_pid,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]


def final_processors(log_format: str, *, colors: bool = False) -> list[Processor]:
    """The formatter's chain: exception rendering without locals, redaction, rendering."""
    if log_format == "json":
        return [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            redact,
            ScrubbedRenderer(structlog.processors.JSONRenderer()),
        ]
    # Console: a plain traceback rendered into the "exception" key first (so `redact` sees
    # it), never Rich's, whose default shows locals.
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        redact,
        ScrubbedRenderer(
            structlog.dev.ConsoleRenderer(
                colors=colors, exception_formatter=structlog.dev.plain_traceback
            )
        ),
    ]


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, cache: bool = True
) -> logging.Handler:
    """Route structlog and stdlib logging to *stream* (stdout) in one format; returns the
    root handler. Tests pass ``cache=False`` (structlog ``docs/testing.md``)."""
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    out = stream if stream is not None else sys.stdout
    structlog.configure(
        processors=[
            *shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=cache,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=final_processors(settings.log_format, colors=out.isatty()),
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
