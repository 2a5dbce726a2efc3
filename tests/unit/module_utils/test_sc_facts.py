"""What the system controller serves (plugins/module_utils/_sc_facts.py): the upgrades metadata
(DC:dcmanager/common/utils.py:2285-2313; PB:roles/common/minimum-upgradable-release), the USM
releases of `software list`, the image list (DC:dcmanager/common/prestage.py:459-467,
utils.py:402-410), the feed's checksum and its cache, the central commit list
(PR:sync-software-metadata/tasks/sync_patches_to_usm_subcloud.yml:129-177) and the other
system controller facts of sync-software-metadata (PR:sync-software-metadata/tasks/main.yml).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils import _sc_facts as scf
from ansible_collections.distcloud.prestage.plugins.module_utils import _stx as stx
from ansible_collections.distcloud.prestage.plugins.module_utils import _sw_deploy as swd

UNVALIDATED = "Error: unable to validate the release version."


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def metadata_xml(release_id: str, commit: str | None = None) -> str:
    """A USM metadata file (STARLINGX.md §7); commit1 only when commit is given."""
    ostree = ""
    if commit is not None:
        ostree = (
            f"<contents><ostree><number_of_commits>1</number_of_commits><base><commit>B"
            f"</commit></base><commit1><commit>{commit}</commit></commit1></ostree>"
            "</contents>"
        )
    version = release_id.split("-")[1]
    return (
        f"<patch><id>{release_id}</id><sw_version>{version}</sw_version>"
        f"<reboot_required>N</reboot_required>{ostree}</patch>\n"
    )


# ------------------------------------------------------------------------ upgrades metadata


def test_upgrades_metadata_version_and_supported_upgrades_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metadata.xml",
        """<build><version>26.10</version>
<supported_upgrades>
  <upgrade><version> 26.03 </version></upgrade>
  <upgrade><version>25.09</version></upgrade>
</supported_upgrades></build>""",
    )
    assert scf.upgrades_metadata(str(path)) == ("26.10", ["26.03", "25.09"])


@pytest.mark.parametrize(
    "text",
    [
        None,
        "<build><version>25.09</version>",
        "<build><version>25.09</version></build>",
        "<build><version>25.09</version><supported_upgrades/></build>",
        "<build><supported_upgrades><upgrade/></supported_upgrades></build>",
    ],
)
def test_upgrades_metadata_that_dcmanager_cannot_use(tmp_path: Path, text: str | None) -> None:
    """A missing or unparsable file, no supported_upgrades, an empty one (utils.py:2285-2313,
    InternalError) or an upgrade without version (AttributeError) all end in get_sw_version's
    500 (utils.py:2176-2177)."""
    path = tmp_path / "metadata.xml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(scf.FactsError, match=f"^{UNVALIDATED}$"):
        scf.upgrades_metadata(str(path))


# ----------------------------------------------------------------------------- USM lists

SOFTWARE_LIST = """+-------------------+-------+-------------+
| Release           | RR    |    State    |
+-------------------+-------+-------------+
| starlingx-24.09.0 | True  | unavailable |
| starlingx-24.09.1 | False | unavailable |
| starlingx-25.09.0 | True  |  deployed   |
| starlingx-25.09.1 | False |  deployed   |
| starlingx-25.09.2 | False |  available  |
+-------------------+-------+-------------+
"""


def test_software_releases_parse_the_software_list_table() -> None:
    """software-client release_shell.py do_list (tabulate 'pretty': Release | RR | State)."""
    releases = scf.software_releases(SOFTWARE_LIST)
    assert [
        (r["release_id"], r["reboot_required"], r["state"], r["sw_version"]) for r in releases
    ] == [
        ("starlingx-24.09.0", "True", "unavailable", "24.09.0"),
        ("starlingx-24.09.1", "False", "unavailable", "24.09.1"),
        ("starlingx-25.09.0", "True", "deployed", "25.09.0"),
        ("starlingx-25.09.1", "False", "deployed", "25.09.1"),
        ("starlingx-25.09.2", "False", "available", "25.09.2"),
    ]
    assert scf.software_releases("No data\n") == []
    assert [r["release_id"] for r in scf.releases_of_major(releases, "24.09")] == [
        "starlingx-24.09.0",
        "starlingx-24.09.1",
    ]


def test_deployment_in_progress_from_software_deploy_show() -> None:
    show = """+--------------+------------+------+-------------+
