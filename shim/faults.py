"""Nova fault exceptions and the one middleware that renders them.

Exception tree::

    ShimError
    ├── NovaFault(status, message)       rendered as {"<name>": {"code", "message"}}
    │   ├── BadRequest                   400 badRequest
    │   ├── Forbidden                    403 forbidden
    │   ├── ItemNotFound                 404 itemNotFound
    │   ├── NotAcceptable                406 computeFault (microversion out of range)
    │   ├── Conflict                     409 conflictingRequest
    │   ├── OverLimit                    413 overLimit
    │   ├── BadUpstreamResponse          502 computeFault (bad Glance answer, docs/contract.md D13)
    │   ├── BadGateway                   502 computeFault (passthrough upstream refused)
    │   ├── ServiceUnavailable           503 serviceUnavailable + Retry-After (contract.md D11)
    │   └── GatewayTimeout               504 computeFault (passthrough upstream timed out)
    └── Unauthorized                     401 with keystonemiddleware's body (contract.md §5)

Handlers raise; only :func:`fault_middleware` turns exceptions into responses, and it is
the only place with ``except Exception``. Messages never carry a token: they are built
from fixed texts, ids and Glance's own explanations.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

# Nova's fault-name table (nova/api/openstack/wsgi.py); anything else is computeFault.
FAULT_NAMES: Final[dict[int, str]] = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
FAULT_CONTENT_TYPE: Final = "application/json; charset=UTF-8"
NOT_FOUND_MESSAGE: Final = "The resource could not be found."
UNEXPECTED_MESSAGE: Final = (
    "Unexpected API Error. Please contact the administrator\n<class 'Exception'>"
)
UNAUTHORIZED_BODY: Final = (
    b'{"error": {"code": 401, "title": "Unauthorized", '
    b'"message": "The request you have made requires authentication."}}'
)

Headers = Iterable[tuple[str, str]]


class ShimError(Exception):
    """Base of every error the shim turns into a response."""


class NovaFault(ShimError):
    """A Nova fault: ``{"<name>": {"code": status, "message": message}}``."""

    status: int = 500

    def __init__(self, message: str, *, status: int | None = None, headers: Headers = ()) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.headers: tuple[tuple[str, str], ...] = tuple(headers)

    @property
    def name(self) -> str:
        return FAULT_NAMES.get(self.status, "computeFault")

    def body(self) -> bytes:
        # Nova renders faults with the stdlib's default separators; so do we, to the byte.
        return json.dumps({self.name: {"code": self.status, "message": self.message}}).encode()


class BadRequest(NovaFault):
    status = 400


class Forbidden(NovaFault):
    status = 403


class ItemNotFound(NovaFault):
    status = 404

    def __init__(self, message: str = NOT_FOUND_MESSAGE, *, headers: Headers = ()) -> None:
        super().__init__(message, headers=headers)


class NotAcceptable(NovaFault):
    status = 406


class Conflict(NovaFault):
    status = 409


class OverLimit(NovaFault):
    status = 413


class BadUpstreamResponse(NovaFault):
    status = 502

    def __init__(self, message: str = "Invalid response from the image service") -> None:
        super().__init__(message)


class BadGateway(NovaFault):
    status = 502


class ServiceUnavailable(NovaFault):
    status = 503

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers=[("Retry-After", str(retry_after))])


class GatewayTimeout(NovaFault):
    status = 504


class Unauthorized(ShimError):
    """401 exactly as keystonemiddleware answers it (docs/nova.md appendix B)."""

    def __init__(self, www_authenticate: str | None) -> None:
        super().__init__("The request you have made requires authentication.")
        self.www_authenticate = www_authenticate


def fault_response(fault: NovaFault) -> web.Response:
    response = web.Response(status=fault.status, body=fault.body())
    response.headers["Content-Type"] = FAULT_CONTENT_TYPE
    for name, value in fault.headers:
        response.headers.add(name, value)
    return response


def unauthorized_response(error: Unauthorized) -> web.Response:
    response = web.Response(status=401, body=UNAUTHORIZED_BODY)
    response.headers["Content-Type"] = "application/json"
    if error.www_authenticate:
        response.headers["WWW-Authenticate"] = error.www_authenticate
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NovaFault as fault:
        return fault_response(fault)
    except Unauthorized as error:
        return unauthorized_response(error)
    except web.HTTPException:
        raise
    except ConnectionResetError:
        # The client went away mid-response: nothing left to answer (docs/proxying.md §12).
        raise
    except Exception:
        log.exception("unexpected_error", path=request.path)
        return fault_response(NovaFault(UNEXPECTED_MESSAGE, status=500))
