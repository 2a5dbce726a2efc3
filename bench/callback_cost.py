#!/usr/bin/env python3
"""Controller cost of the prestage strategy + state callback at fleet size, with no subcloud work.

N hosts (default 5,000, local, never contacted) each run a trivial two-task play (a debug task in
the precheck phase and an action that reports completion), once with
`strategy: distcloud.prestage.prestage` and the prestage_state callback recording every step to
strategy.json (each step's transitions with their times included) - with its progress lines and
end summary, and without them (DCPRESTAGE_PROGRESS=false) - and once with the built-in
`host_pinned` strategy and no callback, same forks. Reports wall and CPU seconds of each, the
difference per host, and how many lines each printed.

The prestage strategy is made from what the system controller says about itself: here the facts
of tests/conftest.py (a 25.09 system controller), given to prestage_strategy as an extra var.

Usage: .venv/bin/python bench/callback_cost.py [--hosts 5000] [--window 250]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import sc_facts  # noqa: E402 - the work tree is on sys.path above

PREPARE = """
- hosts: all:!system_controller
  gather_facts: false
  tasks:
    - distcloud.prestage.prestage_strategy:
        inventory_config: "{{{{ prestage_inventory_config }}}}"
        sc_facts: "{{{{ bench_sc_facts }}}}"
        max_parallel_subclouds: {window}
        hosts: "{{{{ ansible_play_hosts_all }}}}"
      run_once: true
      delegate_to: localhost
"""
PLAY = """
- hosts: all:!system_controller
  gather_facts: false
  strategy: {strategy}
  tasks:
    - name: Precheck
      vars: {{prestage_phase: precheck}}
      ansible.builtin.debug: {{msg: checked}}
    - name: Finalize
      vars: {{prestage_phase: finalize}}
      bench_complete:
"""


def run(args: list[str], env: dict[str, str], output: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with output.open("w") as out:
        subprocess.run(args, env=env, check=True, stdout=out)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(output.read_text().splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5000)
    parser.add_argument("--window", type=int, default=250)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dcp-cbbench-"))
    try:
        lines = ["subclouds:"]
        for i in range(1, options.hosts + 1):
            lines.append(
                f"  - {{id: {i}, name: sc{i}, oam_floating_address: 127.1.{i // 250}.{i % 250 + 1},"
                ' software_version: "24.09", vars: {ansible_connection: local}}'
            )
        (work / "registry.yml").write_text("\n".join(lines) + "\n")
        (work / "subclouds.yml").write_text(
            "plugin: distcloud.prestage.subclouds\nregistry: registry.yml\n"
        )
        (work / "sc-facts.json").write_text(json.dumps({"bench_sc_facts": sc_facts()}))
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".venv" / "collections"),
            "ANSIBLE_ACTION_PLUGINS": str(ROOT / "bench" / "plugins" / "action"),
            "DCPRESTAGE_INVENTORY": str(work / "subclouds.yml"),
            "DCPRESTAGE_STATE_DIR": str(work / "state"),
            "DCPRESTAGE_SYSADMIN_PASSWORD": "bench",
        }
        facts = f"@{work / 'sc-facts.json'}"
        playbook = ["-i", str(work / "subclouds.yml"), "--forks", str(options.window),
                    "-e", "sysadmin_password=bench", "-e", facts]  # fmt: skip
        results = {}
        variants = (
            ("host_pinned (callback idle)", "host_pinned", {}),
            ("prestage strategy + callback, progress", "distcloud.prestage.prestage", {}),
            ("prestage strategy + callback, no progress", "distcloud.prestage.prestage",
             {"DCPRESTAGE_PROGRESS": "false"}),
        )  # fmt: skip
        for number, (name, strategy, extra) in enumerate(variants):
            prepare = "" if strategy == "host_pinned" else PREPARE.format(window=options.window)
            (work / "play.yml").write_text(prepare + PLAY.format(strategy=strategy))
            state = work / f"state{number}"
            results[name] = run(
                [str(BIN / "ansible-playbook"), *playbook, str(work / "play.yml")],
                {**env, "DCPRESTAGE_STATE_DIR": str(state), **extra},
                work / f"output{number}.txt",
            )
            if strategy != "host_pinned":
                steps = json.loads((state / "strategy.json").read_text())["steps"]
                assert all(s["state"] == "complete" for s in steps), "the run did not complete"
                assert all(s["phases"] for s in steps), "the transitions were not recorded"
        print(f"hosts: {options.hosts}, forks/window: {options.window}")
        for name, (wall, cpu, lines) in results.items():
            print(f"  {name:42s} wall {wall:7.1f} s   cpu {cpu:7.1f} s   "
                  f"cpu/host {1000 * cpu / options.hosts:6.1f} ms   {lines} lines")  # fmt: skip
        base_wall, base_cpu, _lines = next(iter(results.values()))
        for name, (wall, cpu, _lines) in list(results.items())[1:]:
            print(f"  ratio ({name} / host_pinned): wall {wall / base_wall:.2f}, "
                  f"cpu {cpu / base_cpu:.2f}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
