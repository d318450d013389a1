"""The README's Layout section is the map of the tree: it names every module of the package
and the benchmarks, every script and every test folder, and nothing that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Files that are not worth a line on the map.
UNMAPPED = frozenset({"__init__.py", "__main__.py"})


def layout() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1]
    return section.split("\n## ", 1)[0]


def named(text: str) -> set[str]:
    """Every name the section writes as code, without a trailing ``/``."""
    return {name.rstrip("/") for name in re.findall(r"`([^`\s]+)`", text)}


@pytest.mark.parametrize(
    ("folder", "pattern"),
    [
        ("shim", "*.py"),
        ("shim/legacy", "*.py"),
        ("shim/legacy", "*.c"),
        ("bench", "*.py"),
        ("scripts", "*"),
        ("deploy", "*"),
    ],
)
def test_every_file_of_a_folder_is_on_the_map(folder: str, pattern: str) -> None:
    files = {path.name for path in (REPO / folder).glob(pattern) if not path.name.startswith(".")}
    files -= UNMAPPED | {"__pycache__", "results", "README.md"}
    missing = files - named(layout())
    assert not missing, f"README Layout does not name these in {folder}/: {sorted(missing)}"


def test_every_test_folder_is_on_the_map() -> None:
    folders = {p.name for p in (REPO / "tests").iterdir() if (p / "__init__.py").exists()}
    assert folders <= named(layout())


def test_every_module_on_the_map_exists() -> None:
    places = ["shim", "shim/legacy", "bench", "scripts", "deploy", "tests", "."]
    files = {p.name for place in places for p in (REPO / place).iterdir()}
    dotted = {name for name in named(layout()) if name.endswith((".py", ".c"))}
    assert not dotted - files
