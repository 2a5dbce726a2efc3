"""A 26.10 system controller (STARLINGX.md §8, the 26.10 column): the lab is brought up with
`--sc-release 26.10` for this module (its subclouds then run 26.10, every 4th 25.09) and back to
25.09 afterwards, at the same count. Each case prestages and is judged by StarlingX's consumers
(§6):

- (a) install of 25.09 on a 26.10 subcloud: the system controller pushes 25.09; the patch
  metadata comes from its /opt/software/metadata, the directory of the prestaged release
  (PR:prepare-env/tasks/main.yml:53-54), where a 26.10 system controller keeps 25.09's
  releases (UP:upgrade-scripts/99-move-release-metadata-file.py:26-47 moves only 26.10's);
  miniboot and bootstrap take the result;
- (b) install of 26.10 on a 25.09 subcloud: the component tree /opt/software/releases/metadata
  is pushed; miniboot and bootstrap take the result;
- (c) software deployment of 26.10 on a 26.10 subcloud (the component layout on both sides): the
  subcloud is topped up to 26.10.1; `software list`, the feed's ostree log and dcmanager's
  sw-deploy pre_check take it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labctl import consumers, stxcontent

from tests.integration.prestage.conftest import Prestage, Traffic

pytestmark = pytest.mark.lab

SC = "26.10"
PREVIOUS = "25.09"  # the release a 26.10 system controller upgrades subclouds from
LEGACY_METADATA = "/opt/software/metadata"
COMPONENT_METADATA = "/opt/software/releases/metadata"


@pytest.fixture(scope="module", autouse=True)
def sc_26_10(lab: Any) -> Iterator[Any]:
    """The lab with a 26.10 system controller for the module, then 25.09 again (the other lab
    tests assume it) with the subclouds it had."""
    count = len(lab.subclouds)
    try:
        lab.up(max(count, 4), sc_release=SC)  # subcloud4 is the 25.09 one
        assert lab.sc_release == SC
        yield lab
    finally:
        lab.up(count, sc_release=stxcontent.SC_RELEASE)


def assert_installable(prestage: Prestage, name: str, release: str) -> None:
    """What a reinstall from the prestaged content does succeeds (STARLINGX.md §6): miniboot
    checks the checksum and pulls the system controller's commit from the prestaged repo,
    bootstrap restores every listed image from the registry archive."""
    paths = prestage.lab.paths
    commit = prestage.sc_commit(release)
    assert consumers.miniboot(paths, name, release, require_checksum=True) == commit
    images = prestage.images(release)
    assert images == list(stxcontent.IMAGES[release])
    assert consumers.bootstrap(paths, name, release, images) == len(images)


def metadata_tree(prestage: Prestage, name: str, release: str) -> list[str]:
    """The prestaged patches/metadata, as relative paths (directories with a trailing /)."""
    root = prestage.release_dir(name, release) / "patches" / "metadata"
    assert root.is_dir(), f"{root} was not prestaged"
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))


def test_the_lab_runs_a_2610_system_controller(lab: Any, prestage: Prestage) -> None:
    out = lab.inside(lab.sc, "cat /etc/build.info /opt/upgrades/metadata.xml").stdout
    assert f'SW_VERSION="{SC}"' in out and "<version>26.03</version>" in out
    assert {e: lab.registry_entry(e)["software_version"] for e in lab.subclouds[:4]} == {
        "subcloud1": SC, "subcloud2": SC, "subcloud3": SC, "subcloud4": PREVIOUS,
    }  # fmt: skip
    consumers.software_list(lab.paths, lab.sc, f"starlingx-{PREVIOUS}.1", "unavailable")
    consumers.software_list(lab.paths, lab.sc, f"starlingx-{SC}.1", "deployed")
    name = prestage.subclouds(SC)[0]
    consumers.software_list(lab.paths, name, f"starlingx-{SC}.0", "deployed")
    lab.inside(name, f"test -f {COMPONENT_METADATA}/starlingx-{SC}.0-metadata.xml")


def test_install_of_25_09_on_a_2610_subcloud(lab: Any, prestage: Prestage) -> None:
    """(a) The system controller pushes the 25.09 feed and its 25.09 patch metadata directory
    (/opt/software/metadata: PR:prepare-env/tasks/main.yml:53-54 picks it by the prestaged
    release); for v >= 24.09 unavailable/ and committed/ are pruned
    (PR:prestage-patches/tasks/prestage-patch-metadata.yml:64-73), which leaves the 26.10
    system controller's 25.09 releases (all unavailable) out: the state directories remain.
    for-sw-deploy lists the subcloud's own 26.10 product file at its metadata root
    (PR:get-prestage-versions/tasks/main.yml:67-76)."""
    name = prestage.subclouds(SC)[0]
    with Traffic(lab) as traffic:
        run = prestage.run(name, release=PREVIOUS)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.complete(name), run.failure(name)
    assert run.task(name, "precheck")["install"]["source"] == "remote"
    assert [p["what"] for p in run.task(name, "push")["passes"]] == [
        "ostree_repo",
        "patch metadata",
    ]
    assert run.task(name, "finalize")["prestage_versions"] == (
        f"for-install: {PREVIOUS} - for-sw-deploy: {SC}"
    )
    feed = prestage.feed_bytes(PREVIOUS)
    assert traffic.sc_sent >= feed
    assert traffic.controller < traffic.sc_sent - feed / 2, (traffic.controller, traffic.sc_sent)
    assert metadata_tree(prestage, name, PREVIOUS) == [
        "available/",
        "deployed/",
        "deploying/",
        "removing/",
    ]
    assert_installable(prestage, name, PREVIOUS)
    # the subcloud's own 26.10 metadata is as it was
    consumers.software_list(lab.paths, name, f"starlingx-{SC}.0", "deployed")
    for secret in lab.secrets:
        assert secret not in run.text()


def test_install_of_26_10_on_a_25_09_subcloud(lab: Any, prestage: Prestage) -> None:
    """(b) The system controller pushes the 26.10 feed and its component metadata tree
    (/opt/software/releases/metadata, PR:prepare-env/tasks/main.yml:53-54): the product files at
    its root, the metapackages in their state directories; unavailable/ and committed/ pruned."""
    name = prestage.subclouds(PREVIOUS)[0]
    run = prestage.run(name, release=SC)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.complete(name), run.failure(name)
    assert run.task(name, "precheck")["install"]["source"] == "remote"
    assert run.task(name, "finalize")["prestage_versions"] == (
        f"for-install: {SC} - for-sw-deploy: None"
    )
    packages = sorted(
        f"deployed/{package}_{SC}.{level}-metadata.xml"
        for package in stxcontent.METAPACKAGES
        for level in "01"
    )
    assert metadata_tree(prestage, name, SC) == sorted(
        [
            "available/",
            "deploy-selected/",
            "deployed/",
            *packages,
            "deploying/",
            "remove-selected/",
            "removing/",
            f"starlingx-{SC}.0-metadata.xml",
            f"starlingx-{SC}.1-metadata.xml",
        ]
    )
    assert_installable(prestage, name, SC)


def test_sw_deploy_of_26_10_on_a_2610_subcloud(lab: Any, prestage: Prestage) -> None:
    """(c) The subcloud at 26.10.0 is topped up to the system controller's 26.10.1: its feed holds
    the 26.10.1 commit, the 26.10.1 product file is available at its metadata root and the
    metapackages in available/ (PR:sync-software-metadata/files/ostree-metadata-sync.sh:
    680-708), `software list` shows it available and dcmanager's pre_check finds it
    prestaged."""
    name = prestage.subclouds(SC)[0]
    run = prestage.run(name, release=SC, sw_deploy=True)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.complete(name), run.failure(name)
    assert run.task(name, "finalize")["prestage_versions"] == (
        f"for-install: None - for-sw-deploy: {SC}.1"
    )
    paths = lab.paths
    consumers.ostree_log(paths, name, SC, prestage.sc_commit(SC))
    consumers.software_list(paths, name, f"starlingx-{SC}.0", "deployed")
    consumers.software_list(paths, name, f"starlingx-{SC}.1", "available")
    assert consumers.sw_deploy_precheck(paths, name, f"starlingx-{SC}.1") == (
        f"Release starlingx-{SC}.1 is prestaged (available)"
    )
    metadata = Path(prestage.opt(name)) / "software" / "releases" / "metadata"
    assert (metadata / f"starlingx-{SC}.1-metadata.xml").is_file()
    assert sorted(p.name for p in (metadata / "available").iterdir()) == sorted(
        f"{package}_{SC}.1-metadata.xml" for package in stxcontent.METAPACKAGES
    )
    prestage.inside(name, f"test -d /opt/software/rel-{SC}.1/bin && test ! -e /opt/software/tmp")
    # nothing went to the legacy directories of the subcloud
    prestage.inside(name, f"test ! -e {LEGACY_METADATA}")
    # a rerun finds it all in place: nothing is pushed or synced again
    again = prestage.run(name, release=SC, sw_deploy=True)
    assert again.rc == 0 and again.complete(name), again.stdout[-3000:]
    assert again.task(name, "swd_prepare")["up_to_date"]
    assert not again.ran(name, "swd_push") and not again.ran(name, "swd_sync")
    consumers.software_list(paths, name, f"starlingx-{SC}.1", "available")
