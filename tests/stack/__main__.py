"""``python -m tests.stack install|up|down|status|seed``: the real stack from a shell.

- ``install``  builds (or reuses) PostgreSQL, the pinned virtualenvs and the templates only.
- ``up``       installs if needed, then reuses the running stack or starts one; prints the
               state (JSON) on stdout.
- ``down``     stops the stack named by the state file.
- ``status``   prints the state and exits 1 if the stack is not up and healthy.
- ``seed``     wipes Glance and seeds the standard catalogue into the running stack.

Exit status 1 with the log tail on stderr on any failure.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.stack.install import ensure_installed
from tests.stack.layout import StackPaths
from tests.stack.procs import StackError
from tests.stack.realstack import ensure_up, healthy, load_state, stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack", description=__doc__)
    parser.add_argument("command", choices=["install", "up", "down", "status", "seed"])
    args = parser.parse_args(argv)
    paths = StackPaths.from_env()
    try:
        return _run(args.command, paths)
    except StackError as exc:
        print(f"stack {args.command} failed: {exc}", file=sys.stderr)
        return 1


def _run(command: str, paths: StackPaths) -> int:
    if command == "install":
        print(ensure_installed(paths).describe(), file=sys.stderr)
        return 0
    if command == "up":
        running = ensure_up(paths)
        how = "started" if running.started else "reused"
        times = ", ".join(f"{k} {v:.1f}s" for k, v in running.timings.items())
        print(f"stack {how} ({times}); state in {paths.state_file}", file=sys.stderr)
        print(running.info.to_json())
        return 0
    info = load_state(paths)
    if command == "down":
        if info is None:
            print("no stack state file; nothing to stop", file=sys.stderr)
            return 0
        stop(info)
        print("stack stopped", file=sys.stderr)
        return 0
    if info is None or not healthy(info):
        print("stack is not up", file=sys.stderr)
        return 1
    if command == "status":
        print(info.to_json())
        return 0
    from tests.stack.catalogue import seed_standard_catalogue

    start = time.monotonic()
    catalogue = seed_standard_catalogue(info)
    print(
        f"seeded {len(catalogue.images)} images in {time.monotonic() - start:.1f}s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
