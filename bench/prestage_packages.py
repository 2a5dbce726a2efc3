#!/usr/bin/env python3
"""The for-install packages phase in the lab's remote topology against plain rsync.

Time, and which link carries the bytes: the system controller's rsync against plain rsync run
from the system controller.

Usage (root; the lab is shared - hold its lock for the whole run):
    flock /tmp/dcprestage-lab.lock .venv/bin/python bench/prestage_packages.py \
        [--size 200M] [--repeat 3] [--subcloud subcloud1] [--rate 100mbit]

The content is the lab's own: the system controller's release feeds (real ostree archive repos
that `lab/lab up --size` builds; --size brings the lab up at that size first and puts the size it
found back at the end). The subcloud (default subcloud1) must run the system controller's release;
"other" is the SC's other release (24.09 for a 25.09 subcloud). Each --repeat (median reported):

- ours, first copy: playbooks/prestage.yml for the other release into an empty
  /opt/platform-backup/<other>: prestage_install step=prepare on the subcloud, prestage_sync on
  the system controller (its rsync pushes to the subcloud), prestage_install step=finish (the
  checksum verification and the marker) - then the images and finalize phases;
- ours, unchanged re-run: the same playbook again (content, marker and checksum match);
- ours, marker lost: the same without .ostree_rsync_completed (content there, verified again);
- plain rsync, first copy and unchanged re-run: `rsync -rlpt --delete --stats` of the same
  ostree_repo run inside the system controller's namespace, over ssh (sshpass, password in the
  environment) as sysadmin into a scratch directory of the subcloud (no sudo, no verification);
- ours, same release: the playbook for the subcloud's own release into an empty
  /opt/platform-backup/<own> (the repo copied locally from the subcloud's own feed).

Reported per run: "phase" (the prepare, push and finish tasks' durations added, from a stdout
callback this script writes into its scratch directory: the tests' json_document carries no
durations), "rsync" (the push's rsync runs, as prestage_sync reports them), "playbook" (the whole
ansible-playbook), and bytes: what the system controller sent to the subcloud and to the
controller (iptables counters in the SC's namespace, IP bytes, removed at the end), everything
the SC sent (the root side of its veth, Ethernet bytes), the controller's own traffic (the bridge
device: only frames to or from the root namespace, not those it forwards between lab hosts), and
rsync's literal data. Also the SC's feed checksum (sc_release_info, ad hoc on the system
controller with a fresh cache_dir: computed, then from the cache).

Images are pulled once by a warm-up run before the measurements (they stay in the subcloud's
registry), so the measured runs' SC bytes are the packages phase's. The subcloud is reset
(`lab reset`) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "lab"))

from labctl.network import link_bytes  # noqa: E402
from labctl.testing import Lab  # noqa: E402
from labctl.util import parse_size  # noqa: E402

PLAYBOOK = ROOT / "playbooks" / "prestage.yml"
MARKER = ".ostree_rsync_completed"
CONTROLLER = "10.250.0.1"
CHAIN = "DCPBENCH"
PHASE_TASKS = {
    "prepare": "Prepare the prestage directory",
    "push": "Push the release content from the system controller",
    "finish": "Verify the prestaged release and mark it complete",
}
SC_TASK = "Read what the system controller serves for the release"
PLAIN_SCRATCH = "/home/sysadmin/bench-plain"

# A stdout callback: every task result with its start (v2_runner_on_start) and end (the result)
# per host, keyed by the task's own id, printed as one JSON document at the end. Written into the
# scratch directory (ANSIBLE_CALLBACK_PLUGINS); ansible.posix.json files the result of a task
# skipped without a runner start under the task before it.
CALLBACK = """
from __future__ import annotations

