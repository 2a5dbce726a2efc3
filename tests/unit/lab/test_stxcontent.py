"""lab/labctl/stxcontent.py: StarlingX content in StarlingX's formats, built with the real tools
(ostree), reproducible and idempotent."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest
from labctl import stxcontent
from labctl.stxcontent import ReleaseMeta

from .conftest import require_tools

SIZE = 200_000
LEVELS = ["25.09.0", "25.09.1"]


def ostree(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ostree", f"--repo={repo}", *args], capture_output=True, text=True, check=check
    )


@pytest.fixture(scope="module")
def feeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One rel-25.09 feed built once for the module (tests must not change it)."""
    require_tools("ostree")
    feed = tmp_path_factory.mktemp("sc") / "feed" / "rel-25.09"
    return feed, stxcontent.build_feed(feed, "25.09", LEVELS, SIZE)


# ------------------------------------------------------------------------------- feeds


def test_feed_is_an_archive_ostree_repo_with_one_commit_per_level(feeds):
    feed, commits = feeds
    repo = feed / "ostree_repo"
    assert list(commits) == LEVELS
    assert ostree(repo, "config", "get", "core.mode").stdout.strip() in ("archive", "archive-z2")
    assert ostree(repo, "rev-parse", "starlingx").stdout.strip() == commits["25.09.1"]
    log = ostree(repo, "log", "starlingx").stdout
    # newest first, each level's subject, the patch's parent is the base
    assert [line.strip() for line in log.splitlines() if line.strip() in LEVELS] == [
        "25.09.1",
        "25.09.0",
    ]
    assert f"commit {commits['25.09.0']}" in log
    assert f"Parent:  {commits['25.09.0']}" in log
    assert ostree(repo, "fsck").returncode == 0
    assert (repo / "summary").is_file()


def test_feed_tree_is_shaped_for_deploy_precheck(feeds):
    """deploy-precheck lists usr/local/kubernetes/<ver> of the feed (UP:scripts/deploy-precheck:
    292-304); the base commit holds ~size bytes of files."""
    feed, commits = feeds
    repo = feed / "ostree_repo"
    listing = ostree(repo, "ls", "starlingx", "/usr/local/kubernetes").stdout
    versions = sorted(line.rsplit("/", 1)[-1] for line in listing.splitlines()[1:])
    assert versions == sorted(stxcontent.LAB_RELEASES["25.09"].kubernetes)
    files = ostree(repo, "ls", "-R", commits["25.09.0"], "/usr").stdout.splitlines()
    sizes = [int(line.split()[3]) for line in files if line.startswith("-")]
    assert SIZE <= sum(sizes) < SIZE * 1.5


def test_patch_level_changes_a_few_files(feeds):
    feed, commits = feeds
    diff = ostree(feed / "ostree_repo", "diff", commits["25.09.0"], commits["25.09.1"]).stdout
    changes = [line.split()[0] for line in diff.splitlines()]
    assert changes.count("M") == 3
    assert changes.count("A") >= 1
    assert "D" not in changes


def test_feed_has_the_files_of_an_uploaded_release(feeds):
    """UP:scripts/major-release-upload:108-128: install_uuid, efi.img, kickstart, ostree_repo,
    pxeboot, upgrades."""
    feed, _commits = feeds
    assert sorted(p.name for p in feed.iterdir()) == [
        "efi.img",
        "install_uuid",
        "kickstart",
        "ostree_repo",
        "pxeboot",
        "upgrades",
    ]
    build = ElementTree.parse(feed / "upgrades" / "metadata.xml").getroot()
    assert build.tag == "build"
    assert build.findtext("version") == "25.09"
    assert [v.text for v in build.findall("supported_upgrades/upgrade/version")] == ["24.09"]
    assert (feed / "upgrades/software-deploy/deploy-precheck").stat().st_mode & 0o111
    assert len((feed / "install_uuid").read_text().strip()) == 36
    assert (feed / "kickstart").is_dir()
    assert (feed / "pxeboot").is_dir()


