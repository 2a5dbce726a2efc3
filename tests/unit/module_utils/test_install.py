"""Prestage for install on the subcloud (plugins/module_utils/_install.py) against StarlingX's
prestage roles (PR: = PB:roles/prestage/):

- PR:prepare-env/tasks/main.yml (source), cleanup_prestage_dir.yml (cleanup);
- PR:prestage-sw-packages/tasks/main.yml (the push, the checksum, the marker);
- PR:prestage-patches/tasks/prestage-patch-metadata.yml (patch metadata);
- PR:get-prestage-versions/tasks/main.yml (prestage_versions), also run as an oracle when a
  StarlingX checkout is at hand (tests/unit/module_utils/stx_sources.py).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils import _install as install
from ansible_collections.distcloud.prestage.plugins.module_utils import _stx as stx
from tests.unit.module_utils.stx_sources import (
    get_prestage_versions_install,
    get_prestage_versions_sw_deploy,
    needs_get_prestage_versions,
)

MARKER = ".ostree_rsync_completed"


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_prestage_source_is_local_only_for_the_subclouds_own_release() -> None:
    """PR:prepare-env/tasks/main.yml:75-78."""
    assert install.prestage_source("25.09", "25.09") == "local"
    assert install.prestage_source("25.09", "24.09") == "remote"
    assert install.prestage_source("24.09", "25.09") == "remote"


# ---------------------------------------------------------------------- prestage_versions


def test_install_versions_are_marked_release_dirs_at_depth_two(tmp_path: Path) -> None:
    """get-prestage-versions/tasks/main.yml:27-52: Ansible's find (recurse, hidden, depth 2,
    file_type file - it lstat()s, so links are neither listed nor descended into), the parent
    names filtered by ^[1-9][0-9]*.[0-9]+$, sorted as strings."""
    base = tmp_path / "platform-backup"
    for name in ("25.09", "22.12", "24x09", "junk", "100.1"):
        touch(base / name / MARKER)
    touch(base / "24.09" / "ostree_repo" / "x")  # no marker
    touch(base / "26.10" / "deep" / MARKER)  # depth 3
    touch(base / MARKER)  # depth 1: parent is platform-backup
    (base / "23.09" / MARKER).mkdir(parents=True)  # not a file
    (base / "26.03").mkdir()
    (base / "26.03" / MARKER).symlink_to(base / "25.09" / MARKER)  # not a regular file
    (base / "21.12").symlink_to(base / "22.12")  # a link to a marked dir is not descended
    assert install.install_versions(str(base)) == ["100.1", "22.12", "24x09", "25.09"]
    assert install.install_versions(str(tmp_path / "missing")) == []


@needs_get_prestage_versions
def test_install_versions_match_ansible_find_of_the_role(tmp_path: Path) -> None:
    """The same tree through ansible-core's find module with the role's arguments."""
    base = tmp_path / "platform-backup"
    for name in ("25.09", "22.12", "24x09", "junk", "100.1", ".25.09"):
        touch(base / name / MARKER)
    touch(base / "26.10" / "deep" / MARKER)
    touch(base / MARKER)
    (base / "23.09" / MARKER).mkdir(parents=True)
    (base / "26.03").mkdir()
    (base / "26.03" / MARKER).symlink_to(base / "25.09" / MARKER)
    (base / "21.12").symlink_to(base / "22.12")
    expected = get_prestage_versions_install(tmp_path / "work", base)
    assert expected == "100.1,22.12,24x09,25.09"
    assert ",".join(install.install_versions(str(base))) == expected


def test_sw_deploy_versions_from_product_files_at_the_metadata_root(tmp_path: Path) -> None:
    """get-prestage-versions/tasks/main.yml:67-76: regular files '*-*-metadata.xml' at the root;
    the second '-' field, '.0' dropped, the highest per MM.mm (sort -V: 26.10.10 > 26.10.2)."""
    metadata = tmp_path / "metadata"
    for name in (
        "starlingx-26.10.0",
        "starlingx-26.10.2",
        "starlingx-26.10.10",
        "starlingx-25.09.0",
    ):
        touch(metadata / f"{name}-metadata.xml")
    touch(metadata / "deployed" / "starlingx-26.10.11-metadata.xml")  # not at the root
    touch(metadata / "available" / "starlingx-27.03.1-metadata.xml")  # product files win
    (metadata / "starlingx-26.10.12-metadata.xml").symlink_to("starlingx-26.10.0-metadata.xml")
    (metadata / "starlingx-26.10.13-metadata.xml.d").mkdir()
    (metadata / "x-26.10.14-metadata.xml").mkdir()  # a directory is not -type f
    assert install.sw_deploy_versions(str(metadata)) == ["25.09", "26.10.10"]


def test_sw_deploy_versions_fall_back_to_everything_below_available(tmp_path: Path) -> None:
    """get-prestage-versions/tasks/main.yml:78-87: `find <dir>/available/ -name '*.xml'` - any
    depth, any type - when the root has no product file."""
    metadata = tmp_path / "metadata"
    touch(metadata / "available" / "starlingx-24.09.0-metadata.xml")
    touch(metadata / "available" / "starlingx-24.09.3-metadata.xml")
    touch(metadata / "available" / "sub" / "starlingx-25.09.1-metadata.xml")
    (metadata / "available" / "starlingx-26.03.2-metadata.xml").mkdir()
    touch(metadata / "available" / "notes.txt")
    touch(metadata / "deployed" / "starlingx-24.09.4-metadata.xml")
    assert install.sw_deploy_versions(str(metadata)) == ["24.09.3", "25.09.1", "26.03.2"]


def test_sw_deploy_versions_fall_back_when_product_names_hold_no_version(tmp_path: Path) -> None:
    """The fallback is taken when the product list has no line (grep . drops empty versions)."""
    metadata = tmp_path / "metadata"
    touch(metadata / "a--metadata.xml")
    touch(metadata / "available" / "starlingx-24.09.1-metadata.xml")
    assert install.sw_deploy_versions(str(metadata)) == ["24.09.1"]


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("starlingx-25.09.0-metadata.xml", "25.09"),
        ("starlingx-25.10-metadata.xml", "25.10"),  # only a '.0' at the end goes
        ("starlingx-24.09.10-metadata.xml", "24.09.10"),
        ("starlingx-24.09.0.0-metadata.xml", "24.09.0"),
        ("stx_kernel-24.09.1-x-metadata.xml", "24.09.1"),
    ],
)
def test_sw_deploy_version_is_the_second_dash_field_without_a_trailing_0(
    tmp_path: Path, name: str, version: str
) -> None:
    touch(tmp_path / "available" / name)
    assert install.sw_deploy_versions(str(tmp_path)) == [version]


def test_prestage_versions_line_as_get_prestage_versions_prints_it(tmp_path: Path) -> None:
    """get-prestage-versions/tasks/main.yml:49-52,98-105: comma-joined, 'None' when empty."""
    base, metadata = tmp_path / "pb", tmp_path / "metadata"
    base.mkdir()
    metadata.mkdir()
    assert install.prestage_versions(str(base), str(metadata)) == (
        "for-install: None - for-sw-deploy: None"
    )
    touch(base / "25.09" / MARKER)
    touch(base / "24.09" / MARKER)
    touch(metadata / "available" / "starlingx-25.09.2-metadata.xml")
    touch(metadata / "available" / "starlingx-26.03.0-metadata.xml")
    assert install.prestage_versions(str(base), str(metadata)) == (
        "for-install: 24.09,25.09 - for-sw-deploy: 25.09.2,26.03"
    )


SW_DEPLOY_TREES = {
    "product": [
        "starlingx-26.10.0-metadata.xml",
        "starlingx-26.10.2-metadata.xml",
        "starlingx-26.10.10-metadata.xml",
        "starlingx-25.09.0-metadata.xml",
        "deployed/starlingx-26.10.11-metadata.xml",
        "available/starlingx-27.03.1-metadata.xml",
        "x-26.10.14-metadata.xml/",
        "a--metadata.xml",
    ],
    "legacy": [
        "available/starlingx-24.09.0-metadata.xml",
        "available/starlingx-24.09.3-metadata.xml",
        "available/sub/starlingx-25.09.1-metadata.xml",
        "available/starlingx-26.03.2-metadata.xml/",
        "available/notes.txt",
        "deployed/starlingx-24.09.4-metadata.xml",
        "available/starlingx-25.10-metadata.xml",
        "available/a-b.c-metadata.xml",
    ],
    "empty-product": ["a--metadata.xml", "available/starlingx-24.09.1-metadata.xml"],
    "nothing": ["deployed/starlingx-24.09.4-metadata.xml"],
    "no-dir": [],
}


@needs_get_prestage_versions
@pytest.mark.parametrize("tree", sorted(SW_DEPLOY_TREES))
def test_sw_deploy_versions_match_get_prestage_versions_shell(tmp_path: Path, tree: str) -> None:
    """The role's own find | awk | sed | sort -V | awk | grep commands, read from its YAML."""
    metadata = tmp_path / "metadata"
    for entry in SW_DEPLOY_TREES[tree]:
        if entry.endswith("/"):
            (metadata / entry).mkdir(parents=True)
        else:
            touch(metadata / entry)
    ours = ",".join(install.sw_deploy_versions(str(metadata))) or "None"
    assert ours == get_prestage_versions_sw_deploy(tmp_path, metadata)


