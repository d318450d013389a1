"""The C renderer under AddressSanitizer and UndefinedBehaviorSanitizer.

Equal bytes (test_render_properties.py) do not prove that no byte outside a buffer was read
or written. This builds shim/legacy/_render.c with ``-fsanitize=address,undefined`` into a
copy of the package and runs the same properties there, with Python's allocator replaced by
malloc so ASan sees every object; any report aborts the run and fails this test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PROPERTIES = "tests/unit/test_render_properties.py"
# What the properties import from the tests themselves.
SUPPORT = ("tests/__init__.py", "tests/unit/__init__.py", "tests/unit/strategies.py")


def _runtime(name: str) -> str:
    found = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert os.path.isabs(found), f"gcc has no {name} (Debian: libasan8, libubsan1)"
    return found


def test_properties_hold_under_asan_and_ubsan(tmp_path: Path) -> None:
    for part in ("shim", "bench"):
        shutil.copytree(
            REPO / part, tmp_path / part, ignore=shutil.ignore_patterns("*.so", "__pycache__")
        )
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    for name in (PROPERTIES, *SUPPORT):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    source = tmp_path / "shim" / "legacy" / "_render.c"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
            f"-I{sysconfig.get_paths()['include']}",
            str(source),
            "-o",
            str(source.with_name(f"_render{suffix}")),
        ],
        check=True,
        capture_output=True,
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "PYTHONMALLOC": "malloc",
        "SHIM_RENDER_SANITIZERS": "1",
        "LD_PRELOAD": f"{_runtime('libasan.so')}:{_runtime('libubsan.so')}",
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }

    def python(*args: str, **options: Any) -> subprocess.CompletedProcess[str]:
        """Python in the copy, under the sanitizers."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            **options,
        )

    probe = python("-c", "import shim.legacy._render as r; print(r.__file__)", check=True)
    assert probe.stdout.strip().startswith(str(tmp_path)), probe.stdout
    # -s: a sanitizer report goes to stderr just before the abort, which pytest's own
    # capture would lose.
    run = python("-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", PROPERTIES, timeout=600)
    found = [run.stderr.find(mark) for mark in ("AddressSanitizer", "runtime error")]
    start = min((at for at in found if at >= 0), default=max(0, len(run.stderr) - 4000))
    report = run.stdout[-2000:] + run.stderr[start : start + 4000]
    assert run.returncode == 0, report
    assert max(found) < 0, report
    assert " passed" in run.stdout
