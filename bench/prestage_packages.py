#!/usr/bin/env python3
"""The for-install packages phase on one lab subcloud against plain rsync of the same tree over
the same SSH: first copy and unchanged re-run, wall time and bytes moved.

Usage (root; the lab is shared - hold its lock):
    flock /tmp/dcprestage-lab.lock .venv/bin/python bench/prestage_packages.py \
        [--size-mb 200] [--repeat 3] [--subcloud subcloud1] [--rate 100mbit]

It generates a feed of --size-mb MB (files shaped like an ostree archive repo: many small
objects, some large ones) in a temporary directory, points the system controller's feed_dir at
it and measures, each --repeat times (median reported):

- ours, first copy: ansible-playbook running the role's precheck and packages tasks
  (distcloud.prestage.prestage_precheck, distcloud.prestage.prestage_packages) on an empty
  /opt/platform-backup/<v>: rsync through sudo, then the checksum verification on the subcloud
  and the marker. Reported: the packages task's own time, the whole playbook's wall time, and the
  bytes rsync moved (sent + received);
- ours, unchanged re-run: the same playbook again (marker and checksum match: nothing moves);
- ours, re-run without the marker (content there, marker lost): rsync finds nothing to send,
  the content is verified again;
- plain rsync, first copy and unchanged re-run: `rsync -rlpt --delete --stats` of the same tree
  as sysadmin (no sudo, no verification) into a fresh directory of the subcloud, over ssh with the
  same options (sshpass, own connection);
- the system controller checksum of the feed, cold (computed) and from the cache.

Brings the lab up (1 subcloud) when it is down and takes it down again at the end; a running lab
is used and left up. The lab's own feeds are not touched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / ".venv" / "collections"))

from labctl.testing import Lab  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_release import (  # noqa: E402
    release_info,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._transfer import (  # noqa: E402
    parse_stats,
)

RELEASE = "24.09"
PLAYBOOK = """---
- name: Packages phase
  hosts: all
  gather_facts: false
  become: true
  tasks:
    - name: Precheck
      distcloud.prestage.prestage_precheck:
        release: "{{ release }}"
        system_controller: "{{ settings }}"
      register: precheck
    - name: Packages
      distcloud.prestage.prestage_packages:
        release: "{{ release }}"
        precheck: "{{ precheck }}"
      register: packages
