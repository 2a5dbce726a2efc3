#!/usr/bin/env python3
"""Makespan and controller CPU of the prestage strategy against two built-in ways of bounding
parallelism, on the same lab subclouds of unequal speed, in one run.

  ours         playbooks/prestage.yml: strategy distcloud.prestage.prestage (sliding window of K)
               + the prestage_state callback recording every step
  serial       the same role under the built-in linear strategy with `serial: K` (batches)
  host_pinned  the same role under the built-in host_pinned strategy with K forks

and ours with sshpass answering the SSH password prompts (ansible-core's default, ssh_askpass,
starts Python interpreters), and with --before REF ours as committed at REF (its playbook and
collection).

The lab's remote topology: the system controller is a host of its own, its work is delegated to
it (sc_release_info once per run; each subcloud's push runs there). Each variant prestages for
install the same N subclouds (release 24.09 by default: the 25.09 subclouds get the release
content pushed from the system controller, every 4th lab subcloud runs 24.09 and copies its own
feed) from subclouds as `lab up` makes them (`lab reset` before each variant: content and images
gone, so every variant does the same work, images included). Every third subcloud sits behind a
rate-limited link (lab slow-link, tc tbf), which makes it slow. The system controller's checksum
of the feed is computed once before the variants (ad hoc), so each finds it in its cache.
Reported: makespan (the whole ansible-playbook), controller CPU of the whole ansible-playbook
process tree (system controller and subcloud work not counted), and the ideal lower bound
max(longest subcloud, sum of subcloud durations / K) from the durations our run recorded; for
each run of ours, from the steps' recorded times, the slot-seconds left idle while steps waited
and the refill latencies (a step ends -> the next one's precheck starts).

Usage (root; hold the lab lock for the whole run; the lab is brought up with N subclouds at
--size and left as it was found):
  flock /tmp/dcprestage-lab.lock .venv/bin/python bench/orchestration.py \
      [--subclouds 12] [--window 3] [--size 20M] [--slow-rate 16mbit] [--release 24.09] \
      [--before REF] [--no-sshpass] [--controller-nice N]
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
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "playbooks" / "prestage.yml"
# ansible-core's other password mechanism (its default, ssh_askpass, starts Python interpreters)
SSHPASS = "sshpass"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "lab"))

from labctl.testing import Lab  # noqa: E402
from labctl.util import parse_size  # noqa: E402

# The role on its own, as a user's playbook runs it, with the system controller's facts read
# once (delegated to it, as root there: its become password is in its host_vars).
BUILTIN = """
- name: Release info, once
  hosts: all:!system_controller
  gather_facts: false
  tasks:
    - name: Read what the system controller serves for the release
      distcloud.prestage.sc_release_info:
        release: "{release}"
        for_sw_deploy: false
      run_once: true
      delegate_to: "{{{{ prestage_system_controller_host }}}}"
      become: true
      register: info
- name: Prestage
  hosts: all:!system_controller
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


