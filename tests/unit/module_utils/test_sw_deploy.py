"""Prestage for software deployment (plugins/module_utils/_sw_deploy.py) against StarlingX's
sync-software-metadata role (PR: = PB:roles/prestage/): tasks/main.yml (M),
sync_patches_to_usm_subcloud.yml (U), prepare-sw-packages-prestage-env.yml, and
files/ostree-metadata-sync.sh (S), whose functions also run here as oracles on the same trees
when a StarlingX checkout is at hand (stx_sources.py). Scenarios follow the script's bats
fixtures (files/test/metadata/test1, test2: an N subcloud behind the system controller), in
today's metadata format, plus the N-1 and 26.10 cases of STARLINGX.md §3.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ansible_collections.distcloud.prestage.plugins.module_utils import _sw_deploy as swd
from tests.unit.module_utils.stx_sources import (
    metadata_sync,
    needs_metadata_sync,
    script_lines,
    sync_subcloud_decisions,
)

SOFTWARE_LIST = """+--------------------+-------+-------------+
| Release            | RR    |    State    |
+--------------------+-------+-------------+
| starlingx-24.09.1  | False | unavailable |
| starlingx-25.09.0  | True  |  deployed   |
| starlingx-25.09.1  | False |  deployed   |
| starlingx-25.09.2  | False |  available  |
| starlingx-25.09.3  | False | unavailable |
| starlingx-25x09.4  | False |  deployed   |
+--------------------+-------+-------------+
"""


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def metadata_xml(release_id: str, commit: str | None = None, sw_version: str | None = None) -> str:
    """A USM metadata file (STARLINGX.md §7): commit1 when commit is given ('' for an empty
    element)."""
    ostree = ""
    if commit is not None:
        ostree = (
            "<contents><ostree><number_of_commits>1</number_of_commits>"
            f"<commit1><commit>{commit}</commit></commit1></ostree></contents>"
        )
    version = release_id.split("-")[1] if sw_version is None else sw_version
    return (
        f"<patch>\n  <id>{release_id}</id>\n  <sw_version>{version}</sw_version>\n"
        f"  <prepatched_iso>Y</prepatched_iso>\n  {ostree}\n</patch>\n"
    )


# ------------------------------------------------------------------------------- the lists


def shell(command: str, text: str) -> list[str]:
    result = subprocess.run(
        ["bash", "-c", command], input=text, capture_output=True, text=True, check=False
    )
    return result.stdout.splitlines()


def test_listed_lines_are_grep_then_sed_of_the_table() -> None:
    """M:67-76 `software list ... | grep <v> | sed 's/ //g;'`: grep's pattern is a regular
    expression (25x09 matches 25.09), sed removes the spaces only."""
    assert swd.listed_lines(SOFTWARE_LIST, "25.09") == [
        "|starlingx-25.09.0|True|deployed|",
        "|starlingx-25.09.1|False|deployed|",
        "|starlingx-25.09.2|False|available|",
        "|starlingx-25.09.3|False|unavailable|",
        "|starlingx-25x09.4|False|deployed|",
    ]
    assert swd.listed_lines(SOFTWARE_LIST, "25.09") == shell(
        "grep 25.09 | sed 's/ //g;'", SOFTWARE_LIST
    )
    assert swd.listed_lines("No data\n", "25.09") == []


def test_listed_lines_of_the_subcloud_keep_deployed_and_unavailable() -> None:
    """U:44-47 `| egrep -E "deployed|unavailable" | grep <v> | sed 's/ //g;'`."""
    lines = swd.listed_lines(SOFTWARE_LIST, "25.09", ("deployed", "unavailable"))
    assert lines == [
        "|starlingx-25.09.0|True|deployed|",
        "|starlingx-25.09.1|False|deployed|",
        "|starlingx-25.09.3|False|unavailable|",
        "|starlingx-25x09.4|False|deployed|",
    ]
    assert lines == shell(
        "grep -E 'deployed|unavailable' | grep 25.09 | sed 's/ //g;'", SOFTWARE_LIST
    )


def test_release_parts_take_the_digits_after_the_first_dash() -> None:
    """M:107-110 regex_replace('.*?-([0-9\\.]+).*', '\\1'); a line without them stays."""
    assert swd.release_parts(
        ["|starlingx-25.09.1|False|deployed|", "|stx-24.09|True|x|", "|no-version|"]
    ) == ["25.09.1", "24.09", "|no-version|"]


@pytest.mark.parametrize(
    ("level", "number"),
    [
        ("25.09.3", 3),
        ("25.09.0", 0),
        ("25.09.12", 12),
        ("25.09", 9),
        ("x.1e1", 10),
        ("|no-version|", 0),
        ("25.09.", 0),
    ],
)
def test_patch_number_is_what_follows_the_last_dot_as_jinja_int(level: str, number: int) -> None:
    """U:92-99 regex_replace('.*\\.', '') | int (Jinja: int(), then int(float()), else 0)."""
    assert swd.patch_number(level) == number


def test_patch_level_skip_compares_the_last_entries() -> None:
    """U:88-123: the subcloud at the same or a higher patch level ends the play."""
    sc = ["25.09.0", "25.09.1", "25.09.3"]
    assert swd.patch_level_skip(sc, ["25.09.0", "25.09.3"]) == swd.SKIP_SAME
    assert swd.patch_level_skip(sc, ["25.09.4"]) == swd.SKIP_HIGHER
    assert swd.patch_level_skip(sc, ["25.09.5", "25.09.1"]) is None  # the last one counts
    assert swd.patch_level_skip(sc, []) is None  # nothing of the release on the subcloud
    assert swd.patch_level_skip([], ["25.09.1"]) is None
    assert swd.SKIP_SAME == (
        "Skipping for software deploy prestage as the subcloud has the same patch level than the "
        "system controller for requested software version."
    )
    assert swd.SKIP_SAME.replace("the same", "a higher") == swd.SKIP_HIGHER


def test_full_feed_sync_is_remote_and_a_string_comparison() -> None:
    """prepare-sw-packages-prestage-env.yml:59-62: remote and host_software_version <
    software_version, compared as strings."""
    assert swd.full_feed_sync("remote", "24.09", "25.09") is True
    assert swd.full_feed_sync("local", "25.09", "25.09") is False
    assert swd.full_feed_sync("remote", "25.09", "24.09") is False
    assert swd.full_feed_sync("remote", "9.09", "24.09") is False  # '9' > '2'


# ---------------------------------------------------------------------------- metadata files


def test_metadata_field_as_xml_attrib_metadata_gets_it(tmp_path: Path) -> None:
    """S:276-339: print(root.find('.//x').text) read back through $(...): 'None' for an empty
    element, '' when the element is missing or the file does not parse, trailing newlines
    dropped."""
    path = write(tmp_path / "a.xml", metadata_xml("starlingx-25.09.1", "c1"))
    assert swd.metadata_field(str(path), "sw_version") == "25.09.1"
    assert swd.metadata_field(str(path), "contents/ostree/commit1/commit") == "c1"
    assert swd.metadata_field(str(path), "missing") == ""
    write(path, metadata_xml("starlingx-25.09.1", ""))
    assert swd.metadata_field(str(path), "contents/ostree/commit1/commit") == "None"
    write(path, "<patch><commit>  c2\n\n</commit></patch>")
    assert swd.metadata_field(str(path), "commit") == "  c2"
    write(path, "<patch><sw_version>25.09")
    assert swd.metadata_field(str(path), "sw_version") == ""
    assert swd.metadata_field(str(tmp_path / "missing.xml"), "sw_version") == ""


@needs_metadata_sync
def test_metadata_field_matches_the_scripts(tmp_path: Path) -> None:
    files = {
        "full.xml": metadata_xml("starlingx-25.09.1", "c1"),
        "empty.xml": metadata_xml("starlingx-25.09.1", ""),
        "none.xml": metadata_xml("starlingx-25.09.1"),
        "newline.xml": "<patch><commit>  c2\n\n</commit><sw_version>\n25.09.2\n</sw_version>"
        "</patch>",
        "broken.xml": "<patch><sw_version>25.09",
    }
    for name, text in files.items():
        write(tmp_path / "m" / name, text)
    for element in ("sw_version", "contents/ostree/commit1/commit", "commit", "id"):
        for name in files:
            path = tmp_path / "m" / name
            (theirs,) = script_lines(
                tmp_path / "work",
                f"xml_attrib_metadata {path} get {element} | od -An -c | tr -d ' \\n'",
            ) or [""]
            ours = subprocess.run(
                ["od", "-An", "-c"],
                input=swd.metadata_field(str(path), element) + "\n",
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert theirs == ours.replace(" ", "").replace("\n", ""), (name, element)


def metadata_tree(root: Path, files: dict[str, str | None], **versions: str) -> Path:
    """root/<state>/<id>-metadata.xml for each 'state/id' (commit or None); versions overrides
    a file's sw_version by its name."""
    for entry, commit in files.items():
        release_id = entry.rsplit("/", 1)[-1]
        write(root / f"{entry}-metadata.xml", metadata_xml(release_id, commit, versions.get(entry)))
    return root