# ---------------------------------------------------------------------------------- plan

CHECKSUM = "0123456789abcdef0123456789abcdef"
SC = {
    "ostree": {"checksum": CHECKSUM, "usage": 10_000},
    "patch_metadata": {"digest": "d" * 32, "usage": 2_000},
    "min_supported_release": "24.09",
}
CURRENT = {
    "marker": True,
    "recorded_checksum": CHECKSUM,
    "patch_metadata_digest": "d" * 32,
    "usage": 12_000,
}


def plan(tmp_path: Path, release: str = "25.09", host: str = "24.09", sc=None, **state) -> dict:
    return install.plan(
        release, host, SC if sc is None else sc, {**CURRENT, **state}, [], base=str(tmp_path)
    )


def test_plan_is_up_to_date_only_when_marker_checksum_and_metadata_match(tmp_path: Path) -> None:
    """Our departure (SPEC §10): a remote prestage whose marker, recorded checksum (the system
    controller's) and patch metadata are in place moves nothing."""
    current = plan(tmp_path)
    assert (current["source"], current["up_to_date"], current["push"]) == ("remote", True, [])
    assert current["needed_bytes"] == 0
    for changed in (
        {"marker": False},
        {"recorded_checksum": "f" * 32},
        {"recorded_checksum": None},
        {"patch_metadata_digest": "e" * 32},
        {"patch_metadata_digest": None},
    ):
        assert plan(tmp_path, **changed)["up_to_date"] is False, changed