| From Release | To Release | RR   |    State    |
+--------------+------------+------+-------------+
| 25.09.0      | 25.09.1    | True | deploy-host |
+--------------+------------+------+-------------+
"""
    assert scf.deployment_in_progress(show) == (
        "software deploy from 25.09.0 to 25.09.1 is in state deploy-host"
    )
    assert scf.deployment_in_progress("No deploy in progress\n") is None


# ------------------------------------------------------------------------------ image list


@pytest.fixture
def deploy_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(stx, "DEPLOY_DIR", str(tmp_path / "deploy"))
    return tmp_path / "deploy" / "25.09"


def test_image_list_is_the_first_prestage_images_file(deploy_dir: Path) -> None:
    """prestage.py:459-467 takes the first name starting prestage_images (os.listdir's order;
    here the lowest name, deterministically) and the playbook parses it."""
    write(deploy_dir / "prestage_images_b.lst", "docker.io/b:1\n")
    write(deploy_dir / "prestage_images_a.lst", "# list\ndocker.io/a:1,ignored\n\nquay.io/c:2\n")
    write(deploy_dir / "images.lst", "docker.io/z:1\n")
    found = scf.image_list("25.09")
    assert found == {
        "path": str(deploy_dir / "prestage_images_a.lst"),
        "images": ["docker.io/a:1", "quay.io/c:2"],
        "error": None,
    }


def test_image_list_carries_the_parse_error(deploy_dir: Path) -> None:
    """prepare-images-prestage-env.yml:72-75: a list without any reference."""
    path = write(deploy_dir / "prestage_images_x", "# nothing\n\n")
    assert scf.image_list("25.09") == {
        "path": str(path),
        "images": [""],
        "error": f"File {path} contains no image references.",
    }


def test_image_list_unreadable_or_absent(deploy_dir: Path) -> None:
    assert scf.image_list("25.09") is None
    write(deploy_dir / "other")
    assert scf.image_list("25.09") is None
    (deploy_dir / "prestage_images_0").mkdir()
    unreadable = scf.image_list("25.09")
    assert unreadable["images"] == [] and unreadable["error"].startswith(
        f"Cannot read the image list {deploy_dir / 'prestage_images_0'}"
    )


# -------------------------------------------------------------------------- checksum cache


def make_feed(feed: Path) -> Path:
    write(feed / "ostree_repo" / "config", "[core]\nmode=archive-z2\n")
    write(feed / "ostree_repo" / "objects" / "ab" / "cdef.commit", "commit")
    write(feed / "ostree_repo" / "refs" / "heads" / "starlingx", "abcdef\n")
    return feed


def test_checksum_cache_hit_then_miss_after_a_touch(tmp_path: Path) -> None:
    feed, cache = make_feed(tmp_path / "rel-25.09"), tmp_path / "cache"
    first = scf.ostree_checksum(str(feed), str(cache))
    assert first["cached"] is False
    assert first["checksum"] == content.ostree_checksum(str(feed))["checksum"]
    second = scf.ostree_checksum(str(feed), str(cache))
    assert second["cached"] is True and second["checksum"] == first["checksum"]
    assert (second["files"], second["path"]) == (3, str(feed / "ostree_repo"))
    config = feed / "ostree_repo" / "config"
    os.utime(config, ns=(time.time_ns(), config.stat().st_mtime_ns + 1_000_000))
    touched = scf.ostree_checksum(str(feed), str(cache))
    assert touched["cached"] is False and touched["checksum"] == first["checksum"]
    write(config, "[core]\nmode=archive\n")
    changed = scf.ostree_checksum(str(feed), str(cache))
    assert changed["cached"] is False and changed["checksum"] != first["checksum"]
    assert scf.ostree_checksum(str(feed), str(cache))["cached"] is True


def test_checksum_with_an_unusable_cache_dir_is_computed_every_time(tmp_path: Path) -> None:
    feed = make_feed(tmp_path / "rel-25.09")
    cache = write(tmp_path / "a-file") / "cache"
    results = [scf.ostree_checksum(str(feed), str(cache)) for _run in range(2)]
    assert [r["cached"] for r in results] == [False, False]
    assert results[0]["checksum"] == content.ostree_checksum(str(feed))["checksum"]
    assert scf.ostree_checksum(str(feed), None)["cached"] is False


def test_checksum_of_a_missing_feed(tmp_path: Path) -> None:
    with pytest.raises(
        scf.FactsError, match=r"ostree_repo does not exist on the system controller"
    ):
        scf.ostree_checksum(str(tmp_path / "rel-25.09"), str(tmp_path / "cache"))


# --------------------------------------------------------------------- central commit list


@pytest.fixture
def commits_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lock = tmp_path / "ostree_metadata_commits_central.lock"
    monkeypatch.setattr(swd, "COMMITS_LOCK", str(lock))
    return lock


def test_central_commit_list_reused_while_its_last_commit_is_the_feeds(
    tmp_path: Path, commits_lock: Path
) -> None:
    """sync_patches_to_usm_subcloud.yml:162-177: regenerated unless awk's last non-empty second
    ':' field equals the feed's starlingx commit."""
    metadata, cache = tmp_path / "metadata", tmp_path / "cache"
    write(
        metadata / "deployed" / "starlingx-25.09.0-metadata.xml", metadata_xml("starlingx-25.09.0")
    )
    write(
        metadata / "deployed" / "starlingx-25.09.1-metadata.xml",
        metadata_xml("starlingx-25.09.1", "c1"),
    )
    path, lines = scf.central_commit_list("25.09", "c1", str(metadata), str(cache))
    assert lines == [
        f"{metadata}/deployed/starlingx-25.09.0-metadata.xml:",
        f"{metadata}/deployed/starlingx-25.09.1-metadata.xml:c1",
    ]
    assert Path(path).read_text() == "".join(line + "\n" for line in lines)
    assert os.path.dirname(path) == str(cache)
    write(
        metadata / "available" / "starlingx-25.09.2-metadata.xml",
        metadata_xml("starlingx-25.09.2", "c2"),
    )
    assert scf.central_commit_list("25.09", "c1", str(metadata), str(cache))[1] == lines
    _commits, regenerated = scf.central_commit_list("25.09", "c2", str(metadata), str(cache))
    assert regenerated == [*lines, f"{metadata}/available/starlingx-25.09.2-metadata.xml:c2"]
    # the last line's empty commit is skipped: c2 is still the last commit
    write(Path(path), "".join(line + "\n" for line in [*regenerated, "/x/starlingx-25.09.3:"]))
    assert scf.central_commit_list("25.09", "c2", str(metadata), str(cache))[1][-1] == (
        "/x/starlingx-25.09.3:"
    )


