"""Consumer checks (lab/labctl/consumers.py) on the live lab: after a real for-install prestage
of 25.09 on a 24.09 subcloud (the SC pushes the release) and on a 25.09 one (its own feed), every
later reader of the content takes it (STARLINGX.md §6); and each one refuses wrong content with
one line saying why. Wrong content is always a copy in the subcloud's /tmp: the prestaged files
are never edited in place. Both subclouds are reset (`lab reset`) before and after.

Run on a lab that is already up with its own size: DCPRESTAGE_LAB_SUBCLOUDS=<its N>.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator

import pytest
import yaml
from labctl import consumers
from labctl.consumers import ConsumerFailed
from labctl.testing import Lab

from tests.conftest import ROOT, VENV_BIN

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
]

RELEASE = "25.09"
REMOTE = "subcloud4"  # a 24.09 subcloud: the system controller pushes 25.09 to it
LOCAL = "subcloud1"  # a 25.09 subcloud: 25.09 comes from its own feed
PRESTAGED = f"/opt/platform-backup/{RELEASE}"
# StarlingX's checksum command (PR:prestage-sw-packages/tasks/main.yml:70-74, recomputed the
# same way by MT:kickstart/files/miniboot.cfg:2176-2191), for copies that must stay consistent.
MD5 = "find ostree_repo -type f -exec md5sum {} + | LC_ALL=C sort | md5sum | awk '{print $1}'"
CHECKSUM = f"{MD5} > .ostree_repo_checksum"


def commits(lab: Lab, release: str) -> dict[str, str]:
    """<release>.<n> -> commit of the system controller's feed."""
    return dict(lab.host_info(lab.sc)["content"]["feeds"][release]["commits"])


def feed_head(lab: Lab, subcloud: str, release: str) -> str:
    """The subcloud's own feed commit on starlingx (what a local prestage copies)."""
    repo = f"/var/www/pages/feed/rel-{release}/ostree_repo"
    return lab.inside(subcloud, f"ostree --repo={repo} rev-parse starlingx").stdout.strip()


