"""Which client is calling: the User-Agent's first product token, when it is a known one.

Pure (no aiohttp, no I/O). `client_label` feeds the ``client`` label of
``nova_image_shim_legacy_client_requests_total``, so operators can see which legacy callers
remain before switching the shim off (docs/contract.md §8). The label is either an entry of
`KNOWN_CLIENTS`, spelled as listed there, or ``other``: the label set is fixed, identical in
every worker, and a caller cannot inflate the metric's cardinality.

The first product token is the leading run of RFC 9110 ``tchar`` characters
(``User-Agent = product *( RWS ( product / comment ) )``, ``product = token ["/" version]``),
compared case-insensitively.
"""

from __future__ import annotations

import functools
import re
from typing import Final

OTHER: Final = "other"

# The tokens real clients put first (openstacksdk and the clients built on keystoneauth
# prepend their own name; terraform-provider-openstack's UA starts with "Terraform"; aiohttp's
# default starts with "Python"). Order is irrelevant; spelling is the label.
KNOWN_CLIENTS: Final[tuple[str, ...]] = (
    # OpenStack Python clients and libraries
    "openstacksdk",
    "keystoneauth1",
    "python-novaclient",
    "novaclient",
    "python-glanceclient",
    "python-openstackclient",
    "python-heatclient",
    "os-client-config",
    "shade",
    "tempest",
    "tempest-lib",
    "ansible",
    "osc-lib",
    # other languages' OpenStack SDKs
    "libcloud",
    "apache-libcloud",
    "gophercloud",
    "fog",
    "fog-core",
    "fog-openstack",
    "excon",
    "pkgcloud",
    "nodejs-pkgcloud",
    "openstack4j",
    "jclouds",
    "Terraform",
    "terraform-provider-openstack",
    "HashiCorp",
    "packer",
    # generic HTTP clients
    "python-requests",
    "Python-urllib",
    "Python",
    "aiohttp",
    "python-aiohttp",
    "python-httpx",
    "httpx",
    "curl",
    "Wget",
    "HTTPie",
    "Go-http-client",
    "okhttp",
    "Java",
    "Apache-HttpClient",
    "Ruby",
    "Faraday",
    "node-fetch",
    "axios",
    "undici",
    "PostmanRuntime",
    "Mozilla",
)

_BY_LOWER: Final[dict[str, str]] = {name.lower(): name for name in KNOWN_CLIENTS}
# RFC 9110 §5.6.2 tchar; bounded so a huge header costs nothing.
_FIRST_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")


def first_product(user_agent: str | None) -> str | None:
    """The first product token of *user_agent* (``"openstacksdk"``), or None."""
    if not user_agent:
        return None
    match = _FIRST_TOKEN.match(user_agent.lstrip(" \t"))
    return match.group(0) if match else None


@functools.lru_cache(maxsize=256)  # per request; a deployment sees a handful of agents
def client_label(user_agent: str | None) -> str:
    """`KNOWN_CLIENTS` spelling of the first product token, else ``other``."""
    token = first_product(user_agent)
    if token is None:
        return OTHER
    return _BY_LOWER.get(token.lower(), OTHER)
