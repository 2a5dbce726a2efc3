"""The images phase on lab subclouds (STARLINGX.md §4): the image list as StarlingX reads it, the
source registries from the subcloud's own service parameters, download_images.py's mapping, the
local names everything later pulls (`registry.local:9001/<public registry>/<repo>:<tag>`), and its
hard failures - with only what a StarlingX subcloud has (no skopeo)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from labctl import consumers

from tests.integration.prestage.conftest import SC_RELEASE, Prestage

pytestmark = pytest.mark.lab

LIST = f"/opt/platform/deploy/{SC_RELEASE}/prestage_images_images.lst"
# StarlingX tries a download 10 times, 5 s apart; a failure test needs no such patience
FEW_RETRIES = {"prestage_images_retries": 2, "prestage_images_retry_delay": 1}


@contextlib.contextmanager
def image_list(prestage: Prestage, *extra: str) -> Iterator[None]:
    """The release's image list on the SC with extra lines, for the length of a test."""
    sc = prestage.lab.sc
    prestage.inside(sc, f"cp -p {LIST} {LIST}.orig")
    lines = "".join(f"{line}\\n" for line in extra)
    prestage.inside(sc, f"printf '{lines}' >>{LIST}")
    try:
        yield
    finally:
        prestage.inside(sc, f"mv {LIST}.orig {LIST}")


def tags(prestage: Prestage, name: str, repository: str) -> list[str]:
    status, body = prestage.lab.registry_api(
        prestage.lab.registry(name), f"/v2/{repository}/tags/list"
    )
    return list((body or {}).get("tags") or []) if status == 200 else []


def test_every_mapping_lands_under_its_public_registry_and_a_rerun_copies_nothing(
    lab: Any, prestage: Prestage
) -> None:
    """docker.io and quay.io through their own service parameters, registry.k8s.io and ghcr.io
    through docker.io's (cloned: PR:prestage-images/tasks/get_docker_registries.yml:22-68), and a
    reference already prefixed with registry.central (pulled as written, stored under its
    public name: PB:roles/common/push-docker-images/files/download_images.py:123-159)."""
    name = prestage.subclouds("24.09")[0]
    prefixed = f"registry.central:9001/docker.io/starlingx/stx-pause:{SC_RELEASE}"
    images = prestage.images()
    assert {image.split("/")[0] for image in images} == {
        "docker.io",
        "quay.io",
        "registry.k8s.io",
        "ghcr.io",
    }
    with image_list(prestage, prefixed):
        run = prestage.run(name)
        assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
        result = run.task(name, "images")
        assert (
            result["local_names"][prefixed] == f"registry.local:9001/docker.io/starlingx/"
            f"stx-pause:{SC_RELEASE}"
        )
        assert sorted({*result["pulled"], *result["present"]}) == sorted({*images, prefixed})
        consumers.local_images(lab.paths, name, images)
        consumers.bootstrap(lab.paths, name, SC_RELEASE, images)
        # nothing a StarlingX subcloud lacks was needed
        assert prestage.inside(name, "command -v skopeo", check=False).returncode != 0

        again = prestage.run(name)
    assert again.rc == 0
    result = again.task(name, "images")
    assert result["pulled"] == []
    assert sorted(result["present"]) == sorted({*images, prefixed})


def test_an_unprefixed_reference_is_pulled_as_written_and_fails_without_the_internet(
    lab: Any, prestage: Prestage
) -> None:
    name = prestage.subclouds("24.09")[0]
    with image_list(prestage, f"starlingx/stx-pause:{SC_RELEASE}"):
        run = prestage.run(name, extra=FEW_RETRIES)
    assert run.rc != 0
    failure = run.failure(name)
    assert failure is not None and failure[0] == "images"
    assert f"starlingx/stx-pause:{SC_RELEASE}" in failure[1]
    failed = run.task(name, "images")["failed_images"]
    assert [(f["image"], f["local"]) for f in failed] == [
        (
            f"starlingx/stx-pause:{SC_RELEASE}",
            f"registry.local:9001/starlingx/stx-pause:{SC_RELEASE}",
        )
    ]
    assert "Prestaging images failed for subcloud" in run.step(name)["details"]


@pytest.mark.parametrize(
    ("fault", "expected_class"),
    [
        ("missing-image", "not_found"),
        ("wrong-credentials", "unauthorized"),
        ("registry-down", "transient"),
        ("registry-full", "no_space"),
    ],
)
def test_a_hard_failure_names_its_class_and_image_and_leaves_no_tag(
    lab: Any, prestage: Prestage, fault: str, expected_class: str
) -> None:
    """download_images.py's hard failures (23-29, 95-106) and registry.central down, each one
    clear reason naming the image; the subcloud's registry keeps no tag of a failed image; a
    fault of one subcloud does not hold up another of the run."""
    name, other = prestage.subclouds(SC_RELEASE)[:2]
    missing = "docker.io/starlingx/no-such-image:1.0"
    secrets = lab.path(name, "/etc/platform") / "lab" / "secrets.json"
    with contextlib.ExitStack() as undo:
        if fault == "missing-image":
            undo.enter_context(image_list(prestage, missing))
        elif fault == "wrong-credentials":
            original = secrets.read_text()
            secrets.write_text(
                json.dumps(
                    {
                        ref: payload.replace("password:", "password:wrong-")
                        for ref, payload in json.loads(original).items()
                    }
                )
            )
            undo.callback(secrets.write_text, original)
        else:
            target = lab.sc if fault == "registry-down" else name
            lab.fault(fault, target)
            undo.callback(lab.fault, fault, target, undo=True)
        run = prestage.run(name, other, extra=FEW_RETRIES)
        assert run.rc != 0
        failure = run.failure(name)
        assert failure is not None and failure[0] == "images", run.stdout[-3000:]
        failed = run.task(name, "images")["failed_images"]
        assert failed and {f["class"] for f in failed} == {expected_class}, failed
        assert all(f["image"] in failure[1] or f["source"] in failure[1] for f in failed[:3])
        for image in failed:  # no tag of what failed (the manifest goes last)
            repository, tag = image["local"].split("/", 1)[1].rsplit(":", 1)
            assert tag not in tags(prestage, name, repository), image
    if fault == "missing-image":
        assert [f["image"] for f in failed] == [missing]
    if fault in ("wrong-credentials", "registry-full"):
        assert run.complete(other), "the other subcloud of the run is unaffected"
