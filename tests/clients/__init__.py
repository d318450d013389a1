"""Tests that drive the shim with real client libraries.

openstacksdk marks its compute image calls deprecated (``OpenStackDeprecationWarning``;
the point of these tests) and raises ``PendingDeprecationWarning`` subclasses about its
own internals on every request; both are allowed here, and nothing else.
"""

from typing import TypedDict

import pytest

from tests.stack.info import StackInfo

OPENSTACKSDK_WARNINGS = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore::PendingDeprecationWarning:openstack\..*"),
]


class PasswordLogin(TypedDict):
    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str
    project_domain_name: str


def password_login(
    stack: StackInfo, user: str = "alice", project: str = "demo-a", auth_url: str | None = None
) -> PasswordLogin:
    """The keywords of a password login to the stack's Keystone (``v3.Password``,
    ``openstack.connect``): *user* in *project*, both in the Default domain."""
    return {
        "auth_url": auth_url or stack.keystone_v3,
        "username": user,
        "password": stack.password(user),
        "project_name": project,
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }
