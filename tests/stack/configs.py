"""Configuration files of the stack's Keystone and Glance, rendered from a base directory.

Owns the on-disk layout of one server's run directory and the text of its config files
(docs/stack.md §3, §4). It must not write files other than through `write_*`, nor
start anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Final

from tests.stack.layout import Below

# Keystone's default token lifetime is one hour; a long test session keeps its tokens.
TOKEN_EXPIRATION: Final = 6 * 3600
# keystonemiddleware's default: a token validated once is trusted for this long, even if
# revoked meanwhile. Recorded in StackInfo so cache tests can account for it.
GLANCE_TOKEN_CACHE_TIME: Final = 300


@dataclass(frozen=True, slots=True)
class ServerDirs:
    """What every server of the stack has under its run directory: config, logs, gunicorn."""

    base: Path
    # What gunicorn serves ("package.module:application"), the variable that names the
    # config directory to it, and any flags of its own (`realstack.spawn_server`).
    wsgi_app: ClassVar[str]
    config_dir_variable: ClassVar[str]
    gunicorn_flags: ClassVar[tuple[str, ...]] = ()

    etc = Below("base", "etc")
    server_log = Below("base", "log", "gunicorn.log")
    pid_file = Below("base", "gunicorn.pid")

    def make_dirs(self, *more: Path) -> None:
        """``etc/``, ``log/`` and `more` directories, as needed."""
        for sub in (self.etc, self.server_log.parent, *more):
            sub.mkdir(parents=True, exist_ok=True)


def authtoken_section(keystone_url: str, username: str, password: str, **more: object) -> str:
    """``[keystone_authtoken]`` of a server whose keystonemiddleware checks tokens against the
    stack's Keystone as `username` of the service project; `more` options follow."""
    options = "".join(f"{name} = {value}\n" for name, value in more.items())
    return f"""[keystone_authtoken]
www_authenticate_uri = {keystone_url}
auth_url = {keystone_url}
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = {username}
password = {password}
{options}"""


@dataclass(frozen=True, slots=True)
class KeystoneDirs(ServerDirs):
    wsgi_app = "keystone.wsgi.api:application"
    config_dir_variable = "OS_KEYSTONE_CONFIG_DIR"
    conf = Below("etc", "keystone.conf")
    app_log = Below("base", "log", "keystone.log")
    db = Below("base", "keystone.sqlite")
    fernet_keys = Below("base", "fernet-keys")
    credential_keys = Below("base", "credential-keys")

    def write(self) -> None:
        self.make_dirs()
        # bcrypt at 4 rounds: every password token costs milliseconds, not a quarter second.
        self.conf.write_text(
            f"""[DEFAULT]
log_file = {self.app_log}
debug = false

[database]
connection = sqlite:///{self.db}

[identity]
password_hash_rounds = 4

[token]
provider = fernet
expiration = {TOKEN_EXPIRATION}

[fernet_tokens]
key_repository = {self.fernet_keys}

[fernet_receipts]
key_repository = {self.fernet_keys}

[credential]
key_repository = {self.credential_keys}
"""
        )


@dataclass(frozen=True, slots=True)
class GlanceDirs(ServerDirs):
    wsgi_app = "glance.wsgi.api:application"
    config_dir_variable = "OS_GLANCE_CONFIG_DIR"
    conf = Below("etc", "glance-api.conf")
    paste = Below("etc", "glance-api-paste.ini")
    app_log = Below("base", "log", "glance-api.log")
    data = Below("base", "data")
    images = Below("data", "images")
    staging = Below("data", "staging")
    tasks = Below("data", "tasks")

    def write(self, keystone_url: str, service_password: str, database: str) -> None:
        """`database`: SQLAlchemy URL of Glance's database on the stack's PostgreSQL."""
        self.make_dirs(self.images, self.staging, self.tasks)
        authtoken = authtoken_section(
            keystone_url, "glance", service_password, token_cache_time=GLANCE_TOKEN_CACHE_TIME
        )
        self.conf.write_text(
            f"""[DEFAULT]
enabled_backends = fs:file
log_file = {self.app_log}
debug = false
limit_param_default = 25
api_limit_max = 1000

[database]
connection = {database}

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {self.images}/

[os_glance_staging_store]
filesystem_store_datadir = {self.staging}/

[os_glance_tasks_store]
filesystem_store_datadir = {self.tasks}/

[image_format]
# The upstream default (true) rejects the dummy bytes tests upload (docs/glance.md §11).
require_image_format_match = false

[paste_deploy]
flavor = keystone
config_file = {self.paste}

{authtoken}
[oslo_policy]
enforce_scope = true
enforce_new_defaults = true
"""
        )
        # The upstream keystone pipeline minus osprofiler (docs/stack.md §4).
        self.paste.write_text(
            f"""[composite:glance-api-keystone]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck

[composite:api]
paste.composite_factory = glance.api:pipeline_factory
keystone = cors http_proxy_to_wsgi versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[app:healthcheck]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
backends = disable_by_file
disable_by_file_path = {self.base / "healthcheck_disable"}

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
"""
        )
