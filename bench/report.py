"""Results of a run (per-round metrics per cell, medians) and the Markdown tables printed."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from bench.cells import Metrics
from bench.nova_answers import NovaAnswer

TARGETS: Final = (
    ("direct", "(a) direct"),
    ("passthrough", "(b) passthrough"),
    ("parse", "(c) parse floor"),
    ("shim", "(d) shim"),
    ("shim-tls", "(e) shim, Glance over HTTPS"),
)
NA: Final = "n/a"


@dataclass
class Results:
    rounds: dict[str, list[Metrics]] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, cell: str, outcome: Metrics | str) -> None:
        if isinstance(outcome, str):
            self.na[cell] = outcome
        else:
            self.rounds.setdefault(cell, []).append(outcome)

    def median(self, cell: str, metric: str) -> float | None:
        values = [r[metric] for r in self.rounds.get(cell, []) if metric in r]
        return statistics.median(values) if values else None

    def maximum(self, cell: str, metric: str) -> float | None:
        values = [r[metric] for r in self.rounds.get(cell, []) if metric in r]
        return max(values) if values else None

    def why(self, cell: str) -> str:
        reason = self.na.get(cell)
        return f"{NA}: {reason}" if reason else NA


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return NA
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def _diff(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def percent(value: float | None, base: float | None) -> str:
    """*value* against *base* as a signed change, e.g. "-3.1 %"."""
    ratio = _ratio(value, base)
    return NA if ratio is None else f"{(ratio - 1) * 100:+.1f} %"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _na_cell(results: Results, cell: str, width: int) -> list[str]:
    return [results.why(cell), *([""] * (width - 1))]


def side_by_side(results: Results, kinds: Sequence[tuple[str, str]], phase: str) -> str:
    rows: list[list[str]] = []
    for key, label in kinds:
        for target, name in TARGETS:
            cell = f"{phase}/closed/{key}/{target}"
            if cell not in results.rounds and cell not in results.na:
                continue
            if cell not in results.rounds:
                rows.append([label, name, *_na_cell(results, cell, 7)])
                continue
            m = functools.partial(results.median, cell)
            busy0, busy1, other = m("cpu0_busy"), m("cpu1_busy"), m("other_cpu")
            rows.append(
                [
                    label,
                    name,
                    _num(m("rps"), 0),
                    _num(m("p50_ms")),
                    _num(m("p99_ms")),
                    _num(m("cpu_s_per_1k"), 3),
                    _num(m("glance_calls")),
                    " / ".join(f"{(v or 0) * 100:.0f}" for v in (busy0, busy1, other)),
                    _num(m("errors"), 0),
                ]
            )
    head = ["request", "server", "req/s", "p50 ms", "p99 ms", "CPU s/1k req"]
    head += ["Glance calls/req", "busy % cpu0 / cpu1 / other procs", "errors"]
    return table(head, rows)


def ratios(results: Results, kinds: Sequence[tuple[str, str]], phase: str) -> str:
    rows: list[list[str]] = []
    for key, label in kinds:

        def med(target: str, metric: str, key: str = key) -> float | None:
            # The floors and direct make the same Glance call for a basic list as for detail.
            floor_key = "detail25" if key == "basic25" and target != "shim" else key
            return results.median(f"{phase}/closed/{floor_key}/{target}", metric)

        direct_p50 = med("direct", "p50_ms")
        rows.append(
            [
                label,
                _num(_ratio(med("shim", "rps"), med("parse", "rps"))),
                _num(_ratio(med("parse", "cpu_s_per_1k"), med("shim", "cpu_s_per_1k"))),
                _num(_ratio(med("shim", "rps"), med("passthrough", "rps"))),
                _num(_ratio(med("parse", "rps"), med("passthrough", "rps"))),
                _num(_diff(med("shim", "p50_ms"), direct_p50)),
                _num(_diff(med("parse", "p50_ms"), direct_p50)),
            ]
        )
    head = ["request", "shim/(c) req/s", "(c)/shim CPU per req", "shim/(b) req/s"]
    head.append("(c)/(b) req/s")
    head += ["shim - direct p50 ms", "(c) - direct p50 ms"]
    return table(head, rows)


def per_image(results: Results, pages: Sequence[int], phase: str) -> str:
    rows: list[list[str]] = []
    for target, name in TARGETS[1:]:
        row = [name]
        cpu: dict[int, float | None] = {}
        for n in pages:
            cell = f"{phase}/closed/detail{n}/{target}"
            cpu[n] = results.median(cell, "cpu_s_per_1k")
            rps = results.median(cell, "rps")
            row.append(f"{_num(rps, 0)} / {_num(cpu[n], 3)}" if rps is not None else NA)
        low, high = cpu.get(pages[0]), cpu.get(pages[-1])
        slope = (high - low) / (pages[-1] - pages[0]) * 1000 if low is not None and high else None
        row.append(_num(slope))
        rows.append(row)
    head = ["server", *(f"{n} img: req/s / CPU ms/req" for n in pages)]
    head.append(f"CPU µs per image ({pages[0]}→{pages[-1]})")
    return table(head, rows)


def latency(results: Results, rate: float | None, basis: str) -> str:
    rows: list[list[str]] = []
    specs = [
        ("1 connection, 25 images", "w1/conc1/detail25", "p50_ms"),
        ("1 connection, 25 images", "w1/conc1/detail25", "p99_ms"),
        (f"open loop {_num(rate, 0)} req/s, 25 images", "w1/open/detail25", "p50_ms"),
        (f"open loop {_num(rate, 0)} req/s, 25 images", "w1/open/detail25", "p99_ms"),
    ]
    for label, base, metric in specs:
        direct = results.median(f"{base}/direct", metric)
        parse = results.median(f"{base}/parse", metric)
        shim = results.median(f"{base}/shim", metric)
        shim_text = _num(shim) if shim is not None else results.why(f"{base}/shim")
        rows.append(
            [
                label,
                metric.removesuffix("_ms"),
                _num(direct),
                _num(parse),
                shim_text,
                _num(_diff(parse, direct)),
                _num(_diff(shim, direct)),
            ]
        )
    lag = results.median("w1/open/detail25/direct", "dispatch_lag_p99_ms")
    head = ["cell", "pct", "direct ms", "(c) ms", "shim ms", "(c) added ms", "shim added ms"]
    note = f"\n\nOpen-loop rate = half of {basis}; generator dispatch lag p99 {_num(lag)} ms."
    return table(head, rows) + note


def unpaged(results: Results, images: int, page_size: int) -> str:
    rows: list[list[str]] = []
    direct_total = results.median("w1/unpaged/direct", "total_s")
    direct_first = results.median("w1/unpaged/direct", "first_page_ms")
    direct_mean = results.median("w1/unpaged/direct", "mean_page_ms")
    rows.append(
        [
            f"direct walk (Python client, pages of {page_size})",
            "-",
            f"{_num(direct_first)} (first page; mean page {_num(direct_mean)})",
            _num(direct_total, 3),
            f"{_num(results.median('w1/unpaged/direct', 'client_peak_rss_mb'), 1)} (client)",
            _num(results.median("w1/unpaged/direct", "images"), 0),
            "1.00" if direct_total else NA,
        ]
    )
    for phase, workers in (("w1", 1), ("w2", 2)):
        cell = f"{phase}/unpaged/shim"
        if cell not in results.rounds and cell not in results.na:
            continue  # phase not run
        if cell not in results.rounds:
            rows.append([f"shim, {workers} worker(s)", str(workers), results.why(cell)] + [""] * 4)
            continue
        rows.append(
            [
                f"shim /images/detail, no limit, {workers} worker(s)",
                str(workers),
                _num(results.median(cell, "first_byte_ms")),
                _num(results.median(cell, "total_s"), 3),
                f"{_num(results.maximum(cell, 'peak_rss_mb'), 1)}"
                f" (idle {_num(results.median(cell, 'rss_before_mb'), 1)})",
                _num(results.median(cell, "images"), 0),
                _num(_ratio(results.median(cell, "total_s"), direct_total)),
            ]
        )
    head = ["case", "workers", "first byte ms", "total s", "peak RSS MB (max of rounds)"]
    head.append("images")
    head.append("total / direct")
    return f"{images:,} images.\n\n" + table(head, rows)


def workers(results: Results, kinds: Sequence[tuple[str, str]]) -> str:
    rows: list[list[str]] = []
    for key, label in kinds:
        for target, name in TARGETS[1:]:
            one = results.median(f"w1/closed/{key}/{target}", "rps")
            two_cell = f"w2/closed/{key}/{target}"
            two = results.median(two_cell, "rps")
            if two_cell not in results.rounds and two_cell not in results.na:
                continue  # phase not run
            two_text = _num(two, 0) if two is not None else results.why(two_cell)
            rows.append([label, name, _num(one, 0), two_text, _num(_ratio(two, one))])
    return table(["request", "server", "1 worker req/s", "2 workers req/s", "2w/1w"], rows)


def targets(results: Results) -> str:
    def med(cell: str, metric: str) -> float | None:
        return results.median(cell, metric)

    def verdict(value: float | None, ok: Callable[[float], bool]) -> str:
        if value is None:
            return NA
        return "met" if ok(value) else "MISSED"

    checks: list[tuple[str, float | None, Callable[[float], bool], str]] = []
    for key, label in (("detail25", "25"), ("detail1000", "1000")):
        value = _ratio(med(f"w1/closed/{key}/shim", "rps"), med(f"w1/closed/{key}/parse", "rps"))
        checks.append(
            (f"shim ≥ 0.85 x (c) req/s, {label}-image pages", value, lambda v: v >= 0.85, "x")
        )
    added = _diff(
        med("w1/conc1/detail25/shim", "p50_ms"), med("w1/conc1/detail25/direct", "p50_ms")
    )
    checks.append(("added p50 ≤ 1.5 ms, 1 connection, 25 images", added, lambda v: v <= 1.5, "ms"))
    added99 = _diff(
        med("w1/open/detail25/shim", "p99_ms"), med("w1/open/detail25/direct", "p99_ms")
    )
    checks.append(("added p99 ≤ 5 ms, open loop at half max", added99, lambda v: v <= 5.0, "ms"))
    rss = results.maximum("w1/unpaged/shim", "peak_rss_mb")
    checks.append(("unpaged list peak RSS ≤ 100 MB", rss, lambda v: v <= 100.0, "MB"))
    first = med("w1/unpaged/shim", "first_byte_ms")
    page = med("w1/unpaged/direct", "first_page_ms")
    checks.append(
        (
            f"unpaged first byte ≤ one Glance page time ({_num(page)} ms)",
            first,
            lambda v: page is not None and v <= page,
            "ms",
        )
    )
    total = _ratio(med("w1/unpaged/shim", "total_s"), med("w1/unpaged/direct", "total_s"))
    checks.append(("unpaged total ≤ 1.6 x direct walk", total, lambda v: v <= 1.6, "x"))
    rows = [
        [name, f"{_num(value)} {unit}" if value is not None else NA, verdict(value, ok)]
        for name, value, ok, unit in checks
    ]
    return table(["target", "measured", "verdict"], rows)


def _signed(value: float | None) -> str:
    return NA if value is None else ("+" if value >= 0 else "-") + _num(abs(value), 3)


def links_cost(results: Results, answers: Sequence[NovaAnswer]) -> str:
    """Canned Nova answers through the passthrough: relayed as-is (before) vs links kept."""
    if not answers:
        return NA
    rows: list[list[str]] = []
    metrics = ("rps", "p50_ms", "p99_ms", "cpu_s_per_1k")
    for answer in answers:
        relays = (
            ("(b) passthrough floor", f"links/closed/nova-{answer.key}-json/passthrough"),
            ("(d) shim, relayed as-is (before)", f"links/closed/nova-{answer.key}-bin/shim"),
            ("(d) shim, links kept (after)", f"links/closed/nova-{answer.key}-json/shim"),
        )
        name = f"{answer.label} ({answer.size:,} B)"
        for relay, cell in relays:
            if cell not in results.rounds:
                rows.append([name, relay, *_na_cell(results, cell, len(metrics))])
                continue
            rows.append([name, relay, *(_num(results.median(cell, m)) for m in metrics)])
        before, after = relays[1][1], relays[2][1]
        rows.append(
            [
                name,
                "**after vs before**",
                f"{_num(_ratio(results.median(after, 'rps'), results.median(before, 'rps')))} x",
                *(
                    _signed(_diff(results.median(after, m), results.median(before, m)))
                    for m in metrics[1:]
                ),
            ]
        )
    head = ["answer", "relay", "req/s", "p50 ms", "p99 ms", "CPU ms per request"]
    return table(head, rows)
