#!/usr/bin/env python3
"""Control-plane timings at fleet size: `prestage-strategy create` and `strategy-step list` over a
registry of N subclouds (default 5,000), run as real dcprestage processes.

Usage: .venv/bin/python bench/control_plane.py [--subclouds 5000] [--repeat 5]
Reports the median wall time of each command and, for scale, of `dcprestage --version`
(interpreter + imports only) measured in the same run. The system controller (this host, the
inventory config's default) is not asked: its facts are those a recent run keeps in the state dir
(tests/conftest.py: a 25.09 system controller), written before each create, outside the timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DCPRESTAGE = str(Path(sys.executable).parent / "dcprestage")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import write_sc_facts  # noqa: E402 - the work tree is on sys.path above


def write_registry(path: Path, count: int) -> None:
    groups = ["Default"] + [f"Group_{i}" for i in range(1, 10)]
    lines = ["groups:"]
    for index, name in enumerate(groups, start=1):
        lines.append(
            f"  - {{id: {index}, name: {name}, update_apply_type: parallel, "
            f"max_parallel_subclouds: {min(250, 10 * index)}}}"
        )
    lines.append("subclouds:")
    for i in range(1, count + 1):
        lines += [
            f"  - id: {i}",
            f"    name: subcloud{i}",
            f"    group: {groups[i % len(groups)]}",
            f"    oam_floating_address: 10.{i // 65536}.{(i // 256) % 256}.{i % 256}",
            "    management: managed",
            "    availability: online",
            "    deploy_status: complete",
            '    software_version: "24.09"',
            "    system_mode: simplex",
            "    sync: in-sync",
            "    backup_status: complete",
        ]
    path.write_text("\n".join(lines) + "\n")


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subclouds", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dcp-bench-"))
    try:
        write_registry(work / "registry.yml", options.subclouds)
        (work / "subclouds.yml").write_text(
            "plugin: distcloud.prestage.subclouds\nregistry: registry.yml\n"
        )
        env = {
            **os.environ,
            "DCPRESTAGE_INVENTORY": str(work / "subclouds.yml"),
            "DCPRESTAGE_STATE_DIR": str(work / "state"),
            "DCPRESTAGE_SYSADMIN_PASSWORD": "bench",
        }
        samples: dict[str, list[float]] = {"version": [], "create": [], "list": [], "json": []}
        for _ in range(options.repeat):
            samples["version"].append(timed([DCPRESTAGE, "--version"], env))
            write_sc_facts(work / "state", host="localhost")
            samples["create"].append(timed([DCPRESTAGE, "prestage-strategy", "create"], env))
            samples["list"].append(timed([DCPRESTAGE, "strategy-step", "list"], env))
            samples["json"].append(timed([DCPRESTAGE, "strategy-step", "list", "-f", "json"], env))
            subprocess.run(
                [DCPRESTAGE, "prestage-strategy", "delete"], env=env, check=True,
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        print(f"subclouds: {options.subclouds}, repeats: {options.repeat} (median wall seconds)")
        for name, label in (
            ("version", "dcprestage --version (startup only)"),
            ("create", "prestage-strategy create"),
            ("list", "strategy-step list (table)"),
            ("json", "strategy-step list -f json"),
        ):
            median = statistics.median(samples[name])
            ratio = median / statistics.median(samples["version"])
            print(f"  {label:40s} {median:6.3f} s  ({ratio:4.1f}x startup)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