def main() -> None:  # noqa: PLR0915 - a bench's main is its whole run, read top to bottom
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subclouds", type=int, default=12)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--size", default="20M", help="the lab's feed size (lab up --size)")
    parser.add_argument("--slow-rate", default="16mbit")
    parser.add_argument("--release", default="24.09")
    parser.add_argument("--before", metavar="REF", help="also run ours as committed at REF")
    parser.add_argument("--no-sshpass", action="store_true", help="leave out ours, sshpass")
    parser.add_argument(
        "--controller-nice",
        type=int,
        default=0,
        metavar="N",
        help="run every variant's ansible-playbook at this niceness (e.g. -10: the controller "
        "gets the CPU before the lab's system controller and subclouds, which share it here "
        "but not in production)",
    )
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the lab)")
    lab = Lab()
    was_up = lab.is_up()
    found_count = len(lab.subclouds) if was_up else 0
    found_size = int(lab.info["system_controller"]["size_bytes"]) if was_up else None
    changed = (
        not was_up or found_size != parse_size(options.size) or found_count < options.subclouds
    )
    if changed:
        lab.up(max(options.subclouds, found_count), options.size)
    clouds = [f"subcloud{i}" for i in range(1, options.subclouds + 1)]
    slow = clouds[::3]  # every third subcloud behind a slow link
    local = lab.subclouds_where(software_version=options.release)
    work = Path(tempfile.mkdtemp(prefix="dcp-orchbench-"))
    secrets = lab.ansible_secrets(work)  # 0600: the subclouds' passwords
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE", "DCPRESTAGE"))},
        **lab.ansible_env(work),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_HOME": str(work / "ansible-home"),
    }
    inventories = ["-i", str(lab.inventory), "-i", str(secrets)]
    niced = ["nice", "-n", str(options.controller_nice)] if options.controller_nice else []
    base = [*niced, str(BIN / "ansible-playbook"), *inventories, "-l", ",".join(clouds)]

    def fresh() -> None:
        """The subclouds as `lab up` makes them, the slow ones behind their slow link."""
        lab.reset(*clouds)
        for cloud in slow:
            lab.fault("slow-link", cloud, options.slow_rate)

    def ours(
        state: Path, playbook: Path = PLAYBOOK, nice: bool = True, **extra_env: str
    ) -> tuple[float, float]:
        variables = work / "ours.json"
        variables.write_text(json.dumps({"release": options.release,
                                         "max_parallel_subclouds": options.window}))  # fmt: skip
        command = base if nice else base[len(niced) :]
        return timed([*command, str(playbook), "-e", f"@{variables}"],
                     {**env, "DCPRESTAGE_STATE_DIR": str(state), **extra_env})  # fmt: skip

    def ours_as_of(ref: str) -> tuple[float, float]:
        """Ours as committed at ref: its playbook and collection (git archive of ref)."""
        tree = work / "before-tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref],
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        collections = work / "before-collections" / "ansible_collections" / "distcloud"
        collections.mkdir(parents=True)
        (collections / "prestage").symlink_to(tree)
        return ours(work / "before", tree / "playbooks" / "prestage.yml",
                    ANSIBLE_COLLECTIONS_PATH=str(work / "before-collections"))  # fmt: skip

    def builtin(strategy: str, serial: str, forks: int) -> tuple[float, float]:
        play = work / f"{strategy}.yml"
        play.write_text(BUILTIN.format(release=options.release, strategy=strategy, serial=serial))
        return timed([*base, "--forks", str(forks), str(play)], env)

    results: dict[str, tuple[float, float]] = {}
    try:
        # the SC's checksum of the feed, computed once: every variant finds it in the cache
        subprocess.run(
            [str(BIN / "ansible"), *inventories, lab.sc, "-b", "-m",
             "distcloud.prestage.sc_release_info", "-a", f"release={options.release}"],
            env=env, cwd=ROOT, capture_output=True, check=True,
        )  # fmt: skip
        fresh()
        results["ours (window)"] = ours(work / "measured")
        if not options.no_sshpass:  # what it would save (not used: ansible/ansible#86961)
            fresh()
            results["ours, sshpass"] = ours(
                work / "sshpass", ANSIBLE_SSH_PASSWORD_MECHANISM=SSHPASS
            )
        if options.controller_nice:  # the same, the controller sharing the CPU evenly
            fresh()
            results["ours, controller not niced"] = ours(work / "not-niced", nice=False)
        if options.before:
            fresh()
            results[f"ours as of {options.before}"] = ours_as_of(options.before)
        fresh()
        results[f"linear, serial: {options.window}"] = builtin(
            "linear", f"serial: {options.window}", 250
        )
        fresh()
        results[f"host_pinned, {options.window} forks"] = builtin("host_pinned", "", options.window)
        steps = json.loads((work / "measured" / "strategy.json").read_text())["steps"]
        windows = {
            name: window_figures(json.loads((work / d / "strategy.json").read_text())["steps"],
                                 options.window)
            for name, d in (("ours (window)", "measured"), ("ours, sshpass", "sshpass"),
                            ("ours, controller not niced", "not-niced"),
                            (f"ours as of {options.before}", "before"))
            if (work / d / "strategy.json").exists()
        }  # fmt: skip
    finally:
        if lab.is_up():
            lab.reset(*[c for c in clouds if c in lab.subclouds])  # slow links gone too
        if not was_up:
            lab.down()
        elif changed:
            lab.up(found_count, str(found_size))
        shutil.rmtree(work, ignore_errors=True)

    durations = {s["cloud"]: seconds(s, "finished-at") - seconds(s, "started-at") for s in steps}
    bound = max(*durations.values(), sum(durations.values()) / options.window)
    print(f"{options.subclouds} subclouds for install of {options.release} "
          f"(local copy on {', '.join(c for c in clouds if c in local) or 'none'}), "
          f"{len(slow)} behind {options.slow_rate} ({', '.join(slow)}), window "
          f"{options.window}, feeds {options.size}, controller nice "
          f"{options.controller_nice}")  # fmt: skip
    print("  subcloud durations (ours): " + ", ".join(
        f"{c.removeprefix('subcloud')}:{d:.1f}" for c, d in sorted(
            durations.items(), key=lambda i: int(i[0].removeprefix("subcloud")))))  # fmt: skip
    print(f"  ideal lower bound                     {bound:7.1f} s")
    for name, (wall, cpu) in results.items():
        per = cpu / options.subclouds
        print(f"  {name:36s}  {wall:7.1f} s  ({wall / bound:4.2f}x bound)   "
              f"controller CPU {cpu:6.1f} s = {per:5.2f} s/subcloud")  # fmt: skip
    for name, (span, idle_time, idle_slots, refills) in windows.items():
        median, p90 = percentile(refills, 50), percentile(refills, 90)
        print(f"  {name}: first start to last end {span:.1f} s; while steps waited, a slot idle "
              f"{idle_time:.1f} s ({idle_time / span:.0%} of the span), {idle_slots:.1f} "
              f"slot-seconds idle; refill median {median:.2f} s, p90 {p90:.2f} s, "
              f"max {max(refills, default=0):.2f} s")  # fmt: skip


def seconds(step: dict[str, Any], key: str) -> float:
    return datetime.strptime(step[key], "%Y-%m-%d %H:%M:%S.%f").timestamp()


def window_figures(
    steps: list[dict[str, Any]], window: int
) -> tuple[float, float, float, list[float]]:
    """A one-stage run's window use, from its recorded step times: the span from the first start
    to the last end; while a step still waited (from the first start to the last start), the
    seconds with at least one slot free and the slot-seconds free; and each refill, the k-th
    start after the first window's from the k-th end (a slot freed, the next step started)."""
    starts = sorted(seconds(s, "started-at") for s in steps)
    ends = sorted(seconds(s, "finished-at") for s in steps)
    events = sorted([(t, 1) for t in starts] + [(t, -1) for t in ends])
    idle_time, idle_slots, running, last = 0.0, 0.0, 0, starts[0]
    for when, change in events:
        if when > starts[-1]:
            break
        if running < window:
            idle_time += when - last
            idle_slots += (window - running) * (when - last)
        running, last = running + change, when
    refills = [start - end for start, end in zip(starts[window:], ends, strict=False)]
    return ends[-1] - starts[0], idle_time, idle_slots, refills


def percentile(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
