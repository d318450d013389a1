"""How Glance's error answers become Nova's faults (pure parts of shim.glance)."""

from __future__ import annotations

import pytest

from shim.faults import (
    BadRequest,
    BadUpstreamResponse,
    Conflict,
    Forbidden,
    ItemNotFound,
    OverLimit,
    Unauthorized,
)
from shim.glance import GlanceAnswer, Operation, explanation, quote_segment, to_fault


def answer(status: int, body: bytes, content_type: str = "application/json") -> GlanceAnswer:
    reasons = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        413: "Request Entity Too Large",
        500: "Internal Server Error",
    }
    return GlanceAnswer(status, reasons[status], content_type, body, None)  # fmt: skip


def test_json_error_renders_as_glanceclient_and_nova_escape_it() -> None:
    body = (
        b'{"message": "Bad \\"updated_at\\" query filter format. Use ISO 8601 DateTime '
        b'notation.<br /><br />\\n\\n\\n", "code": "400 Bad Request", "title": "Bad Request"}'
    )
    assert explanation(answer(400, body)) == (
        "HTTP 400 Bad Request: Bad &quot;updated_at&quot; query filter format. "
        "Use ISO 8601 DateTime notation."
    )


def test_html_error_pages_lose_their_markup() -> None:
    page = (
        b"<html>\n <head>\n  <title>403 Forbidden</title>\n </head>\n <body>\n  <h1>403 "
        b"Forbidden</h1>\n  Forbidding request, image x not visible<br /><br />\n\n\n\n"
        b" </body>\n</html>"
    )
    assert explanation(answer(403, page, "text/html")) == (
        "HTTP 403 Forbidden: 403 Forbidden: Forbidding request, image x not visible"
    )


def test_an_empty_body_still_names_the_status() -> None:
    assert explanation(answer(400, b"")) == "HTTP 400 Bad Request"


@pytest.mark.parametrize(
    ("op", "status", "fault", "message"),
    [
        ("list", 400, BadRequest, "HTTP 400 Bad Request: nope"),
        ("list", 403, Forbidden, "HTTP 403 Forbidden: nope"),
        ("list", 404, BadUpstreamResponse, "Invalid response from the image service"),
        ("show", 403, Forbidden, "Not authorized for image abc."),
        ("show", 404, ItemNotFound, "Image not found."),
        ("metadata", 403, Forbidden, "Not authorized for image abc."),
        ("delete", 403, Forbidden, "You are not allowed to delete the image."),
        ("delete", 404, ItemNotFound, "Image not found."),
        ("delete", 409, Conflict, "Conflict deleting image. Reason: HTTP 409 Conflict: nope."),
        ("patch", 409, Conflict, "HTTP 409 Conflict: nope"),
        ("patch", 413, OverLimit, "HTTP 413 Request Entity Too Large: nope"),
        ("patch", 400, BadRequest, "HTTP 400 Bad Request: nope"),
        ("show", 409, BadUpstreamResponse, "Invalid response from the image service"),
    ],
)
def test_fault_table(op: Operation, status: int, fault: type, message: str) -> None:
    error = to_fault(op, "abc", answer(status, b'{"message": "nope"}'), None)
    assert type(error) is fault
    assert getattr(error, "message", None) == message


def test_401_carries_the_configured_keystone_challenge_first() -> None:
    glance = GlanceAnswer(401, "Unauthorized", "text/html", b"", 'Keystone uri="http://g"')
    error = to_fault("list", None, glance, 'Keystone uri="http://k"')
    assert isinstance(error, Unauthorized)
    assert error.www_authenticate == 'Keystone uri="http://k"'
    error = to_fault("list", None, glance, None)
    assert isinstance(error, Unauthorized)
    assert error.www_authenticate == 'Keystone uri="http://g"'


@pytest.mark.parametrize(
    ("raw", "segment"),
    [("..", "%2E%2E"), ("a/b", "a%2Fb"), ("x\r\ny", "x%0D%0Ay"), ("a?b#c", "a%3Fb%23c"),
     ("0e5c-uuid", "0e5c-uuid")],
)  # fmt: skip
def test_ids_become_one_opaque_segment(raw: str, segment: str) -> None:
    assert quote_segment(raw) == segment
