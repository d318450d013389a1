"""Tests that drive the shim with real client libraries.

openstacksdk marks its compute image calls deprecated (``OpenStackDeprecationWarning``;
the point of these tests) and raises ``PendingDeprecationWarning`` subclasses about its
own internals on every request; both are allowed here, and nothing else.
"""

import pytest

OPENSTACKSDK_WARNINGS = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore::PendingDeprecationWarning:openstack\..*"),
]