def test_commits_are_reproducible(feeds, tmp_path):
    _feed, commits = feeds
    again = stxcontent.build_feed(tmp_path / "rel-25.09", "25.09", LEVELS, SIZE)
    assert again == commits


def test_build_feed_is_idempotent_and_rebuilds_when_inputs_change(tmp_path):
    require_tools("ostree")
    feed = tmp_path / "rel-24.09"
    first = stxcontent.build_feed(feed, "24.09", ["24.09.0"], 100_000)
    config = feed / "ostree_repo" / "config"
    inode = config.stat().st_ino
    assert stxcontent.build_feed(feed, "24.09", ["24.09.0"], 100_000) == first
    assert config.stat().st_ino == inode  # left alone
    grown = stxcontent.build_feed(feed, "24.09", ["24.09.0", "24.09.1"], 100_000)
    assert grown["24.09.0"] == first["24.09.0"]
    assert stxcontent.ref_commit(feed / "ostree_repo") == grown["24.09.1"]
    resized = stxcontent.build_feed(feed, "24.09", ["24.09.0"], 150_000)
    assert resized["24.09.0"] != first["24.09.0"]


def test_build_feed_rebuilds_when_the_ref_moved(tmp_path):
    require_tools("ostree")
    feed = tmp_path / "rel-24.09"
    commits = stxcontent.build_feed(feed, "24.09", ["24.09.0", "24.09.1"], 50_000)
    ostree(feed / "ostree_repo", "reset", "starlingx", commits["24.09.0"])
    assert stxcontent.build_feed(feed, "24.09", ["24.09.0", "24.09.1"], 50_000) == commits
    assert stxcontent.ref_commit(feed / "ostree_repo") == commits["24.09.1"]


# ------------------------------------------------------------------- a subcloud's feed


def test_export_feed_at_holds_exactly_the_history_up_to_the_commit(feeds, tmp_path):
    feed, commits = feeds
    dest = tmp_path / "subcloud1" / "feed" / "rel-25.09"
    stxcontent.export_feed_at(
        feed / "ostree_repo",
        dest,
        commits["25.09.0"],
        cache_dir=tmp_path / "cache",
        install_uuid="uuid-of-subcloud1",
    )
    repo = dest / "ostree_repo"
    assert ostree(repo, "rev-parse", "starlingx").stdout.strip() == commits["25.09.0"]
    log = ostree(repo, "log", "starlingx").stdout
    assert f"commit {commits['25.09.0']}" in log
    assert commits["25.09.1"] not in log
    assert ostree(repo, "show", commits["25.09.1"], check=False).returncode != 0
    assert ostree(repo, "fsck").returncode == 0
    assert ostree(repo, "config", "get", "core.mode").stdout.strip() in ("archive", "archive-z2")
    assert (dest / "install_uuid").read_text() == "uuid-of-subcloud1\n"
    assert (dest / "upgrades" / "metadata.xml").read_text() == (
        feed / "upgrades" / "metadata.xml"
    ).read_text()


def test_export_feed_at_the_top_level_has_the_whole_history(feeds, tmp_path):
    feed, commits = feeds
    dest = tmp_path / "rel-25.09"
    stxcontent.export_feed_at(feed / "ostree_repo", dest, commits["25.09.1"])
    log = ostree(dest / "ostree_repo", "log", "starlingx").stdout
    assert f"commit {commits['25.09.1']}" in log
    assert f"commit {commits['25.09.0']}" in log
    # without a cache there is no template left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel-25.09"]


def test_subcloud_feeds_share_objects_but_not_mutable_files(feeds, tmp_path):
    feed, commits = feeds
    cache = tmp_path / "cache"
    one, two = tmp_path / "sc1" / "rel-25.09", tmp_path / "sc2" / "rel-25.09"
    for dest in (one, two):
        stxcontent.export_feed_at(feed / "ostree_repo", dest, commits["25.09.0"], cache_dir=cache)
    objects = sorted((one / "ostree_repo" / "objects").rglob("*.filez"))
    assert objects
    twin = two / "ostree_repo" / "objects" / objects[0].relative_to(one / "ostree_repo/objects")
    assert objects[0].stat().st_ino == twin.stat().st_ino
    for mutable in ("config", "summary", "refs/heads/starlingx"):
        assert (one / "ostree_repo" / mutable).stat().st_ino != (
            two / "ostree_repo" / mutable
        ).stat().st_ino
    # one template per (feed, commit)
    assert [p.name for p in (cache / "feed-templates").iterdir() if not p.name.startswith(".")] == [
        f"rel-25.09-{commits['25.09.0'][:16]}"
    ]


