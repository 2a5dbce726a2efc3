"""StarlingX's locations and release-dependent rules (plugins/module_utils/_stx.py).

Sources (STARLINGX.md prefixes; PR: = PB:roles/prestage/): PR:prepare-env/tasks/main.yml,
cleanup_prestage_dir.yml, PR:get-prestage-versions/tasks/main.yml,
PR:prestage-patches/tasks/prestage-patch-metadata.yml, PR:sync-software-metadata/tasks/main.yml
and files/ostree-metadata-sync.sh.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from ansible.module_utils.compat.version import LooseVersion

from ansible_collections.distcloud.prestage.plugins.module_utils import _stx as stx

# ----------------------------------------------------------------------------- release paths


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("22.12", "/opt/software/metadata"),
        ("24.09", "/opt/software/metadata"),
        ("25.09", "/opt/software/metadata"),
        ("26.03", "/opt/software/metadata"),
        ("26.10", "/opt/software/releases/metadata"),
        ("27.03", "/opt/software/releases/metadata"),
    ],
)
def test_metadata_dir_is_releases_metadata_from_26_10_on(release: str, expected: str) -> None:
    """PR:prepare-env/tasks/main.yml:54-55,70-73 and PR:sync-software-metadata/tasks/main.yml:
    41-42: version(v, '26.10', '<') picks /opt/software/metadata."""
    assert stx.metadata_dir(release) == expected


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("22.12", ("available",)),
        ("24.03", ("available",)),
        ("24.09", ("unavailable", "committed")),
        ("25.09", ("unavailable", "committed")),
        ("26.10", ("unavailable", "committed")),
    ],
)
def test_pruned_metadata_dirs_before_and_from_24_09(release: str, expected: tuple) -> None:
    """prestage-patch-metadata.yml:45-58 (v < 24.09: available/) and 64-73 (v >= 24.09:
    unavailable/ and committed/)."""
    assert stx.pruned_metadata_dirs(release) == expected


def test_release_locations_are_starlingx_paths() -> None:
    """PR:prepare-env/tasks/prepare-sw-packages-prestage-env.yml:16-23, PB:prestage_sw_packages.yml:
    20-26, PR:prestage-sw-packages/tasks/main.yml:70-79."""
    assert stx.feed_release_dir("25.09") == "/var/www/pages/feed/rel-25.09"
    assert stx.feed_ostree_repo("25.09") == "/var/www/pages/feed/rel-25.09/ostree_repo"
    assert stx.prestage_dir("25.09") == "/opt/platform-backup/25.09"
    assert stx.prestage_dir("25.09", "/tmp/pb") == "/tmp/pb/25.09"
    assert (stx.MARKER_FILE, stx.CHECKSUM_FILE) == (
        ".ostree_rsync_completed",
        ".ostree_repo_checksum",
    )
    assert stx.COMPONENT_RELEASE == "26.10" and stx.USM_RELEASE == "24.09"


# ------------------------------------------------------------------------- release dir names


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("24.09", True),
        ("22.12", True),
        ("100.1", True),
        ("24x09", True),  # '.' unescaped in ^[1-9][0-9]*.[0-9]+$
        ("2409", True),  # ... so any character may stand for it, a digit too
        ("24-09", True),
        ("09.24", False),
        ("24.09.1", False),
        ("24.", False),
        ("platform-backup", False),
        ("ostree_repo", False),
    ],
)
def test_version_dir_filter_keeps_its_unescaped_dot(name: str, listed: bool) -> None:
    """PR:get-prestage-versions/tasks/main.yml:43: select('regex', '^[1-9][0-9]*.[0-9]+$')."""
    assert stx.is_version_dir(name) is listed


NAMES = [
    "21.12",
    "22.12",
    "22x12",
    "22-12",
    "24.09",
    "25.09",
    "2212",
    "9.12",
    "022.12",
    "22.12.1",
    "22.1x",
    "ostree_repo",
    ".22.12",
]


def test_prunable_release_dirs_below_the_minimum_with_the_dot_unescaped() -> None:
    """cleanup_prestage_dir.yml:84-96: regex ^[1-9]\\d.[0-9]\\d$ (dot unescaped: 22x12 and 22-12
    count) and version(minimum, '<'); the minimum itself and what is above it stay."""
    assert set(stx.prunable_release_dirs(NAMES, "24.09")) == {"21.12", "22.12", "22x12", "22-12"}
    # (22x12 against 22.12 is a comparison Ansible's version test cannot make: not pinned here)
    kept = set(NAMES) - set(stx.prunable_release_dirs(NAMES, "22.12"))
    assert "21.12" not in kept and {"22.12", "24.09", "25.09"} <= kept
    assert stx.prunable_release_dirs(NAMES, None) == []
    assert stx.prunable_release_dirs(NAMES, "") == []


def test_prunable_release_dirs_compare_as_ansible_version_test_does() -> None:
    """Ansible's version test (LooseVersion, its default) agrees on every name the regex keeps
    (names it cannot compare, e.g. 24x12 against 24.09, fail the task in StarlingX)."""
    names = [
        f"{a}{sep}{b}"
        for a in ("21", "22", "24", "25", "26")
        for b in ("03", "09", "12")
        for sep in ".x-"
    ]
    for minimum in ("22.12", "24.09", "25.09", "26.03"):
        pruned = set(stx.prunable_release_dirs(names, minimum))
        for name in names:
            try:
                expected = LooseVersion(name) < LooseVersion(minimum)
            except TypeError:
                continue
            assert (name in pruned) is expected, (name, minimum)


def test_lower_is_version_less_than() -> None:
    assert stx.lower("24.09", "25.09") and not stx.lower("25.09", "25.09")
    assert stx.lower("25.09", "26.10") and not stx.lower("26.10", "26.03")


def test_real_dirs_and_regular_files_exclude_symbolic_links(tmp_path: Path) -> None:
    """What Ansible's find (lstat) and `find -type f|d` see."""
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    (tmp_path / "ld").symlink_to("d")
    (tmp_path / "lf").symlink_to("f")
    assert stx.is_real_dir(str(tmp_path / "d")) and not stx.is_real_dir(str(tmp_path / "ld"))
    assert not stx.is_real_dir(str(tmp_path / "f")) and not stx.is_real_dir(str(tmp_path / "no"))
    assert stx.is_regular_file(str(tmp_path / "f")) and not stx.is_regular_file(
        str(tmp_path / "lf")
    )
    assert not stx.is_regular_file(str(tmp_path / "d"))


