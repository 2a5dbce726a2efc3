"""Prestage for install on lab subclouds, judged by what StarlingX later does with it
(STARLINGX.md §2, §6): miniboot's checksum and pull of the prestaged ostree repo, bootstrap's
restore of the registry archive; the topology of SPEC §9 (the content flows from the system
controller, or stays on the subcloud, never through the controller)."""

from __future__ import annotations

import stat
import tarfile
from typing import Any

import pytest
from labctl import consumers

from tests.integration.prestage.conftest import SC_RELEASE, TASKS, Prestage, Traffic

pytestmark = pytest.mark.lab


def assert_installable(prestage: Prestage, name: str, release: str, commit: str) -> None:
    """What a reinstall from the prestaged content would do succeeds (STARLINGX.md §6)."""
    paths = prestage.lab.paths
    assert consumers.miniboot(paths, name, release, require_checksum=True) == commit
    images = prestage.images(release)
    assert consumers.bootstrap(paths, name, release, images) == len(images)


def test_install_of_the_subclouds_own_release_copies_its_own_feed(
    lab: Any, prestage: Prestage
) -> None:
    """PR:prestage-sw-packages/tasks/main.yml:31-33: a subcloud running the release copies its
    own feed (rsync -ap --delete on the subcloud); only the patch metadata comes from the SC."""
    name = prestage.subclouds(SC_RELEASE)[0]
    own = lab.inside(
        name, f"ostree --repo=/var/www/pages/feed/rel-{SC_RELEASE}/ostree_repo rev-parse starlingx"
    ).stdout.strip()
    with Traffic(lab) as traffic:
        run = prestage.run(name, args=("-vvv",))
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.complete(name)
    assert run.step(name)["state"] == "complete"
    assert run.task(name, "finalize")["prestage_versions"] == (
        f"for-install: {SC_RELEASE} - for-sw-deploy: None"
    )
    assert run.task(name, "precheck")["install"]["source"] == "local"
    pushed = [p["what"] for p in run.task(name, "push")["passes"]]
    assert pushed == ["patch metadata"]  # v >= 24.09: the SC's metadata always wins
    assert traffic.sc_sent < prestage.feed_bytes() / 2
    assert_installable(prestage, name, SC_RELEASE, own)

    release_dir = prestage.release_dir(name)
    # v >= 24.09: unavailable/ and committed/ pruned (prestage-patch-metadata.yml:64-73)
    metadata = release_dir / "patches" / "metadata"
    assert not (metadata / "unavailable").exists() and not (metadata / "committed").exists()
    assert sorted(p.parent.name for p in metadata.rglob("*.xml")) == ["deployed", "deployed"]
    with tarfile.open(release_dir / "local_registry_filesystem.tgz") as archive:
        names = archive.getnames()
    assert names and all(n.startswith("var/lib/docker-distribution") for n in names)
    for secret in lab.secrets:
        assert secret not in run.text()


@pytest.mark.core_matrix_lab  # the short lab run of each ansible-core (scripts/core-matrix)
def test_install_of_another_release_is_pushed_by_the_system_controller(
    lab: Any, prestage: Prestage
) -> None:
    """A subcloud of another release gets the SC's feed pushed from the SC itself, with
    StarlingX's rsync options and the ownership and modes its chown dance leaves; the
    controller carries no content (SPEC §9)."""
    name = prestage.subclouds("24.09")[0]
    with Traffic(lab) as traffic:
        run = prestage.run(name)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.complete(name)
    assert run.task(name, "precheck")["install"]["source"] == "remote"
    # tasks of the other type are not even skipped per subcloud: the `meta: end_role` of their
    # task file passed over them (no worker process); the SC read is the playbook's own, once
    assert run.task(name, "swd_prepare") is None and run.task(name, "swd_finish") is None
    names = [t["task"]["name"] for play in run.data["plays"] for t in play["tasks"]]
    # no role task of that name ("<role> : <name>"), not even skipped
    assert [n.split(" : ", 1)[-1] for n in names].count(TASKS["sc"]) == 1, names
    assert run.ran(name, "prepare") and run.ran(name, "finish")
    feed = prestage.feed_bytes()
    assert traffic.sc_sent >= feed
    assert traffic.controller < traffic.sc_sent - feed / 2, (traffic.controller, traffic.sc_sent)
    # the modules ran with StarlingX's Python 3.9, on the SC and on the subcloud
    assert run.task(name, "push")["python_version"].startswith("3.9.")
    assert run.task(name, "precheck")["subcloud"]["python_version"].startswith("3.9.")
    sc_facts = run.task(name, "precheck")["prestage_sc_release_info"]
    assert sc_facts["python_version"].startswith("3.9.")
    assert_installable(prestage, name, SC_RELEASE, prestage.sc_commit())

    repo = prestage.release_dir(name) / "ostree_repo"
    info = repo.stat()
    assert (info.st_uid, info.st_gid) == (0, 42425)  # root, sysadmin's group
    assert stat.S_IMODE(info.st_mode) == 0o777  # --chmod=ugo+rw on a 0755 directory
    config = (repo / "config").stat()
    assert stat.S_IMODE(config.st_mode) & 0o666 == 0o666

    again = prestage.run(name)
    assert again.rc == 0 and again.complete(name)
    assert again.task(name, "precheck")["install"]["up_to_date"]
    assert not again.ran(name, "push")  # no rsync at all
    assert again.data["stats"][name]["changed"] == 0 or not again.task(name, "finish")["changed"]


