"""A real Prometheus for the monitoring tests: Debian's ``prometheus`` package (with
``promtool``), installed with apt when missing, started on 127.0.0.1, queried over its API.

`ensure_installed` puts ``prometheus`` and ``promtool`` on the machine (root and apt are
needed; CI is a fresh Debian 12 machine). The package's service is never started: a
``policy-rc.d`` that denies service starts is in place for the install, so the only
Prometheus running is the one `start` spawns, on loopback, in its own process group, with
its data in a directory of the caller's. `Prometheus.query` runs an instant query through
``/api/v1/query`` and raises `PromQLError` with Prometheus's own message when a query does
not parse or evaluate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tests.stack.layout import HOST
from tests.stack.procs import (
    StackError,
    file_lock,
    free_port,
    spawn,
    stop_spawned,
    tail,
    wait_ready,
)

PACKAGE: Final = "prometheus"
BINARIES: Final = ("prometheus", "promtool")
POLICY_RC: Final = Path("/usr/sbin/policy-rc.d")
LOCK: Final = Path("/tmp/nova-image-shim-prometheus-install.lock")
SCRAPE_INTERVAL: Final = "1s"
APT_TIMEOUT: Final = 900.0

JsonObject = dict[str, Any]


class PromQLError(AssertionError):
    """Prometheus refused a query (it does not parse, or cannot be evaluated)."""


@dataclass(frozen=True, slots=True)
class Installed:
    prometheus: Path
    promtool: Path


def ensure_installed() -> Installed:
    """``prometheus`` and ``promtool`` paths; apt-get installs the package when missing."""
    if not all(shutil.which(name) for name in BINARIES):
        with file_lock(LOCK):
            if not all(shutil.which(name) for name in BINARIES):
                _apt_install()
    found = {name: shutil.which(name) for name in BINARIES}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise StackError(f"{', '.join(missing)} still missing after installing {PACKAGE}")
    return Installed(Path(str(found["prometheus"])), Path(str(found["promtool"])))


def _apt_install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            f"prometheus and promtool are missing and cannot be installed here (needs root "
            f"and apt-get): run `apt-get install --no-install-recommends {PACKAGE}`"
        )
    install = ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=600"]
    install += ["--no-install-recommends", PACKAGE]
    placed_policy = False
    if not POLICY_RC.exists():
        # Keep the package's service from starting (it would listen on every interface).
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
        placed_policy = True
    try:
        first = _run(install)
        if first.returncode != 0:
            # A fresh machine may have no package lists yet, or stale ones.
            update = _run(["apt-get", "update", "-o", "DPkg::Lock::Timeout=600"])
            second = _run(install)
            if second.returncode != 0:
                raise StackError(
                    f"apt-get install {PACKAGE} failed:\n{first.stdout[-2000:]}\n"
                    f"apt-get update:\n{update.stdout[-2000:]}\nretry:\n{second.stdout[-2000:]}"
                )
    finally:
        if placed_policy:
            POLICY_RC.unlink(missing_ok=True)


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """One apt-get command, never prompting; its output (stdout and stderr) in ``stdout``."""
    return subprocess.run(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        timeout=APT_TIMEOUT,
        check=False,
    )


@dataclass(slots=True)
class Prometheus:
    """A running Prometheus server that this process started."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        """``data`` of a ``/api/v1/<path>`` answer; `PromQLError` on an error answer."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body: JsonObject = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
            exc.close()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[JsonObject]:
        """The result of an instant query, as a list of series (scalars become one)."""
        data = self.api("query", query=promql)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[JsonObject] = data["result"]
        return result

    def values(self, promql: str, by: str) -> dict[str, float]:
        """``{label value: sample value}`` of an instant vector, keyed by label *by*."""
        return {s["metric"].get(by, ""): float(s["value"][1]) for s in self.query(promql)}

    def scalar(self, promql: str) -> float | None:
        series = self.query(promql)
        if not series:
            return None
        assert len(series) == 1, f"{promql} gave {len(series)} series"
        return float(series[0]["value"][1])

    def wait_for(
        self, promql: str, done: Callable[[float | None], bool], timeout: float = 60.0
    ) -> float | None:
        """Poll *promql* (one series) until *done* accepts its value; the value."""
        deadline = time.monotonic() + timeout
        value = self.scalar(promql)
        while not done(value):
            if time.monotonic() > deadline:
                raise StackError(f"{promql} stayed at {value} for {timeout}s\n{tail(self.log)}")
            if self.proc.poll() is not None:
                raise StackError(f"prometheus exited with {self.proc.returncode}\n{tail(self.log)}")
            time.sleep(0.25)
            value = self.scalar(promql)
        return value

    def stop(self) -> None:
        stop_spawned(self.proc)


def write_config(
    directory: Path, job: str, targets: Sequence[str], rule_files: Sequence[Path]
) -> Path:
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def start(
    directory: Path, job: str, targets: Sequence[str], rule_files: Sequence[Path] = ()
) -> Prometheus:
    """Start Prometheus scraping *targets* every second as *job*, with *rule_files* loaded."""
    binary = ensure_installed().prometheus
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, job, targets, rule_files)
    port = free_port(HOST)
    log = directory / "prometheus.log"
    cmd: list[str | Path] = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={HOST}:{port}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    proc = spawn(cmd, log, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    url = f"http://{HOST}:{port}"
    try:
        wait_ready("prometheus", f"{url}/-/ready", proc, [log])
    except BaseException:
        stop_spawned(proc)
        raise
    return Prometheus(url, proc, log)