def test_central_commit_list_waits_for_starlingxs_lock(
    tmp_path: Path, commits_lock: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """flock --exclusive --timeout 180 on /tmp/ostree_metadata_commits_central.lock, and its
    message when the wait times out."""
    monkeypatch.setattr(swd, "COMMITS_LOCK_TIMEOUT", 0.3)
    fd = os.open(commits_lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(
            scf.FactsError,
            match=r"^ERROR: 1 - flock failed while trying to "
            r"get the commits\.$",
        ):
            scf.central_commit_list("25.09", "c1", str(tmp_path), str(tmp_path / "cache"))
    finally:
        os.close(fd)
    assert scf.central_commit_list("25.09", "c1", str(tmp_path), str(tmp_path / "cache"))[1] == []


# ---------------------------------------------------------------------- sw-deploy facts


@pytest.fixture
def sc_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commits_lock: Path) -> Path:
    """The system controller's feed and /opt/software below tmp_path."""
    monkeypatch.setattr(stx, "FEED_DIR", str(tmp_path / "feed"))
    monkeypatch.setattr(stx, "SOFTWARE_DIR", str(tmp_path / "software"))
    monkeypatch.setattr(
        swd, "SOFTWARE_SCRIPTS_DIR", str(tmp_path / "software" / "software-scripts")
    )
    return tmp_path


def fake_run(listings: dict[str, str], commit: str = "c1"):
    calls: list[str] = []

    def run(script: str) -> tuple[int, str, str]:
        calls.append(script)
        if "rev-parse starlingx" in script:
            return 0, commit + "\n", ""
        for command, text in listings.items():
            if script.endswith(command):
                return 0, text, ""
        return 1, "", "unexpected"

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_sw_deploy_facts_of_an_older_release_on_a_26_10_sc(sc_tree: Path) -> None:
    """main.yml:67-101 (the deployed list, replaced by the unfiltered one for an older release),
    107-110 (release parts); get-commits reads the system controller's own metadata directory
    (ostree-metadata-sync.sh:167-180: /opt/software/releases/metadata on 26.10)."""
    make_feed(sc_tree / "feed" / "rel-25.09")
    own = sc_tree / "software" / "releases" / "metadata"
    write(
        own / "unavailable" / "starlingx-25.09.0-metadata.xml",
        metadata_xml("starlingx-25.09.0", "c0"),
    )
    write(
        own / "unavailable" / "starlingx-25.09.1-metadata.xml",
        metadata_xml("starlingx-25.09.1", "c1"),
    )
    write(
        sc_tree / "software" / "metadata" / "deployed" / "starlingx-25.09.9-metadata.xml",
        metadata_xml("starlingx-25.09.9", "c9"),
    )
    (sc_tree / "software" / "rel-25.09.0").mkdir(parents=True)
    listing = """+-------------------+-------+-------------+
| Release           | RR    |    State    |
+-------------------+-------+-------------+
| starlingx-25.09.0 | True  | unavailable |
| starlingx-25.09.1 | False |  deployed   |
| starlingx-25.09.2 | False |  available  |
+-------------------+-------+-------------+
"""
    run = fake_run(
        {
            "software list --release 25.09 --state deployed": "No data\n",
            "software list --release 25.09": listing,
        }
    )
    facts = scf.sw_deploy_facts("25.09", "26.10", run, str(sc_tree / "cache"))
    assert facts["error"] is None and facts["sc_commit"] == "c1"
    assert facts["lines"] == [
        "|starlingx-25.09.0|True|unavailable|",
        "|starlingx-25.09.1|False|deployed|",
        "|starlingx-25.09.2|False|available|",
    ]
    assert facts["releases"] == ["25.09.0", "25.09.1", "25.09.2"]
    assert facts["release_dirs"] == {"25.09.0": True, "25.09.1": False, "25.09.2": False}
    assert facts["commits"] == [
        f"{own}/unavailable/starlingx-25.09.0-metadata.xml:c0",
        f"{own}/unavailable/starlingx-25.09.1-metadata.xml:c1",
    ]
    assert facts["metadata_dir"] == str(sc_tree / "software" / "metadata")  # what is staged
    assert facts["software_scripts"] is False and facts["empty_commits"] == []


def test_sw_deploy_facts_of_the_sc_release_take_the_deployed_list(sc_tree: Path) -> None:
    make_feed(sc_tree / "feed" / "rel-25.09")
    deployed = "\n".join(line for line in SOFTWARE_LIST.splitlines() if "available" not in line)
    run = fake_run({"software list --release 25.09 --state deployed": deployed})
    facts = scf.sw_deploy_facts("25.09", "25.09", run, str(sc_tree / "cache"))
    assert facts["releases"] == ["25.09.0", "25.09.1"]
    assert not any(call.endswith("software list --release 25.09") for call in run.calls)


def test_sw_deploy_facts_without_software_for_an_older_release(sc_tree: Path) -> None:
    """main.yml:84-91."""
    make_feed(sc_tree / "feed" / "rel-24.09")
    run = fake_run(
        {
            "software list --release 24.09 --state deployed": "No data\n",
            "software list --release 24.09": "No data\n",
        }
    )
    facts = scf.sw_deploy_facts("24.09", "25.09", run, str(sc_tree / "cache"))
    assert facts["error"] == (
        "No software found for release version 24.09. Please provide a valid software version "
        "for prestaging."
    )


def test_sw_deploy_facts_without_a_feed(sc_tree: Path) -> None:
    facts = scf.sw_deploy_facts("25.09", "25.09", fake_run({}), str(sc_tree / "cache"))
    assert facts["error"] == (
        f"Directory {sc_tree}/feed/rel-25.09/ostree_repo does not exist on the system controller."
    )


# ---------------------------------------------------------------------------- release facts


def test_release_facts_read_both_upgrades_files_and_the_lists(
    sc_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dcmanager's supported list from /usr/rootdirs/opt/upgrades/metadata.xml (consts.py:501),
    the playbook's minimum from /opt/upgrades/metadata.xml (minimum-upgradable-release)."""
    rootdirs = write(
        sc_tree / "rootdirs.xml",
        "<build><version>25.09</version><supported_upgrades>"
        "<upgrade><version>24.09</version></upgrade></supported_upgrades></build>",
    )
    upgrades = write(
        sc_tree / "upgrades.xml",
        "<build><version>25.09</version><supported_upgrades>"
        "<upgrade><version>24.09</version></upgrade><upgrade><version>22.12</version>"
        "</upgrade></supported_upgrades></build>",
    )
    monkeypatch.setattr(stx, "ROOTDIRS_UPGRADES_METADATA", str(rootdirs))
    monkeypatch.setattr(stx, "UPGRADES_METADATA", str(upgrades))
    monkeypatch.setattr(stx, "DEPLOY_DIR", str(sc_tree / "deploy"))
    monkeypatch.setattr(stx, "sw_version", lambda: "25.09")
    make_feed(sc_tree / "feed" / "rel-24.09")
    write(sc_tree / "software" / "metadata" / "deployed" / "a.xml", "<patch/>")
    write(sc_tree / "software" / "metadata" / "unavailable" / "b.xml", "<patch/>")
    run = fake_run(
        {"software list": SOFTWARE_LIST, "software deploy show": "No deploy in progress\n"}
    )
    facts = scf.release_facts("24.09", False, run, cache_dir=str(sc_tree / "cache"))
    assert (facts["sc_release"], facts["release"]) == ("25.09", "24.09")
    assert facts["supported_upgrades"] == ["24.09"]
    assert facts["min_supported_release"] == "22.12"
    assert facts["upgrades_error"] is None and facts["deployment_in_progress"] is None
    assert [r["release_id"] for r in facts["software_releases"]][:2] == [
        "starlingx-24.09.0",
        "starlingx-24.09.1",
    ]
    assert facts["feed"] == {"path": str(sc_tree / "feed" / "rel-24.09"), "exists": True}
    assert (
        facts["ostree"]["checksum"]
        == content.ostree_checksum(str(sc_tree / "feed" / "rel-24.09"))["checksum"]
    )
    assert facts["patch_metadata"]["files"] == 1  # unavailable/ is pruned on the subcloud
    assert facts["patch_metadata"]["pruned"] == ["committed", "unavailable"]
    assert facts["image_list"] is None
    os.unlink(rootdirs)
    assert scf.release_facts("24.09", False, run, with_content=False)["supported_upgrades"] == [
        "24.09",
        "22.12",
    ]
