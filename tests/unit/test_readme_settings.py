"""README's Configuration table names every setting of `shim.settings.SPECS`, nothing else, and
gives each plain default as the code has it."""

from __future__ import annotations

import re
from pathlib import Path

from shim.settings import BY_ENV, SPECS

README = Path(__file__).resolve().parents[2] / "README.md"


def table() -> dict[str, str]:
    """Each ``SHIM_*`` variable of the table and its default cell (one cell per variable)."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or "SHIM_" not in cells[0]:
            continue
        names = re.findall(r"`(SHIM_[A-Z_]+)`", cells[0])
        defaults = re.split(r", | / ", cells[1])
        if len(defaults) == 1:  # one default for every variable of the row
            defaults *= len(names)
        assert len(defaults) == len(names), f"{line}: {len(names)} names, {len(defaults)} defaults"
        rows |= dict(zip(names, defaults, strict=True))
    return rows


def test_the_table_names_every_setting_and_nothing_else() -> None:
    assert sorted(table()) == sorted(BY_ENV)


def test_plain_defaults_match_the_code() -> None:
    """A literal default is the code's, written as ``--help`` shows it; an unset or computed one
    is words (``—``, "CPUs available") or the setting it falls back to, never a literal."""
    rows = table()
    for spec in SPECS:
        shown = spec.show(spec.default) if spec.default_text is None else None
        cell = rows[spec.env]
        if shown and shown != "unset":
            assert cell == f"`{shown}`", f"{spec.env}: README says {cell}, the code {shown}"
        else:
            literal = re.fullmatch(r"`([^`]+)`", cell)
            assert literal is None or literal[1] in BY_ENV, f"{spec.env}: README says {cell}"
