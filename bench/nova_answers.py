"""Canned Nova compute answers for the passthrough cells: what keeping links on the shim costs.

Each answer is written twice with the same bytes: ``<key>.json`` (nginx serves it as
``application/json``, so the shim rewrites its links) and ``<key>.bin`` (served as
``application/octet-stream``, so the shim relays it untouched, as every passthrough answer
was relayed before links were kept). Links name the canned upstream's own address, as Nova's
do behind a proxy, so the JSON variant has every ``href`` to rewrite.

Sizes: ``small`` is one flavor (357 bytes, two links), ``large`` a detailed server list of
200 (about 0.3 MB, held whole and rewritten), ``huge`` one of 1000 (about 1.5 MB: above the
1 MiB bound, rewritten as it streams). Rendered with ``json.dumps`` defaults, as Nova does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PROJECT: Final = "9f2c4e1ab3d54f6e8a7b0c1d2e3f4a5b"
SIZES: Final = (("small", "one flavor"), ("large", "200 servers"), ("huge", "1000 servers"))


@dataclass(frozen=True, slots=True)
class NovaAnswer:
    key: str
    label: str
    top: str  # the document's one top-level key
    size: int


def _flavor(base: str, n: int) -> dict[str, Any]:
    return {
        "id": str(n),
        "links": [
            {"href": f"{base}/v2.1/flavors/{n}", "rel": "self"},
            {"href": f"{base}/flavors/{n}", "rel": "bookmark"},
        ],
        "name": f"m1.size{n}",
        "ram": 2048,
        "disk": 20,
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "vcpus": 1,
        "os-flavor-access:is_public": True,
        "rxtx_factor": 1.0,
    }


def _server(base: str, n: int) -> dict[str, Any]:
    uid = f"{n:08x}-5b1e-4f0c-9a2d-{n:012x}"
    image = "70a599e0-31e7-49b7-b260-868f441e862b"
    return {
        "id": uid,
        "name": f"server-{n}",
        "status": "ACTIVE",
        "tenant_id": PROJECT,
        "user_id": "fake",
        "metadata": {"My Server Name": "Apache1"},
        "hostId": "2091634baaccdc4c5a1d57069c833e402921df696b7f970791b12ec6",
        "image": {
            "id": image,
            "links": [{"rel": "bookmark", "href": f"{base}/{PROJECT}/images/{image}"}],
        },
        "flavor": {
            "id": "1",
            "links": [{"rel": "bookmark", "href": f"{base}/{PROJECT}/flavors/1"}],
        },
        "created": "2026-11-27T08:00:00Z",
        "updated": "2026-11-27T08:00:05Z",
        "addresses": {
            "private": [
                {
                    "version": 4,
                    "addr": f"192.168.{n // 250}.{n % 250 + 2}",
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": f"fa:16:3e:4c:{n // 256 % 256:02x}:{n % 256:02x}",
                }
            ]
        },
        "accessIPv4": "",
        "accessIPv6": "",
        "links": [
            {"rel": "self", "href": f"{base}/v2.1/{PROJECT}/servers/{uid}"},
            {"rel": "bookmark", "href": f"{base}/{PROJECT}/servers/{uid}"},
        ],
        "OS-DCF:diskConfig": "AUTO",
        "progress": 0,
        "OS-EXT-AZ:availability_zone": "nova",
        "config_drive": "",
        "key_name": None,
        "OS-SRV-USG:launched_at": "2026-11-27T08:00:04.000000",
        "OS-SRV-USG:terminated_at": None,
        "security_groups": [{"name": "default"}],
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:vm_state": "active",
        "OS-EXT-STS:power_state": 1,
        "os-extended-volumes:volumes_attached": [],
    }


def _document(key: str, base: str) -> dict[str, Any]:
    if key == "small":
        return {"flavor": _flavor(base, 1)}
    count = 200 if key == "large" else 1000
    return {
        "servers": [_server(base, n) for n in range(count)],
        "servers_links": [
            {"rel": "next", "href": f"{base}/v2.1/{PROJECT}/servers/detail?limit={count}"}
        ],
    }


def write_nova_answers(root: Path, nova_base: str) -> dict[str, NovaAnswer]:
    """Write ``root/nova/<key>.json`` and ``.bin`` for every size, links naming *nova_base*,
    and ``root/nova/versions.json``."""
    folder = root / "nova"
    folder.mkdir(parents=True, exist_ok=True)
    answers: dict[str, NovaAnswer] = {}
    for key, label in SIZES:
        document = _document(key, nova_base.rstrip("/"))
        body = json.dumps(document).encode()
        (folder / f"{key}.json").write_bytes(body)
        (folder / f"{key}.bin").write_bytes(body)
        answers[key] = NovaAnswer(key, label, next(iter(document)), len(body))
    # What the shim's start-up check reads to recognise Nova (Nova's GET /, trimmed).
    versions = {"versions": [{"id": "v2.1", "status": "CURRENT", "min_version": "2.1"}]}
    (folder / "versions.json").write_text(json.dumps(versions), encoding="utf-8")
    return answers