"""


def make_feed(root: Path, size_mb: int, seed: int = 2409) -> tuple[int, int]:
    """An ostree-archive-like tree of about size_mb MB under root/ostree_repo."""
    rng = random.Random(seed)
    repo = root / "ostree_repo"
    for name in ("refs/heads", "tmp", "extensions", "state"):
        (repo / name).mkdir(parents=True, exist_ok=True)
    (repo / "config").write_text("[core]\nrepo_version=1\nmode=archive-z2\n")
    budget = size_mb * 1024 * 1024
    files = total = 0
    while total < budget:
        roll = rng.random()
        if roll < 0.95:
            size = rng.randint(200, 16 * 1024)  # dirtree/dirmeta/small file objects
        elif roll < 0.995:
            size = rng.randint(16 * 1024, 1024 * 1024)
        else:
            size = rng.randint(1024 * 1024, 8 * 1024 * 1024)
        size = min(size, budget - total) or 1
        digest = hashlib.sha256(f"{seed}-{files}".encode()).hexdigest()
        path = repo / "objects" / digest[:2] / f"{digest[2:]}.filez"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))  # compressed objects: incompressible
        files += 1
        total += size
    (repo / "refs" / "heads" / "starlingx").write_text(hashlib.sha256(b"bench").hexdigest() + "\n")
    return files, total


class Bench:
    def __init__(self, lab: Lab, subcloud: str, work: Path, feed_dir: Path) -> None:
        self.lab = lab
        self.subcloud = subcloud
        self.work = work
        self.address = lab.address(subcloud)
        config = json.loads(json.dumps(lab.info))
        settings = {
            "release": RELEASE,
            "feed_dir": str(feed_dir),
            "software_dir": config["sc"]["software_dir"],
            "image_list_dir": str(work / "no-image-lists"),
            "docker_min_free_gib": 0,
        }
        self.settings = settings
        self.secrets = lab.ansible_secrets(work)
        self.playbook = work / "packages.yml"
        self.playbook.write_text(PLAYBOOK)
        self.vars = work / "vars.json"
        self.vars.write_text(json.dumps({"release": RELEASE, "settings": settings}))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE", "DCPRESTAGE"))},
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_HOME": str(work / "ansible-home"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "XDG_CACHE_HOME": str(work / "cache"),
        }

    def inside(self, script: str) -> None:
        pid = str(self.lab.info["subclouds"][self.subcloud]["init_pid"])
        subprocess.run(["nsenter", "-t", pid, "-m", "--", "sh", "-c", script], check=True)

    def ours(self) -> dict[str, Any]:
        start = time.perf_counter()
        result = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(self.lab.inventory),
             str(self.playbook), "-l", self.subcloud, "-e", f"@{self.secrets}",
             "-e", f"@{self.vars}"],
            capture_output=True, text=True, env=self.env, cwd=ROOT, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - start
        data = json.loads(result.stdout)
        packages = None
        for task in data["plays"][0]["tasks"]:
            if task["task"]["name"] == "Packages":
                packages = task["hosts"][self.subcloud]
        if result.returncode != 0 or packages is None or packages.get("failed"):
            raise SystemExit(f"the packages phase failed:\n{result.stdout[-3000:]}")
        transfer = packages["prestage_transfer"]
        return {
            "wall": wall,
            "phase": packages["prestage_packages_seconds"],
            "rsync": transfer["seconds"],
            "bytes": transfer["bytes_sent"] + transfer["bytes_received"],
            "content": transfer["literal_bytes"],
        }

    def plain(self, target: str) -> dict[str, Any]:
        ssh = (
            "sshpass -e ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR -o ControlMaster=no -o ControlPath=none -o User=sysadmin"
        )
        start = time.perf_counter()
        result = subprocess.run(
            ["rsync", "-rlpt", "--delete", "--stats", "-e", ssh,
             f"{self.settings['feed_dir']}/rel-{RELEASE}/ostree_repo/",
             f"{self.address}:{target}/"],
            capture_output=True, text=True, env={**os.environ, "SSHPASS": self.lab.password},
            check=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        stats = parse_stats(result.stdout)
        return {
            "wall": wall,
            "phase": wall,
            "rsync": wall,
            "bytes": stats.bytes_sent + stats.bytes_received,
            "content": stats.literal_bytes,
        }


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subcloud", default="subcloud1")
    parser.add_argument("--rate", help="shape the subcloud's link (lab slow-link), e.g. 100mbit")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the lab)")

    lab = Lab()
    was_up = lab.is_up()
    work = Path(tempfile.mkdtemp(prefix="dcprestage-bench-"))
    try:
        if not was_up:
            lab.up(1)
        feed_dir = work / "feed"
        files, size = make_feed(feed_dir / f"rel-{RELEASE}", args.size_mb)
        bench = Bench(lab, args.subcloud, work, feed_dir)
        if args.rate:
            lab.fault("slow-link", args.subcloud, args.rate)

        cold = []
        for _ in range(args.repeat):
            cache = work / "sc-cache"
            shutil.rmtree(cache, ignore_errors=True)
            start = time.perf_counter()
            release_info(bench.settings, RELEASE, False, str(cache))
            cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        warm = release_info(bench.settings, RELEASE, False, str(work / "sc-cache"))
        cached = time.perf_counter() - start
        assert warm["ostree"]["cached"]

        names = ("ours first", "ours unchanged", "ours no marker", "plain first", "plain unchanged")
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for i in range(args.repeat):
            bench.inside(f"rm -rf /opt/platform-backup/{RELEASE}")
            rows["ours first"].append(bench.ours())
            rows["ours unchanged"].append(bench.ours())
            bench.inside(f"rm -f /opt/platform-backup/{RELEASE}/.ostree_rsync_completed")
            rows["ours no marker"].append(bench.ours())
            target = f"/tmp/bench-plain-{i}"
            bench.inside(f"rm -rf {target}")
            rows["plain first"].append(bench.plain(target))
            rows["plain unchanged"].append(bench.plain(target))
            bench.inside(f"rm -rf {target} /opt/platform-backup/{RELEASE}")

        print(f"feed: {files} files, {size / 1e6:.1f} MB; link: {args.rate or 'unshaped veth'}; "
              f"median of {args.repeat}")  # fmt: skip
        print(f"system controller checksum: cold {statistics.median(cold):.2f} s, "
              f"cached {cached:.3f} s")  # fmt: skip
        print(
            f"{'run':<16} {'phase s':>8} {'rsync s':>8} {'playbook s':>11} {'bytes moved':>13} "
            f"{'content B':>12}"
        )
        for name, runs in rows.items():
            playbook = f"{median(runs, 'wall'):>11.2f}" if name.startswith("ours") else f"{'-':>11}"
            print(
                f"{name:<16} {median(runs, 'phase'):>8.2f} {median(runs, 'rsync'):>8.2f} "
                f"{playbook} {int(median(runs, 'bytes')):>13,} {int(median(runs, 'content')):>12,}"
            )
    finally:
        if args.rate:
            lab.fault("slow-link", args.subcloud, undo=True)
        if not was_up:
            lab.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
