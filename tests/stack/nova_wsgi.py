"""WSGI entry of the test stack's Nova compute API; runs inside Nova's own virtualenv.

gunicorn imports it (``nova_wsgi:application``) from the run directory, where
`tests.stack.nova` copies it. It does what ``nova.wsgi.osapi_compute`` does, minus one
step: Nova's ``init_application`` registers a ``nova-osapi_compute`` service row in the
cell database and checks the oldest compute service across cells (``_setup_service``),
and a stack with no cells or computes has nothing for that check to find. Config,
logging and the paste pipeline (``osapi_compute`` in ``api-paste.ini``) are set up
exactly as Nova sets them up.

Config files come from ``$OS_NOVA_CONFIG_DIR`` (``api-paste.ini`` and ``nova.conf``),
as for Nova's own entry point. This module is never imported by the test suite.
"""

# Nova 34 serves its API on native threads; the patch must run before anything imports
# eventlet (nova/wsgi/osapi_compute.py does the same).
from nova import monkey_patch

monkey_patch.patch(backend="threading")

from nova.api.openstack import wsgi_app  # noqa: E402
from paste import deploy  # noqa: E402

NAME = "osapi_compute"
PROG = "nova-api-os-compute"

_config_files = wsgi_app._get_config_files()
wsgi_app.init_global_data(_config_files, NAME, PROG)
application = deploy.loadapp(f"config:{_config_files[0]}", name=NAME)
