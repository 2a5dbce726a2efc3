"""lab up 20 / down: every subcloud answers Ansible with become, each has its own /opt, and down
leaves namespaces, links, routes, mounts and the process table as they were."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labctl.testing import REPO, Lab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

VENV_BIN = REPO / ".venv" / "bin"
SUSPECT_COMMANDS = {"sshd", "ssh", "sshpass", "docker-registry", "sleep", "unshare", "nsenter"}


@dataclass(frozen=True)
class Snapshot:
    netns: str
    links: frozenset[str]
    routes: str
    mounts: frozenset[str]
    processes: frozenset[tuple[int, str]]  # (pid, start time)
    net_namespaces: frozenset[str]


def _out(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def _processes() -> dict[tuple[int, str], dict[str, str]]:
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            netns = os.readlink(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == "2" or entry.name == "2":  # kernel threads
            continue
        procs[(int(entry.name), fields[19])] = {"comm": comm, "cmdline": cmd, "netns": netns}
    return procs


def snapshot() -> Snapshot:
    procs = _processes()
    return Snapshot(
        netns=_out("ip", "netns", "list"),
        links=frozenset(
            line.split(":")[1].strip().split("@")[0]
            for line in _out("ip", "-o", "link", "show").splitlines()
        ),
        routes=_out("ip", "route", "show", "table", "all"),
        mounts=frozenset(line.split()[4] for line in Path("/proc/self/mountinfo").open()),
        processes=frozenset(procs),
        net_namespaces=frozenset(p["netns"] for p in procs.values()),
    )


def lab_leftovers(before: Snapshot, lab: Lab) -> list[str]:
    """Processes that appeared since `before` and belong to the lab by name, by what their
    command line names, or by living in a network namespace that did not exist before."""
    found = []
    for key, proc in _processes().items():
        if key in before.processes or key[0] == os.getpid():
            continue
        if (
            proc["comm"] in SUSPECT_COMMANDS
            or str(lab.paths.root) in proc["cmdline"]
            or "10.250." in proc["cmdline"]
            or proc["netns"] not in before.net_namespaces
        ):
            found.append(f"{key[0]} {proc['comm']}: {proc['cmdline']}")
    return found


@pytest.fixture
def fresh_lab() -> Iterator[Lab]:
    """The lab taken down for this test and restored (same size) afterwards if it was up."""
    the_lab = Lab()
    previous = len(the_lab.subclouds) if the_lab.is_up() else 0
    the_lab.down()
    yield the_lab
    the_lab.down()
    if previous:
        the_lab.up(previous)


def test_up_20_ping_become_own_opt_and_down_leaves_nothing(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    before = snapshot()
    lab.up(20)
    try:
        names = lab.subclouds
        assert names == [f"subcloud{i}" for i in range(1, 21)]

        # Ansible ping with become on all 20 and the system controller: the subclouds'
        # password from a 0600 inventory source, the system controller's from its host_vars.
        secrets = lab.ansible_secrets(tmp_path)
        assert secrets.stat().st_mode & 0o777 == 0o600
        result = subprocess.run(
            [str(VENV_BIN / "ansible"), "-i", str(lab.inventory),
             "-i", str(secrets), "all", "-m", "ping", "-b", "-f", "21", "-o"],
            capture_output=True, text=True, env=lab.ansible_env(tmp_path), timeout=180,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        ok = {line.split()[0] for line in result.stdout.splitlines() if "SUCCESS" in line}
        assert ok == {*names, lab.sc}, result.stdout
        assert lab.password not in result.stdout + result.stderr

        # Each subcloud sees only its own /opt.
        marker = "/opt/platform-backup/lab-marker-subcloud1"
        lab.ssh("subcloud1", f"touch {marker}", become=True, check=True)
        assert lab.ssh("subcloud1", f"test -e {marker}").returncode == 0
        for other in ("subcloud2", "subcloud20"):
            assert lab.ssh(other, f"test ! -e {marker}").returncode == 0
        assert (lab.root("subcloud1") / "opt/platform-backup/lab-marker-subcloud1").exists()
        assert not Path(marker).exists()
        assert lab.ssh("subcloud2", "touch /opt/x", check=False).returncode != 0  # root's /opt
    finally:
        lab.down()

    after = snapshot()
    assert after.netns == before.netns
    assert after.links == before.links
    assert after.routes == before.routes
    assert after.mounts == before.mounts
    assert lab_leftovers(before, lab) == []
    assert not lab.is_up()
    lab.down()  # idempotent
