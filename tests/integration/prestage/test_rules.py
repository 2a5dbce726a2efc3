"""The checks of STARLINGX.md §5 (SPEC §4) on lab subclouds, each with its exact message, and the
bad input of issue "Prestage for install exactly as StarlingX does it": nothing marked complete
on a subcloud that failed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.prestage.conftest import SC_RELEASE, Prestage

pytestmark = pytest.mark.lab

MARKER = ".ostree_rsync_completed"
UPGRADES = "/opt/upgrades/metadata.xml"


@contextlib.contextmanager
def fault(lab: Any, name: str, host: str, *args: str) -> Iterator[None]:
    lab.fault(name, host, *args)
    try:
        yield
    finally:
        lab.fault(name, host, undo=True)


@contextlib.contextmanager
def sc_change(prestage: Prestage, change: str, undo: str) -> Iterator[None]:
    prestage.inside(prestage.lab.sc, change)
    try:
        yield
    finally:
        prestage.inside(prestage.lab.sc, undo)


def precheck(run: Any, host: str) -> dict[str, Any]:
    result = run.task(host, "precheck")
    assert result is not None, run.stdout[-3000:]
    return result


def assert_failed(prestage: Prestage, run: Any, host: str, message: str, release: str) -> None:
    failure = run.failure(host)
    assert failure is not None, run.stdout[-3000:]
    assert failure[1] == message, failure
    assert not run.complete(host)
    assert not (prestage.release_dir(host, release) / MARKER).exists()


def test_a_sw_deploy_strategy_failure_does_not_stop_a_prestage(
    lab: Any, prestage: Prestage
) -> None:
    """DC:dcmanager/common/prestage.py:87-99: sw-deploy-apply-strategy-failed passes."""
    name = prestage.subclouds(SC_RELEASE)[0]
    with fault(lab, "deploy-in-progress", name, "sw-deploy-apply-strategy-failed"):
        run = prestage.run(name, roles_only=True)
    assert run.rc == 0 and run.complete(name), run.stdout[-3000:]
    assert run.ran(name, "sc")  # the roles alone read the system controller themselves


@pytest.mark.parametrize(
    ("release", "message"),
    [
        (
            "26.03",
            "Error: invalid release version parameter. 26.03 is not a supported release "
            "version (24.09)",
        ),
        ("24.09.1", "Specified release format is not supported. Version format must be MM.mm."),
    ],
)
def test_release_rules(prestage: Prestage, release: str, message: str) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    run = prestage.run(name, release=release, roles_only=True)
    assert_failed(prestage, run, name, message, release)


def test_a_supported_release_the_sc_cannot_install_is_not_ready(prestage: Prestage) -> None:
    """DC:dcmanager/common/utils.py:1596-1630: supported, but no USM release of it."""
    name = prestage.subclouds(SC_RELEASE)[0]
    with sc_change(
        prestage,
        f"cp -p {UPGRADES} {UPGRADES}.orig && sed -i "
        "'s|</supported_upgrades>|<upgrade><version>26.03</version></upgrade>"
        f"</supported_upgrades>|' {UPGRADES}",
        f"mv {UPGRADES}.orig {UPGRADES}",
    ):
        run = prestage.run(name, release="26.03", roles_only=True)
    assert_failed(
        prestage, run, name, "The requested release is not ready to be installed.", "26.03"
    )


def test_upgrades_metadata_without_supported_upgrades(prestage: Prestage) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    with sc_change(
        prestage,
        f"cp -p {UPGRADES} {UPGRADES}.orig && printf '<build><version>"
        f"25.09</version></build>' >{UPGRADES}",
        f"mv {UPGRADES}.orig {UPGRADES}",
    ):
        run = prestage.run(name, release="24.09", roles_only=True)
    assert_failed(prestage, run, name, "Error: unable to validate the release version.", "24.09")


def test_the_system_controller_deploying_refuses_before_anything_starts(
    lab: Any, prestage: Prestage
) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    with fault(lab, "sw-operation", lab.sc):
        run = prestage.run(name)
    failure = run.failure(name)
    assert failure is not None and failure[0] == "strategy", run.stdout[-3000:]
    assert failure[1] == (
        "Prestage operations are not allowed while system controller has a software deployment "
        "in progress."
    )
    assert not (run.state_dir / "strategy.json").exists()
    assert not prestage.release_dir(name).exists()


def test_a_system_controller_without_the_release_feed(lab: Any, prestage: Prestage) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    feed = "/var/www/pages/feed/rel-24.09"
    with sc_change(prestage, f"mv {feed} {feed}.away", f"mv {feed}.away {feed}"):
        run = prestage.run(name, release="24.09")
    assert_failed(
        prestage,
        run,
        name,
        f"Directory {feed}/ostree_repo does not exist on the system controller.",
        "24.09",
    )
    assert run.step(name)["state"] == "failed"


def test_a_corrupt_feed_on_the_system_controller_is_never_prestaged(prestage: Prestage) -> None:
    """The feed's objects are shared (hard links) with the lab's subcloud feeds: the corrupt one
    is a copy put in its place, and the original goes back after."""
    name = prestage.subclouds("24.09")[0]
    objects = f"/var/www/pages/feed/rel-{SC_RELEASE}/ostree_repo/objects"
    victim = prestage.inside(
        prestage.lab.sc, f"find {objects} -name '*.filez' -size +4k | sort | head -1"
    ).stdout.strip()
    corrupt = (
        f"cp -p {victim} {victim}.orig && cp -p {victim} /tmp/corrupt && "
        "printf 'XXXX' | dd of=/tmp/corrupt bs=1 seek=100 conv=notrunc status=none && "
        f"mv /tmp/corrupt {victim}"
    )
    with sc_change(prestage, corrupt, f"mv {victim}.orig {victim}"):
        run = prestage.run(name)
    failure = run.failure(name)
    assert failure is not None and failure[0] == "precheck", run.stdout[-3000:]
    assert failure[1].startswith(
        f"ostree fsck of /var/www/pages/feed/rel-{SC_RELEASE}/ostree_repo failed: "
    )
    assert not prestage.release_dir(name).exists()


def test_duplex_rule_is_for_install_and_duplex_only(lab: Any, prestage: Prestage) -> None:
    """DC:dcmanager/common/prestage.py:155-167: a duplex subcloud whose controller-0 is standby is
    skipped for install; duplex-direct is not checked."""
    duplex = prestage.subclouds(SC_RELEASE, "duplex") or prestage.subclouds("24.09", "duplex")
    name = duplex[0]
    release = lab.registry_entry(name)["software_version"]
    with fault(lab, "standby", name):
        run = prestage.run(name, release=release, roles_only=True)
        assert run.rc == 0
        assert precheck(run, name)["prestage_skip_reason"] == (
            "Prestage for install on duplex subclouds is only allowed when controller-0 is active."
        )
        assert not run.ran(name, "prepare")
        conf = "/etc/platform/platform.conf"
        prestage.inside(name, f"sed -i 's/^system_mode=duplex$/system_mode=duplex-direct/' {conf}")
        try:
            run = prestage.run(name, release=release, roles_only=True)
        finally:
            prestage.inside(
                name, f"sed -i 's/^system_mode=duplex-direct$/system_mode=duplex/' {conf}"
            )
        assert run.rc == 0 and run.complete(name), run.stdout[-3000:]


def test_management_affecting_alarms_fail_unless_forced(lab: Any, prestage: Prestage) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    with fault(lab, "alarm", name):
        run = prestage.run(name, roles_only=True)
        assert_failed(
            prestage,
            run,
            name,
            "Subcloud has management affecting alarm(s). Please "
            "resolve the alarm condition(s) or use --force option and try again.",
            SC_RELEASE,
        )
        forced = prestage.run(name, roles_only=True, extra={"force": True})
        assert forced.rc == 0 and forced.complete(name)
    with fault(lab, "alarm", name, "non-mgmt"):
        prestage.inside(name, "rm -rf /opt/platform-backup/*")
        run = prestage.run(name, roles_only=True)
        assert run.rc == 0 and run.complete(name)


def test_a_software_operation_on_the_subcloud_fails(lab: Any, prestage: Prestage) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    with fault(lab, "sw-operation", name):
        run = prestage.run(name, roles_only=True)
    assert_failed(
        prestage,
        run,
        name,
        "A release is in a transient state (deploying/removing) "
        "on the subcloud. Cannot prestage while a software operation is in progress. "
        f"(starlingx-{SC_RELEASE}.1: deploying)",
        SC_RELEASE,
    )


def test_free_space_counts_the_content_still_to_copy(lab: Any, prestage: Prestage) -> None:
    name = prestage.subclouds("24.09")[0]
    with fault(lab, "disk-full", name, "256k"):
        run = prestage.run(name, roles_only=True)
    failure = run.failure(name)
    assert failure is not None and failure[0] == "precheck", run.stdout[-3000:]
    assert failure[1].startswith(
        f"Not enough free space in /opt/platform-backup for the release {SC_RELEASE} content: "
    )


def test_an_image_list_without_images(prestage: Prestage) -> None:
    name = prestage.subclouds(SC_RELEASE)[0]
    listing = f"/opt/platform/deploy/{SC_RELEASE}/prestage_images_images.lst"
    with sc_change(
        prestage,
        f"cp -p {listing} {listing}.orig && printf '# nothing\\n' >{listing}",
        f"mv {listing}.orig {listing}",
    ):
        run = prestage.run(name, roles_only=True)
    failure = run.failure(name)
    assert failure is not None and failure[0] == "images", run.stdout[-3000:]
    assert failure[1] == f"File {listing} contains no image references."
