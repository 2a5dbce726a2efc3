"""Prestage for software deployment on lab subclouds (STARLINGX.md §3), judged by what USM and a
later sw-deploy strategy do with it (§6): the subcloud's `software list` shows the release in the
state StarlingX would give it, its feed holds the release's commits, an N-1 feed keeps the
subcloud's own install_uuid, dcmanager's sw-deploy pre_check finds the release prestaged."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from labctl import consumers

from tests.integration.prestage.conftest import SC_RELEASE, Prestage

pytestmark = pytest.mark.lab

PATCH = f"starlingx-{SC_RELEASE}.1"
GA = f"starlingx-{SC_RELEASE}.0"


@contextlib.contextmanager
def on_the_sc(prestage: Prestage, change: str, undo: str) -> Iterator[None]:
    """A change to the system controller for the length of a test."""
    prestage.inside(prestage.lab.sc, change)
    try:
        yield
    finally:
        prestage.inside(prestage.lab.sc, undo)


def software_list(prestage: Prestage, name: str) -> str:
    return prestage.inside(name, "software list").stdout


def test_a_subcloud_of_the_release_is_topped_up_to_the_patch_level(
    lab: Any, prestage: Prestage
) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    run = prestage.run(name, sw_deploy=True)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.complete(name)
    assert run.task(name, "finalize")["prestage_versions"] == (
        f"for-install: None - for-sw-deploy: {SC_RELEASE}.1"
    )
    # the install's packages tasks are passed over by their `meta: end_role`, not skipped
    assert run.task(name, "prepare") is None and run.task(name, "finish") is None
    assert run.ran(name, "swd_prepare")
    paths = lab.paths
    consumers.software_list(paths, name, GA, "deployed")
    consumers.software_list(paths, name, PATCH, "available")
    consumers.ostree_log(paths, name, SC_RELEASE, prestage.sc_commit())
    consumers.sw_deploy_precheck(paths, name, PATCH)
    consumers.local_images(paths, name, prestage.images(), crictl=True)
    prestage.inside(
        name,
        f"test -d /opt/software/rel-{SC_RELEASE}.1/bin && "
        "test -d /opt/software/software-scripts && test ! -e /opt/software/tmp",
    )
    calls = prestage.inside(name, "cat /var/log/lab-calls.log").stdout
    assert '"controllers-software-sync"' in calls
    assert f'"--feed=/var/www/pages/feed/rel-{SC_RELEASE}"' in calls
    # the sync ran on the subcloud over the management network, from the SC's feed endpoint
    remote = prestage.inside(
        name,
        f"ostree --repo=/var/www/pages/feed/rel-{SC_RELEASE}/"
        "ostree_repo remote show-url prestage-source",
    ).stdout
    assert remote.strip() == f"https://10.250.0.2:8443/iso/{SC_RELEASE}/ostree_repo"

    # A rerun finds it all in place and moves nothing (SPEC §10)
    again = prestage.run(name, sw_deploy=True)
    assert again.rc == 0 and again.complete(name), again.stdout[-3000:]
    assert again.task(name, "swd_prepare")["up_to_date"]
    assert not again.ran(name, "swd_push") and not again.ran(name, "swd_sync")
    assert not again.task(name, "swd_prepare")["changed"]
    assert not again.task(name, "images")["changed"]

    # At the system controller's patch level, StarlingX ends the packages playbook; the prestage
    # versions are read again all the same (SPEC §10).
    metadata = "/opt/software/metadata"
    prestage.inside(name, f"mv {metadata}/available/{PATCH}-metadata.xml {metadata}/deployed/")
    again = prestage.run(name, sw_deploy=True)
    assert again.rc == 0, again.stdout[-3000:]
    skip = again.task(name, "swd_prepare")
    assert skip["up_to_date"] and skip["msg"].startswith(
        "Skipping for software deploy prestage as the subcloud has the same patch level"
    )
    assert not again.ran(name, "swd_push")
    assert again.task(name, "finalize")["prestage_versions"] == (
        "for-install: None - for-sw-deploy: None"
    )


def test_an_n_minus_1_subcloud_gets_the_whole_feed_with_its_own_install_uuid(
    lab: Any, prestage: Prestage
) -> None:
    name = prestage.subclouds("24.09")[0]
    run = prestage.run(name, sw_deploy=True)
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.complete(name)
    pushed = [p["what"] for p in run.task(name, "swd_push")["passes"]]
    assert pushed[0] == "release feed"
    paths = lab.paths
    consumers.install_uuid(paths, name, SC_RELEASE)
    consumers.ostree_log(paths, name, SC_RELEASE, prestage.sc_commit())
    consumers.software_list(paths, name, "starlingx-24.09.0", "deployed")
    consumers.software_list(paths, name, GA, "available")
    consumers.software_list(paths, name, PATCH, "available")
    consumers.sw_deploy_precheck(paths, name, PATCH)
    # the lowest central release made available is not marked prepatched
    ga = prestage.inside(name, f"cat /opt/software/metadata/available/{GA}-metadata.xml").stdout
    assert "<prepatched_iso>N</prepatched_iso>" in ga


@pytest.mark.parametrize(
    ("change", "undo", "message"),
    [
        pytest.param(
            "feed-down", None, "Unable to synchronize ostree repository.", id="endpoint-down"
        ),
        pytest.param(
            f"cp /opt/software/metadata/deployed/{PATCH}-metadata.xml "
            f"/opt/software/metadata/available/{PATCH}-metadata.xml",
            f"rm /opt/software/metadata/available/{PATCH}-metadata.xml",
            f"found multiple metadata files for id {PATCH}",
            id="duplicate-id",
        ),
        pytest.param(
            "printf '<patch><id>broken</id><sw_version>25.09.7</sw_version>' "
            ">/opt/software/metadata/available/broken-metadata.xml",
            "rm /opt/software/metadata/available/broken-metadata.xml",
            "Metadata file broken-metadata.xml of the system controller does not parse",
            id="unparsable-metadata",
        ),
    ],
)
def test_a_failed_sync_leaves_the_subclouds_metadata_as_it_was(
    lab: Any, prestage: Prestage, change: str, undo: str | None, message: str
) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    before = software_list(prestage, name)
    if undo is None:
        lab.fault(change, lab.sc)
    else:
        prestage.inside(lab.sc, change)
    try:
        run = prestage.run(name, sw_deploy=True)
    finally:
        if undo is None:
            lab.fault(change, lab.sc, undo=True)
        else:
            prestage.inside(lab.sc, undo)
    assert run.rc != 0
    failure = run.failure(name)
    assert failure is not None and failure[0] == "swd_sync", run.stdout[-3000:]
    assert message in failure[1]
    assert run.step(name)["state"] == "failed"
    assert software_list(prestage, name) == before
    prestage.inside(name, "test ! -e /opt/software/tmp")


def test_a_release_the_system_controller_has_not_deployed_is_refused_before_anything_starts(
    lab: Any, prestage: Prestage
) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    run = prestage.run(name, sw_deploy=True, release="26.10")
    assert run.rc != 0
    failure = run.failure(name)
    assert failure is not None and failure[0] == "strategy"
    assert re.search(
        "The requested software version not found or not deployed in the system controller, "
        "cannot prestage for software deploy.",
        failure[1],
    )
    assert not (run.state_dir / "strategy.json").exists()
