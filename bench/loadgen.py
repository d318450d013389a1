"""Load generators, each pinned to the load CPUs: wrk (closed loop) and `bench.openloop`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Final

from bench.procs import REPO, taskset

TOKEN: Final = "bench"  # noqa: S105 - a dummy token nginx ignores
_UNITS: Final = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_LATENCY: Final = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)


class LoadError(RuntimeError):
    """The generator failed or printed something unparsable."""


@dataclass(frozen=True, slots=True)
class Closed:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    non_2xx: int


def parse_wrk(text: str) -> Closed:
    latencies = {
        m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _LATENCY.finditer(text)
    }
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not done or not rps or "50" not in latencies:
        raise LoadError(f"unparsable wrk output: {text[-400:]!r}")
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return Closed(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * _UNITS[done.group(3)] / 1e3,
        rps=float(rps.group(1)),
        p50_ms=latencies["50"],
        p90_ms=latencies.get("90", 0.0),
        p99_ms=latencies.get("99", 0.0),
        errors=sum(int(g) for g in socket.groups()) if socket else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk(url: str, connections: int, seconds: int, cpus: str | None) -> Closed:
    argv = [
        *taskset(cpus),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, seconds)}s",
        "--timeout",
        "10s",
        "--latency",
        "-H",
        f"X-Auth-Token: {TOKEN}",
        "-H",
        "Accept: application/json",
        url,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False, cwd=REPO
    )
    if done.returncode != 0:
        raise LoadError(f"wrk exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return parse_wrk(done.stdout)


@dataclass(frozen=True, slots=True)
class Open:
    rate: float
    achieved_rate: float
    completed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int
    dispatch_lag_p99_ms: float


def openloop(url: str, rate: float, seconds: float, cpus: str | None) -> Open:
    argv = [
        *taskset(cpus),
        sys.executable,
        "-m",
        "bench.openloop",
        "--url",
        url,
        "--rate",
        f"{rate:.1f}",
        "--duration",
        f"{seconds}",
        "--token",
        TOKEN,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 60, check=False, cwd=REPO
    )
    if done.returncode != 0:
        raise LoadError(f"openloop exited {done.returncode}: {done.stderr.strip()[-300:]}")
    data = json.loads(done.stdout)
    return Open(
        rate=float(data["rate"]),
        achieved_rate=float(data["achieved_rate"]),
        completed=int(data["completed"]),
        p50_ms=float(data["p50_ms"]),
        p90_ms=float(data["p90_ms"]),
        p99_ms=float(data["p99_ms"]),
        max_ms=float(data["max_ms"]),
        errors=int(data["errors"]),
        non_2xx=int(data["non_2xx"]),
        dispatch_lag_p99_ms=float(data["dispatch_lag_p99_ms"]),
    )


def walker(args: list[str], cpus: str | None, timeout: float = 300.0) -> dict[str, object]:
    """Run `bench.walk` with *args*; its JSON answer (with ``error`` on failure)."""
    argv = [*taskset(cpus), sys.executable, "-m", "bench.walk", *args]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )
    if done.returncode != 0:
        return {"error": f"walk exited {done.returncode}: {done.stderr.strip()[-300:]}"}
    result: dict[str, object] = json.loads(done.stdout)
    return result