def test_install_of_the_release_below_the_system_controllers(lab: Any, prestage: Prestage) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    run = prestage.run(name, release="24.09")
    assert run.rc == 0, run.stdout[-3000:]
    assert run.task(name, "finalize")["prestage_versions"] == (
        "for-install: 24.09 - for-sw-deploy: None"
    )
    assert consumers.miniboot(lab.paths, name, "24.09") == prestage.sc_commit("24.09")


def test_cleanup_comes_first(lab: Any, prestage: Prestage) -> None:
    """cleanup_prestage_dir.yml: the unversioned 22.12 layout moved into 22.12/, release
    directories below the SC's minimum (24.09) removed, the others kept."""
    name = prestage.subclouds("24.09")[0]
    prestage.inside(
        name,
        "mkdir -p /opt/platform-backup/ostree_repo/objects "
        "/opt/platform-backup/23.09 /opt/platform-backup/24.09 && "
        "touch /opt/platform-backup/.ostree_repo_checksum "
        "/opt/platform-backup/23.09/.ostree_rsync_completed "
        "/opt/platform-backup/24.09/.ostree_rsync_completed",
    )
    run = prestage.run(name)
    assert run.rc == 0, run.stdout[-3000:]
    cleaned = run.task(name, "prepare")["cleaned"]
    assert any("moved /opt/platform-backup/ostree_repo" in c for c in cleaned)
    left = sorted(p.name for p in (prestage.opt(name) / "platform-backup").iterdir())
    assert left == ["24.09", SC_RELEASE]
    assert run.task(name, "finalize")["prestage_versions"] == (
        f"for-install: 24.09,{SC_RELEASE} - for-sw-deploy: None"
    )


def test_a_same_release_install_archives_the_registry_without_an_image_list(
    lab: Any, prestage: Prestage
) -> None:
    """DC:dcmanager/common/prestage.py:469-487: with no image list, the images playbook still
    runs for the subcloud's own release, and its registry is archived."""
    name = prestage.subclouds(SC_RELEASE)[0]
    deploy = f"/opt/platform/deploy/{SC_RELEASE}"
    prestage.inside(lab.sc, f"mv {deploy} {deploy}.away")
    try:
        run = prestage.run(name)
    finally:
        prestage.inside(lab.sc, f"mv {deploy}.away {deploy}")
    assert run.rc == 0, run.stdout[-3000:]
    assert run.ran(name, "images")
    with tarfile.open(prestage.release_dir(name) / "local_registry_filesystem.tgz") as archive:
        assert "var/lib/docker-distribution" in archive.getnames()

    other = prestage.subclouds("24.09")[0]  # another release, no list: no images phase
    prestage.inside(lab.sc, f"mv {deploy} {deploy}.away")
    try:
        run = prestage.run(other)
    finally:
        prestage.inside(lab.sc, f"mv {deploy}.away {deploy}")
    assert run.rc == 0 and run.complete(other)
    assert not run.ran(other, "images")
    assert not (prestage.release_dir(other) / "local_registry_filesystem.tgz").exists()