def test_plan_pushes_the_repo_and_metadata_that_are_not_current(tmp_path: Path) -> None:
    """Remote: the system controller pushes ostree_repo (prestage-sw-packages/tasks/main.yml:
    35-68) and the patch metadata (prestage-patch-metadata.yml:14-43); a current repo is kept."""
    assert plan(tmp_path, marker=False)["push"] == ["ostree", "patch_metadata"]
    assert plan(tmp_path, recorded_checksum="f" * 32)["push"] == ["ostree", "patch_metadata"]
    assert plan(tmp_path, patch_metadata_digest="e" * 32)["push"] == ["patch_metadata"]
    no_metadata = dict(SC, patch_metadata=None)
    assert plan(tmp_path, sc=no_metadata, marker=False)["push"] == ["ostree"]
    assert plan(tmp_path, sc=no_metadata, patch_metadata_digest=None)["up_to_date"] is True


def test_plan_local_source_copies_locally_and_takes_metadata_from_the_sc_from_24_09(
    tmp_path: Path,
) -> None:
    """Local (the subcloud's own release): rsync -ap --delete from its feed, never up to date
    (prestage-sw-packages/tasks/main.yml:31-33); its patch metadata too before 24.09, the
    system controller's from 24.09 on (prestage-patch-metadata.yml:10-43)."""
    local = plan(tmp_path, release="25.09", host="25.09", marker=False)
    assert (local["source"], local["up_to_date"], local["push"]) == (
        "local",
        False,
        ["patch_metadata"],
    )
    assert plan(tmp_path, release="25.09", host="25.09")["up_to_date"] is False
    old = plan(tmp_path, release="22.12", host="22.12", marker=False)
    assert (old["source"], old["push"]) == ("local", [])
    assert plan(tmp_path, release="22.12", host="21.12", marker=False)["push"] == [
        "ostree",
        "patch_metadata",
    ]


