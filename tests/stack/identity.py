"""Keystone for the test stack: bootstrap, the demo projects and users, the catalogue, tokens.

Owns who exists in the stack and with which roles. Users are created through Keystone's
own v3 API after ``keystone-manage bootstrap``; nothing is written to Keystone's database
directly. It must not know about Glance beyond registering its endpoint.

Roles per project (password of every user: ``pw-<name>``):

    alice   demo-a: member, reader
    bob     demo-b: member, reader
    carol   demo-a: member            (no reader: Glance answers 403 on list)
    dave    demo-a: member, reader;  demo-b: member, reader
    glance  service: admin, service   (keystonemiddleware's service user in Glance)
    nova    service: admin, service   (keystonemiddleware's service user in Nova)
    admin   admin: admin              (bootstrap; system admin too)

Keystone's bootstrap makes ``member`` imply ``reader``. That implication is deleted here,
or carol's token would carry ``reader`` and the observer case could not exist.
"""

from __future__ import annotations

import getpass
import grp
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tests.stack.configs import KeystoneDirs
from tests.stack.layout import REGION, StackPaths
from tests.stack.procs import StackError, run_logged
from tests.stack.rest import JsonObject, Response, expect, request

PROJECTS: Final = ("demo-a", "demo-b", "service")
ROLES: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    "alice": {"demo-a": ("member", "reader")},
    "bob": {"demo-b": ("member", "reader")},
    "carol": {"demo-a": ("member",)},
    "dave": {"demo-a": ("member", "reader"), "demo-b": ("member", "reader")},
    "glance": {"service": ("admin", "service")},
    "nova": {"service": ("admin", "service")},
}
ADMIN: Final = "admin"
ADMIN_PROJECT: Final = "admin"


def password(user: str) -> str:
    return f"pw-{user}"


@dataclass(frozen=True, slots=True)
class Identity:
    project_ids: dict[str, str]  # name -> id, including "admin"
    user_ids: dict[str, str]  # name -> id, including "admin"


def _manage(paths: StackPaths, dirs: KeystoneDirs) -> list[str | Path]:
    return [paths.keystone.bin / "keystone-manage", "--config-file", dirs.conf]


def setup_keys(paths: StackPaths, dirs: KeystoneDirs, log: Path) -> None:
    """Fernet token and credential key repositories (done once, into the templates)."""
    user, group = getpass.getuser(), grp.getgrgid(os.getgid()).gr_name
    owner = ["--keystone-user", user, "--keystone-group", group]
    run_logged([*_manage(paths, dirs), "fernet_setup", *owner], log)
    run_logged([*_manage(paths, dirs), "credential_setup", *owner], log)


def bootstrap(paths: StackPaths, dirs: KeystoneDirs, keystone_url: str) -> None:
    """``keystone-manage bootstrap``: admin, roles, region and identity endpoints."""
    manage = _manage(paths, dirs)
    log = dirs.base / "log" / "keystone-manage.log"
    url = f"{keystone_url}/v3/"
    run_logged(
        [
            *manage,
            "bootstrap",
            "--bootstrap-password",
            password(ADMIN),
            "--bootstrap-admin-url",
            url,
            "--bootstrap-internal-url",
            url,
            "--bootstrap-public-url",
            url,
            "--bootstrap-region-id",
            REGION,
        ],
        log,
    )


def issue_token(
    keystone_url: str, user: str, *, project_id: str | None = None, system: bool = False
) -> tuple[str, str]:
    """A password-method token; returns ``(token, expires_at)``."""
    auth: JsonObject = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": user, "domain": {"id": "default"}, "password": password(user)}
            },
        }
    }
    if system:
        auth["scope"] = {"system": {"all": True}}
    elif project_id is not None:
        auth["scope"] = {"project": {"id": project_id}}
    resp = expect(request("POST", f"{keystone_url}/v3/auth/tokens", json_body={"auth": auth}), 201)
    token = resp.headers.get("x-subject-token")
    if not token:
        raise StackError(f"Keystone issued no X-Subject-Token: {resp.describe()}")
    return token, str(resp.json()["token"]["expires_at"])


def provision(keystone_url: str, glance_url: str) -> Identity:
    """Projects, users, role assignments and the image catalogue entry, via Keystone's API."""
    admin, _ = issue_token(keystone_url, ADMIN, system=True)

    def call(method: str, path: str, body: object = None, *ok: int) -> JsonObject:
        resp = expect(request(method, f"{keystone_url}/v3{path}", token=admin, json_body=body), *ok)
        return resp.json() if resp.body else {}

    roles = {r["name"]: r["id"] for r in call("GET", "/roles", None, 200)["roles"]}
    missing = {"admin", "member", "reader", "service"} - roles.keys()
    if missing:
        raise StackError(f"Keystone bootstrap did not create the roles {sorted(missing)}")
    implied = f"/roles/{roles['member']}/implies/{roles['reader']}"
    if request("HEAD", f"{keystone_url}/v3{implied}", token=admin).status == 204:
        call("DELETE", implied, None, 204)

    projects = {p["name"]: p["id"] for p in call("GET", "/projects", None, 200)["projects"]}
    for name in PROJECTS:
        body = {"project": {"name": name, "domain_id": "default", "description": "shim tests"}}
        projects[name] = call("POST", "/projects", body, 201)["project"]["id"]

    users = {u["name"]: u["id"] for u in call("GET", "/users", None, 200)["users"]}
    for name, grants in ROLES.items():
        user = {
            "name": name,
            "domain_id": "default",
            "password": password(name),
            "default_project_id": projects[next(iter(grants))],
        }
        users[name] = call("POST", "/users", {"user": user}, 201)["user"]["id"]
        for project, role_names in grants.items():
            for role in role_names:
                path = f"/projects/{projects[project]}/users/{users[name]}/roles/{roles[role]}"
                call("PUT", path, None, 204)

    service = {"service": {"type": "image", "name": "glance", "description": "Glance (shim tests)"}}
    service_id = call("POST", "/services", service, 201)["service"]["id"]
    for interface in ("public", "internal"):
        endpoint = {
            "service_id": service_id,
            "interface": interface,
            "url": glance_url,
            "region_id": REGION,
        }
        call("POST", "/endpoints", {"endpoint": endpoint}, 201)
    return Identity(project_ids=projects, user_ids=users)


def _about_token(method: str, keystone_url: str, admin_token: str, token: str) -> Response:
    """``<method> /v3/auth/tokens`` about `token` (``X-Subject-Token``), as the admin."""
    return request(
        method,
        f"{keystone_url}/v3/auth/tokens",
        token=admin_token,
        headers={"X-Subject-Token": token},
    )


def revoke_token(keystone_url: str, admin_token: str, token: str) -> None:
    expect(_about_token("DELETE", keystone_url, admin_token, token), 204)


def token_valid(keystone_url: str, admin_token: str, token: str) -> bool:
    resp = _about_token("HEAD", keystone_url, admin_token, token)
    if resp.status not in (200, 404):
        raise StackError(f"unexpected answer validating a token: {resp.describe()}")
    return resp.status == 200
