"""``python -m tests.stack.demo [--check]``: the shim in front of a real local Glance.

Brings up (or reuses) the real Keystone and Glance of the test stack, seeds a few sample
images for the user ``alice`` of project ``demo-a``, starts the shim on
``127.0.0.1:$DEMO_PORT`` (default 8774), prints an example request and runs it. With
``--check`` it then stops what it started and exits (0 when the answer was a 200);
otherwise it waits for Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tests.stack.info import StackInfo
from tests.stack.realstack import ensure_up, stop
from tests.stack.seed import GlanceApi, wipe

SAMPLES: tuple[dict[str, object], ...] = (
    {"name": "cirros-0.6.2", "disk_format": "qcow2", "container_format": "bare",
     "visibility": "private", "min_ram": 64, "min_disk": 1, "os_distro": "cirros",
     "os_version": "0.6.2", "hw_disk_bus": "virtio"},
    {"name": "web-server-snapshot", "disk_format": "qcow2", "container_format": "bare",
     "visibility": "private", "min_ram": 512, "min_disk": 10, "image_type": "snapshot",
     "instance_uuid": "8d2e3b9f-4c1a-4f7e-9b6d-2a5c8e1f0b37", "auto_disk_config": "True"},
    {"name": "debian-12", "disk_format": "raw", "container_format": "bare",
     "visibility": "shared", "min_ram": 256, "min_disk": 2, "os_distro": "debian"},
)  # fmt: skip


def seed(stack: StackInfo) -> None:
    wipe(stack)
    api = GlanceApi(stack)
    for fields in SAMPLES:
        image = api.create("alice", **fields)
        api.upload("alice", str(image["id"]), b"demo image bytes " * 64)
    api.create("alice", name="still-uploading", visibility="private")  # stays queued


def start_shim(stack: StackInfo, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHIM_GLANCE_URL": stack.glance_url,
        "SHIM_KEYSTONE_URL": stack.keystone_url,
        "SHIM_LISTEN": f"127.0.0.1:{port}",
        "SHIM_METRICS_LISTEN": f"127.0.0.1:{os.environ.get('DEMO_METRICS_PORT', '9102')}",
        "SHIM_WORKERS": "1",
        "SHIM_LOG_FORMAT": "console",
    }
    process = subprocess.Popen([sys.executable, "-m", "shim"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the shim did not start; see its output above")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stack.demo", description=__doc__)
    parser.add_argument("--check", action="store_true", help="run the request and exit")
    args = parser.parse_args(argv)
    port = int(os.environ.get("DEMO_PORT", "8774"))
    print("bringing up Keystone and Glance (the first run installs them)...", file=sys.stderr)
    running = ensure_up()
    stack = running.info
    seed(stack)
    shim = start_shim(stack, port)
    token = stack.token("alice")
    url = f"http://127.0.0.1:{port}/v2.1/{stack.demo_a}/images/detail"
    print(f"\nThe shim is listening on http://127.0.0.1:{port} in front of {stack.glance_url}.")
    print("Try:\n")
    print(f"  export TOKEN={token}")
    print(f'  curl -s -H "X-Auth-Token: $TOKEN" {url}\n')
    request = urllib.request.Request(url, headers={"X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=30) as response:
        status = response.status
        body = json.loads(response.read())
    print(f"HTTP {status}")
    print(json.dumps(body, indent=2, ensure_ascii=False))
    try:
        if not args.check:
            print("\nCtrl-C stops the shim and the stack.", file=sys.stderr)
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        shim.terminate()
        shim.wait(timeout=30)
        if running.started:
            stop(stack)
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
