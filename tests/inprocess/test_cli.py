"""The command line as an operator meets it: ``python -m shim`` in a subprocess.

Bad settings exit 2 with one line on stderr that names the setting and says, in words,
what is wrong; ``--help`` and ``--version`` answer and exit 0; a good start logs warnings
for version-suffixed URLs and unknown ``SHIM_*`` variables, then one ``starting`` line with
the effective configuration. ``SHIM_RENDERER`` is tried on an installation whose C renderer
cannot be imported: the child runs the real entry point behind an import hook that refuses
``shim.legacy._render`` and reports every attempt on stderr.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import Any, Final

import pytest

from shim import __version__
from shim.settings import SPECS
from tests.fakes.entry import REPO_ROOT, shim_env
from tests.stack.procs import free_port

TIMEOUT: Final = 30.0
ATTEMPT: Final = "import of shim.legacy._render attempted"
# The real entry point, on an installation built without the C renderer.
WITHOUT_C: Final = f"""
import sys
class NoCompiler:
    def find_spec(self, name, path=None, target=None):
        if name == "shim.legacy._render":
            print({ATTEMPT!r}, file=sys.stderr, flush=True)
            raise ImportError("built without a compiler")
        return None
sys.meta_path.insert(0, NoCompiler())
from shim.cli import main
sys.exit(main())
"""


def _command(args: list[str], *, without_c: bool) -> list[str]:
    if without_c:
        return [sys.executable, "-c", WITHOUT_C, *args]
    return [sys.executable, "-m", "shim", *args]


def run_cli(
    env: Mapping[str, str], *args: str, without_c: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command that exits on its own (bad settings, --help, --version)."""
    return subprocess.run(
        _command(list(args), without_c=without_c),
        env=shim_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def start_and_stop(
    env: Mapping[str, str], *, without_c: bool = False
) -> tuple[list[dict[str, Any]], str]:
    """Start the shim (one worker), read its log until it listens, SIGTERM it; the JSON
    events and stderr. Nothing calls an upstream, so an unreachable Glance URL does."""
    settings = {
        "SHIM_LISTEN": f"127.0.0.1:{free_port()}",
        "SHIM_METRICS_LISTEN": "off",
        "SHIM_WORKERS": "1",
        **env,
    }
    proc = subprocess.Popen(
        _command([], without_c=without_c),
        env=shim_env(settings),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    events: list[dict[str, Any]] = []
    watchdog = threading.Timer(TIMEOUT, proc.kill)  # bounds the read loop below
    watchdog.start()
    try:
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] in ("listening", "startup_failed"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    events.extend(json.loads(line) for line in out.splitlines())
    assert proc.returncode == 0, (events, err)
    return events, err


def named(events: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == event]


GLANCE: Final = {"SHIM_GLANCE_URL": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # Started before, then answered 500 to every request.
        (
            {"SHIM_TRUSTED_PROXIES": "bogus/99"},
            "SHIM_TRUSTED_PROXIES: 'bogus/99' is not an IP address or CIDR (expected IP "
            "addresses or CIDRs separated by commas, e.g. 10.0.0.0/8,192.0.2.7)",
        ),
        # Started before.
        (
            {"SHIM_GLANCE_TIMEOUT": "nan"},
            "SHIM_GLANCE_TIMEOUT: expected seconds (above 0, at most 3600), e.g. 30; got 'nan'",
        ),
        (
            {"SHIM_SHUTDOWN_TIMEOUT": "-1"},
            "SHIM_SHUTDOWN_TIMEOUT: expected seconds (from 0, at most 3600), e.g. 25; got '-1'",
        ),
        # Ran passthrough instead of keystone before.
        (
            {"SHIM_AUTH": ""},
            "SHIM_AUTH is empty; unset it for the default (passthrough) or give one of "
            "passthrough, keystone, trusted-headers, e.g. passthrough",
        ),
        # Python's "could not convert string to float" before.
        (
            {"SHIM_TOKEN_CACHE_TTL": "5m"},
            "SHIM_TOKEN_CACHE_TTL: expected seconds (above 0, at most 86400), e.g. 300; got '5m'",
        ),
        # "SHIM_LISTEN: SHIM_LISTEN: ..." before.
        (
            {"SHIM_LISTEN": "18821"},
            "SHIM_LISTEN: expected HOST:PORT, e.g. 0.0.0.0:8774; got '18821'",
        ),
    ],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it(env: dict[str, str], message: str) -> None:
    done = run_cli({**GLANCE, **env})
    assert done.returncode == 2
    assert done.stderr == f"nova-image-shim: {message}\n"
    assert done.stdout == ""


def test_a_bad_flag_exits_2_the_same_way() -> None:
    done = run_cli(GLANCE, "--glance-timeout", "inf")
    assert (done.returncode, done.stderr) == (
        2,
        "nova-image-shim: SHIM_GLANCE_TIMEOUT: expected seconds (above 0, at most 3600), "
        "e.g. 30; got 'inf'\n",
    )
    done = run_cli(GLANCE, "--glance-ulr", "http://glance")
    assert (done.returncode, done.stderr) == (
        2,
        "nova-image-shim: unrecognized arguments: --glance-ulr http://glance\n",
    )


def test_help_lists_every_flag_with_its_variable_and_default() -> None:
    done = run_cli({}, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    for spec in SPECS:
        assert f"{spec.flag} {spec.kind.metavar}" in text
        assert f"[{spec.env}; default: {spec.default_shown}]" in text
    assert "[SHIM_AUTH; default: passthrough]" in text
    assert "Exit status: 0 after a clean shutdown, 2 for a bad setting" in text


def test_version() -> None:
    done = run_cli({}, "--version")
    assert (done.returncode, done.stdout) == (0, f"nova-image-shim {__version__}\n")


def test_start_up_logs_warnings_then_one_line_with_the_effective_configuration() -> None:
    events, _ = start_and_stop(
        {
            "SHIM_GLANCE_URL": "http://127.0.0.1:9/v2",
            "SHIM_NOVA_URL": "http://127.0.0.1:9/v2.1/",
            "SHIM_NOVA_ULR": "http://127.0.0.1:9",
            "SHIM_KEYSTONE_URL": "http://127.0.0.1:9/v3",
            "SHIM_AUTH": "keystone",
            "SHIM_SERVICE_USERNAME": "shim",
            "SHIM_SERVICE_PASSWORD": "hunter2-secret",
            "SHIM_PUBLIC_URL": "https://compute.example",
        }
    )
    warnings = {e["variable"]: e["warning"] for e in named(events, "setting_warning")}
    assert warnings == {
        "SHIM_GLANCE_URL": "'http://127.0.0.1:9/v2' ends in the API version '/v2', which the "
        "shim adds itself; using http://127.0.0.1:9 (write that to silence this warning)",
        "SHIM_NOVA_URL": "'http://127.0.0.1:9/v2.1/' ends in the API version '/v2.1', which the "
        "shim adds itself; using http://127.0.0.1:9 (write that to silence this warning)",
        "SHIM_KEYSTONE_URL": "'http://127.0.0.1:9/v3' ends in the API version '/v3', which the "
        "shim adds itself; using http://127.0.0.1:9 (write that to silence this warning)",
        "SHIM_NOVA_ULR": "not a setting, ignored; did you mean SHIM_NOVA_URL?",
    }
    [line] = named(events, "starting")
    assert line["level"] == "info"
    assert {
        key: line[key] for key in ("mode", "auth", "glance_url", "nova_url", "keystone_url")
    } == {
        "mode": "gateway",
        "auth": "keystone",
        "glance_url": "http://127.0.0.1:9",
        "nova_url": "http://127.0.0.1:9",
        "keystone_url": "http://127.0.0.1:9",
    }
    assert line["public_url"] == "https://compute.example"
    assert line["renderer"] == "c"
    assert line["renderer_setting"] == "auto"
    assert line["workers"] == "1"
    assert (line["max_body"], line["glance_timeout"], line["version"]) == (
        "1MiB",
        "30",
        __version__,
    )
    assert {spec.field for spec in SPECS} <= set(line)
    assert "hunter2" not in json.dumps(events)
    assert named(events, "listening")[0]["renderer"] == "c"


def test_renderer_c_without_the_extension_refuses_to_start() -> None:
    done = run_cli({**GLANCE, "SHIM_RENDERER": "c"}, without_c=True)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        ATTEMPT,
        "nova-image-shim: SHIM_RENDERER: c asks for the C renderer, but this installation "
        "was built without it (no C compiler when it was installed); use auto or python, or "
        "reinstall with a compiler",
    ]


def test_renderer_python_never_loads_the_extension() -> None:
    events, err = start_and_stop({**GLANCE, "SHIM_RENDERER": "python"}, without_c=True)
    assert ATTEMPT not in err
    [line] = named(events, "starting")
    assert (line["renderer"], line["renderer_setting"]) == ("python", "python")
    assert named(events, "listening")[0]["renderer"] == "python"


def test_renderer_auto_without_the_extension_runs_python_and_says_so() -> None:
    events, err = start_and_stop(GLANCE, without_c=True)
    assert ATTEMPT in err
    [line] = named(events, "starting")
    assert (line["renderer"], line["renderer_setting"]) == ("python", "auto")