COMMITS_TREE: dict[str, str | None] = {
    "deployed/starlingx-25.09.0": None,
    "deployed/starlingx-25.09.1": "c1",
    "deploying/starlingx-25.09.2": "",
    "available/starlingx-25.09.10": "c10",
    "available/starlingx-25.09.3": "c3",
    "unavailable/starlingx-24.09.1": "old",
}


def test_files_for_release_sorted_in_version_order(tmp_path: Path) -> None:
    """S:224-257: grep -r -l -F '<sw_version>25.09' (a prefix), one file per sw_version, sorted
    with sort -V (25.09.10 after 25.09.3)."""
    root = metadata_tree(tmp_path / "metadata", COMMITS_TREE)
    found = [
        Path(p).relative_to(root).as_posix()
        for p in swd.files_for_release_sorted("25.09", str(root))
    ]
    assert found == [
        "deployed/starlingx-25.09.0-metadata.xml",
        "deployed/starlingx-25.09.1-metadata.xml",
        "deploying/starlingx-25.09.2-metadata.xml",
        "available/starlingx-25.09.3-metadata.xml",
        "available/starlingx-25.09.10-metadata.xml",
    ]
    # a patch level is a prefix too: 25.09.1 finds 25.09.10
    assert [Path(p).name for p in swd.files_for_release_sorted("25.09.1", str(root))] == [
        "starlingx-25.09.1-metadata.xml",
        "starlingx-25.09.10-metadata.xml",
    ]