# ---------------------------------------------------------------------- USM metadata


def _parse(path: Path) -> ElementTree.Element:
    return ElementTree.parse(path).getroot()


def test_legacy_metadata_has_the_fields_usm_reads(tmp_path):
    """UP:software/software_functions.py:595-664 (id, sw_version, reboot_required,
    prepatched_iso, requires, contents/ostree with number_of_commits)."""
    metas = stxcontent.release_metas(
        {"25.09.0": "deployed", "25.09.1": "available"}, {"25.09.0": "a" * 64, "25.09.1": "b" * 64}
    )
    written = stxcontent.write_metadata(tmp_path, metas, "legacy")
    assert written == [
        tmp_path / "deployed" / "starlingx-25.09.0-metadata.xml",
        tmp_path / "available" / "starlingx-25.09.1-metadata.xml",
    ]
    ga, patch = (_parse(path) for path in written)
    assert ga.tag == patch.tag == "patch"
    assert ga.findtext("id") == "starlingx-25.09.0"
    assert ga.findtext("sw_version") == "25.09.0"
    assert ga.findtext("component") == "starlingx"
    assert ga.findtext("status") == "REL"
    assert ga.findtext("reboot_required") == "Y"
    assert patch.findtext("reboot_required") == "N"
    assert patch.findtext("prepatched_iso") == "N"
    assert [r.text for r in patch.findall("requires/req_patch_id")] == ["starlingx-25.09.0"]
    assert ga.findall("requires/req_patch_id") == []
    assert patch.findtext("contents/ostree/number_of_commits") == "1"
    assert patch.findtext("contents/ostree/base/commit") == "a" * 64
    assert patch.findtext("contents/ostree/commit1/commit") == "b" * 64
    assert ga.findtext("contents/ostree/base/commit") == ""
    assert ga.findtext("contents/ostree/commit1/commit") == "a" * 64
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(stxcontent.LEGACY_STATES)


def test_metadata_moves_with_the_state(tmp_path):
    meta = ReleaseMeta("starlingx-25.09.1", "25.09.1", "available")
    stxcontent.write_metadata(tmp_path, [meta], "legacy")
    moved = ReleaseMeta("starlingx-25.09.1", "25.09.1", "deployed")
    stxcontent.write_metadata(tmp_path, [moved], "legacy")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.xml")) == [
        "deployed/starlingx-25.09.1-metadata.xml"
    ]


def test_component_metadata_puts_products_at_the_root(tmp_path):
    """26.10: product files at the metadata root, metapackages in state directories
    (UP:software/software_functions.py:516-592; STARLINGX.md §3 step 6)."""
    metas = stxcontent.release_metas({"26.10.0": "deployed", "26.10.1": "available"})
    stxcontent.write_metadata(tmp_path, metas, "component")
    product = _parse(tmp_path / "starlingx-26.10.1-metadata.xml")
    assert product.tag == "product"
    assert [p.text for p in product.findall("metapackages/pkg")] == list(stxcontent.METAPACKAGES)
    assert product.findtext("sw_version") == "26.10.1"
    for name in stxcontent.METAPACKAGES:
        package = _parse(tmp_path / "available" / f"{name}_26.10.1-metadata.xml")
        assert package.tag == "metapackage"
        assert package.findtext("id") == f"{name}_26.10.1"
        assert package.findtext("sw_version") == "26.10.1"
        assert package.findtext("deployable") == "Y"
        assert package.findtext("reboot_required") == "N"
        assert (tmp_path / "deployed" / f"{name}_26.10.0-metadata.xml").is_file()
    # get-prestage-versions' component detection: *-*-metadata.xml at the root
    # (PR:get-prestage-versions/tasks/main.yml:67-101)
    assert sorted(p.name for p in tmp_path.glob("*-*-metadata.xml")) == [
        "starlingx-26.10.0-metadata.xml",
        "starlingx-26.10.1-metadata.xml",
    ]


