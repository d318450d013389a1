"""``python -m bench``: build the canned Glance, run every cell interleaved, print the tables.

Layout on a 2-core machine (override with the ``--*-cpus`` flags): the server under test gets
CPU 0 to itself; the load generator, the clients and nginx share CPU 1. With two workers the
server may use both CPUs. Each round runs every cell once in a fixed order; tables show the
median over rounds. Everything is bounded: wrk runs for ``--duration`` seconds per cell, the
open-loop generator sends rate x duration requests, the walks have timeouts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import against, cells, report
from bench.catalogue import write_catalogue
from bench.cells import Kind, Metrics, Target
from bench.nova_answers import NovaAnswer, write_nova_answers
from bench.procs import REPO, event_loop_of
from bench.tools import ensure_tools, machine
from bench.upstream import Nginx, start_nginx

SIDE_KINDS = ("detail25", "detail1000", "show", "basic25")
TLS_KINDS = ("detail25", "show")
SCALE_PAGES = (1, 25, 200, 1000)
SLOW_WALK_S = 30.0
QUIET_OTHER_CPU = 0.10
LINK_VARIANTS = ("bin", "json")


@dataclass(frozen=True)
class Options:
    duration: int
    rounds: int
    connections: int
    images: int
    page_size: int
    load_cpus: str
    server_cpus: str
    server_cpus_2w: str
    upstream_cpus: str
    loop: str
    warmup: int
    shim_command: list[str] | None
    log_level: str
    keep: bool
    two_workers: bool
    links_only: bool = False
    tls_only: bool = False
    against: str | None = None
    revision: str | None = None


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s cells (about 1.5 min)")
    parser.add_argument("--duration", type=int, help="seconds per wrk cell (default 3)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="closed-loop connections")
    parser.add_argument("--images", type=int, default=100_000, help="catalogue size")
    parser.add_argument(
        "--page-size", type=int, default=1000, help="SHIM_GLANCE_PAGE_SIZE and the walk page"
    )
    parser.add_argument("--load-cpus", default="1", help="CPUs for wrk and clients")
    parser.add_argument("--server-cpus", default="0", help="CPUs for the server under test")
    parser.add_argument("--server-cpus-2w", default="0,1", help="CPUs for 2-worker servers")
    parser.add_argument("--upstream-cpus", default="1", help="CPUs for nginx")
    parser.add_argument(
        "--loop",
        choices=("match", "auto", "uvloop", "asyncio"),
        default="match",
        help="event loop of the floors and the walk baseline; match (default): the one the "
        "shim runs, detected from its memory maps; auto: uvloop if installed",
    )
    parser.add_argument("--shim-cmd", help="command instead of `python -m shim` (SHIM_* env set)")
    parser.add_argument("--no-2w", action="store_true", help="skip the 2-worker phase")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="SHIM_LOG_LEVEL of the shims (default warning: no access lines; info: one per "
        "request, as in production)",
    )
    parser.add_argument(
        "--warmup", type=int, default=0, help="seconds of wrk before a cell's first round"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (pages, logs)")
    parser.add_argument(
        "--links-only",
        action="store_true",
        help="only the passthrough cells (canned Nova answers relayed as-is vs links kept)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="only the TLS cell: the shim calling nginx over HTTPS vs plain HTTP",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="only this checkout's shim against the shim at git revision REV (CPU per "
        "request side by side, e.g. before and after a change)",
    )
    parser.add_argument(
        "--revision",
        metavar="REV",
        help="with --against: measure revision REV instead of this checkout",
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    derived = {
        "duration": args.duration or (2 if quick else 3),
        "rounds": args.rounds or (1 if quick else 3),
        "shim_command": shlex.split(args.shim_cmd) if args.shim_cmd else None,
        "two_workers": not args.no_2w,
        "tls_only": bool(args.tls),
    }
    # Every other option is its flag, under the same name.
    named = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(Options) if f.name not in derived
    }
    return Options(**named, **derived)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _show(cell: str, outcome: Metrics | str) -> None:
    if isinstance(outcome, str):
        _say(f"  {cell:<36} n/a: {outcome}")
        return
    parts = [f"{k}={v:.4g}" for k, v in outcome.items() if k in _SHOWN]
    _say(f"  {cell:<36} " + " ".join(parts))


_SHOWN = {"rps", "p50_ms", "p99_ms", "cpu_s_per_1k", "glance_calls", "errors", "total_s"}
_SHOWN |= {"first_byte_ms", "first_page_ms", "peak_rss_mb", "achieved_rate", "other_cpu"}


class Run:
    def __init__(self, options: Options, work: Path) -> None:
        self.o = options
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results = report.Results()
        self.started = time.monotonic()
        self.nginx: Nginx | None = None
        self.kinds: dict[str, Kind] = {}
        self.rate: float | None = None
        self.rate_basis = ""
        self.shim_loop = "n/a"
        self.floor_loop = options.loop
        self.answers: dict[str, NovaAnswer] = {}
        self.revisions: tuple[against.Revision, against.Revision] | None = None
        self.launch = cells.Launch(options.shim_command, options.log_level)

    def record(self, cell: str, outcome: Metrics | str) -> None:
        self.results.add(cell, outcome)
        _show(cell, outcome)

    def servers(self, workers: int) -> dict[str, Target]:
        """Start the shim first, so the floors can use the same event loop as it does."""
        assert self.nginx is not None
        o = self.o
        cpus = o.server_cpus if workers == 1 else o.server_cpus_2w
        shim = cells.shim_target(self.nginx, workers, cpus, o.page_size, self.logs, self.launch)
        self.shim_loop = "n/a" if shim.na else event_loop_of(shim.pids())
        self.floor_loop = o.loop
        if o.loop == "match":
            self.floor_loop = "auto" if shim.na else self.shim_loop
        floors = [
            ("passthrough", "bench.passthrough_floor", "(b) passthrough"),
            ("parse", "bench.parse_floor", "(c) parse floor"),
        ]
        out = {"direct": cells.direct_target(self.nginx)}
        for key, module, label in floors:
            out[key] = cells.floor_target(
                key, module, label, self.nginx, workers, cpus, self.floor_loop, self.logs
            )
        out["shim"] = shim
        for target in out.values():
            if target.na:
                _say(f"  {target.label}: n/a: {target.na}")
        _say(f"  event loops: shim {self.shim_loop}, floors and walk {self.floor_loop}")
        return out

    def closed(
        self, phase: str, kind: str, targets: list[Target], rnd: int, single: bool = False
    ) -> None:
        """One closed-loop cell per target: --connections of them, or one (``conc1``)."""
        assert self.nginx is not None
        mode, conns = ("conc1", 1) if single else ("closed", self.o.connections)
        for target in targets:
            outcome = cells.closed_cell(
                target,
                self.kinds[kind],
                self.nginx,
                conns,
                self.o.duration,
                self.o.warmup if rnd == 0 else 0,
                self.o.load_cpus,
            )
            self.record(f"{phase}/{mode}/{kind}/{target.key}", outcome)

    def unpaged(self, workers: int) -> None:
        """Unpaged lists on a fresh shim, so its RSS holds nothing from the loaded cells."""
        assert self.nginx is not None
        o = self.o
        cpus = o.server_cpus if workers == 1 else o.server_cpus_2w
        phase = f"w{workers}"
        _say(f" unpaged list, {o.images:,} images, fresh shim with {workers} worker(s)")
        shim = cells.shim_target(
            self.nginx, workers, cpus, o.page_size, self.logs, self.launch, "shim-unpaged"
        )
        try:
            for _ in range(o.rounds):
                if workers == 1:
                    walk = cells.direct_walk_cell(
                        self.nginx, o.page_size, self.floor_loop, o.load_cpus
                    )
                    self.record("w1/unpaged/direct", walk)
                cell = f"{phase}/unpaged/shim"
                previous = self.results.rounds.get(cell, [])
                if previous and previous[-1].get("total_s", 0.0) > SLOW_WALK_S:
                    continue  # one slow walk is enough: keep the run bounded
                self.record(cell, cells.unpaged_cell(shim, o.images, o.load_cpus))
        finally:
            shim.stop()

    def phase_one(self) -> None:
        o = self.o
        _say("phase 1: one worker per server")
        t = self.servers(1)
        try:
            side = [t["direct"], t["passthrough"], t["parse"], t["shim"]]
            for rnd in range(o.rounds):
                _say(f" round {rnd + 1}/{o.rounds} ({time.monotonic() - self.started:.0f} s)")
                for kind in ("detail25", "detail1000", "show"):
                    self.closed("w1", kind, side, rnd)
                self.closed("w1", "basic25", [t["shim"]], rnd)
                for kind in ("detail1", "detail200"):
                    self.closed("w1", kind, side[1:], rnd)
                self.closed(
                    "w1", "detail25", [t["direct"], t["parse"], t["shim"]], rnd, single=True
                )
            self.open_loop([t["direct"], t["parse"], t["shim"]])
        finally:
            for target in t.values():
                if target.key != "direct":
                    target.stop()
        self.unpaged(1)

    def open_loop(self, targets: list[Target]) -> None:
        assert self.nginx is not None
        shim_max = self.results.median("w1/closed/detail25/shim", "rps")
        parse_max = self.results.median("w1/closed/detail25/parse", "rps")
        if shim_max:
            self.rate, self.rate_basis = shim_max / 2, "the shim's closed-loop req/s"
        elif parse_max:
            self.rate = parse_max / 2
            self.rate_basis = "(c)'s closed-loop req/s (shim n/a)"
        else:
            return
        seconds = float(max(self.o.duration, 2))
        _say(f" open loop at {self.rate:.0f} req/s, {seconds:.0f} s per cell")
        for _ in range(self.o.rounds):
            for target in targets:
                outcome = cells.open_cell(
                    target,
                    self.kinds["detail25"],
                    self.nginx,
                    self.rate,
                    seconds,
                    self.o.load_cpus,
                )
                self.record(f"w1/open/detail25/{target.key}", outcome)

    def phase_two(self) -> None:
        o = self.o
        _say(f"phase 2: two workers per server (CPUs {o.server_cpus_2w})")
        t = self.servers(2)
        try:
            for rnd in range(o.rounds):
                _say(f" round {rnd + 1}/{o.rounds} ({time.monotonic() - self.started:.0f} s)")
                self.closed(
                    "w2",
                    "detail25",
                    [t["passthrough"], t["parse"], t["shim"]],
                    rnd,
                )
                self.closed(
                    "w2",
                    "detail1000",
                    [t["passthrough"], t["parse"], t["shim"]],
                    rnd,
                )
        finally:
            for target in t.values():
                if target.key != "direct":
                    target.stop()
        self.unpaged(2)

    def links_phase(self) -> None:
        """Canned Nova answers through the shim's passthrough: relayed as-is, links kept.

        The same bytes as ``.bin`` (octet-stream: relayed untouched, as every passthrough
        answer was before links were kept) and as ``.json`` (links rewritten); floor (b)
        relays the JSON for scale.
        """
        assert self.nginx is not None
        o = self.o
        _say("links kept on the shim: canned Nova answers through the passthrough, 1 worker")
        self.answers = write_nova_answers(self.work / "root", self.nginx.url)
        for answer in self.answers.values():
            for variant in LINK_VARIANTS:
                key = f"nova-{answer.key}-{variant}"
                path = f"/nova/{answer.key}.{variant}"
                self.kinds[key] = Kind(key, answer.label, path, path, 0, nova_key=answer.top)
        shim = cells.shim_target(
            self.nginx,
            1,
            o.server_cpus,
            o.page_size,
            self.logs,
            self.launch,
            "shim-nova",
            extra_env={"SHIM_NOVA_URL": self.nginx.url},
        )
        floor = cells.floor_target(
            "passthrough",
            "bench.passthrough_floor",
            "(b) passthrough",
            self.nginx,
            1,
            o.server_cpus,
            "auto" if o.loop == "match" else o.loop,
            self.logs,
        )
        try:
            if not shim.na:
                self._check_links(shim)
            for rnd in range(o.rounds):
                _say(f" round {rnd + 1}/{o.rounds} ({time.monotonic() - self.started:.0f} s)")
                for answer in self.answers.values():
                    self.closed("links", f"nova-{answer.key}-bin", [shim], rnd)
                    self.closed("links", f"nova-{answer.key}-json", [floor, shim], rnd)
        finally:
            shim.stop()
            floor.stop()

    def _check_links(self, shim: Target) -> None:
        """Before measuring: the JSON answers come back on the shim, the .bin ones untouched."""
        assert self.nginx is not None
        nova = self.nginx.url.encode()
        for answer in self.answers.values():
            for variant, named in (("json", False), ("bin", True)):
                _, body = cells.http_get(f"{shim.url}/nova/{answer.key}.{variant}", cells.AUTH)
                if (nova in body) != named:
                    self.results.notes.append(
                        f"{answer.key}.{variant}: Nova's address {'missing' if named else 'left'}"
                        " in the shim's answer"
                    )

    def tls_phase(self) -> None:
        """One shim calling nginx over plain HTTP, one over HTTPS (the same canned Glance,
        nginx terminating TLS); both keep their upstream connections alive, so the
        difference is TLS on reused connections, not handshakes."""
        assert self.nginx is not None
        o = self.o
        _say("TLS: the shim calling Glance (nginx) over HTTP and over HTTPS, 1 worker each")
        plain = cells.shim_target(self.nginx, 1, o.server_cpus, o.page_size, self.logs, self.launch)
        secure = cells.shim_target(
            self.nginx, 1, o.server_cpus, o.page_size, self.logs, self.launch, "shim-tls",
            tls=True,
        )  # fmt: skip
        self.shim_loop = "n/a" if plain.na else event_loop_of(plain.pids())
        try:
            for rnd in range(o.rounds):
                _say(f" round {rnd + 1}/{o.rounds} ({time.monotonic() - self.started:.0f} s)")
                for kind in TLS_KINDS:
                    self.closed("w1", kind, [plain, secure], rnd)
        finally:
            plain.stop()
            secure.stop()

    def against_phase(self) -> None:
        """This checkout's shim and the other revision's, one worker each, on the same CPUs."""
        assert self.nginx is not None
        assert self.o.against is not None
        o = self.o
        here = (
            against.export(o.revision, self.work / "revision")
            if o.revision
            else against.this_checkout()
        )
        there = against.export(o.against, self.work / "against")
        self.revisions = (there, here)
        _say(f"against: {there.describe()} vs {here.describe()}")
        targets = {
            against.HERE: cells.shim_target(
                self.nginx, 1, o.server_cpus, o.page_size, self.logs, self.launch,
                tree=here.tree, named=(against.HERE, f"after: {here.name}"),
            ),
            against.THERE: cells.shim_target(
                self.nginx, 1, o.server_cpus, o.page_size, self.logs, self.launch,
                "shim-against", tree=there.tree, named=(against.THERE, f"before: {there.name}"),
            ),
        }  # fmt: skip
        self.shim_loop = event_loop_of(targets[against.HERE].pids())
        try:
            for rnd in range(o.rounds):
                _say(f" round {rnd + 1}/{o.rounds} ({time.monotonic() - self.started:.0f} s)")
                first, second = against.order(rnd)
                for kind in against.KINDS:
                    self.closed("w1", kind, [targets[first], targets[second]], rnd)
        finally:
            for target in targets.values():
                target.stop()

    def execute(self) -> None:
        o = self.o
        if o.links_only:
            self.execute_small(self.links_phase)
            return
        if o.against:
            self.execute_small(self.against_phase)
            return
        if o.tls_only:
            self.execute_small(self.tls_phase, tls=True)
            return
        _say(f"writing {o.images:,} canned Glance images to {self.work} ...")
        catalogue = write_catalogue(self.work / "root", o.images, SCALE_PAGES, (o.page_size,))
        self.kinds = cells.kinds(catalogue)
        _say(f"  {catalogue.bytes_written / 1e6:.0f} MB in {time.monotonic() - self.started:.1f} s")
        self.nginx = start_nginx(self.work / "nginx", self.work / "root", o.upstream_cpus)
        try:
            self.phase_one()
            if o.two_workers:
                self.phase_two()
            self.links_phase()
            self.notes_from_logs()
        finally:
            self.nginx.stop()

    def execute_small(self, phase: Callable[[], None], *, tls: bool = False) -> None:
        """One phase over at most 1 000 canned images: enough for its cells, and for the
        shim's readiness probe, which reads an image page; with *tls* nginx serves HTTPS too."""
        o = self.o
        images = min(o.images, 1000)
        root = self.work / "root"
        catalogue = write_catalogue(root, images, SCALE_PAGES, (min(o.page_size, images),))
        self.kinds = cells.kinds(catalogue)
        self.nginx = start_nginx(self.work / "nginx", root, o.upstream_cpus, tls=tls)
        try:
            phase()
            self.notes_from_logs()
        finally:
            self.nginx.stop()

    def render_against(self, env: dict[str, str]) -> str:
        o = self.o
        assert self.revisions is not None
        there, here = self.revisions
        labels = {k: self.kinds[k].label for k in against.KINDS}
        return self._finish(
            [
                self._machine(env),
                "",
                f"Before: {there.describe()}. After: {here.describe()}.",
                "",
                self._one_worker("Each shim", ", the order alternating")
                + f" Event loop: {self.shim_loop}; SHIM_LOG_LEVEL={o.log_level}. CPU is the "
                "shim process's own, per request.",
                "",
                against.table(self.results, labels, "w1"),
            ]
        )

    def notes_from_logs(self) -> None:
        assert self.nginx is not None
        missing = self.nginx.missing()
        if missing:
            self.results.notes.append("nginx had no canned page for: " + "; ".join(missing))
        for log in sorted(self.logs.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()
            if lines:
                self.results.notes.append(
                    f"{log.name}: {len(lines)} line(s) logged, first: {lines[0][:200]}"
                )

    def render_tls(self, env: dict[str, str]) -> str:
        r = self.results
        rows = []
        for kind in TLS_KINDS:
            plain, secure = (f"w1/closed/{kind}/{key}" for key in ("shim", "shim-tls"))
            rps = [r.median(cell, "rps") for cell in (plain, secure)]
            cpu = [r.median(cell, "cpu_s_per_1k") for cell in (plain, secure)]
            p50 = [r.median(cell, "p50_ms") for cell in (plain, secure)]
            rows.append(
                [
                    self.kinds[kind].label,
                    report.percent(rps[1], rps[0]),
                    report.percent(cpu[1], cpu[0]),
                    report.percent(p50[1], p50[0]),
                ]
            )
        setup = self._one_worker("Each shim") + f" Event loop: {self.shim_loop}."
        kinds = [(k, self.kinds[k].label) for k in TLS_KINDS]
        side = report.side_by_side(r, kinds, "w1")
        change = report.table(["request", "req/s", "CPU s/1k req", "p50"], rows)
        return self._finish(
            [self._machine(env), setup, "", side, "", "HTTPS against HTTP:", "", change]
        )

    def render(self, env: dict[str, str]) -> str:
        o = self.o
        r = self.results
        if o.tls_only:
            return self.render_tls(env)
        if o.against:
            return self.render_against(env)
        links = [
            "### What keeping links on the shim costs",
            "",
            report.links_cost(r, list(self.answers.values())),
        ]
        if o.links_only:
            return self._finish(
                [
                    self._machine(env),
                    "",
                    self._one_worker("Shim"),
                    "",
                    *links,
                ]
            )
        side = [(k, self.kinds[k].label) for k in SIDE_KINDS]
        lines = [
            self._machine(env),
            "",
            f"Closed loop: wrk, {o.connections} connections, {o.duration} s per cell, median of "
            f"{o.rounds} interleaved round(s). Server CPUs {o.server_cpus}; wrk and clients "
            f"CPUs {o.load_cpus}; nginx CPUs {o.upstream_cpus}. Event loop: shim {self.shim_loop}, "
            f"floors and walk baseline {self.floor_loop} (--loop {o.loop}). "
            f"SHIM_GLANCE_PAGE_SIZE={o.page_size}.",
            "",
            "### Side by side, 1 worker",
            "",
            report.side_by_side(
                r,
                [*side, ("detail1", "detail, 1 image"), ("detail200", "detail, 200 images")],
                "w1",
            ),
            "",
            "### Ratios, 1 worker",
            "",
            report.ratios(r, side, "w1"),
            "",
            "### Cost per image (detail pages), 1 worker",
            "",
            report.per_image(r, SCALE_PAGES, "w1"),
            "",
            "### Added latency",
            "",
            report.latency(r, self.rate, self.rate_basis or "n/a"),
            "",
            "### Unpaged list",
            "",
            report.unpaged(r, o.images, o.page_size),
            "",
            "### 1 vs 2 workers (closed loop)",
            "",
            report.workers(r, [("detail25", "detail, 25"), ("detail1000", "detail, 1000")]),
            "",
            "### Targets",
            "",
            report.targets(r),
            "",
            *links,
        ]
        return self._finish(lines)

    def _one_worker(self, servers: str, rounds: str = "") -> str:
        """How the cells of a one-worker mode (--links-only, --tls, --against) ran."""
        o = self.o
        return (
            f"Closed loop: wrk, {o.connections} connections, {o.duration} s per cell, median of "
            f"{o.rounds} interleaved round(s){rounds}. {servers}: 1 worker on CPUs "
            f"{o.server_cpus}; wrk CPUs {o.load_cpus}; nginx CPUs {o.upstream_cpus}."
        )

    @staticmethod
    def _machine(env: dict[str, str]) -> str:
        return (
            f"Machine: {env['nproc']} x {env['cpu']}, {env['memory']}, Linux {env['kernel']}; "
            f"Python {env['python']}, aiohttp {env['aiohttp']}, orjson {env['orjson']}, "
            f"uvloop {env['uvloop']}, nginx {env['nginx']}, {env['wrk']}."
        )

    def _finish(self, lines: list[str]) -> str:
        r = self.results
        others = [m["other_cpu"] for v in r.rounds.values() for m in v if "other_cpu" in m]
        if others and statistics.median(others) > QUIET_OTHER_CPU:
            lines += [
                "",
                f"WARNING: the machine was not quiet: other processes used a median "
                f"{statistics.median(others) * 100:.0f}% of a CPU during the cells (column "
                f"'other procs'); figures are disturbed. Rerun on an idle machine.",
            ]
        if r.notes:
            lines += ["", *(f"Note: {note}" for note in r.notes)]
        return "\n".join(lines) + "\n"


def _pin_self(cpus: str) -> None:
    wanted = {int(c) for part in cpus.split(",") for c in _expand(part)}
    available = os.sched_getaffinity(0)
    if wanted & available:
        os.sched_setaffinity(0, wanted & available)


def _expand(part: str) -> range:
    low, _, high = part.partition("-")
    return range(int(low), int(high or low) + 1)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    ensure_tools()
    signal.signal(signal.SIGTERM, _interrupt)
    _pin_self(options.load_cpus)
    env = machine()
    work = Path(tempfile.mkdtemp(prefix="shim-bench-"))
    run = Run(options, work)
    try:
        run.execute()
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    text = run.render(env)
    elapsed = time.monotonic() - run.started
    command = "bench/run " + " ".join(sys.argv[1:] if argv is None else argv)
    text += f"\nCommand: `{command.strip()}`; wall time {elapsed:.0f} s.\n"
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"{stamp}.md").write_text(text)
    dump: Callable[[object], str] = lambda data: json.dumps(data, indent=1, sort_keys=True)  # noqa: E731
    (out / f"{stamp}.json").write_text(
        dump(
            {
                "machine": env,
                "options": dataclasses.asdict(options),
                "rounds": run.results.rounds,
                "na": run.results.na,
                "rate": run.rate,
                "event_loops": {"shim": run.shim_loop, "floors": run.floor_loop},
                "notes": run.results.notes,
            }
        )
    )
    print(text)
    _say(f"results: bench/results/{stamp}.md and .json")
    return 0