def test_files_for_release_sorted_keep_one_file_per_version(tmp_path: Path) -> None:
    """metadata_files_map[sw_version]=file: a later file of the same version replaces the
    earlier one (grep's order; here names in order within a directory)."""
    root = tmp_path / "metadata"
    write(root / "deployed" / "a-metadata.xml", metadata_xml("starlingx-25.09.1"))
    write(root / "deployed" / "b-metadata.xml", metadata_xml("starlingx-25.09.1"))
    assert swd.files_for_release_sorted("25.09", str(root)) == [
        str(root / "deployed" / "b-metadata.xml")
    ]


def test_links_are_left_out(tmp_path: Path) -> None:
    """grep -r skips the symbolic links it meets."""
    root = metadata_tree(tmp_path / "metadata", {"deployed/starlingx-25.09.1": "c1"})
    (root / "available").mkdir()
    (root / "available" / "link-metadata.xml").symlink_to(
        root / "deployed" / "starlingx-25.09.1-metadata.xml"
    )
    assert swd.files_for_release_sorted("25.09", str(root)) == [
        str(root / "deployed" / "starlingx-25.09.1-metadata.xml")
    ]


# '<sw_version>25.09' is in the text, but the first sw_version element is empty
EMPTY_SW_VERSION = "<patch><sw_version/><note><sw_version>25.09.5</sw_version></note></patch>"


def test_a_file_without_a_readable_sw_version_empties_the_list(tmp_path: Path) -> None:
    """S:238-239: metadata_files_map[""] is a bad array subscript, which aborts the function:
    StarlingX then finds no file at all for the release (an empty element reads 'None' and
    counts)."""
    root = metadata_tree(tmp_path / "metadata", {"deployed/starlingx-25.09.1": "c1"})
    write(root / "deployed" / "none-metadata.xml", EMPTY_SW_VERSION)
    assert [Path(p).name for p in swd.files_for_release_sorted("25.09", str(root))] == [
        "starlingx-25.09.1-metadata.xml",
        "none-metadata.xml",
    ]
    write(root / "deployed" / "broken-metadata.xml", "<patch><sw_version>25.09.7")
    assert swd.files_for_release_sorted("25.09", str(root)) == []
    assert swd.central_commits("25.09", str(root)) == []
    assert [Path(p).name for p in swd.files_for_release_sorted("25.09.1", str(root))] == [
        "starlingx-25.09.1-metadata.xml"
    ]