def test_plan_needs_what_is_missing_of_the_repo_and_metadata(tmp_path: Path) -> None:
    assert plan(tmp_path, marker=False, usage=3_000)["needed_bytes"] == 12_000 - 3_000
    assert plan(tmp_path, marker=False, usage=50_000)["needed_bytes"] == 0
    assert plan(tmp_path, marker=False, usage=0)["needed_bytes"] == 12_000


def test_plan_prunes_real_release_dirs_below_the_minimum_but_the_release(tmp_path: Path) -> None:
    """cleanup_prestage_dir.yml:84-96 finds directories only (file_type=directory, lstat)."""
    for name in ("21.12", "22.12", "24.09", "25.09"):
        (tmp_path / name).mkdir()
    (tmp_path / "22x12").write_text("a file")
    (tmp_path / "23.09").symlink_to("21.12")
    names = os.listdir(tmp_path)
    result = install.plan("25.09", "24.09", SC, CURRENT, names, base=str(tmp_path))
    assert sorted(result["prune"]) == ["21.12", "22.12"]
    assert result["minimum"] == "24.09"
    below = install.plan("22.12", "22.12", SC, CURRENT, names, base=str(tmp_path))
    assert below["prune"] == ["21.12"]


# ------------------------------------------------------------------------------ transfers


def _holding_content(base: Path, release: str) -> Path:
    for part in ("ostree_repo", "patches/metadata"):
        (base / release / part).mkdir(parents=True)
        (base / release / part / "old").write_text("x")
    return base


def test_transfers_use_starlingx_rsync_options_and_end_owned_by_sysadmins_group(
    tmp_path: Path,
) -> None:
    """prestage-sw-packages/tasks/main.yml:47-59 (--delete --chmod=ugo+rw --exclude=*/~.tmp~;
    synchronize adds --archive --delay-updates) and prestage-patch-metadata.yml:196-205
    (--delete); files pushed as sysadmin then chowned back to root keep sysadmin's group."""
    base = _holding_content(tmp_path, "25.09")
    ostree, metadata = install.transfers(
        "25.09", ["ostree", "patch_metadata"], "sys_protected", base=str(base)
    )
    assert ostree["source"] == "/var/www/pages/feed/rel-25.09/ostree_repo/"
    assert ostree["dest"] == f"{base}/25.09/ostree_repo/"
    assert ostree["options"] == [
        "--archive",
        "--delay-updates",
        "--delete",
        "--chmod=ugo+rw",
        "--exclude=*/~.tmp~",
        "--chown=root:sys_protected",
    ]
    assert metadata["source"] == "/opt/software/metadata/"
    assert metadata["dest"] == f"{base}/25.09/patches/metadata/"
    assert metadata["options"] == [
        "--archive",
        "--delay-updates",
        "--delete",
        "--exclude=/unavailable",
        "--exclude=/committed",
        "--chown=root:sys_protected",
    ]
    (old,) = install.transfers("22.12", ["patch_metadata"], "root", base=str(base))
    assert "--exclude=/available" in old["options"] and old["options"][-1] == "--chown=root:root"
    (component,) = install.transfers("26.10", ["patch_metadata"], "g")
    assert component["source"] == "/opt/software/releases/metadata/"
    assert install.transfers("25.09", [], "g") == []
    assert all("--compress" not in run["options"] for run in (ostree, metadata))


