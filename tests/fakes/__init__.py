"""Reusable stand-ins for the services around the shim, for tests that need fault injection.

* :mod:`tests.fakes.upstream`: :class:`RecordingUpstream`, a real aiohttp app that records
  every request byte for byte and answers each path with scripted :class:`Reply` objects
  (status, headers, chunks, delays, gzip, resets, garbage). Stands in for Nova, Glance or
  Keystone where the real service cannot produce the case.
* :mod:`tests.fakes.serving`: serve an app as production does (no handler cancellation,
  no request decompression).
* :mod:`tests.fakes.process`: run an app factory in a child process and read its memory.
* :mod:`tests.fakes.entry`: the shim's own entry point (``python -m shim``) in a child
  process, with an environment that holds only the test's settings.
* :mod:`tests.fakes.net`: addresses that refuse connections, pool inspection.
"""

from tests.fakes.net import acquired_connections, refused_url
from tests.fakes.upstream import RecordedRequest, RecordingUpstream, Reply

__all__ = ["RecordedRequest", "RecordingUpstream", "Reply", "acquired_connections", "refused_url"]
