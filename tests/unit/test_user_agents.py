"""`client_label`: the legacy-caller label is a known first product token or ``other``."""

from __future__ import annotations

import pytest

from shim.user_agents import KNOWN_CLIENTS, OTHER, client_label, first_product


@pytest.mark.parametrize(
    ("user_agent", "label"),
    [
        # what the clients really send (first product token first)
        (
            "openstacksdk/4.5.0 keystoneauth1/5.11.0 python-requests/2.32.3 CPython/3.12.3",
            "openstacksdk",
        ),
        ("keystoneauth1/5.11.0 python-requests/2.32.3 CPython/3.12.3", "keystoneauth1"),
        (
            "python-novaclient keystoneauth1/3.4.0 python-requests/2.18.4 CPython/2.7.15",
            "python-novaclient",
        ),
        ("python-glanceclient", "python-glanceclient"),
        ("python-openstackclient keystoneauth1/5.1.0", "python-openstackclient"),
        ("libcloud/3.8.0 (OpenStack) ", "libcloud"),
        ("apache-libcloud/3.8.0", "apache-libcloud"),
        ("gophercloud/v2.4.0", "gophercloud"),
        ("fog-core/2.4.0", "fog-core"),
        ("fog/2.2.0", "fog"),
        ("nodejs-pkgcloud/1.7.0", "nodejs-pkgcloud"),
        ("pkgcloud/1.7.0", "pkgcloud"),
        ("python-requests/2.32.3", "python-requests"),
        ("curl/8.5.0", "curl"),
        ("Go-http-client/1.1", "Go-http-client"),
        ("okhttp/4.12.0", "okhttp"),
        ("Java/17.0.2", "Java"),
        (
            "Terraform/1.9.0 (+https://www.terraform.io) Terraform-Plugin-SDK/2.10.1 "
            "terraform-provider-openstack/dev gophercloud/2.0.0",
            "Terraform",
        ),
        ("terraform-provider-openstack/3.0.0", "terraform-provider-openstack"),
        ("ansible/2.17 openstacksdk/4.0", "ansible"),
        ("Python/3.11 aiohttp/3.14.5", "Python"),
        ("aiohttp/3.14.5", "aiohttp"),
        ("Python-urllib/3.11", "Python-urllib"),
        ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla"),
        # case-insensitive, spelled as the list spells it
        ("OPENSTACKSDK/1.0", "openstacksdk"),
        ("go-http-client/2.0", "Go-http-client"),
        ("  curl/8.5.0", "curl"),
        # not known, or no product token: other
        ("my-legacy-app/1.0 python-requests/2.0", OTHER),
        ("openstacksdk-fork/1.0", OTHER),
        ("(compatible; bot)", OTHER),
        ("", OTHER),
        (None, OTHER),
        ("/1.0", OTHER),
        ("x" * 10_000, OTHER),
    ],
)
def test_client_label(user_agent: str | None, label: str) -> None:
    assert client_label(user_agent) == label


def test_first_product_token_is_the_leading_token() -> None:
    assert first_product("python-novaclient keystoneauth1/3.4.0") == "python-novaclient"
    assert first_product("curl/8.5.0") == "curl"
    assert first_product("(comment) curl/8") is None
    assert first_product(None) is None


def test_labels_are_bounded_and_unique() -> None:
    assert len(set(KNOWN_CLIENTS)) == len(KNOWN_CLIENTS)
    assert len({name.lower() for name in KNOWN_CLIENTS}) == len(KNOWN_CLIENTS)
    assert OTHER not in KNOWN_CLIENTS
    labels = {client_label(f"random-{n}/1.0") for n in range(1000)}
    assert labels == {OTHER}


@pytest.mark.parametrize("name", KNOWN_CLIENTS)
def test_every_known_client_labels_itself(name: str) -> None:
    assert client_label(f"{name}/1.2.3 extra/1") == name
