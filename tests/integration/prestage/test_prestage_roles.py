"""The prestage roles against lab subclouds, each failure with SPEC's wording (SPEC §4, §5, §6).

The roles run through a test playbook with the plain linear strategy (tests/integration/prestage/
playbooks/prestage.yml), as a user's playbook would; the orchestration's own tests run them
under the prestage strategy. Each test cleans what it prestaged (conftest's `prestage` fixture)
and undoes its faults.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_release import release_info
from tests.integration.prestage.conftest import RELEASE, Prestage, Run, copy_tree, when

pytestmark = pytest.mark.lab

MARKER = ".ostree_rsync_completed"
CHECKSUM = ".ostree_repo_checksum"
ALARM_REASON = (
    "Subcloud has management affecting alarm(s). Please resolve the alarm condition(s) or use "
    "--force option and try again."
)
DUPLEX_REASON = (
    "Prestage for install on duplex subclouds is only allowed when controller-0 is active."
)


@contextlib.contextmanager
def fault(lab: Any, name: str, subcloud: str, *args: str) -> Iterator[None]:
    lab.fault(name, subcloud, *args)
    try:
        yield
    finally:
        lab.fault(name, subcloud, undo=True)


def sc_checksum(feed: Path) -> str:
    """StarlingX's own command for .ostree_repo_checksum, run on the system controller feed."""
    result = subprocess.run(
        "find ostree_repo -type f -exec md5sum {} + | LC_ALL=C sort | md5sum",
        shell=True, cwd=feed.parent, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.split()[0]


def simplex(lab: Any, release: str = "22.12") -> list[str]:
    return list(lab.subclouds_where(system_mode="simplex", software_version=release))


def assert_failed(run: Run, host: str, phase: str, message: str | None = None) -> str:
    failed = run.failed_phase(host)
    assert failed is not None, run.stdout[-3000:]
    assert failed[0] == phase, failed
    if message is not None:
        assert failed[1] == message
    assert not run.complete(host)
    return failed[1]


# --------------------------------------------------------------------------- the good path


def test_install_check_mode_then_prestage_then_nothing_moves(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    prestage.clean(name)
    release_dir = prestage.release_dir(name)

    check = prestage.run(name, check=True)
    assert check.rc == 0, check.stderr + check.stdout[-3000:]
    would = check.task(name, "packages")["prestage_would_transfer"]
    feed_bytes, _usage = prestage.feed_usage()
    assert would["files"] > 0 and would["bytes"] >= feed_bytes
    assert check.task(name, "images")["copied"] or check.task(name, "images")["present"]
    assert not check.complete(name)
    assert not release_dir.exists(), "check mode changed the subcloud"

    first = prestage.run(name, args=("-vvv",))
    assert first.rc == 0, first.stdout[-3000:]
    assert first.complete(name)
    assert first.task(name, "finalize")["prestage_versions"] == (
        f"for-install: {RELEASE} - for-sw-deploy: None"
    )
    moved = first.task(name, "packages")["prestage_transfer"]
    assert moved["literal_bytes"] >= feed_bytes
    # what the subcloud holds: the feed, its StarlingX checksum, the marker, metadata, archive
    feed = prestage.sc_feed()
    assert (release_dir / CHECKSUM).read_text().strip() == sc_checksum(feed)
    assert (release_dir / MARKER).is_file()
    assert sorted(p.name for p in (release_dir / "patches" / "metadata").iterdir()) == [
        "available", "committed", "deployed",
    ]  # fmt: skip
    archive = release_dir / "local_registry_filesystem.tgz"
    listing = subprocess.run(
        ["tar", "-tzf", str(archive)], capture_output=True, text=True, check=False
    )
    assert listing.returncode == 0 and "docker/registry/v2/repositories/starlingx" in listing.stdout
    # the passwords (sysadmin, registry) are in no output, even at -vvv
    assert lab.password not in first.stdout + first.stderr
    assert lab.registry_password not in first.stdout + first.stderr

    second = prestage.run(name)
    assert second.rc == 0 and second.complete(name)
    assert second.data["stats"][name]["changed"] == 0
    packages = second.task(name, "packages")
    assert packages["prestage_transfer"]["bytes_sent"] == 0  # no rsync at all
    assert not packages["changed"] and not second.task(name, "images")["changed"]

    # releases below the minimum supported one go, the others stay
    for old in ("21.12", "22.12"):
        (release_dir.parent / old).mkdir()
        (release_dir.parent / old / MARKER).write_text("")
    third = prestage.run(name, extra={"prestage_min_supported_release": "22.12"})
    assert third.complete(name), third.stdout[-3000:]
    assert third.task(name, "packages")["removed_release_dirs"] == ["21.12"]
    assert not (release_dir.parent / "21.12").exists()
    assert third.task(name, "finalize")["prestage_versions"] == (
        f"for-install: 22.12,{RELEASE} - for-sw-deploy: None"
    )


def test_sw_deploy_copies_software_and_skips_at_same_level(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    prestage.clean(name)
    first = prestage.run(name, sw_deploy=True)
    assert first.rc == 0 and first.complete(name), first.stdout[-3000:]
    software = prestage.opt(name) / "software" / RELEASE
    assert (software / "metadata" / "available" / f"starlingx-{RELEASE}.2-metadata.xml").is_file()
    assert (software / f"rel-{RELEASE}.2" / "bin" / "deploy-precheck").is_file()
    assert first.task(name, "finalize")["prestage_versions"] == (
        f"for-install: None - for-sw-deploy: {RELEASE}.2"
    )
    assert not (prestage.opt(name) / "platform-backup" / RELEASE).exists()  # no archive

    again = prestage.run(name, sw_deploy=True)
    assert again.complete(name)
    packages = again.task(name, "packages")
    assert not packages["changed"] and "patch level" in packages["msg"]


# --------------------------------------------------------------------------- precheck


def test_alarm_fails_without_force_and_passes_with_it(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    with fault(lab, "alarm", name, "mgmt"):
        run = prestage.run(name, check=True)
        assert_failed(run, name, "precheck", ALARM_REASON)
        assert not run.ran(name, "packages")
        forced = prestage.run(name, check=True, extra={"force": True})
        assert forced.rc == 0 and forced.ran(name, "packages"), forced.stdout[-2000:]
    with fault(lab, "alarm", name, "non-mgmt"):
        assert prestage.run(name, check=True).rc == 0


def test_duplex_with_controller_0_standby_is_skipped(lab, prestage: Prestage) -> None:
    name = lab.subclouds_where(system_mode="duplex")[0]
    with fault(lab, "standby", name):
        run = prestage.run(name)
        assert run.rc == 0, run.stdout[-2000:]
        precheck = run.task(name, "precheck")
        assert precheck["prestage_skip_reason"] == DUPLEX_REASON
        assert not precheck.get("failed")
        assert not run.ran(name, "packages") and not run.ran(name, "finalize")
        # the rule is for install only
        sw_deploy = prestage.run(name, sw_deploy=True, check=True)
        assert sw_deploy.ran(name, "packages")


def test_initial_checks_skip_without_contacting(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    with fault(lab, "offline", name):
        run = prestage.run(name)
        assert run.task(name, "precheck")["prestage_skip_reason"] == "Subcloud is offline."
        assert not run.ran(name, "packages")
    with fault(lab, "deploy-in-progress", name):
        run = prestage.run(name)
        assert run.task(name, "precheck")["prestage_skip_reason"] == (
            f"Subcloud {name} current deploy_status is 'installing'. "
            "Please wait until it finishes before running this operation."
        )


def test_software_operation_and_space_fail_the_precheck(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    prestage.clean(name)
    with fault(lab, "sw-operation", name):
        message = assert_failed(prestage.run(name, check=True), name, "precheck")
        assert message.startswith(
            "Prestage operation is not allowed while a software operation is in progress"
        )
    with fault(lab, "disk-full", name, "1M"):
        message = assert_failed(prestage.run(name, check=True), name, "precheck")
        assert message.startswith(
            f"Not enough free space in /opt/platform-backup for the release {RELEASE} content:"
        )
    settings = prestage.system_controller(docker_min_free_gib=1_000_000)
    run = prestage.run(name, check=True, extra={"prestage_system_controller": settings})
    message = assert_failed(run, name, "precheck")
    assert message.startswith("Not enough free space in /var/lib/docker to prestage images:")


def test_release_rules(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    newer = "25.09"
    with fault(lab, "release", name, newer):
        run = prestage.run(name, sw_deploy=True)
        assert_failed(
            run, name, "precheck",
            f"The requested software version ({RELEASE}) is lower than the current subcloud "
            f"software version ({newer}).",
        )  # fmt: skip
    run = prestage.run(name, release="24.09.1")
    assert_failed(
        run, name, "precheck",
        "Specified release format is not supported. Version format must be MM.mm.",
    )  # fmt: skip
    run = prestage.run(name, release="23.09")
    assert_failed(
        run, name, "precheck",
        "Specified release is not supported. 23.09 version must first be imported",
    )  # fmt: skip
    run = prestage.run(name, release="22.12", sw_deploy=True)
    assert_failed(
        run, name, "precheck",
        "Prestage for software deployment is not supported for release 22.12: it requires "
        "release 24.09 or later.",
    )  # fmt: skip


# --------------------------------------------------------------------------- packages


def test_disk_full_mid_copy_then_rerun_completes(lab, prestage: Prestage) -> None:
    name = simplex(lab)[1]
    _size, usage = prestage.feed_usage()
    room = f"{(usage + 6 * 1024 * 1024) // 1024}k"  # the release, its archive and some slack
    rate = f"{max(8, usage * 8 // 2_000_000)}mbit"  # a copy of about two seconds
    with fault(lab, "disk-full", name, room), fault(lab, "slow-link", name, rate):
        prestage.inside(name, "rm -rf /opt/platform-backup/*")
        # fill the disk as soon as the copy has started
        filler = prestage.background_inside(
            name,
            f"while [ ! -d /opt/platform-backup/{RELEASE}/ostree_repo/objects ]; do sleep 0.02;"
            " done; dd if=/dev/zero of=/opt/platform-backup/filler bs=64k 2>/dev/null; true",
        )
        try:
            run = prestage.run(name)
        finally:
            filler.wait(timeout=60)
        message = assert_failed(run, name, "packages")
        assert "No space left on device" in message
        leftover = prestage.inside(name, f"ls -A /opt/platform-backup/{RELEASE}").stdout.split()
        assert MARKER not in leftover and CHECKSUM not in leftover

        prestage.inside(name, "rm -f /opt/platform-backup/filler")
        rerun = prestage.run(name)
        assert rerun.rc == 0 and rerun.complete(name), rerun.stdout[-3000:]
        marker = prestage.inside(name, f"cat /opt/platform-backup/{RELEASE}/{CHECKSUM}")
        assert marker.stdout.strip() == sc_checksum(prestage.sc_feed())


def test_link_down_mid_copy_fails_then_resumes(lab, prestage: Prestage) -> None:
    name = simplex(lab)[2]
    prestage.clean(name)
    objects = prestage.release_dir(name) / "ostree_repo" / "objects"
    seen: dict[str, str] = {}

    def cut() -> None:
        lab.fault("link-down", name)
        # while rsync waits on the dead link: the password is in no process' arguments
        time.sleep(0.5)
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                    if lab.password in cmdline:
                        seen[pid] = cmdline

    with fault(lab, "slow-link", name, "4mbit"):
        try:
            when(objects.exists, cut)
            run = prestage.run(name, extra={"prestage_transfer_io_timeout": 4})
        finally:
            lab.fault("link-down", name, undo=True)
    assert not seen, f"password in process arguments: {seen}"
    message = assert_failed(run, name, "packages")
    # whichever notices first: ssh's keepalives or rsync's own I/O timeout
    assert "rsync exit" in message, message
    assert "not responding" in message or "timeout in data send/receive" in message, message
    assert not (prestage.release_dir(name) / MARKER).exists()
    partial = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())

    rerun = prestage.run(name)
    assert rerun.rc == 0 and rerun.complete(name), rerun.stdout[-3000:]
    moved = rerun.task(name, "packages")["prestage_transfer"]["literal_bytes"]
    feed_bytes, _usage = prestage.feed_usage()
    assert moved <= feed_bytes - partial + 100_000  # what was there already did not travel again


def test_packages_timeout(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    prestage.clean(name)
    with fault(lab, "slow-link", name, "1mbit"):
        run = prestage.run(name, extra={"prestage_packages_timeout": 3})
    result = run.task(name, "packages")
    assert result["failed"] and result["prestage_timeout"] is True
    assert result["msg"] == (
        "Prestaging packages timed out after 3 seconds (prestage_packages_timeout)"
    )
    assert not (prestage.release_dir(name) / MARKER).exists()


def test_corrupt_content_on_the_subcloud_is_detected_and_repaired(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    prestage.clean(name)
    assert prestage.run(name).complete(name)
    release_dir = prestage.release_dir(name)
    # bit rot: same size, same time, different bytes - rsync's quick check cannot see it
    victim = max((release_dir / "ostree_repo" / "objects").rglob("*.filez"), key=os.path.getsize)
    info = victim.stat()
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(info.st_atime_ns, info.st_mtime_ns))
    (release_dir / MARKER).unlink()

    run = prestage.run(name)
    assert run.rc == 0 and run.complete(name), run.stdout[-3000:]
    packages = run.task(name, "packages")
    assert "ostree_repo checksum mismatch" in packages["prestage_repaired"]
    feed_bytes, _usage = prestage.feed_usage()
    assert packages["prestage_transfer"]["literal_bytes"] < feed_bytes / 4  # not the repo
    assert (release_dir / CHECKSUM).read_text().strip() == sc_checksum(prestage.sc_feed())


def test_content_not_matching_the_system_controller_is_never_marked(
    lab, prestage: Prestage, tmp_path: Path
) -> None:
    """The feed changes after the system controller computed its checksum: the transferred
    content does not match it, the task fails and no marker is written."""
    name = simplex(lab)[0]
    prestage.clean(name)
    feed_dir = tmp_path / "feed"
    copy_tree(prestage.sc_feed().parent, feed_dir / f"rel-{RELEASE}")
    settings = prestage.system_controller(feed_dir=str(feed_dir))
    info = release_info(settings, RELEASE, False, None)
    victim = next((feed_dir / f"rel-{RELEASE}" / "ostree_repo" / "objects").rglob("*.filez"))
    victim.write_bytes(victim.read_bytes() + b"changed after the checksum")
    run = prestage.run(
        name, extra={"prestage_system_controller": settings, "prestage_sc_release_info": info}
    )
    message = assert_failed(run, name, "packages")
    assert message.startswith(f"Prestaged content of release {RELEASE} does not match")
    assert "ostree_repo checksum mismatch" in message and "not marked complete" in message
    assert not (prestage.release_dir(name) / MARKER).exists()


# --------------------------------------------------------------------------- images


def test_registry_down_fails_the_images_phase(lab, prestage: Prestage) -> None:
    name = simplex(lab)[0]
    prestage.clean(name)
    with fault(lab, "registry-down", name):
        run = prestage.run(name)
    assert run.task(name, "packages")["prestage_packages_verified"]
    message = assert_failed(run, name, "images")
    assert message.startswith("Prestaging images failed: cannot inspect registry.local:9001/")
    assert not (prestage.release_dir(name) / "local_registry_filesystem.tgz").exists()


def test_images_timeout_then_rerun_completes(lab, prestage: Prestage) -> None:
    """The images phase stops at prestage_images_timeout with a clear reason, writes no archive,
    and a rerun on a good link copies the images and completes."""
    name = simplex(lab)[2]
    prestage.clean(name)
    assert prestage.run(name).complete(name)
    # an empty local registry: every image has to travel again
    with fault(lab, "registry-down", name):
        prestage.inside(name, "rm -rf /var/lib/docker-distribution/docker")
    prestage.inside(name, f"rm -f /opt/platform-backup/{RELEASE}/local_registry_filesystem.tgz")
    with fault(lab, "slow-link", name, "256kbit"):
        run = prestage.run(name, extra={"prestage_images_timeout": 3})
    result = run.task(name, "images")
    assert result is not None and result["failed"] and result["prestage_timeout"] is True
    assert result["msg"] == (
        "Prestaging images timed out after 3 seconds (prestage_images_timeout)"
    )
    assert not run.complete(name)
    assert not (prestage.release_dir(name) / "local_registry_filesystem.tgz").exists()

    rerun = prestage.run(name)
    assert rerun.rc == 0 and rerun.complete(name), rerun.stdout[-3000:]
    images = rerun.task(name, "images")
    assert images["copied"] and images["archive"]["made"]


def test_corrupt_archive_is_removed_and_fails(lab, prestage: Prestage) -> None:
    """No room for the registry archive: tar fails mid-write, the incomplete archive is removed
    and the images phase fails."""
    name = simplex(lab)[1]
    _size, usage = prestage.feed_usage()
    room = f"{(usage + 256 * 1024) // 1024}k"  # the release fits, its registry archive does not
    with fault(lab, "disk-full", name, room):
        run = prestage.run(name)
        assert run.task(name, "packages")["prestage_packages_verified"], run.stdout[-3000:]
        message = assert_failed(run, name, "images")
        assert "local_registry_filesystem.tgz" in message and "removed" in message
        listing = prestage.inside(name, f"ls -A /opt/platform-backup/{RELEASE}").stdout.split()
        assert not [n for n in listing if n.startswith("local_registry_filesystem.tgz")]
