"""``bench/run --against REV``: this checkout's shim and the shim at another revision, side by side.

For a change that should cost nothing (a restructuring) or save a little, what matters is the
shim's own CPU time per request: it does not depend on how fast wrk or nginx run, so it stays
comparable when the load generator's CPU is shared. Both shims run under this checkout's
interpreter and packages, one at a time, on the same CPU (``--server-cpus``), against the same
nginx and canned Glance. Each round measures every request kind on both, the order alternating
between rounds so that a drift of the machine falls on both sides alike.

The table gives each side's median and, for the change, the median of the per-round ratios with
their range: a range that straddles zero says the difference is within the noise of the run.
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench import report
from bench.procs import REPO

KINDS: Final = ("detail25", "basic25", "show", "detail1", "detail1000")
HERE: Final = "shim"
_RENDER_SOURCE: Final = "shim/legacy/_render.c"
# The extension alone, as setup.py declares it, without reading that revision's pyproject.toml
# (which this venv's setuptools need not understand).
_BUILD_RENDERER: Final = f"""
from setuptools import Distribution, Extension
from setuptools.command.build_ext import build_ext
ext = Extension("shim.legacy._render", ["{_RENDER_SOURCE}"], extra_compile_args=["-O2"])
command = build_ext(Distribution({{"ext_modules": [ext]}}))
command.inplace = True
command.ensure_finalized()
command.run()
"""
THERE: Final = "shim-against"


class ExportError(RuntimeError):
    """The other revision could not be made runnable; the message says why."""


@dataclass(frozen=True)
class Revision:
    name: str
    """What the user asked for (``main``, ``HEAD~3``, a hash)."""
    commit: str
    """Its abbreviated commit hash."""
    tree: Path | None
    """Where its files are; None for this checkout."""
    renderer: str
    """``c`` when the compiled renderer is built in that tree, else ``python``."""

    def describe(self) -> str:
        return f"{self.name} ({self.commit}, {self.renderer} renderer)"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ExportError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _renderer(tree: Path) -> str:
    return "c" if any((tree / "shim" / "legacy").glob("_render*.so")) else "python"


def this_checkout() -> Revision:
    commit = _git("describe", "--always", "--dirty", "--abbrev=10")
    return Revision("this checkout", commit, None, _renderer(REPO))


def export(name: str, into: Path) -> Revision:
    """Write revision *name*'s files into *into* and build its C renderer there.

    `git archive` rather than a worktree: nothing is registered in the repository, and the
    directory goes with the run's temporary directory.
    """
    commit = _git("rev-parse", "--verify", "--short=10", f"{name}^{{commit}}")
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    if (into / _RENDER_SOURCE).exists():
        built = subprocess.run(
            [sys.executable, "-c", _BUILD_RENDERER], cwd=into, capture_output=True, text=True
        )
        if built.returncode != 0:
            raise ExportError(f"building {name}'s C renderer failed: {built.stderr[-400:]}")
    return Revision(name, commit, into, _renderer(into))


def order(round_index: int) -> tuple[str, str]:
    """Which side is measured first in a round: alternating, starting with the other revision."""
    return (THERE, HERE) if round_index % 2 == 0 else (HERE, THERE)


def _per_round(results: report.Results, there: str, here: str, metric: str) -> list[float]:
    pairs = zip(results.rounds.get(there, []), results.rounds.get(here, []), strict=False)
    return [b[metric] / a[metric] for a, b in pairs if a.get(metric) and metric in b]


def table(results: report.Results, labels: dict[str, str], phase: str) -> str:
    """One row per request kind: CPU per request and req/s on both sides, and the change."""
    rows = []
    for kind in KINDS:
        there, here = (f"{phase}/closed/{kind}/{key}" for key in (THERE, HERE))
        if there in results.na or here in results.na:
            why = results.why(there if there in results.na else here)
            rows.append([labels[kind], why, "", "", "", "", ""])
            continue
        cpu = [results.median(cell, "cpu_s_per_1k") for cell in (there, here)]
        rps = [results.median(cell, "rps") for cell in (there, here)]
        ratios = _per_round(results, there, here, "cpu_s_per_1k")
        change = statistics.median(ratios) if ratios else None
        spread = (
            f"{(min(ratios) - 1) * 100:+.1f} … {(max(ratios) - 1) * 100:+.1f} %" if ratios else ""
        )
        rows.append(
            [
                labels[kind],
                _micros(cpu[0]),
                _micros(cpu[1]),
                report.percent(change, 1.0) if change is not None else report.NA,
                spread,
                _whole(rps[0]),
                _whole(rps[1]),
            ]
        )
    head = [
        "request",
        "CPU µs/req, before",
        "CPU µs/req, after",
        "change (median of rounds)",
        "range over rounds",
        "req/s, before",
        "req/s, after",
    ]
    return report.table(head, rows)


def _micros(cpu_s_per_1k: float | None) -> str:
    return report.NA if cpu_s_per_1k is None else f"{cpu_s_per_1k * 1000:.1f}"


def _whole(value: float | None) -> str:
    return report.NA if value is None else f"{value:,.0f}"
