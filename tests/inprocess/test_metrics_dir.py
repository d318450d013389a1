"""The Prometheus multiprocess directory, as an operator meets it: ``python -m shim``.

It is needed only with several workers and metrics on. Then the shim uses
``PROMETHEUS_MULTIPROC_DIR`` or, when that is unset, makes a directory under the temporary
directory and removes it at exit. Otherwise the variable is ignored, so a read-only or
missing directory is no error. (tests/deploy/test_image.py shows the same in a read-only
container.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fakes.entry import REPO_ROOT, SHIM_COMMAND, shim_env
from tests.stack.procs import free_port

START_TIMEOUT = 30.0


def _get(url: str) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None


class Shim:
    def __init__(self, proc: subprocess.Popen[str], api: int, metrics: int) -> None:
        self.proc, self.api, self.metrics = proc, api, metrics

    def wait_healthy(self, port: int, path: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            answer = _get(f"http://127.0.0.1:{port}{path}")
            if answer is not None and answer[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"not serving {path}: exit {self.proc.poll()}\n{self.output()}")

    def scrape(self) -> str:
        """The metrics port's exposition, which must answer 200."""
        answer = _get(f"http://127.0.0.1:{self.metrics}/metrics")
        assert answer is not None
        status, exposition = answer
        assert status == 200
        return exposition

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def output(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        out, err = self.proc.communicate()
        return out + err

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]


@contextmanager
def shim(env: dict[str, str]) -> Iterator[Shim]:
    api, metrics = free_port(), free_port()
    settings = {
        "SHIM_GLANCE_URL": "http://127.0.0.1:9",
        "SHIM_LISTEN": f"127.0.0.1:{api}",
        "SHIM_METRICS_LISTEN": f"127.0.0.1:{metrics}",
        "SHIM_LOG_FORMAT": "json",
        "SHIM_SHUTDOWN_TIMEOUT": "5",
        **env,
    }
    proc = subprocess.Popen(
        SHIM_COMMAND,
        cwd=REPO_ROOT,
        env=shim_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield Shim(proc, api, metrics)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def _unusable_dir(tmp_path: Path) -> Path:
    """A directory that cannot exist (its parent is a file), whoever the user is."""
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "prometheus"


def test_one_worker_ignores_the_variable(tmp_path: Path) -> None:
    unusable = _unusable_dir(tmp_path)
    with shim({"SHIM_WORKERS": "1", "PROMETHEUS_MULTIPROC_DIR": str(unusable)}) as process:
        process.wait_healthy(process.metrics, "/healthz")
        # Single-process metrics: the process collector's series are there.
        assert "process_resident_memory_bytes" in process.scrape()
        assert process.stop() == 0


def test_several_workers_make_and_remove_a_directory_under_tmpdir(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    with shim({"SHIM_WORKERS": "2", "TMPDIR": str(tmpdir)}) as process:
        process.wait_healthy(process.metrics, "/readyz")
        exposition = process.scrape()
        assert "nova_image_shim_requests_in_flight" in exposition
        assert "process_resident_memory_bytes" not in exposition  # multiprocess mode
        made = list(tmpdir.iterdir())
        assert len(made) == 1
        assert made[0].name.startswith("nova-image-shim-metrics-")
        assert process.stop() == 0
        (started,) = [event for event in process.events() if event["event"] == "master_started"]
    assert started["metrics_dir"] == str(made[0])
    assert not made[0].exists(), "the directory it made outlived the shim"


def test_several_workers_refuse_an_unusable_directory_saying_which(tmp_path: Path) -> None:
    unusable = _unusable_dir(tmp_path)
    with shim({"SHIM_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(unusable)}) as process:
        assert process.proc.wait(timeout=START_TIMEOUT) == 2
        _, err = process.proc.communicate()
    assert err.startswith("nova-image-shim: PROMETHEUS_MULTIPROC_DIR: "), err
    assert err.count("PROMETHEUS_MULTIPROC_DIR") == 1, err
    assert str(unusable) in err


def test_several_workers_with_metrics_off_ignore_the_variable(tmp_path: Path) -> None:
    unusable = _unusable_dir(tmp_path)
    env = {
        "SHIM_WORKERS": "2",
        "SHIM_METRICS_LISTEN": "off",
        "PROMETHEUS_MULTIPROC_DIR": str(unusable),
    }
    with shim(env) as process:
        process.wait_healthy(process.api, "/")
        assert process.stop() == 0