@pytest.fixture(scope="module")
def prestaged(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """REMOTE and LOCAL prestaged for install of RELEASE by the real playbook, from scratch."""
    for subcloud, release in ((REMOTE, "24.09"), (LOCAL, RELEASE)):
        assert lab.host_info(subcloud)["release"] == release, f"{subcloud} must run {release}"
    work = tmp_path_factory.mktemp("consumers")
    secrets = work / "secrets.yml"
    fd = os.open(secrets, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump({"sysadmin_password": lab.password}, handle)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DCPRESTAGE", "ANSIBLE"))},
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "DCPRESTAGE_STATE_DIR": str(work / "state"),
    }  # fmt: skip
    lab.reset(REMOTE, LOCAL)  # as `lab up` makes them: nothing prestaged, no image pulled
    try:
        result = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(lab.inventory),
             str(ROOT / "playbooks" / "prestage.yml"), "-l", f"{REMOTE},{LOCAL}",
             "-e", f"@{secrets}", "-e", f"release={RELEASE}", "-e", "prestage_type=for_install"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        for subcloud in (REMOTE, LOCAL):
            for name in ("ostree_repo", ".ostree_repo_checksum", "local_registry_filesystem.tgz"):
                assert lab.path(subcloud, f"{PRESTAGED}/{name}").exists(), (subcloud, name)
        yield lab
    finally:
        lab.reset(REMOTE, LOCAL)
        for subcloud in (REMOTE, LOCAL):
            assert not list(lab.path(subcloud, "/opt/platform-backup").iterdir())


@pytest.fixture
def copy(prestaged: Lab) -> Iterator[Callable[[str], str]]:
    """copy(subcloud) -> a scratch copy of its PRESTAGED (a path inside the subcloud); every
    copy and every scratch file of the checks is gone afterwards."""
    made: list[tuple[str, str]] = []

    def make(subcloud: str) -> str:
        scratch = prestaged.inside(subcloud, "mktemp -d /tmp/test-consumers.XXXXXX").stdout.strip()
        made.append((subcloud, scratch))
        prestaged.inside(subcloud, f"cp -a {PRESTAGED} {scratch}/{RELEASE}")
        return f"{scratch}/{RELEASE}"

    yield make
    for subcloud, scratch in made:
        prestaged.inside(subcloud, f"rm -rf {scratch}")
    for subcloud in (REMOTE, LOCAL):
        assert not list(prestaged.path(subcloud, "/tmp").glob("dcp-consume-*"))
        assert not list(prestaged.path(subcloud, "/tmp").glob("test-consumers.*"))
    leftovers = subprocess.run(["pgrep", "-f", "dcp-consume-registry-"], capture_output=True,
                               text=True, check=False).stdout.split()  # fmt: skip
    assert not leftovers, "a scratch registry is still running"


def flip_byte(lab: Lab, subcloud: str, repo: str) -> str:
    """Flip one bit in the middle of the largest content object of repo (a copy); returns the
    object's file name."""
    objects = lab.path(subcloud, f"{repo}/objects")
    target = max(objects.glob("*/*.filez"), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    return target.name


def fails(call: Callable[[], object], *expected: str) -> str:
    """call raises ConsumerFailed whose one-line message holds every expected part."""
    with pytest.raises(ConsumerFailed) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message
    print(f"refused: {message}")  # shown by pytest -rP
    return message


# ------------------------------------------------------------------- what was prestaged


def test_miniboot_installs_from_the_prestaged_repo(prestaged: Lab) -> None:
    paths = prestaged.paths
    # REMOTE got the SC's feed, patch commit on top; LOCAL its own feed, at its own level
    # (STARLINGX.md §2.1 step 2).
    remote = consumers.miniboot(paths, REMOTE, RELEASE, require_checksum=True)
    assert remote == commits(prestaged, RELEASE)[f"{RELEASE}.1"]
    local = consumers.miniboot(paths, LOCAL, RELEASE, require_checksum=True)
    assert local == feed_head(prestaged, LOCAL, RELEASE)


def test_bootstrap_restores_every_listed_image(prestaged: Lab) -> None:
    images = consumers.release_images(prestaged.paths, RELEASE)
    assert len(images) >= 3
    for subcloud in (REMOTE, LOCAL):
        assert consumers.bootstrap(prestaged.paths, subcloud, RELEASE, images) == len(images)
        assert consumers.local_images(prestaged.paths, subcloud, images) == len(images)


def test_the_subclouds_own_state_satisfies_usm_and_dcmanager(prestaged: Lab) -> None:
    paths = prestaged.paths
    base = commits(prestaged, RELEASE)[f"{RELEASE}.0"]
    assert consumers.software_list(paths, LOCAL, f"starlingx-{RELEASE}.0", "deployed")
    assert consumers.ostree_log(paths, LOCAL, RELEASE, feed_head(prestaged, LOCAL, RELEASE)) == 0
    assert consumers.ostree_log(paths, LOCAL, RELEASE, base) >= 0
    assert consumers.install_uuid(paths, LOCAL, RELEASE)
    assert consumers.install_uuid(paths, REMOTE, "24.09")
    assert "already deployed" in consumers.sw_deploy_precheck(
        paths, LOCAL, f"starlingx-{RELEASE}.0"
    )
    # the prestaged repo holds the SC's patch commit, which USM deploy start looks for
    patch = commits(prestaged, RELEASE)[f"{RELEASE}.1"]
    assert consumers.ostree_log(paths, REMOTE, RELEASE, patch, repo=f"{PRESTAGED}/ostree_repo") == 0


def test_cli_reports_ok_and_failure_in_one_line(prestaged: Lab) -> None:
    env = {**os.environ, "DCPRESTAGE_LAB_DIR": str(prestaged.paths.root)}
    lab_command = str(ROOT / "lab" / "lab")
    ok = subprocess.run([lab_command, "consume", "miniboot", REMOTE, RELEASE,
                         "--require-checksum"], capture_output=True, text=True, env=env,
                        check=False, timeout=120)  # fmt: skip
    assert (ok.returncode, ok.stderr) == (0, ""), ok.stderr
    assert ok.stdout.startswith("ok: ") and ok.stdout.count("\n") == 1
    bad = subprocess.run([lab_command, "consume", "sw-deploy-precheck", LOCAL,
                          "starlingx-24.09.1"], capture_output=True, text=True, env=env,
                         check=False, timeout=120)  # fmt: skip
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert (
        bad.stderr == "failed: sw-deploy pre_check: Release starlingx-24.09.1 is not prestaged.\n"
    )


# ------------------------------------------------------------------------ wrong content


def test_miniboot_refuses_a_flipped_byte(prestaged: Lab, copy: Callable[[str], str]) -> None:
    source = copy(REMOTE)
    flip_byte(prestaged, REMOTE, f"{source}/ostree_repo")
    fails(
        lambda: consumers.miniboot(prestaged.paths, REMOTE, RELEASE, source=source),
        "ostree checksum failed",
        "miniboot would delete it",
    )


def test_miniboot_without_checksum_file_runs_fsck(
    prestaged: Lab, copy: Callable[[str], str]
) -> None:
    paths = prestaged.paths
    source = copy(REMOTE)
    prestaged.inside(REMOTE, f"rm {source}/.ostree_repo_checksum")
    # an intact repo passes miniboot's fallback; prestage must still have written the file
    assert consumers.miniboot(paths, REMOTE, RELEASE, source=source) == commits(
        prestaged, RELEASE)[f"{RELEASE}.1"]  # fmt: skip
    fails(
        lambda: consumers.miniboot(paths, REMOTE, RELEASE, source=source, require_checksum=True),
        "no",
        ".ostree_repo_checksum",
        "fall back to ostree fsck",
    )
    name = flip_byte(prestaged, REMOTE, f"{source}/ostree_repo")
    fails(
        lambda: consumers.miniboot(paths, REMOTE, RELEASE, source=source),
        "ostree fsck failed",
        name.split(".")[0][2:12],
        "Corrupted file object",
    )


def test_miniboot_refuses_an_object_corrupted_before_its_checksum(
    prestaged: Lab, copy: Callable[[str], str]
) -> None:
    source = copy(LOCAL)
    flip_byte(prestaged, LOCAL, f"{source}/ostree_repo")
    prestaged.inside(LOCAL, f"cd {source} && {CHECKSUM}")
    fails(
        lambda: consumers.miniboot(prestaged.paths, LOCAL, RELEASE, source=source),
        "ostree fsck of the pulled repo",
        "Corrupted file object",
    )


def test_miniboot_refuses_a_missing_repo_or_ref(prestaged: Lab, copy: Callable[[str], str]) -> None:
    paths = prestaged.paths
    source = copy(LOCAL)
    # the ref gone from refs/heads and from the summary a mirror pull reads
    prestaged.inside(LOCAL, f"cd {source} && rm ostree_repo/refs/heads/starlingx && "
                     f"ostree --repo=ostree_repo summary -u && {CHECKSUM}")  # fmt: skip
    fails(
        lambda: consumers.miniboot(paths, LOCAL, RELEASE, source=source),
        "ostree pull --depth=-1 --mirror starlingx:starlingx",
        "No such branch 'starlingx'",
    )
    prestaged.inside(LOCAL, f"rm -rf {source}/ostree_repo")
    fails(
        lambda: consumers.miniboot(paths, LOCAL, RELEASE, source=source),
        f"no prestaged {source}/ostree_repo",
        "pull the release from the system controller",
    )


def test_bootstrap_refuses_an_archive_of_the_old_layout(
    prestaged: Lab, copy: Callable[[str], str]
) -> None:
    images = consumers.release_images(prestaged.paths, RELEASE)
    source = copy(REMOTE)
    archive = f"{source}/local_registry_filesystem.tgz"
    # members ./docker/... instead of var/lib/docker-distribution/...
    prestaged.inside(REMOTE, f"tar -C /var/lib/docker-distribution -czf {archive} .")
    fails(
        lambda: consumers.bootstrap(prestaged.paths, REMOTE, RELEASE, images, source=source),
        "restoring",
        "var/lib/docker-distribution: Not found in archive",
    )
    prestaged.inside(REMOTE, f"echo not-gzip >{archive}")
    fails(
        lambda: consumers.bootstrap(prestaged.paths, REMOTE, RELEASE, images, source=source),
        "restoring",
        "unrecognized format",
        "This does not look like a tar archive",
    )
    prestaged.inside(REMOTE, f"rm {archive}")
    fails(
        lambda: consumers.bootstrap(prestaged.paths, REMOTE, RELEASE, images, source=source),
        f"no {archive}",
        "pull every image",
    )


def test_bootstrap_refuses_an_archive_missing_an_image(
    prestaged: Lab, copy: Callable[[str], str]
) -> None:
    images = consumers.release_images(prestaged.paths, RELEASE)
    missing = consumers.Image.parse(images[-1])
    source = copy(LOCAL)
    storage = "var/lib/docker-distribution/docker/registry/v2/repositories"
    prestaged.inside(LOCAL, (
        f"set -e; cd {source}; mkdir root; pigz -dc local_registry_filesystem.tgz | "
        f"tar -C root -xpf -; rm -rf root/{storage}/{missing.path}; "
        # made as StarlingX makes it (PB:roles/common/generate-registry-filesystem-archive/
        # tasks/main.yml:39-48), from the scratch root
        "tar --use-compress-program=pigz -C root -cf local_registry_filesystem.tgz "
        "var/lib/docker-distribution; rm -rf root"
    ))  # fmt: skip
    fails(
        lambda: consumers.bootstrap(prestaged.paths, LOCAL, RELEASE, images, source=source),
        f"{missing.local} is not pullable from the registry restored from {source}",
        "not found",
    )


def test_local_images_refuses_a_missing_image(prestaged: Lab) -> None:
    paths = prestaged.paths
    images = consumers.release_images(paths, RELEASE)
    # 24.09's images are in registry.central, never in a 25.09 subcloud's registry.local
    other = consumers.Image.parse(consumers.release_images(paths, "24.09")[0])
    status, _body = prestaged.registry_api(
        prestaged.registry(LOCAL), f"/v2/{other.path}/manifests/{other.reference}"
    )
    assert status == 404
    fails(
        lambda: consumers.local_images(paths, LOCAL, [*images, other.public]),
        f"{other.local} is not pullable from {LOCAL}'s registry.local:9001",
        "not found",
    )
    # a for-install prestage pulls nothing with crictl (STARLINGX.md §8: crictl is sw-deploy's)
    listed = prestaged.inside(LOCAL, "crictl images --output=json").stdout
    unlisted = [i for i in images if consumers.Image.parse(i).local not in listed]
    assert unlisted, "crictl on the subcloud already lists every image"
    fails(
        lambda: consumers.local_images(paths, LOCAL, unlisted[:1], crictl=True),
        f"crictl images on {LOCAL} does not list {consumers.Image.parse(unlisted[0]).local}",
    )


def test_usm_and_dcmanager_refuse_what_is_not_there(
    prestaged: Lab, copy: Callable[[str], str]
) -> None:
    paths = prestaged.paths
    fails(
        lambda: consumers.software_list(paths, LOCAL, "starlingx-25.09.99", "available"),
        f"software list on {LOCAL} has no starlingx-25.09.99",
    )
    fails(
        lambda: consumers.software_list(paths, LOCAL, f"starlingx-{RELEASE}.0", "available"),
        f"shows starlingx-{RELEASE}.0 deployed, not available",
    )
    fails(
        lambda: consumers.sw_deploy_precheck(paths, LOCAL, "starlingx-25.09.99"),
        "Release starlingx-25.09.99 not found or not deployed in RegionOne",
    )
    # 24.09.1 is in RegionOne (any state: an older major release) but a 25.09 subcloud never
    # has it (DC:dcmanager/orchestrator/states/software/pre_check.py:299-306)
    fails(
        lambda: consumers.sw_deploy_precheck(paths, LOCAL, "starlingx-24.09.1"),
        "Release starlingx-24.09.1 is not prestaged.",
    )
    patch = commits(prestaged, RELEASE)[f"{RELEASE}.0"]
    fails(
        lambda: consumers.ostree_log(paths, REMOTE, "24.09", patch),
        f"{patch} is not in the starlingx log of /var/www/pages/feed/rel-24.09/ostree_repo",
        "compose the release from its packages",
    )
    fails(
        lambda: consumers.ostree_log(paths, LOCAL, "24.09", patch),
        "ostree log starlingx of /var/www/pages/feed/rel-24.09/ostree_repo",
        "failed",
    )
    # the software agent against a feed copy whose install_uuid is another host's
    feed = copy(LOCAL)
    prestaged.inside(LOCAL, f"echo 00000000-0000-4000-8000-000000000000 >{feed}/install_uuid")
    fails(
        lambda: consumers.install_uuid(paths, LOCAL, RELEASE, feed=feed),
        "install_uuid holds '00000000-0000-4000-8000-000000000000'",
        "platform.conf INSTALL_UUID is",
        "check fails",
    )
    prestaged.inside(LOCAL, f"rm {feed}/install_uuid")
    fails(
        lambda: consumers.install_uuid(paths, LOCAL, RELEASE, feed=feed),
        f"{feed}/install_uuid cannot be served",
    )


def test_checks_leave_the_prestaged_content_as_it_was(prestaged: Lab) -> None:
    """Nothing above changed what was prestaged (the copies took every tamper)."""
    for subcloud in (REMOTE, LOCAL):
        checksum = prestaged.path(subcloud, f"{PRESTAGED}/.ostree_repo_checksum").read_text()
        computed = prestaged.inside(subcloud, f"cd {PRESTAGED} && {MD5}")
        assert computed.stdout == checksum