def test_a_first_copy_into_an_empty_destination_has_no_delay_updates(tmp_path: Path) -> None:
    """Nothing there to keep whole while it is updated (the departure at DELAY_UPDATES): absent
    or empty destinations get StarlingX's options less --delay-updates; one holding anything, all
    of them. The default base is /opt/platform-backup."""
    (tmp_path / "25.09" / "ostree_repo").mkdir(parents=True)  # prepare_dirs made it: empty
    ostree, metadata = install.transfers(
        "25.09", ["ostree", "patch_metadata"], "g", base=str(tmp_path)
    )
    assert ostree["options"] == [
        o for o in install.OSTREE_PUSH_OPTIONS if o != "--delay-updates"
    ] + ["--chown=root:g"]
    assert "--delay-updates" not in metadata["options"]
    assert ostree["dest"] == f"{tmp_path}/25.09/ostree_repo/"
    (tmp_path / "25.09" / "ostree_repo" / "config").write_text("[core]\n")
    ostree, metadata = install.transfers(
        "25.09", ["ostree", "patch_metadata"], "g", base=str(tmp_path)
    )
    assert "--delay-updates" in ostree["options"]
    assert "--delay-updates" not in metadata["options"]
    (tmp_path / "26.03").mkdir()
    (tmp_path / "26.03" / "ostree_repo").write_text("a file where a tree should be")
    (odd,) = install.transfers("26.03", ["ostree"], "g", base=str(tmp_path))
    assert "--delay-updates" in odd["options"]  # not known empty: StarlingX's options
    (default,) = install.transfers("25.09", ["ostree"], "g")
    assert default["dest"] == "/opt/platform-backup/25.09/ostree_repo/"


def test_sysadmin_group_is_its_primary_group(monkeypatch: pytest.MonkeyPatch) -> None:
    class Entry:
        pw_gid = 751
        gr_name = "sys_protected"

    monkeypatch.setattr(
        install.pwd, "getpwnam", lambda name: Entry() if name == "sysadmin" else 1 / 0
    )
    monkeypatch.setattr(install.grp, "getgrgid", lambda gid: Entry() if gid == 751 else 1 / 0)
    assert install.sysadmin_group() == "sys_protected"

    def missing(name: str) -> None:
        raise KeyError(name)

    monkeypatch.setattr(install.pwd, "getpwnam", missing)
    assert install.sysadmin_group() == "root"


# -------------------------------------------------------------------------------- cleanup


@pytest.fixture
def no_metadata_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The subcloud's metadata dir for the release points into the scratch tree (absent)."""
    metadata = tmp_path / "software" / "metadata"
    monkeypatch.setattr(stx, "metadata_dir", lambda release: str(metadata))
    return metadata


def test_cleanup_removes_patches_when_the_subcloud_has_no_metadata_dir(
    tmp_path: Path, no_metadata_dir: Path
) -> None:
    """cleanup_prestage_dir.yml:22-26 (host_patches_exist: prepare-sw-packages-prestage-env.yml:
    34-41); file: state=absent takes a file as well."""
    base = tmp_path / "pb"
    touch(base / "25.09" / "patches" / "metadata" / "deployed" / "x.xml")
    assert install.cleanup("25.09", "25.09", None, str(base)) == [f"removed {base}/25.09/patches"]
    assert not (base / "25.09" / "patches").exists()
    touch(base / "25.09" / "patches", "a file")
    install.cleanup("25.09", "25.09", None, str(base))
    assert not (base / "25.09" / "patches").exists()
    no_metadata_dir.mkdir(parents=True)
    touch(base / "25.09" / "patches" / "metadata" / "x.xml")
    assert install.cleanup("25.09", "25.09", None, str(base)) == []
    assert (base / "25.09" / "patches" / "metadata" / "x.xml").is_file()


def test_cleanup_moves_the_unversioned_22_12_layout(tmp_path: Path, no_metadata_dir: Path) -> None:
    """cleanup_prestage_dir.yml:33-56: /opt/platform-backup/{ostree_repo,.ostree_repo_checksum}
    go into 22.12/."""
    base = tmp_path / "pb"
    touch(base / "ostree_repo" / "config", "[core]\n")
    touch(base / ".ostree_repo_checksum", CHECKSUM + "\n")
    done = install.cleanup("25.09", "25.09", "22.12", str(base))
    assert done == [f"moved {base}/ostree_repo into {base}/22.12"]
    assert (base / "22.12" / "ostree_repo" / "config").read_text() == "[core]\n"
    assert (base / "22.12" / ".ostree_repo_checksum").read_text() == CHECKSUM + "\n"
    assert not (base / "ostree_repo").exists() and not (base / ".ostree_repo_checksum").exists()


def test_cleanup_moves_a_22_12_repo_without_checksum(tmp_path: Path, no_metadata_dir: Path) -> None:
    base = tmp_path / "pb"
    touch(base / "ostree_repo" / "config")
    install.cleanup("25.09", "25.09", None, str(base))
    assert (base / "22.12" / "ostree_repo" / "config").is_file()
    assert not (base / "22.12" / ".ostree_repo_checksum").exists()