# ----------------------------------------------------------------------- sort --version-sort

VERSIONS = [
    "24.09",
    "24.09.0",
    "24.09.1",
    "24.09.10",
    "24.09.2",
    "25.09",
    "24.03.3",
    "26.10",
    "26.03",
    "starlingx-24.09.1",
    "starlingx-24.09.10",
    "starlingx-24.09.2",
    "starlingx-24.09.0",
    "None",
    "",
    "/m/deployed/starlingx-24.09.1-metadata.xml",
    "/m/available/starlingx-24.09.2-metadata.xml",
    "starlingx-26.10.0-metadata.xml",
    "starlingx-26.10.1-metadata.xml",
    "kernel_26.10-metadata.xml",
    "starlingx-26.10-metadata.xml",
    "24.09.1a",
    "24.09.1-rc",
    "24.09.01",
    "stx-24.09.1",
    ".",
    "..",
    ".a",
    "~",
    "a~",
    "a",
    "a.tar.gz",
    "a.tar",
    "a1.b2c",
]

needs_sort_v = pytest.mark.skipif(
    shutil.which("sort") is None
    or subprocess.run(["sort", "-V"], input="", capture_output=True, check=False).returncode != 0,
    reason="needs GNU sort -V",
)


def gnu_sort_v(lines: list[str]) -> list[str]:
    result = subprocess.run(
        ["sort", "-V"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env={"LC_ALL": "C"},
        check=True,
    )
    return result.stdout.split("\n")[:-1]


@needs_sort_v
def test_version_sort_key_orders_as_gnu_sort_v() -> None:
    """StarlingX's release and metadata orders come from `sort -V` (ostree-metadata-sync.sh:250,
    502,600,620; get-prestage-versions/tasks/main.yml:72,82)."""
    assert sorted(VERSIONS, key=stx.version_sort_key) == gnu_sort_v(VERSIONS)


@needs_sort_v
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_version_sort_key_orders_random_names_as_gnu_sort_v(seed: int) -> None:
    rnd = random.Random(seed)

    def name() -> str:
        return "".join(rnd.choice("0019.-_a~/xZ.") for _char in range(rnd.randint(0, 8)))

    names = [name() for _name in range(1500)]
    assert sorted(names, key=stx.version_sort_key) == gnu_sort_v(names)


def test_version_compare_is_numeric_on_digit_runs() -> None:
    assert stx.version_compare("25.09.2", "25.09.10") == -1
    assert stx.version_compare("25.09", "25.09.0") == -1
    assert stx.version_compare("26.10", "26.03") == 1
    assert stx.version_compare("25.09.1", "25.09.1") == 0


# ----------------------------------------------------------------------------- host files


def test_sw_version_reads_build_info_as_the_shell_sources_it(tmp_path: Path) -> None:
    """`source /etc/build.info; echo $SW_VERSION` (PR:prepare-env/tasks/main.yml:57-68)."""
    build_info = tmp_path / "build.info"
    build_info.write_text('OS="debian"\nSW_VERSION="25.09"\nBUILD_ID="lab-25.09-001"\n')
    assert stx.sw_version(str(build_info)) == "25.09"
    assert stx.key_values(build_info.read_text())["BUILD_ID"] == "lab-25.09-001"
    assert stx.sw_version(str(tmp_path / "missing")) is None
    build_info.write_text("OS=debian\n")
    assert stx.sw_version(str(build_info)) is None
