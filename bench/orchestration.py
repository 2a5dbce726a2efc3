#!/usr/bin/env python3
"""Makespan and controller CPU of the prestage strategy against two built-in ways of bounding
parallelism, on the same lab subclouds of unequal speed, in one run.

  ours         playbooks/prestage.yml: strategy distcloud.prestage.prestage (sliding window of K)
               + the prestage_state callback recording every step
  serial       the same role under the built-in linear strategy with `serial: K` (batches)
  host_pinned  the same role under the built-in host_pinned strategy with K forks, no callback

Each variant prestages for install the same N subclouds from scratch (their
/opt/platform-backup/<release> is removed first; images are already in their registries after a
warm-up run, so every variant does the same work). Some subclouds sit behind a rate-limited link
(tc tbf), which makes them slow. Reported: makespan, controller CPU of the whole
ansible-playbook process tree (subcloud-side work is not counted), and the ideal lower bound
max(longest subcloud, sum of subcloud durations / K) from the durations the strategy recorded.

Usage (root; takes the lab lock, brings the lab up and leaves it as it found it):
  .venv/bin/python bench/orchestration.py [--subclouds 12] [--window 3] [--size 20M]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RELEASE = "24.09"
sys.path.insert(0, str(ROOT / "lab"))

from labctl.testing import Lab  # noqa: E402

BUILTIN = """
- name: Release info, once
  hosts: all
  gather_facts: false
  tasks:
    - distcloud.prestage.sc_release_info:
        release: "{release}"
        for_sw_deploy: false
        system_controller: "{{{{ prestage_system_controller }}}}"
      run_once: true
      delegate_to: localhost
      register: info
- name: Prestage
  hosts: all
  gather_facts: false
  strategy: {strategy}
  {serial}
  roles:
    - role: distcloud.prestage.prestage_install
      prestage_release: "{release}"
      prestage_sc_release_info: "{{{{ info }}}}"
"""


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{result.stdout[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subclouds", type=int, default=12)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--size", default="20M")
    parser.add_argument("--slow-rate", default="16mbit")
    options = parser.parse_args()
    lock = open("/tmp/dcprestage-lab.lock", "w")  # noqa: SIM115 - held for the whole bench
    fcntl.flock(lock, fcntl.LOCK_EX)
    lab = Lab()
    was_up = lab.is_up()
    lab.up(max(options.subclouds, len(lab.subclouds) if was_up else 0), options.size)
    clouds = [f"subcloud{i}" for i in range(1, options.subclouds + 1)]
    slow = clouds[::3]  # every third subcloud behind a slow link
    work = Path(tempfile.mkdtemp(prefix="dcp-orchbench-"))
    secrets = lab.ansible_secrets(work)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE", "DCPRESTAGE"))},
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "DCPRESTAGE_INVENTORY": str(lab.inventory),
    }
    base = [str(BIN / "ansible-playbook"), "-i", str(lab.inventory), "-e", f"@{secrets}",
            "-l", ",".join(clouds)]  # fmt: skip

    def wipe() -> None:
        for cloud in clouds:
            lab.ssh(cloud, f"rm -rf /opt/platform-backup/{RELEASE}", become=True, check=True)

    def ours(state: Path) -> tuple[float, float]:
        return timed([*base, str(ROOT / "playbooks" / "prestage.yml"), "-e", f"release={RELEASE}",
                      "-e", f"max_parallel_subclouds={options.window}",
                      "-e", f"prestage_state_dir={state}"], env)  # fmt: skip

    def builtin(strategy: str, serial: str, forks: int) -> tuple[float, float]:
        play = work / f"{strategy}.yml"
        play.write_text(BUILTIN.format(release=RELEASE, strategy=strategy, serial=serial))
        return timed([*base, "--forks", str(forks), str(play)], env)

    try:
        for cloud in slow:
            lab.fault("slow-link", cloud, options.slow_rate)
        ours(work / "warm-up")  # images land in every subcloud's registry once
        results = {}
        wipe()
        results["ours (window)"] = ours(work / "measured")
        wipe()
        results[f"linear, serial: {options.window}"] = builtin(
            "linear", f"serial: {options.window}", 250
        )
        wipe()
        results[f"host_pinned, {options.window} forks"] = builtin("host_pinned", "", options.window)
    finally:
        for cloud in slow:
            lab.fault("slow-link", cloud, undo=True)
        if not was_up:
            lab.down()
        fcntl.flock(lock, fcntl.LOCK_UN)

    steps = json.loads((work / "measured" / "strategy.json").read_text())["steps"]

    def seconds(step: dict, key: str) -> float:
        return datetime.strptime(step[key], "%Y-%m-%d %H:%M:%S.%f").timestamp()

    durations = [seconds(s, "finished-at") - seconds(s, "started-at") for s in steps]
    bound = max(*durations, sum(durations) / options.window)
    print(f"{options.subclouds} subclouds ({len(slow)} behind {options.slow_rate}), "
          f"window {options.window}, feed {options.size}")  # fmt: skip
    print(f"  ideal lower bound                     {bound:7.1f} s")
    for name, (wall, cpu) in results.items():
        per = cpu / options.subclouds
        print(f"  {name:36s}  {wall:7.1f} s  ({wall / bound:4.2f}x bound)   "
              f"controller CPU {cpu:6.1f} s = {per:5.2f} s/subcloud")  # fmt: skip


if __name__ == "__main__":
    main()
