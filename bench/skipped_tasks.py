#!/usr/bin/env python3
"""What a task that its `when` skips costs the controller, against the same tasks passed over by a
`meta: end_role` (what roles/prestage_common does for the tasks only some runs need).

Three playbooks on N hosts with the local connection and the free strategy, each one task that
runs, then:

  none        nothing more
  when-false  a block of K tasks whose `when` is false (each is still handed to a forked worker,
              which evaluates the condition and reports the skip)
  end-role    the same K tasks in a role imported from a task file whose first task is
              `meta: end_role` (Ansible's main process passes over them)

run interleaved --repeat times; reported: the median wall time and CPU of the ansible-playbook
process tree, and the extra CPU per host and per task against `none`. No lab, no root.

Usage:
    .venv/bin/python bench/skipped_tasks.py [--hosts 60] [--tasks 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
HEAD = """- name: Skipped tasks
  hosts: all
  gather_facts: false
  strategy: free
  tasks:
    - name: One task that runs
      ansible.builtin.command: "true"
      changed_when: false
"""
COMMAND = """{indent}- name: Task {i}
{indent}  ansible.builtin.command: "true"
{indent}  changed_when: false
"""


def playbooks(work: Path, tasks: int) -> dict[str, Path]:
    block = "".join(COMMAND.format(indent=" " * 8, i=i) for i in range(tasks))
    role_tasks = work / "roles" / "guarded" / "tasks"
    role_tasks.mkdir(parents=True)
    (role_tasks / "main.yml").write_text(
        "---\n- name: Pass over what this run does not need\n  ansible.builtin.meta: end_role\n"
        "  when: true\n" + "".join(COMMAND.format(indent="", i=i) for i in range(tasks))
    )
    texts = {
        "none": HEAD,
        "when-false": HEAD + "    - name: Not this time\n      when: false\n      block:\n" + block,
        "end-role": HEAD + "    - name: Not this time\n      ansible.builtin.import_role:\n"
        "        name: guarded\n",
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = work / f"{name}.yml"
        paths[name].write_text(text)
    return paths


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dcp-skipbench-"))
    try:
        inventory = work / "hosts"
        inventory.write_text(
            "[all]\n"
            + "".join(
                f"h{i} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
                for i in range(options.hosts)
            )
        )
        paths = playbooks(work, options.tasks)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        for _ in range(options.repeat):
            for name, path in paths.items():
                argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", "20", str(path)]
                samples[name].append(timed(argv, work))
        base_cpu = statistics.median(c for _, c in samples["none"])
        print(f"{options.hosts} hosts, {options.tasks} tasks passed over per host, 20 forks, "
              f"median of {options.repeat}")  # fmt: skip
        for name, runs in samples.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            per_host = (cpu - base_cpu) / options.hosts * 1000
            per_task = per_host / options.tasks
            print(f"  {name:11s} wall {wall:6.2f} s  CPU {cpu:6.2f} s  extra CPU "
                  f"{per_host:6.1f} ms/host = {per_task:5.1f} ms/task")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
