"""How Glance's error answers become Nova's faults (pure parts of shim.glance)."""

from __future__ import annotations

import pytest

from shim import faults
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


NOT_AUTHORIZED = "Not authorized for image abc."
NOT_FOUND = "Image not found."
MALFORMED = "Invalid response from the image service"

# What each call makes of each Glance error status; "nope" is Glance's own message.
FAULTS: dict[Operation, dict[int, tuple[type[faults.NovaFault], str]]] = {
    "list": {
        400: (faults.BadRequest, "HTTP 400 Bad Request: nope"),
        403: (faults.Forbidden, "HTTP 403 Forbidden: nope"),
        404: (faults.BadUpstreamResponse, MALFORMED),
    },
    "show": {
        403: (faults.Forbidden, NOT_AUTHORIZED),
        404: (faults.ItemNotFound, NOT_FOUND),
        409: (faults.BadUpstreamResponse, MALFORMED),
    },
    "metadata": {403: (faults.Forbidden, NOT_AUTHORIZED)},
    "delete": {
        403: (faults.Forbidden, "You are not allowed to delete the image."),
        404: (faults.ItemNotFound, NOT_FOUND),
        409: (faults.Conflict, "Conflict deleting image. Reason: HTTP 409 Conflict: nope."),
    },
    "patch": {
        400: (faults.BadRequest, "HTTP 400 Bad Request: nope"),
        409: (faults.Conflict, "HTTP 409 Conflict: nope"),
        413: (faults.OverLimit, "HTTP 413 Request Entity Too Large: nope"),
    },
}


@pytest.mark.parametrize(
    ("op", "status"), [(op, status) for op, statuses in FAULTS.items() for status in statuses]
)
def test_fault_table(op: Operation, status: int) -> None:
    fault, message = FAULTS[op][status]
    error = to_fault(op, "abc", answer(status, b'{"message": "nope"}'), None)
    assert type(error) is fault
    assert getattr(error, "message", None) == message


def test_401_carries_the_configured_keystone_challenge_first() -> None:
    glance = GlanceAnswer(401, "Unauthorized", "text/html", b"", 'Keystone uri="http://g"')
    error = to_fault("list", None, glance, 'Keystone uri="http://k"')
    assert isinstance(error, faults.Unauthorized)
    assert error.www_authenticate == 'Keystone uri="http://k"'
    error = to_fault("list", None, glance, None)
    assert isinstance(error, faults.Unauthorized)
    assert error.www_authenticate == 'Keystone uri="http://g"'


@pytest.mark.parametrize(
    ("raw", "segment"),
    [("..", "%2E%2E"), ("a/b", "a%2Fb"), ("x\r\ny", "x%0D%0Ay"), ("a?b#c", "a%3Fb%23c"),
     ("0e5c-uuid", "0e5c-uuid")],
)  # fmt: skip
def test_ids_become_one_opaque_segment(raw: str, segment: str) -> None:
    assert quote_segment(raw) == segment