def test_upgrades_metadata(tmp_path):
    path = tmp_path / "metadata.xml"
    stxcontent.write_upgrades_metadata(path, "26.10", ["25.09", "26.03"])
    root = _parse(path)
    assert root.findtext("version") == "26.10"
    assert [v.text for v in root.findall("supported_upgrades/upgrade/version")] == [
        "25.09",
        "26.03",
    ]
    with pytest.raises(stxcontent.LabError, match="must not be empty"):
        stxcontent.write_upgrades_metadata(path, "26.10", [])


def parse_image_list(text: str) -> list[str]:
    """The playbook's rules (PR:prepare-env/tasks/prepare-images-prestage-env.yml:52-75): drop
    empty lines and lines with '#' or '[', cut from the first ',', trim."""
    refs = []
    for line in text.splitlines():
        if not line or "#" in line or "[" in line:
            continue
        refs.append(line.split(",", 1)[0].strip())
    return refs


def test_image_list_exercises_the_parsing_rules(tmp_path):
    path = tmp_path / "prestage_images_images.lst"
    refs = list(stxcontent.IMAGES["25.09"])
    stxcontent.write_image_list(path, refs, "25.09 images")
    lines = path.read_text().splitlines()
    assert lines[0] == "# 25.09 images"
    assert lines[1] == ""
    assert lines[-1].startswith(refs[-1] + ",")
    assert parse_image_list(path.read_text()) == refs


