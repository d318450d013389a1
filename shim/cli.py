"""Command line: flags + environment → Settings → logging → workers → the API server.

``nova-image-shim --help`` lists every flag with its variable and default; ``--version``
prints the version. Exit status: 0 after a clean shutdown (SIGTERM/SIGINT, in-flight
requests drained) and after ``--help``/``--version``, 2 for bad settings (the message names
the setting and what is wrong), 3 when the server could not start (an address in use, or
an upstream that failed its start-up check with SHIM_REQUIRE_UPSTREAMS=true), 1 for anything
else (a worker crash loop, a worker that could not start under the master, a drain that
overran its bound).

Start-up logs a ``setting_warning`` line for each URL whose API version was removed and each
``SHIM_*`` variable that is not a setting, then one ``starting`` line holding the effective
configuration (mode, auth, every upstream, limits, the renderer actually running; secrets
masked), then the upstream checks (`shim.startup`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import structlog

from shim.legacy.render import RendererUnavailable, select_renderer
from shim.observability import configure_logging
from shim.settings import PROG, SettingsError, effective, load
from shim.startup import check_upstreams, failed
from shim.workers import Exit, prepare_metrics_dir, run_worker, supervise

log = structlog.get_logger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        loaded = load(os.environ, sys.argv[1:] if argv is None else argv)
        # Before any worker exists: SHIM_RENDERER=c without the extension is a bad setting.
        renderer = select_renderer(loaded.settings.renderer)
    except (SettingsError, RendererUnavailable) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return Exit.BAD_SETTINGS
    settings = loaded.settings
    configure_logging(settings)
    logging.captureWarnings(True)
    for variable, warning in loaded.warnings:
        log.warning("setting_warning", variable=variable, warning=warning)
    if not settings.tls_verify:
        log.warning(
            "tls_verification_off",
            detail="SHIM_TLS_VERIFY=false: upstream certificates and host names are not "
            "checked; anyone on the path to Glance, Keystone or Nova can read tokens",
        )
    try:
        # prometheus-client's own variable; the Helm chart points it at an emptyDir.
        metrics_dir = prepare_metrics_dir(
            os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
            settings.workers,
            metrics_on=settings.metrics_listen is not None,
        )
    except OSError as exc:
        print(f"{PROG}: PROMETHEUS_MULTIPROC_DIR: {exc}", file=sys.stderr)
        return Exit.BAD_SETTINGS
    log.info("starting", **effective(settings, renderer.name))
    findings = asyncio.run(check_upstreams(settings))
    if settings.require_upstreams and (bad := failed(findings)):
        names = ", ".join(finding.probe.setting for finding in bad)
        log.error("startup_failed", error=f"upstream check failed: {names}")
        return Exit.STARTUP_FAILED
    if settings.workers == 1:
        return run_worker(settings)
    return supervise(settings, metrics_dir)