def test_cleanup_prunes_the_moved_22_12_repo_below_the_minimum(
    tmp_path: Path, no_metadata_dir: Path
) -> None:
    """The move (33-56) comes before the pruning (84-96), whose find sees 22.12/ then."""
    base = tmp_path / "pb"
    touch(base / "ostree_repo" / "config")
    assert install.cleanup("25.09", "25.09", "24.09", str(base)) == [
        f"moved {base}/ostree_repo into {base}/22.12",
        f"removed {base}/22.12",
    ]
    assert os.listdir(base) == []


def test_cleanup_prunes_only_real_directories(tmp_path: Path, no_metadata_dir: Path) -> None:
    """cleanup_prestage_dir.yml:84-96 deletes what find file_type=directory listed."""
    base = tmp_path / "pb"
    touch(base / "22.12" / "ostree_repo" / "x")
    touch(base / "22x12" / "ostree_repo" / "x")  # the unescaped dot
    touch(base / "24.09" / "ostree_repo" / "x")
    touch(base / "21.12", "a file")
    (base / "23.09").symlink_to("22.12")
    done = install.cleanup("25.09", "25.09", "24.09", str(base))
    assert sorted(done) == [f"removed {base}/22.12", f"removed {base}/22x12"]
    assert sorted(os.listdir(base)) == ["21.12", "23.09", "24.09"]
    assert (base / "21.12").is_file() and (base / "23.09").is_symlink()
    touch(base / "22.12" / "ostree_repo" / "x")
    assert install.cleanup("22.12", "22.12", "24.09", str(base)) == []  # never the release itself
    assert (base / "22.12" / "ostree_repo" / "x").is_file()


def test_prepare_dirs_creates_the_targets_and_drops_a_stale_marker(tmp_path: Path) -> None:
    """prestage-sw-packages/tasks/main.yml:19-29, prestage-patches/tasks/main.yml:12-17."""
    assert install.prepare_dirs("25.09", str(tmp_path)) is False
    assert (tmp_path / "25.09" / "ostree_repo").is_dir()
    assert (tmp_path / "25.09" / "patches" / "metadata").is_dir()
    touch(tmp_path / "25.09" / MARKER)
    assert install.prepare_dirs("25.09", str(tmp_path)) is True
    assert not (tmp_path / "25.09" / MARKER).exists()


def test_prune_metadata_from_24_09_drops_unavailable_and_committed(tmp_path: Path) -> None:
    """prestage-patch-metadata.yml:64-73 (file: state=absent: a file goes as well)."""
    metadata = tmp_path / "25.09" / "patches" / "metadata"
    for state in ("available", "deployed", "unavailable"):
        touch(metadata / state / f"starlingx-25.09.1-{state}.xml")
    touch(metadata / "committed", "a file")
    install.prune_metadata("25.09", str(tmp_path))
    assert sorted(os.listdir(metadata)) == ["available", "deployed"]


def test_prune_metadata_before_24_09_keeps_the_release_s_applied_and_committed(
    tmp_path: Path,
) -> None:
    """prestage-patch-metadata.yml:45-58: available/ goes; applied/ and committed/ files without
    <sw_version>22.12</sw_version> (grep -L, a regular expression) go."""
    metadata = tmp_path / "22.12" / "patches" / "metadata"
    touch(metadata / "available" / "a.xml", "<sw_version>22.12</sw_version>")
    touch(metadata / "applied" / "mine.xml", "<patch><sw_version>22.12</sw_version></patch>")
    touch(metadata / "applied" / "other.xml", "<patch><sw_version>21.12</sw_version></patch>")
    touch(metadata / "committed" / "dot.xml", "<patch><sw_version>22x12</sw_version></patch>")
    touch(metadata / "committed" / "none.xml", "<patch/>")
    install.prune_metadata("22.12", str(tmp_path))
    assert not (metadata / "available").exists()
    assert os.listdir(metadata / "applied") == ["mine.xml"]
    assert os.listdir(metadata / "committed") == ["dot.xml"]


# ------------------------------------------------------------------------- checksum, marker