def test_images_are_reproducible(tmp_path):
    require_tools("umoci")
    ref = "quay.io/jetstack/cert-manager-controller:v1.15.3"
    digests = []
    for name in ("one", "two"):
        layout = tmp_path / name / "oci"
        assert stxcontent.build_images(layout, [ref]) == [ref]
        assert stxcontent.build_images(layout, [ref]) == []  # already there
        index = json.loads((layout / "index.json").read_text())
        tags = [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
        assert tags == [stxcontent.oci_tag(ref)]
        digests.append(index["manifests"][0]["digest"])
    assert digests[0] == digests[1]


def test_images_span_the_public_registries():
    registries = {ref.split("/", 1)[0] for refs in stxcontent.IMAGES.values() for ref in refs}
    assert {"docker.io", "quay.io", "registry.k8s.io", "ghcr.io"} <= registries


def test_release_dirs(tmp_path):
    stxcontent.write_release_dirs(tmp_path, ["25.09.0", "25.09.1"])
    ga, patch = tmp_path / "rel-25.09.0", tmp_path / "rel-25.09.1"
    assert sorted(p.name for p in (ga / "bin").iterdir()) == sorted(
        stxcontent.SOFTWARE_DEPLOY_SCRIPTS
    )
    assert _parse(ga / "metadata.xml").findtext("version") == "25.09"
    assert sorted(p.name for p in (patch / "bin").iterdir()) == [
        "deploy-precheck",
        "upgrade_utils.py",
    ]
    assert (patch / "bin" / "deploy-precheck").stat().st_mode & 0o111


def test_software_scripts(tmp_path):
    scripts = stxcontent.write_software_scripts(
        tmp_path, ["starlingx-25.09.0", "starlingx-25.09.1"]
    )
    assert scripts == tmp_path / "software-scripts"
    assert sorted(p.name for p in scripts.iterdir()) == [
        "starlingx-25.09.1_post-install.sh",
        "starlingx-25.09.1_pre-install.sh",
    ]


# ------------------------------------------------------------------------ put together


def test_system_controller_and_subcloud_content(tmp_path):
    require_tools("ostree")
    sc_var, sc_opt, cache = tmp_path / "sc/var", tmp_path / "sc/opt", tmp_path / "cache"
    facts = stxcontent.build_system_controller(
        sc_var, sc_opt, cache, 50_000, install_uuid="sc-install-uuid"
    )
    assert stxcontent.SC_FEEDS == ("24.09", "25.09")
    for release in stxcontent.SC_FEEDS:
        assert (sc_var / f"www/pages/feed/rel-{release}/ostree_repo/config").is_file()
        assert (sc_opt / f"platform/iso/{release}/ostree_repo").is_dir()
        assert parse_image_list(
            (sc_opt / f"platform/deploy/{release}/prestage_images_images.lst").read_text()
        ) == list(stxcontent.IMAGES[release])
    assert (sc_var / "www/pages/feed/rel-25.09/install_uuid").read_text() == "sc-install-uuid\n"
    assert _parse(sc_opt / "upgrades/metadata.xml").findtext("version") == "25.09"
    assert facts["releases"] == {
        "starlingx-24.09.0": "unavailable",
        "starlingx-24.09.1": "unavailable",
        "starlingx-25.09.0": "deployed",
        "starlingx-25.09.1": "deployed",
    }
    patch = _parse(sc_opt / "software/metadata/deployed/starlingx-25.09.1-metadata.xml")
    assert (
        patch.findtext("contents/ostree/commit1/commit")
        == (facts["feeds"]["25.09"]["commits"]["25.09.1"])
    )
    assert sorted(p.name for p in (sc_opt / "software").glob("rel-*")) == [
        "rel-24.09.0",
        "rel-24.09.1",
        "rel-25.09.0",
        "rel-25.09.1",
    ]

    sub_var, sub_opt = tmp_path / "sub/var", tmp_path / "sub/opt"
    info = stxcontent.build_subcloud(
        sub_var, sub_opt, cache, "25.09", install_uuid="sub-uuid", sc_var_root=sc_var
    )
    assert info["level"] == "25.09.0"
    repo = sub_var / "www/pages/feed/rel-25.09/ostree_repo"
    assert stxcontent.ref_commit(repo) == facts["feeds"]["25.09"]["commits"]["25.09.0"]
    assert sorted(str(p.relative_to(sub_opt)) for p in sub_opt.rglob("*.xml")) == [
        "software/metadata/deployed/starlingx-25.09.0-metadata.xml",
        "software/rel-25.09.0/metadata.xml",
    ]
    assert (sub_opt / "platform-backup").is_dir()
    assert (sub_var / "www/pages/feed/rel-25.09/install_uuid").read_text() == "sub-uuid\n"


# ----------------------------------------------------------- the system controller's release


def test_the_subclouds_run_the_system_controllers_release_or_the_one_before():
    assert stxcontent.SC_RELEASE == "25.09"
    assert stxcontent.SC_RELEASES == ("25.09", "26.10")
    assert stxcontent.subcloud_releases("25.09") == ("24.09", "25.09")
    assert stxcontent.subcloud_releases("26.10") == ("25.09", "26.10")
    assert stxcontent.SUBCLOUD_RELEASES == ("24.09", "25.09")
    assert stxcontent.sc_feeds("26.10") == ("25.09", "26.10")
    with pytest.raises(
        stxcontent.LabError, match=re.escape("runs one of 25.09, 26.10, not '26.03'")
    ):
        stxcontent.sc_feeds("26.03")


@pytest.mark.parametrize("sc_release", stxcontent.SC_RELEASES)
def test_every_release_a_system_controller_offers_has_its_own_image_list(sc_release):
    for release in stxcontent.sc_feeds(sc_release):
        assert len(stxcontent.IMAGES[release]) == 5
        registries = {ref.split("/", 1)[0] for ref in stxcontent.IMAGES[release]}
        assert {"docker.io", "quay.io", "registry.k8s.io", "ghcr.io"} <= registries
    # no image of one release is another's: a consumer check tells them apart
    refs = [ref for refs in stxcontent.IMAGES.values() for ref in refs]
    assert len(refs) == len(set(refs))


def test_a_2610_system_controller_keeps_each_release_in_its_own_layout(tmp_path):
    """A 26.10 SC: its own releases in the component layout, 25.09's where a 25.09 host kept them
    (UP:upgrade-scripts/99-move-release-metadata-file.py:26-47 moves only the 26.10 files), its
    feeds 25.09 and 26.10, its upgrades metadata 26.10 from 25.09 and 26.03; a 26.10 subcloud
    gets the component layout only."""
    require_tools("ostree")
    sc_var, sc_opt, cache = tmp_path / "sc/var", tmp_path / "sc/opt", tmp_path / "cache"
    facts = stxcontent.build_system_controller(
        sc_var, sc_opt, cache, 50_000, sc_release="26.10", install_uuid="sc-install-uuid"
    )
    assert facts["release"] == "26.10"
    assert list(facts["feeds"]) == ["25.09", "26.10"]
    assert facts["metadata_dir"] == "/opt/software/releases/metadata"
    assert facts["metadata_dirs"] == {
        "25.09": "/opt/software/metadata",
        "26.10": "/opt/software/releases/metadata",
    }
    assert facts["images"] == {r: list(stxcontent.IMAGES[r]) for r in ("25.09", "26.10")}
    assert (sc_var / "www/pages/feed/rel-26.10/install_uuid").read_text() == "sc-install-uuid\n"
    assert (sc_var / "www/pages/feed/rel-25.09/install_uuid").read_text() != "sc-install-uuid\n"
    assert not (sc_var / "www/pages/feed/rel-24.09").exists()
    upgrades = _parse(sc_opt / "upgrades/metadata.xml")
    assert upgrades.findtext("version") == "26.10"
    assert [v.text for v in upgrades.findall("supported_upgrades/upgrade/version")] == [
        "25.09",
        "26.03",
    ]
    software = sc_opt / "software"
    assert sorted(str(p.relative_to(software)) for p in software.glob("metadata/*/*.xml")) == [
        "metadata/unavailable/starlingx-25.09.0-metadata.xml",
        "metadata/unavailable/starlingx-25.09.1-metadata.xml",
    ]
    assert _parse(software / "metadata/unavailable/starlingx-25.09.1-metadata.xml").tag == "patch"
    component = software / "releases/metadata"
    assert sorted(p.name for p in component.glob("*.xml")) == [
        "starlingx-26.10.0-metadata.xml",
        "starlingx-26.10.1-metadata.xml",
    ]
    product = _parse(component / "starlingx-26.10.1-metadata.xml")
    assert product.tag == "product"
    assert (
        product.findtext("contents/ostree/commit1/commit")
        == (facts["feeds"]["26.10"]["commits"]["26.10.1"])
    )
    assert sorted(p.name for p in (component / "deployed").iterdir()) == sorted(
        f"{name}_26.10.{level}-metadata.xml" for name in stxcontent.METAPACKAGES for level in "01"
    )
    for release in ("25.09", "26.10"):
        assert parse_image_list(
            (sc_opt / f"platform/deploy/{release}/prestage_images_images.lst").read_text()
        ) == list(stxcontent.IMAGES[release])

    sub_var, sub_opt = tmp_path / "sub/var", tmp_path / "sub/opt"
    info = stxcontent.build_subcloud(
        sub_var, sub_opt, cache, "26.10", install_uuid="sub-uuid", sc_var_root=sc_var
    )
    assert info["metadata_layout"] == "component"
    repo = sub_var / "www/pages/feed/rel-26.10/ostree_repo"
    assert stxcontent.ref_commit(repo) == facts["feeds"]["26.10"]["commits"]["26.10.0"]
    assert sorted(str(p.relative_to(sub_opt)) for p in sub_opt.rglob("*-metadata.xml")) == [
        *sorted(
            f"software/releases/metadata/deployed/{name}_26.10.0-metadata.xml"
            for name in stxcontent.METAPACKAGES
        ),
        "software/releases/metadata/starlingx-26.10.0-metadata.xml",
    ]
    assert not (sub_opt / "software/metadata").exists()