def test_central_commits_one_line_per_file_with_empty_commits(tmp_path: Path) -> None:
    """get-commits (S:341-351,473-499): '<file>:<commit1>', '' without commit1, 'None' for an
    empty one."""
    root = metadata_tree(tmp_path / "metadata", COMMITS_TREE)
    assert swd.central_commits("25.09", str(root)) == [
        f"{root}/deployed/starlingx-25.09.0-metadata.xml:",
        f"{root}/deployed/starlingx-25.09.1-metadata.xml:c1",
        f"{root}/deploying/starlingx-25.09.2-metadata.xml:None",
        f"{root}/available/starlingx-25.09.3-metadata.xml:c3",
        f"{root}/available/starlingx-25.09.10-metadata.xml:c10",
    ]
    assert swd.central_commits("26.03", str(root)) == []


def script_stdout(work: Path, body: str) -> list[str]:
    """stdout lines of body, whatever its status (a bad array subscript makes it 1)."""
    return metadata_sync(work, body).stdout.splitlines()


@needs_metadata_sync
@pytest.mark.parametrize("release", ["25.09", "25.09.1", "24.09", "26.03"])
@pytest.mark.parametrize("extra", ["", EMPTY_SW_VERSION, "<patch><sw_version>25.09.7"])
def test_sorted_files_and_commits_match_the_scripts(
    tmp_path: Path, release: str, extra: str
) -> None:
    root = metadata_tree(tmp_path / "metadata", COMMITS_TREE)
    if extra:
        write(root / "deployed" / "extra-metadata.xml", extra)
    work = tmp_path / "work"
    assert swd.files_for_release_sorted(release, str(root)) == script_stdout(
        work, f"find_metadata_files_for_release_sorted {release} {root}"
    )
    assert swd.central_commits(release, str(root)) == script_stdout(
        work, f"find_all_ostree_commits_for_release {release} {root}"
    )


def test_last_commit_and_empty_commit_lines() -> None:
    """U:166-169 awk -F':' 'length($2) > 0 {commit=$2} END {print commit}'; U:186-191
    select('match', '^[^:]+:$')."""
    lines = [
        "/m/a-metadata.xml:c1",
        "/m/b-metadata.xml:",
        "/m/c-metadata.xml:None",
        "/m/d-metadata.xml:",
        ":",
    ]
    assert swd.last_commit(lines) == "None"
    assert swd.last_commit(lines[:2]) == "c1"
    assert swd.last_commit([]) == ""
    assert swd.empty_commit_lines(lines) == ["/m/b-metadata.xml:", "/m/d-metadata.xml:"]


VERSION_PAIRS = [
    ("24.09", "24.09"),
    ("24.09", "25.09"),
    ("25.09", "24.09"),
    ("24.09.9", "24.09.10"),
    ("24.09.10", "24.09.9"),
    ("26.10", "26.03"),
    ("26.03", "26.03"),
    ("25.09", "25.09.0"),
    ("25.09.0", "25.09"),
    ("", "25.09"),
    ("25.09.01", "25.09.1"),
]


def test_version_le_is_sort_v() -> None:
    """S:501-503: equal, or first under sort -V."""
    assert [swd.version_le(a, b) for a, b in VERSION_PAIRS] == [
        True,
        True,
        False,
        True,
        False,
        False,
        True,
        True,
        False,
        True,
        True,
    ]


@needs_metadata_sync
def test_version_le_matches_the_scripts(tmp_path: Path) -> None:
    body = "\n".join(f"version_le '{a}' '{b}' && echo yes || echo no" for a, b in VERSION_PAIRS)
    theirs = [line == "yes" for line in script_lines(tmp_path, body)]
    assert [swd.version_le(a, b) for a, b in VERSION_PAIRS] == theirs