ODD_NAMES = (
    b"config",
    b"objects/ab/cdef.filez",
    b"refs/heads/starlingx",
    b"with space/and  two",
    b"back\\slash",
    b"new\nline",
    b"both\\and\nnewline",
    b"tab\there",
    b"latin1-\xe9\xff",
    b"-leading-dash",
    b"deep/er/and/deeper/file",
)


def make_repo(parent: Path, names: tuple[bytes, ...] = ODD_NAMES) -> Path:
    root = os.fsencode(str(parent / "ostree_repo"))
    for index, name in enumerate(names):
        path = root + b"/" + name
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"content %d\n" % index * (index + 1))
    os.makedirs(root + b"/empty-dir", exist_ok=True)
    os.symlink(b"config", root + b"/link-to-config")  # find -type f leaves links out
    return parent


def starlingx_checksum(prestage_dir: Path) -> str:
    """PR:prestage-sw-packages/tasks/main.yml:70-74, as run there."""
    result = subprocess.run(
        "find ostree_repo -type f -exec md5sum {} + | LC_ALL=C sort | md5sum | awk '{ print $1; }'",
        shell=True,
        cwd=prestage_dir,
        capture_output=True,
        check=True,
    )
    return result.stdout.decode().strip()


def test_ostree_checksum_is_starlingx_s_on_odd_file_names(tmp_path: Path) -> None:
    """Spaces, backslashes and newlines (md5sum escapes the last two), tabs, bytes that are not
    UTF-8; links and empty directories do not count."""
    make_repo(tmp_path)
    result = content.ostree_checksum(str(tmp_path))
    assert result["checksum"] == starlingx_checksum(tmp_path)
    assert result["files"] == len(ODD_NAMES)


def test_verify_and_mark_writes_the_checksum_then_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prestage-sw-packages/tasks/main.yml:70-79: .ostree_repo_checksum (32 hex + newline),
    then .ostree_rsync_completed."""
    directory = make_repo(tmp_path / "25.09")
    expected = starlingx_checksum(directory)
    written: list[str] = []
    original = content.atomic_write

    def recording(path: str, data: str, mode: int = 0o644) -> None:
        written.append(os.path.basename(path))
        original(path, data, mode)

    monkeypatch.setattr(content, "atomic_write", recording)
    computed = install.verify_and_mark("25.09", expected, None, str(tmp_path))
    assert computed["checksum"] == expected
    assert written == [".ostree_repo_checksum", MARKER]
    checksum_text = (directory / ".ostree_repo_checksum").read_text()
    assert re.fullmatch(r"[0-9a-f]{32}\n", checksum_text) and checksum_text == expected + "\n"
    assert (directory / MARKER).read_text() == ""


def test_verify_and_mark_removes_a_mismatching_repo_and_writes_no_marker(tmp_path: Path) -> None:
    """Our departure (SPEC §10): StarlingX writes whatever it copied."""
    directory = make_repo(tmp_path / "25.09")
    touch(directory / ".ostree_repo_checksum", CHECKSUM + "\n")
    touch(directory / MARKER)
    actual = starlingx_checksum(directory)
    with pytest.raises(install.InstallError, match=rf"checksum {actual}, expected {'0' * 32}"):
        install.verify_and_mark("25.09", "0" * 32, None, str(tmp_path))
    assert not (directory / "ostree_repo").exists()
    assert not (directory / MARKER).exists()
    assert not (directory / ".ostree_repo_checksum").exists()


def test_state_of_reads_marker_checksum_metadata_and_usage(tmp_path: Path) -> None:
    directory = make_repo(tmp_path / "25.09", [b"config"])
    touch(directory / ".ostree_repo_checksum", CHECKSUM + "\n")
    touch(directory / "patches" / "metadata" / "deployed" / "a.xml", "<patch/>")
    state = install.state_of("25.09", str(tmp_path))
    assert state["marker"] is False and state["recorded_checksum"] == CHECKSUM
    assert (
        state["patch_metadata_digest"]
        == content.tree_digest(str(directory / "patches" / "metadata"))["digest"]
    )
    assert state["usage"] == 3 * 4096
    touch(directory / MARKER)
    assert install.state_of("25.09", str(tmp_path))["marker"] is True
    assert install.state_of("26.03", str(tmp_path)) == {
        "marker": False,
        "recorded_checksum": None,
        "patch_metadata_digest": None,
        "usage": 0,
    }
