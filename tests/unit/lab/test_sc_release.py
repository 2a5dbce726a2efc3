"""The system controller's release as a lab setting (lab/lab up --sc-release): what the lab reads
it from, the subclouds' releases that follow it in the registry, the system controller's feed
mounts, and the pass-through of labctl.testing.Lab.up. No root, no lab."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from labctl import cli, content, faults, regfile, stxcontent, testing
from labctl.paths import SC_NAME, Paths
from labctl.util import LabError


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "run")


def stamp(paths: Paths, release: str | None, size: int = 2 << 20, fmt: Any = None) -> None:
    """The SC's content stamp as ensure_sc_content leaves it."""
    facts = {"release": release} if release else {}
    data = {"format": content.CONTENT_FORMAT if fmt is None else fmt, "size": size, "facts": facts}
    path = paths.sc.root / "content.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def releases(paths: Paths) -> dict[str, str]:
    return {name: str(e["software_version"]) for name, e in regfile.entries(paths).items()}


# --------------------------------------------------------------------------- the setting


def test_the_setting_is_the_option_else_what_the_lab_was_built_with_else_25_09(paths):
    assert content.built_sc_release(paths) is None
    assert content.sc_release(paths) == "25.09"
    assert content.sc_release(paths, "26.10") == "26.10"
    stamp(paths, "26.10")
    assert content.built_sc_release(paths) == "26.10"
    assert content.sc_release(paths) == "26.10"
    assert content.sc_release(paths, "25.09") == "25.09"
    with pytest.raises(LabError, match=r"not '24\.09'"):
        content.sc_release(paths, "24.09")  # no lab system controller runs it


def test_another_release_makes_the_system_controllers_content_outdated(paths):
    stamp(paths, "25.09", size=1000)
    assert not content.sc_outdated(paths, 1000, "25.09")
    assert content.sc_outdated(paths, 1000, "26.10")
    assert content.sc_outdated(paths, 2000, "25.09")
    stamp(paths, "25.09", size=1000, fmt=-1)
    assert content.sc_outdated(paths, 1000, "25.09")


def test_the_system_controller_host_runs_the_labs_release(paths):
    sc = content.system_controller("26.10")
    assert (sc.name, sc.release, sc.system_mode) == (SC_NAME, "26.10", "duplex")
    stamp(paths, "26.10")
    assert faults.Context(paths, SC_NAME, {}).host.release == "26.10"
    with pytest.raises(LabError):
        content.system_controller("22.12")


@pytest.mark.parametrize(
    ("sc_release", "feeds"), [("25.09", ("24.09", "25.09")), ("26.10", ("25.09", "26.10"))]
)
def test_the_system_controller_mounts_the_feeds_of_its_release(paths, sc_release, feeds):
    """/opt/platform/iso/<v>/ostree_repo bound to each feed it holds (STARLINGX.md §2.0)."""
    content.write_host_content(paths, content.system_controller(sc_release))
    mounts = (paths.sc.ctl / "mounts").read_text().splitlines()
    assert mounts == [
        f"--bind /var/www/pages/feed/rel-{v}/ostree_repo /opt/platform/iso/{v}/ostree_repo"
        for v in feeds
    ]


def test_up_takes_the_option():
    args = cli._parser().parse_args(["up", "6", "--sc-release", "26.10"])
    assert (args.count, args.size, args.sc_release) == (6, None, "26.10")
    assert cli._parser().parse_args(["up", "6"]).sc_release is None


def test_up_refuses_a_release_the_lab_cannot_build(capsys):
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["up", "6", "--sc-release", "26.03"])
    assert "invalid choice: '26.03'" in capsys.readouterr().err


# ------------------------------------------------------------------------- the registry


@pytest.mark.parametrize(("sc_release", "previous"), [("25.09", "24.09"), ("26.10", "25.09")])
def test_every_4th_subcloud_runs_the_release_before_the_system_controllers(sc_release, previous):
    entries = [regfile.default_entry(i, sc_release) for i in range(1, 11)]
    assert [e["software_version"] for e in entries] == [
        previous if i % 4 == 0 else sc_release for i in range(1, 11)
    ]
    assert [e["name"] for e in entries if e["system_mode"] == "duplex"] == [
        "subcloud5",
        "subcloud10",
    ]
    assert regfile.default_entry(4) == regfile.default_entry(4, "25.09")


def test_a_new_system_controller_release_moves_every_lab_subcloud_to_the_rule(paths):
    regfile.sync(paths, 5, "25.09")
    assert releases(paths) == {
        "subcloud1": "25.09", "subcloud2": "25.09", "subcloud3": "25.09",
        "subcloud4": "24.09", "subcloud5": "25.09",
    }  # fmt: skip
    regfile.set_field(paths, "subcloud2", "management", "unmanaged")  # a user's edit
    regfile.set_field(paths, "subcloud3", "software_version", "24.09")
    # the same system controller: the entries stay as they are, new ones follow its rule
    regfile.sync(paths, 6, "25.09")
    assert releases(paths)["subcloud3"] == "24.09"
    assert releases(paths)["subcloud6"] == "25.09"
    # another system controller: every lab subcloud follows the rule again, edits of other
    # fields stay, the file stays loadable with quoted versions
    entries = regfile.sync(paths, 6, "26.10", rerelease=True)
    assert releases(paths) == {
        "subcloud1": "26.10", "subcloud2": "26.10", "subcloud3": "26.10",
        "subcloud4": "25.09", "subcloud5": "26.10", "subcloud6": "26.10",
    }  # fmt: skip
    assert entries["subcloud2"]["management"] == "unmanaged"
    text = paths.registry_file.read_text()
    assert "system controller's" in text.split("\n\n", 1)[0]  # the header says the rule
    assert isinstance(yaml.safe_load(text)["subclouds"][0]["software_version"], str)
    # and back
    regfile.sync(paths, 6, "25.09", rerelease=True)
    assert releases(paths)["subcloud4"] == "24.09"
    assert releases(paths)["subcloud1"] == "25.09"


def test_a_rerelease_that_changes_nothing_leaves_the_file_alone(paths):
    regfile.sync(paths, 3, "26.10")
    before = paths.registry_file.stat().st_mtime_ns, paths.registry_file.stat().st_ino
    regfile.sync(paths, 3, "26.10", rerelease=True)
    after = paths.registry_file.stat().st_mtime_ns, paths.registry_file.stat().st_ino
    assert before == after


# ------------------------------------------------------------------------------- testing


def test_lab_up_passes_the_release_through(monkeypatch, tmp_path):
    calls: list[tuple[str, ...]] = []

    def fake_run(self: testing.Lab, *args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        return subprocess.CompletedProcess(list(args), 0, "", "")

    monkeypatch.setattr(testing.Lab, "run", fake_run)
    lab = testing.Lab(tmp_path)
    lab.up(6)
    lab.up(6, sc_release="26.10")
    lab.up(3, size="4M", sc_release="25.09")
    assert calls == [
        ("up", "6"),
        ("up", "6", "--sc-release", "26.10"),
        ("up", "3", "--size", "4M", "--sc-release", "25.09"),
    ]
    lab_json = tmp_path / "lab.json"
    lab_json.write_text(json.dumps({"system_controller": {"release": "26.10"}}))
    assert lab.sc_release == "26.10"


def test_the_subcloud_releases_of_the_lab_are_the_ones_the_content_knows():
    for sc_release in stxcontent.SC_RELEASES:
        for release in stxcontent.subcloud_releases(sc_release):
            assert release in stxcontent.LAB_RELEASES
            assert release in stxcontent.sc_feeds(sc_release)  # build_subcloud exports it