# ----------------------------------------------------------------------- metadata states


@dataclass
class Scenario:
    release: str
    sc_release: str
    subcloud_release: str
    staged: dict[str, str | None]  # 'state/id' (or 'id' at the root) -> commit1
    subcloud: dict[str, str | None]
    # (id, state, source: 'central' or 'subcloud' or None, prepatched_iso set to N)
    expected: list[tuple[str, str, str | None, bool]]
    dests: dict[str, str] = field(default_factory=dict)  # id -> destination below METADATA_DIR
    links: dict[str, str] = field(default_factory=dict)  # staged symbolic links -> targets


SCENARIOS = {
    # bats test2, today's format: the subcloud has the first two, the SC two more
    "n-subcloud-behind": Scenario(
        "25.09",
        "25.09",
        "25.09",
        {
            "deployed/starlingx-25.09.0": None,
            "deployed/starlingx-25.09.1": "c1",
            "deploying/starlingx-25.09.2": "c2",
            "available/starlingx-25.09.3": "c3",
        },
        {"deployed/starlingx-25.09.0": None, "deployed/starlingx-25.09.1": "c1"},
        [
            ("starlingx-25.09.0", "deployed", "central", False),
            ("starlingx-25.09.1", "deployed", "central", False),
            ("starlingx-25.09.2", "available", "central", False),
            ("starlingx-25.09.3", "available", "central", False),
        ],
        {"starlingx-25.09.0": "deployed", "starlingx-25.09.3": "available"},
    ),
    # bats test1: a GA-only subcloud, the SC one patch ahead
    "ga-subcloud": Scenario(
        "25.09",
        "25.09",
        "25.09",
        {"deployed/starlingx-25.09.0": None, "deployed/starlingx-25.09.1": "c1"},
        {"deployed/starlingx-25.09.0": None},
        [
            ("starlingx-25.09.0", "deployed", "central", False),
            ("starlingx-25.09.1", "available", "central", False),
        ],
    ),
    # an N-1 subcloud prestaged for the SC's release: all of it available, the lowest with
    # prepatched_iso N
    "n-1-subcloud": Scenario(
        "25.09",
        "25.09",
        "24.09",
        {
            "deployed/starlingx-25.09.0": None,
            "deployed/starlingx-25.09.1": "c1",
            "unavailable/starlingx-24.09.0": None,
        },
        {"deployed/starlingx-24.09.0": None},
        [
            ("starlingx-25.09.0", "available", "central", True),
            ("starlingx-25.09.1", "available", "central", False),
        ],
    ),
    # the SC's previous release (any state there) onto a subcloud running it
    "older-release": Scenario(
        "24.09",
        "25.09",
        "24.09",
        {
            "unavailable/starlingx-24.09.0": None,
            "unavailable/starlingx-24.09.1": "c1",
            "unavailable/starlingx-24.09.2": "c2",
            "deployed/starlingx-25.09.0": None,
        },
        {"deployed/starlingx-24.09.0": None, "deployed/starlingx-24.09.1": "c1"},
        [
            ("starlingx-24.09.0", "deployed", "central", False),
            ("starlingx-24.09.1", "deployed", "central", False),
            ("starlingx-24.09.2", "available", "central", False),
        ],
    ),
    # a release the SC does not know stays unavailable, from the subcloud's own file
    "unknown-to-sc": Scenario(
        "25.09",
        "25.09",
        "25.09",
        {"deployed/starlingx-25.09.0": None, "deployed/starlingx-25.09.1": "c1"},
        {
            "deployed/starlingx-25.09.0": None,
            "unavailable/starlingx-25.09.3": "c3",
            "available/starlingx-25.09.4": "c4",
        },
        [
            ("starlingx-25.09.0", "deployed", "central", False),
            ("starlingx-25.09.1", "deployed", "central", False),
            ("starlingx-25.09.3", "unavailable", "subcloud", False),
        ],
        {"starlingx-25.09.3": "unavailable"},
    ),
    # a release above the SC's: only what is deployed there
    "above-sc": Scenario(
        "26.03",
        "25.09",
        "25.09",
        {"deployed/starlingx-26.03.0": None, "available/starlingx-26.03.1": "c1"},
        {"deployed/starlingx-25.09.0": None},
        [("starlingx-26.03.0", "available", "central", True)],
    ),
    # 26.10 product files at the staged root; available ones go to the root of a 26.10 subcloud
    "component": Scenario(
        "26.10",
        "26.10",
        "26.10",
        {"deployed/starlingx-26.10.0": None, "starlingx-26.10.1": "c1", "starlingx-26.10.2": "c2"},
        {"deployed/starlingx-26.10.0": None},
        [
            ("starlingx-26.10.0", "deployed", "central", False),
            ("starlingx-26.10.1", "available", "central", True),
            ("starlingx-26.10.2", "available", "central", False),
        ],
        {"starlingx-26.10.0": "deployed", "starlingx-26.10.1": ""},
        # not a regular file: left out of the central set
        {"starlingx-26.10.9-metadata.xml": "starlingx-26.10.2-metadata.xml"},
    ),
    # ... and to available/ of an older subcloud
    "component-to-26-03": Scenario(
        "26.10",
        "26.10",
        "26.03",
        {"starlingx-26.10.0": None, "starlingx-26.10.1": "c1"},
        {"deployed/starlingx-26.03.0": None},
        [
            ("starlingx-26.10.0", "available", "central", True),
            ("starlingx-26.10.1", "available", "central", False),
        ],
        {"starlingx-26.10.0": "available"},
    ),
}


