"""Inventory of a 5,000-subcloud fleet from dcmanager's API: cold, cached, and the YAML registry.

    .venv/bin/python bench/inventory_source.py --subclouds 5000 --repeat 3

Runs the lab's Keystone + dcmanager server (lab/labctl/data/dcmanager-api) standalone on
loopback with a generated database of N subclouds (labctl.dcmanager.generate), then times
`ansible-inventory --list` of the collection's inventory plugin, side by side in one run:
- dcmanager, cold: no inventory cache (Keystone auth, the subcloud list, N detail calls for the
  OAM addresses, the groups);
- dcmanager, cached: the jsonfile inventory cache filled by a first run, within its timeout;
- the YAML registry of the same N subclouds (bench/control_plane.py's generator), the yardstick;
- `ansible-inventory --version` (interpreter start and imports only).
Reports the median wall time of each and its ratio to the registry's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "lab"))

from labctl import dcmanager  # noqa: E402

from bench.control_plane import write_registry  # noqa: E402 - the work tree is on sys.path

VENV_BIN = Path(sys.executable).parent


def timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    result = subprocess.run(
        args, env=env, cwd=cwd, check=False, capture_output=True, text=True, timeout=900
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return elapsed, (json.loads(result.stdout) if "--list" in args else {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subclouds", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dcp-bench-inv-"))
    try:
        with dcmanager.standalone(work / "api", dcmanager.generate(options.subclouds)) as api:
            settings = (
                f"dcmanager:\n  auth_url: {api.keystone}\n  username: admin\n"
                f"  project_name: admin\n  ca_file: {api.ca}\n"
            )
            base = "plugin: distcloud.prestage.subclouds\n"
            (work / "cold.subclouds.yml").write_text(base + settings)
            (work / "cached.subclouds.yml").write_text(
                base + settings + "cache: true\ncache_plugin: ansible.builtin.jsonfile\n"
                f"cache_connection: {work / 'cache'}\ncache_timeout: 3600\n"
            )
            write_registry(work / "registry.yml", options.subclouds)
            (work / "registry.subclouds.yml").write_text(base + "registry: registry.yml\n")
            env = {
                **os.environ,
                "OS_PASSWORD": api.password,
                "ANSIBLE_HOME": str(work / "ansible-home"),
                "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
            }
            inventory = str(VENV_BIN / "ansible-inventory")
            runs = {
                "ansible-inventory --version (startup only)": [inventory, "--version"],
                "YAML registry": [inventory, "-i", "registry.subclouds.yml", "--list"],
                "dcmanager, cold (no cache)": [inventory, "-i", "cold.subclouds.yml", "--list"],
                "dcmanager, cached": [inventory, "-i", "cached.subclouds.yml", "--list"],
            }
            _, filled = timed(runs["dcmanager, cached"], env, work)  # fills the cache
            hosts = len(filled["_meta"]["hostvars"])
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(options.repeat):
                for name, args in runs.items():  # interleaved: same load for each
                    times[name].append(timed(args, env, work)[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    yardstick = statistics.median(times["YAML registry"])
    print(f"{options.subclouds} subclouds ({hosts} inventory hosts), median of {options.repeat}")
    print("| inventory | median | x registry |\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} s | {median / yardstick:.2f} |")


if __name__ == "__main__":
    main()
