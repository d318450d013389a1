"""Command line: flags + environment → Settings → logging → workers → the API server.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT, in-flight requests drained), 2 for bad
settings (the message names the setting), 3 when the server could not start (an address in
use, or an upstream that failed its start-up check with SHIM_REQUIRE_UPSTREAMS=true),
1 for anything else (a worker crash loop, a worker that could not start under the master,
a drain that overran its bound).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import structlog

from shim.observability import configure_logging
from shim.settings import Settings, SettingsError
from shim.startup import check_upstreams, failed
from shim.workers import EXIT_STARTUP_FAILED, prepare_metrics_dir, run_worker, supervise

log = structlog.get_logger(__name__)

EXIT_BAD_SETTINGS = 2


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = Settings.from_sources(os.environ, sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        print(f"nova-image-shim: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    configure_logging(settings)
    logging.captureWarnings(True)
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
        print(f"nova-image-shim: PROMETHEUS_MULTIPROC_DIR: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    findings = asyncio.run(check_upstreams(settings))
    if settings.require_upstreams and (bad := failed(findings)):
        names = ", ".join(finding.probe.setting for finding in bad)
        log.error("startup_failed", error=f"upstream check failed: {names}")
        return EXIT_STARTUP_FAILED
    if settings.workers == 1:
        log.info("starting", listen=str(settings.listen), workers=1)
        return run_worker(settings)
    return supervise(settings, metrics_dir)