import json
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "bench_tasks"

    def __init__(self):
        super().__init__()
        self.started = {}
        self.rows = []

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), str(task._uuid))] = time.time()

    def _record(self, result, status):
        host, task = result.host.get_name(), result.task
        start = self.started.pop((host, str(task._uuid)), None)
        self.rows.append({"host": host, "task": task.get_name().split(" : ", 1)[-1],
                          "status": status, "start": start, "end": time.time(),
                          "result": json.loads(self._dump_results(result.result))})

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps({"tasks": self.rows}))
"""


@dataclass
class Sample:
    wall: float
    phase: float | None = None
    rsync: float | None = None
    sc_to_subcloud: int = 0
    sc_to_controller: int = 0
    sc_sent: int = 0
    controller: int = 0
    literal: int = 0
    sc_seconds: float | None = None
    sc_cached: bool | None = None


class Counters:
    """Bytes on the lab links between two readings: the SC's veth (rx on the root side = what
    the SC sent), the bridge device (the controller's own traffic), and per-destination iptables
    counters in the SC's namespace (a chain of this script's, removed by close())."""

    def __init__(self, lab: Lab, subcloud: str) -> None:
        sc = lab.host_info(lab.sc)
        self.netns = str(sc["netns"])
        self.veth = str(sc["veth"])
        self.bridge = str(lab.info["bridge"]["name"])
        self.destinations = {"to_controller": CONTROLLER, "to_subcloud": lab.address(subcloud)}
        self.close()  # leftovers of an interrupted run
        self._iptables("-N", CHAIN)
        self._iptables("-I", "OUTPUT", "1", "-j", CHAIN)
        for address in self.destinations.values():
            self._iptables("-A", CHAIN, "-d", f"{address}/32")

    def _iptables(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["ip", "netns", "exec", self.netns, "iptables", "-w", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise SystemExit(f"iptables {' '.join(args)} in {self.netns}: {result.stderr.strip()}")
        return result.stdout

    def _per_destination(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for line in self._iptables("-L", CHAIN, "-n", "-v", "-x").splitlines()[2:]:
            fields = line.split()  # pkts bytes [target] prot opt in out source destination
            if len(fields) >= 8:
                found[fields[-1].removesuffix("/32")] = int(fields[1])
        return {name: found.get(address, 0) for name, address in self.destinations.items()}

    def read(self) -> dict[str, int]:
        sc_rx, _ = link_bytes(self.veth)
        bridge_rx, bridge_tx = link_bytes(self.bridge)
        return {"sc_sent": sc_rx, "controller": bridge_rx + bridge_tx, **self._per_destination()}

    def close(self) -> None:
        self._iptables("-D", "OUTPUT", "-j", CHAIN, check=False)
        self._iptables("-F", CHAIN, check=False)
        self._iptables("-X", CHAIN, check=False)


def quiesce() -> None:
    """Every measured run starts alike: nothing left to write back, the page cache empty (the
    feed is read from disk, the previous run's pages gone)."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("1\n")


class Bench:
    def __init__(self, lab: Lab, subcloud: str, work: Path, counters: Counters) -> None:
        self.lab = lab
        self.subcloud = subcloud
        self.work = work
        self.counters = counters
        self.runs = 0
        self.before_run: tuple[Path, dict[str, str]] = (PLAYBOOK, {})
        self.secrets = lab.ansible_secrets(work)  # 0600: the subclouds' passwords
        callbacks = work / "callbacks"
        callbacks.mkdir()
        (callbacks / "bench_tasks.py").write_text(CALLBACK)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE", "DCPRESTAGE"))},
            **lab.ansible_env(work),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_HOME": str(work / "ansible-home"),
            "ANSIBLE_CALLBACK_PLUGINS": str(callbacks),
            "ANSIBLE_STDOUT_CALLBACK": "bench_tasks",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",  # the stdout callback for ad hoc runs too
            "DCPRESTAGE_PROGRESS": "0",  # stdout is the bench callback's JSON alone
        }

    def _ansible(
        self, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> tuple[float, list[dict[str, Any]], dict[str, int]]:
        self.runs += 1
        quiesce()
        before = self.counters.read()
        start = time.perf_counter()
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={
                **self.env,
                "DCPRESTAGE_STATE_DIR": str(self.work / f"state-{self.runs}"),
                **(extra_env or {}),
            },
            cwd=ROOT,
            check=False,
        )
        wall = time.perf_counter() - start
        after = self.counters.read()
        try:
            tasks: list[dict[str, Any]] = json.loads(result.stdout)["tasks"]
        except (ValueError, KeyError):
            tasks = []
        failed = [t for t in tasks if t["status"] in ("failed", "unreachable")]
        failed = [t for t in failed if not t["result"].get("ignore_errors")]
        if result.returncode != 0 or not tasks or failed:
            why = failed[0]["result"].get("msg") if failed else result.stderr[-2000:]
            raise SystemExit(
                f"{' '.join(argv[:2])} ... failed (rc {result.returncode}): {why}\n"
                f"{result.stdout[-2000:]}"
            )
        return wall, tasks, {k: after[k] - before[k] for k in after}

    def before(self, ref: str) -> None:
        """Make ours_before() run the playbook and collection as committed at ref."""
        tree = self.work / "before-tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref],
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        collections = self.work / "before-collections"
        (collections / "ansible_collections" / "distcloud").mkdir(parents=True)
        (collections / "ansible_collections" / "distcloud" / "prestage").symlink_to(tree)
        self.before_run = (tree / "playbooks" / "prestage.yml",
                           {"ANSIBLE_COLLECTIONS_PATH": str(collections)})  # fmt: skip

    def ours_before(self, release: str) -> Sample:
        playbook, env = self.before_run
        return self.ours(release, playbook, env)

    def ours(
        self, release: str, playbook: Path = PLAYBOOK, extra_env: dict[str, str] | None = None
    ) -> Sample:
        variables = self.work / f"vars-{release}.json"
        variables.write_text(json.dumps({"release": release}))
        wall, tasks, moved = self._ansible(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(self.lab.inventory),
             "-i", str(self.secrets), str(playbook), "-l", self.subcloud,
             "-e", f"@{variables}"],
            extra_env,
        )  # fmt: skip
        mine = {t["task"]: t for t in tasks if t["host"] == self.subcloud}
        phase = 0.0
        for name in PHASE_TASKS.values():
            task = mine.get(name)
            if task and task["status"] == "ok" and task["start"] is not None:
                phase += task["end"] - task["start"]
        push = mine.get(PHASE_TASKS["push"])
        pushed = push["result"] if push and push["status"] == "ok" else {}
        passes = pushed.get("passes", [])
        # the transfers' own wall time (side by side since 2026-12-02); before, one after the other
        rsync = pushed.get("seconds", sum(float(p.get("seconds", 0)) for p in passes))
        sc = next(t["result"] for t in tasks if t["task"] == SC_TASK and t["status"] == "ok")
        finalize = next(t for t in tasks if t["task"].startswith("Report the prestage complete"))
        if not finalize["result"].get("prestage_complete"):
            raise SystemExit(f"{self.subcloud} not prestaged: {finalize['result']}")
        return Sample(
            wall=wall,
            phase=phase,
            rsync=float(rsync) if passes else None,
            sc_to_subcloud=moved["to_subcloud"],
            sc_to_controller=moved["to_controller"],
            sc_sent=moved["sc_sent"],
            controller=moved["controller"],
            literal=sum(int(p.get("literal_bytes", 0)) for p in passes),
            sc_seconds=float(sc["seconds"]),
            sc_cached=bool((sc.get("ostree") or {}).get("cached")),
        )

    def sc_checksum(self, release: str, cache_dir: str) -> tuple[float, bool, int, int]:
        """sc_release_info ad hoc on the system controller (become, as the playbook runs it):
        (module seconds, cached, files, bytes)."""
        module_args = json.dumps({"release": release, "cache_dir": cache_dir})
        _, tasks, _ = self._ansible(
            [str(VENV_BIN / "ansible"), "-i", str(self.lab.inventory), self.lab.sc, "-b",
             "-m", "distcloud.prestage.sc_release_info", "-a", module_args]
        )  # fmt: skip
        result = tasks[0]["result"]
        ostree = result["ostree"]
        return float(result["seconds"]), bool(ostree["cached"]), ostree["files"], ostree["bytes"]

    def plain(self, source: str) -> Sample:
        """rsync run as root inside the system controller's namespaces, pushing as sysadmin (the
        password in sshpass's environment, not on a command line)."""
        ssh = (
            "sshpass -e ssh -F /dev/null -o StrictHostKeyChecking=no"
            " -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
            " -o ControlMaster=no -o ControlPath=none"
            " -o PubkeyAuthentication=no -o PreferredAuthentications=password -l sysadmin"
        )
        script = shlex.join(["rsync", "-rlpt", "--delete", "--stats", "-e", ssh, f"{source}/",
                             f"{self.lab.address(self.subcloud)}:{PLAIN_SCRATCH}/"])  # fmt: skip
        pid = str(self.lab.host_info(self.lab.sc)["init_pid"])
        quiesce()
        before = self.counters.read()
        start = time.perf_counter()
        result = subprocess.run(
            ["nsenter", "-t", pid, "-m", "-u", "-n", "--", "sh", "-c", script],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "SSHPASS": self.lab.password},
            check=False,
        )
        wall = time.perf_counter() - start
        after = self.counters.read()
        if result.returncode != 0:
            raise SystemExit(f"plain rsync failed ({result.returncode}): {result.stderr[-2000:]}")
        stats = {}
        for line in result.stdout.splitlines():
            key, _, value = line.partition(":")
            stats[key.strip()] = value.strip()
        literal = int(stats.get("Literal data", "0").split()[0].replace(",", ""))
        moved = {k: after[k] - before[k] for k in after}
        return Sample(
            wall=wall,
            phase=wall,
            rsync=wall,
            sc_to_subcloud=moved["to_subcloud"],
            sc_to_controller=moved["to_controller"],
            sc_sent=moved["sc_sent"],
            controller=moved["controller"],
            literal=literal,
        )


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt_seconds(value: float | None, width: int) -> str:
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def main() -> None:  # noqa: PLR0912, PLR0915 - a bench's main is its whole run, read top to bottom
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", help="bring the lab up with feeds of this size, e.g. 200M")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--subcloud", default="subcloud1")
    parser.add_argument("--rate", help="shape the subcloud's link (lab slow-link), e.g. 100mbit")
    parser.add_argument("--before", metavar="REF", help="also run ours as committed at REF")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (the lab)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the clean-up below still runs

    lab = Lab()
    was_up = lab.is_up()
    found_count = len(lab.subclouds) if was_up else 0
    found_size = int(lab.info["system_controller"]["size_bytes"]) if was_up else None
    count = max(found_count, int(args.subcloud.removeprefix("subcloud")))
    resized = args.size is not None and (not was_up or found_size != parse_size(args.size))
    if resized or count != found_count:
        lab.up(count, args.size)
    work = Path(tempfile.mkdtemp(prefix="dcprestage-bench-"))
    counters: Counters | None = None
    try:
        own = str(lab.registry_entry(args.subcloud)["software_version"])
        sc_release = str(lab.host_info(lab.sc)["content"]["release"])
        if own != sc_release:
            raise SystemExit(f"{args.subcloud} runs {own}: pick one that runs {sc_release}")
        other = next(v for v in lab.host_info(lab.sc)["content"]["feeds"] if v != own)
        feed = f"/var/www/pages/feed/rel-{other}/ostree_repo"
        counters = Counters(lab, args.subcloud)
        bench = Bench(lab, args.subcloud, work, counters)
        lab.reset(args.subcloud)
        if args.rate:
            lab.fault("slow-link", args.subcloud, args.rate)

        def sub(script: str) -> None:
            lab.inside(args.subcloud, script)

        # the SC's checksum of the other release's feed: computed (fresh cache), then cached
        computed, cached = [], []
        files = size = 0
        for i in range(args.repeat):
            cache = f"/tmp/dcprestage-bench-cache-{i}"
            lab.inside(lab.sc, f"rm -rf {cache}")
            seconds, hit, files, size = bench.sc_checksum(other, cache)
            computed.append(seconds)
            seconds, hit_again, _, _ = bench.sc_checksum(other, cache)
            cached.append(seconds)
            if hit or not hit_again:
                raise SystemExit(f"sc_release_info cache: fresh {hit}, again {hit_again}")
            lab.inside(lab.sc, f"rm -rf {cache}")

        bench.ours(other)  # warm-up: images into the subcloud's registry, the SC's cache
        bench.ours(own)
        names: tuple[str, ...] = ("ours, first copy", "ours, unchanged re-run", "ours, marker lost",
                 "plain rsync, first copy", "plain rsync, unchanged re-run",
                 "ours, same release (local)")  # fmt: skip
        before_names = (f"as of {args.before}, first copy", f"as of {args.before}, re-run")
        if args.before:
            bench.before(args.before)
            names += before_names
        rows: dict[str, list[Sample]] = {name: [] for name in names}
        for _ in range(args.repeat):  # interleaved: each repeat runs every variant once
            sub(f"rm -rf /opt/platform-backup/{other}")
            rows[names[0]].append(bench.ours(other))
            rows[names[1]].append(bench.ours(other))
            sub(f"rm -f /opt/platform-backup/{other}/{MARKER}")
            rows[names[2]].append(bench.ours(other))
            sub(f"rm -rf {PLAIN_SCRATCH}")
            rows[names[3]].append(bench.plain(feed))
            rows[names[4]].append(bench.plain(feed))
            if args.before:
                sub(f"rm -rf /opt/platform-backup/{other}")
                rows[before_names[0]].append(bench.ours_before(other))
                rows[before_names[1]].append(bench.ours_before(other))
            sub(f"rm -rf {PLAIN_SCRATCH} /opt/platform-backup/{own}")
            rows[names[5]].append(bench.ours(own))

        print(
            f"lab feeds {lab.info['system_controller']['size_bytes'] / (1 << 20):.0f} MiB; "
            f"rel-{other}/ostree_repo: {files} files, {size / 1e6:.1f} MB; "
            f"{args.subcloud} runs {own}; link: {args.rate or 'unshaped veth'}; "
            f"median of {args.repeat}"
        )
        print(
            f"SC checksum of rel-{other} (sc_release_info seconds): computed + fsck "
            f"{median(computed):.3f} s, cached {median(cached):.3f} s; in the measured "
            f"playbooks {median([s.sc_seconds for r in rows.values() for s in r]):.3f} s"
        )
        print(
            f"{'run':<30} {'phase s':>8} {'rsync s':>8} {'playbook s':>10} {'SC->sub B':>12} "
            f"{'SC->ctl B':>10} {'SC sent B':>12} {'ctl B':>10} {'literal B':>12}"
        )
        for name, samples in rows.items():
            playbook = median([s.wall for s in samples]) if not name.startswith("plain") else None

            def mid(key: str, samples: list[Sample] = samples) -> int:
                return int(median([getattr(s, key) for s in samples]) or 0)

            print(
                f"{name:<30} {fmt_seconds(median([s.phase for s in samples]), 8)} "
                f"{fmt_seconds(median([s.rsync for s in samples]), 8)} "
                f"{fmt_seconds(playbook, 10)} {mid('sc_to_subcloud'):>12,} "
                f"{mid('sc_to_controller'):>10,} {mid('sc_sent'):>12,} {mid('controller'):>10,} "
                f"{mid('literal'):>12,}"
            )
    finally:
        if counters is not None:
            counters.close()
        if lab.is_up() and args.subcloud in lab.subclouds:
            lab.reset(args.subcloud)  # content, images and the slow link gone
        if not was_up:
            lab.down()
        elif resized or count != found_count:
            lab.up(found_count, str(found_size))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