def build(tmp_path: Path, scenario: Scenario) -> tuple[Path, Path, Path]:
    """The staged system controller metadata, the subcloud's METADATA_DIR and the copy of it the
    sync reads (taken before the release's files are deleted)."""
    staged = metadata_tree(tmp_path / "staged" / "metadata", scenario.staged)
    for link, target in scenario.links.items():
        (staged / link).symlink_to(target)
    subcloud = metadata_tree(tmp_path / "subcloud" / "metadata", scenario.subcloud)
    backup = tmp_path / "backup" / "metadata"
    shutil.copytree(subcloud, backup, symlinks=True)
    return staged, subcloud, backup


def component(release: str) -> bool:
    return not swd.version_le(release, "26.03")


def states(scenario: Scenario, staged: Path, backup: Path) -> list[tuple]:
    return swd.metadata_states(
        scenario.release, scenario.sc_release, str(staged), str(backup), component(scenario.release)
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_metadata_states(tmp_path: Path, name: str) -> None:
    """S:589-694: unavailable without a central file (the subcloud's own is used), deployed up to
    the subcloud's highest release, available above it (the lowest central one gets
    prepatched_iso N); destination S:675-685."""
    scenario = SCENARIOS[name]
    staged, subcloud, backup = build(tmp_path, scenario)
    plan = states(scenario, staged, backup)
    summary = []
    for release_id, state, source, prepatched in plan:
        kind = None
        if source is not None:
            kind = "central" if Path(source).is_relative_to(staged) else "subcloud"
            assert Path(source).name == f"{release_id}-metadata.xml"
        summary.append((release_id, state, kind, prepatched))
    assert summary == scenario.expected
    for release_id, below in scenario.dests.items():
        state = next(s for i, s, *_rest in plan if i == release_id)
        dest = swd.destination(str(subcloud), state, scenario.release, scenario.subcloud_release)
        assert dest == str(subcloud / below if below else subcloud), release_id


@needs_metadata_sync
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_metadata_states_match_sync_subcloud(tmp_path: Path, name: str) -> None:
    """The script's own decisions (dry run) on the same trees: ids in order, states, the file
    used, the prepatched flag and the destination directory."""
    scenario = SCENARIOS[name]
    staged, subcloud, backup = build(tmp_path, scenario)
    plan = states(scenario, staged, backup)
    decisions, result = sync_subcloud_decisions(
        tmp_path / "work",
        release=scenario.release,
        sc_release=scenario.sc_release,
        staged_parent=staged.parent,
        subcloud_metadata=subcloud,
        subcloud_release=scenario.subcloud_release,
    )
    assert result.returncode == 0, result.stderr
    assert [d.release_id for d in decisions] == [p[0] for p in plan]
    for decision, (_release_id, state, source, prepatched) in zip(decisions, plan, strict=True):
        assert decision.state == state
        assert decision.prepatched_off is prepatched
        if state == "unavailable":  # their copy of the subcloud's dir, ours
            assert decision.source.split("/metadata/", 1)[1] == str(
                Path(source).relative_to(backup)
            )
        else:
            assert decision.source == source
        assert decision.dest == swd.destination(
            str(subcloud), state, scenario.release, scenario.subcloud_release
        )


DUPLICATE = Scenario(
    "25.09",
    "25.09",
    "25.09",
    {
        "deployed/starlingx-25.09.0": None,
        "deployed/starlingx-25.09.1": "c1",
        "available/starlingx-25.09.1": "c1",
    },
    {"deployed/starlingx-25.09.0": None, "unavailable/starlingx-25.09.1": "c1"},
    [],
)


def test_a_release_id_twice_in_the_sc_metadata_is_an_error(tmp_path: Path) -> None:
    """find_metadata_file_for_attrib_val's 'unexpected' (S:259-274), before anything changes."""
    staged, _subcloud, backup = build(tmp_path, DUPLICATE)
    with pytest.raises(
        swd.SyncError,
        match=r"^find_metadata_file_for_attrib_val unexpected: found "
        r"multiple metadata files for id starlingx-25\.09\.1 in ",
    ):
        states(DUPLICATE, staged, backup)


@needs_metadata_sync
def test_starlingx_only_logs_a_release_id_twice_and_goes_on(tmp_path: Path) -> None:
    """Where we stop, StarlingX's `die` runs in a command substitution: it ends that subshell
    only, the release counts as unknown to the system controller (unavailable, the subcloud's
    own file) and the script succeeds."""
    staged, subcloud, _backup = build(tmp_path, DUPLICATE)
    decisions, result = sync_subcloud_decisions(
        tmp_path / "work",
        release="25.09",
        sc_release="25.09",
        staged_parent=staged.parent,
        subcloud_metadata=subcloud,
        subcloud_release="25.09",
    )
    assert result.returncode == 0
    assert "FATAL: find_metadata_file_for_attrib_val unexpected" in result.stderr
    assert [(d.release_id, d.state) for d in decisions] == [
        ("starlingx-25.09.0", "deployed"),
        ("starlingx-25.09.1", "unavailable"),
    ]


@pytest.mark.parametrize(
    ("release", "subcloud_release", "state", "below"),
    [
        ("26.10", "26.10", "available", ""),
        ("26.10", "27.03", "available", ""),
        ("26.10", "26.10", "deployed", "deployed"),
        ("26.10", "26.10", "unavailable", "unavailable"),
        ("26.10", "26.03", "available", "available"),
        ("25.09", "26.10", "available", "available"),
        ("25.09", "25.09", "deployed", "deployed"),
    ],
)
def test_destination_of_the_26_10_component_layout(
    release: str, subcloud_release: str, state: str, below: str
) -> None:
    """S:675-685: a >= 26.10 release's available file goes to the root of a >= 26.10 subcloud's
    METADATA_DIR; anything else to <METADATA_DIR>/<state>."""
    expected = "/m/" + below if below else "/m"
    assert swd.destination("/m", state, release, subcloud_release) == expected


def test_set_prepatched_iso_n(tmp_path: Path) -> None:
    """disable_prepatched_iso_flag (S:516-519, 310-333): the element set to N, or added to the
    root when missing."""
    present = write(tmp_path / "a.xml", metadata_xml("starlingx-25.09.0"))
    swd.set_prepatched_iso_n(str(present))
    assert swd.metadata_field(str(present), "prepatched_iso") == "N"
    missing = write(tmp_path / "b.xml", "<patch><id>starlingx-25.09.0</id></patch>")
    swd.set_prepatched_iso_n(str(missing))
    assert (
        missing.read_text()
        == "<patch><id>starlingx-25.09.0</id><prepatched_iso>N</prepatched_iso></patch>"
    )


@needs_metadata_sync
def test_set_prepatched_iso_n_writes_what_the_script_writes(tmp_path: Path) -> None:
    for name, text in (
        ("present.xml", metadata_xml("starlingx-25.09.0", "c")),
        ("missing.xml", "<patch>\n  <id>x</id>\n</patch>\n"),
    ):
        ours, theirs = (
            write(tmp_path / "ours" / name, text),
            write(tmp_path / "theirs" / name, text),
        )
        swd.set_prepatched_iso_n(str(ours))
        result = metadata_sync(tmp_path / "work", f"disable_prepatched_iso_flag {theirs}")
        assert result.stderr == "" and theirs.read_text() != text, name
        assert ours.read_bytes() == theirs.read_bytes(), name


# ------------------------------------------------- the component layout on both sides (>= 26.10)


def component_tree(root: Path, products: list[str], packages: dict[str, list[str]]) -> Path:
    """USM's component layout: product files at the root, metapackages <name>_<level> in the
    state directories (UP:software/release_data.py:58-82)."""
    for product in products:
        write(root / f"{product}-metadata.xml", metadata_xml(product))
    for state, names in packages.items():
        for name in names:
            level = name.split("_")[1]
            write(root / state / f"{name}-metadata.xml", metadata_xml(name, sw_version=level))
    return root


SC_26_10 = {
    "deployed": ["base_26.10.0", "k8s_26.10.0", "base_26.10.1", "k8s_26.10.1"],
    "unavailable": ["base_25.09.0"],
}


def test_component_sync_keeps_what_the_subcloud_runs_and_adds_the_patch(tmp_path: Path) -> None:
    """Our departure (StarlingX's S:591-592 would delete the subcloud's deployed metapackages):
    the deployed 26.10.0 stays as the subcloud has it, 26.10.1 becomes available - its product
    file for the root, its metapackages for available/ - without prepatched_iso N (26.10.0 is the
    lowest central level, S:655-659)."""
    staged = component_tree(
        tmp_path / "staged", ["starlingx-26.10.0", "starlingx-26.10.1", "starlingx-25.09.0"],
        SC_26_10,
    )  # fmt: skip
    subcloud = component_tree(
        tmp_path / "subcloud", ["starlingx-26.10.0"], {"deployed": ["base_26.10.0", "k8s_26.10.0"]}
    )
    assert swd.uses_component_sync("26.10", "26.10")
    assert not swd.uses_component_sync("26.10", "25.09")
    assert not swd.uses_component_sync("25.09", "26.10")
    plan = swd.component_states("26.10", str(staged), str(subcloud))
    summary = [(i, s, p and Path(p).name, [Path(m).name for m in ms], n) for i, s, p, ms, n in plan]
    assert summary == [
        ("starlingx-26.10.0", "deployed", None, [], False),
        ("starlingx-26.10.1", "available", "starlingx-26.10.1-metadata.xml",
         ["base_26.10.1-metadata.xml", "k8s_26.10.1-metadata.xml"], False),
    ]  # fmt: skip


def test_component_sync_of_a_subcloud_without_the_release(tmp_path: Path) -> None:
    """Nothing of 26.10 deployed there: every level available, the lowest with prepatched_iso N;
    a product level without metapackages on the system controller is refused before anything
    changes."""
    staged = component_tree(
        tmp_path / "staged", ["starlingx-26.10.0", "starlingx-26.10.1"], SC_26_10
    )
    subcloud = component_tree(tmp_path / "subcloud", [], {"deployed": ["base_26.03.0"]})
    plan = swd.component_states("26.10", str(staged), str(subcloud))
    assert [(i, s, n) for i, s, _p, _ms, n in plan] == [
        ("starlingx-26.10.0", "available", True),
        ("starlingx-26.10.1", "available", False),
    ]
    write(staged / "starlingx-26.10.2-metadata.xml", metadata_xml("starlingx-26.10.2"))
    with pytest.raises(swd.SyncError, match=r"no metapackage of starlingx-26\.10\.2"):
        swd.component_states("26.10", str(staged), str(subcloud))


def test_metapackage_level() -> None:
    assert swd.metapackage_level("k8s_26.10.1-metadata.xml") == "26.10.1"
    assert swd.metapackage_level("pre-base_26.10.0-metadata.xml") == "26.10.0"
    assert swd.metapackage_level("starlingx-26.10.1-metadata.xml") == ""
    assert swd.level_of("starlingx-26.10.1") == "26.10.1"
