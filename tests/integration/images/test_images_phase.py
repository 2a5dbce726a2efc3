"""The images phase (plugins/modules/prestage_images.py) against real docker-registry processes
(conftest.py): the module's flow runs in-process with the StarlingX commands (system,
openstack, crictl) answered by a fake run_command; tar, gzip and pigz are the real ones. One
test runs the module file itself under Python 3.9, as a subcloud would.

StarlingX references (PB: = starlingx/ansible-playbooks playbookconfig/src/playbooks/,
PR: = PB:roles/prestage/): PB:roles/common/push-docker-images/files/download_images.py,
PR:prestage-images/tasks/*.yml, PR:prepare-env/tasks/{prepare-images-prestage-env,
cleanup_prestage_dir}.yml, PB:roles/common/generate-registry-filesystem-archive/tasks/main.yml.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.distcloud.prestage.plugins.module_utils import _registry_api as api
from ansible_collections.distcloud.prestage.plugins.modules import prestage_images as mod

from .conftest import (
    CENTRAL_PASSWORD,
    LOCAL_PASSWORD,
    Registries,
    TokenService,
    World,
    blob_path,
    skopeo_raw,
)

pytestmark = pytest.mark.slow

PY39 = "/root/.pyenv/versions/3.9.18/bin/python3.9"
SECRET_REF = "http://controller:9311/v1/secrets/6a0f-docker"


class StarlingX:
    """The subcloud's StarlingX commands as the module runs them (bash scripts and crictl)."""

    def __init__(self, central: str, password: str = CENTRAL_PASSWORD, cpus: int = 2) -> None:
        # as bootstrap sets them on a subcloud: every public registry through registry.central
        # (ghcr, registryk8s and icr left out: the images phase derives them from docker.io)
        self.parameters: dict[str, dict[str, str]] = {
            section: {"url": f"{central}/{public}", "type": "docker", "secure": "True"}
            for section, public in (
                ("k8s-registry", "k8s.gcr.io"),
                ("gcr-registry", "gcr.io"),
                ("elastic-registry", "docker.elastic.co"),
            )
        }
        self.parameters |= {
            "docker-registry": {
                "url": f"{central}/docker.io",
                "type": "docker",
                "secure": "True",
                "auth-secret": SECRET_REF,
            },
            "quay-registry": {
                "url": f"{central}/quay.io",
                "type": "docker",
                "secure": "True",
                "auth-secret": SECRET_REF,
            },
        }
        self.secrets = {SECRET_REF: f"username:sysinv password:{password}\n"}
        self.cpus = cpus
        self.cached: list[str] = []
        self.calls: list[tuple[list[str], dict[str, str] | None]] = []
        self.crictl_pulls: list[str] = []

    def script(self, script: str, args: list[str]) -> tuple[int, str, str]:
        if script == mod.SERVICE_PARAMETERS:
            rows = [{"name": k, "value": v} for k, v in self.parameters.get(args[0], {}).items()]
            return 0, yaml.safe_dump(rows, default_flow_style=False), ""
        if script == mod.SECRET:
            if args[0] not in self.secrets:
                return 1, "", "Secret not found\n"
            return 0, self.secrets[args[0]], ""
        if script == mod.PLATFORM_CORES:
            return 0, f"{self.cpus}\n", ""
        raise AssertionError(f"unexpected script {script!r}")

    def crictl(self, argv: list[str], env: dict[str, str] | None) -> tuple[int, str, str]:
        if argv[1:] == ["images", "--output=json"]:
            images = [{"id": "sha256:x", "repoTags": [name]} for name in self.cached]
            return 0, json.dumps({"images": images}), ""
        assert argv[1] == "pull" and len(argv) == 3, argv
        assert (env or {}).get("CRICTL_CREDS") == f"sysinv:{LOCAL_PASSWORD}"
        self.crictl_pulls.append(argv[2])
        return 0, f"Image is up to date for {argv[2]}\n", ""


class Module:
    """What run() uses of an AnsibleModule: params, check_mode, run_command, no_log_values."""

    def __init__(self, params: dict[str, Any], stx: StarlingX, check_mode: bool = False) -> None:
        self.params = {key: spec.get("default") for key, spec in mod.ARGUMENT_SPEC.items()}
        self.params.update(params)
        self.check_mode = check_mode
        self.no_log_values: set[str] = set()
        self.stx = stx
        self.argvs: list[list[str]] = []

    def run_command(self, argv: list[str], environ_update: dict[str, str] | None = None,
                    **_kwargs: Any) -> tuple[int, str, str]:  # fmt: skip
        self.argvs.append(list(argv))
        self.stx.calls.append((list(argv), environ_update))
        command = list(argv)
        if command[0] == "timeout":
            assert command[1:3] == ["-k", "10"] and int(command[3]) >= 1
            command = command[4:]
        if command[:2] == ["bash", "-c"]:
            assert command[3] == "dcprestage"
            return self.stx.script(command[2], command[4:])
        if command[0] == "crictl":
            return self.stx.crictl(command, environ_update)
        assert command[0] in ("tar", "gzip", "pigz"), command
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr


@pytest.fixture
def keyring(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """StarlingX's python keyring, holding the local registry password."""
    store: dict[str, str | None] = {"password": LOCAL_PASSWORD}
    fake = type(sys)("keyring")
    fake.get_password = lambda service, user: (  # type: ignore[attr-defined]
        store["password"] if (service, user) == ("sysinv", "services") else None
    )
    monkeypatch.setitem(sys.modules, "keyring", fake)
    return store


def params_for(world: World, local: str, release_dir: Path, **extra: Any) -> dict[str, Any]:
    values = {
        "release": "25.09",
        "platform_backup_dir": str(release_dir.parent),
        "docker_dir": str(world.root),
        "docker_min_free_gib": 0,
        "registry_storage_dir": str(world.root / f"{local}-storage"),
        "local_registry": None,
        "registry_ca_file": str(world.pki.ca),
        "docker_certs_dir": str(world.root / "no-certs.d"),
        # a transient hiccup of a registry under load is retried, as in a real run
        "retries": 3,
        "retry_delay": 0.2,
        "timeout": 300,
    }
    values.update(extra)
    return values


def local_registry(world: World, name: str, **kwargs: Any) -> Any:
    return world.registries.start(name, password=LOCAL_PASSWORD, **kwargs)


def storage_snapshot(storage: Path) -> dict[str, tuple[int, int]]:
    """Every file of the registry storage but upload sessions: (size, mtime)."""
    snapshot = {}
    for path in storage.rglob("*"):
        if path.is_file() and "_uploads" not in path.parts:
            info = path.stat()
            snapshot[str(path.relative_to(storage))] = (info.st_size, info.st_mtime_ns)
    return snapshot


def assert_no_secret(result: dict[str, Any]) -> None:
    text = json.dumps(result)
    for secret in (CENTRAL_PASSWORD, LOCAL_PASSWORD):
        assert secret not in text


# --------------------------------------------------------------------------- copies


# One story: the copy, each name checked, the rerun: past ruff's PLR0915 limit.
def test_copy_under_starlingx_names_then_rerun_copies_nothing(  # noqa: PLR0915
    world: World, tmp_path: Path, keyring: dict
) -> None:
    local = local_registry(world, "local-main")
    central = world.central.host
    release_dir = tmp_path / "platform-backup" / "25.09"
    release_dir.mkdir(parents=True)
    for name in ("old.tgz", "images.tar.gz", "images.tar.gz.md5", ".hidden.tgz", "keep.txt"):
        (release_dir / name).write_text("x")
    images = [
        "docker.io/starlingx/stx-test:1.0",
        "registry.k8s.io/pause:3.9",  # through the clone of docker.io (PR get_docker_registries)
        "quay.io/jetstack/cm:v1",  # Docker v2 schema 2
        "docker.io/starlingx/multi:1.0",  # an OCI index and its two images
        f"{central}/docker.io/starlingx/stx-test:1.0",  # already prefixed with the url
        f"{world.public.host}/library/thing:1",  # no registry matches: as written, no auth
        "docker.io/starlingx/stx-test:1.0",  # a duplicate
    ]
    stx = StarlingX(central)
    module = Module(
        params_for(world, "local-main", release_dir, images=images, local_registry=local.host),
        stx,
    )
    started = time.monotonic()
    failed, result = mod.run(module)
    assert not failed, (result.get("msg"), result.get("failed_images"))
    assert time.monotonic() - started < 60
    assert result["python_version"] == sys.version.split()[0]
    unique = images[:-1]
    assert result["images"] == unique
    # the two names of stx-test share one local name: whichever thread comes second may find it
    assert sorted(result["pulled"] + result["present"]) == sorted(unique)
    assert set(unique) - set(result["pulled"]) <= {
        f"{central}/docker.io/starlingx/stx-test:1.0",
        "docker.io/starlingx/stx-test:1.0",
    }
    assert result["failed_images"] == []
    assert result["local_names"] == {
        "docker.io/starlingx/stx-test:1.0": f"{local.host}/docker.io/starlingx/stx-test:1.0",
        "registry.k8s.io/pause:3.9": f"{local.host}/registry.k8s.io/pause:3.9",
        "quay.io/jetstack/cm:v1": f"{local.host}/quay.io/jetstack/cm:v1",
        "docker.io/starlingx/multi:1.0": f"{local.host}/docker.io/starlingx/multi:1.0",
        f"{central}/docker.io/starlingx/stx-test:1.0":
            f"{local.host}/docker.io/starlingx/stx-test:1.0",
        f"{world.public.host}/library/thing:1": f"{local.host}/library/thing:1",
    }  # fmt: skip
    assert result["source_registries"]["registry.k8s.io"] == f"{central}/registry.k8s.io"
    # the same manifest bytes (digests) as the central registry, seen by another client
    for name in ("docker.io/starlingx/stx-test:1.0", "quay.io/jetstack/cm:v1",
                 "registry.k8s.io/pause:3.9", "docker.io/starlingx/multi:1.0"):  # fmt: skip
        assert skopeo_raw(f"{local.host}/{name}", world.pki, LOCAL_PASSWORD) == skopeo_raw(
            f"{central}/{name}", world.pki, CENTRAL_PASSWORD
        )
    # every platform of the index is pullable
    multi = json.loads(skopeo_raw(f"{local.host}/docker.io/starlingx/multi:1.0", world.pki,
                                  LOCAL_PASSWORD) or "{}")  # fmt: skip
    for entry in multi["manifests"]:
        child = f"{local.host}/docker.io/starlingx/multi@{entry['digest']}"
        assert skopeo_raw(child, world.pki, LOCAL_PASSWORD) is not None
    # install cleanup (cleanup_prestage_dir.yml:61-81): visible archives only
    assert sorted(Path(p).name for p in result["removed"]) == [
        "images.tar.gz", "images.tar.gz.md5", "old.tgz",
    ]  # fmt: skip
    assert (release_dir / ".hidden.tgz").exists()
    assert (release_dir / "keep.txt").exists()
    # the archive: gzip on 2 platform cores, members var/lib/... style (the path without "/")
    archive = result["archive"]
    assert archive["path"] == str(release_dir / "local_registry_filesystem.tgz")
    assert (archive["compressor"], archive["platform_cores"]) == ("gzip", 2)
    assert archive["size"] == os.path.getsize(archive["path"])
    prefix = str(local.storage).lstrip("/")
    with tarfile.open(archive["path"], "r:gz") as tar:
        names = tar.getnames()
    assert all(name.startswith(prefix) for name in names)
    assert (
        f"{prefix}/docker/registry/v2/repositories/docker.io/starlingx/stx-test/_manifests/"
        "tags/1.0/current/link"
    ) in names
    assert not [p for p in release_dir.iterdir() if ".tmp." in p.name]
    assert result["prestage_images_verified"] is True
    # the StarlingX commands, as StarlingX runs them
    scripts = [argv[6:] for argv in module.argvs if argv[4:6] == ["bash", "-c"]]
    sections = [s[2] for s in scripts if s[0] == mod.SERVICE_PARAMETERS]
    assert sections == [
        "k8s-registry", "gcr-registry", "quay-registry", "docker-registry", "elastic-registry",
        "ghcr-registry", "registryk8s-registry", "icr-registry",
    ]  # fmt: skip
    assert module.no_log_values >= {CENTRAL_PASSWORD, LOCAL_PASSWORD}
    assert_no_secret(result)
    assert not any(CENTRAL_PASSWORD in " ".join(a) or LOCAL_PASSWORD in " ".join(a)
                   for a in module.argvs)  # fmt: skip

    # a rerun: every image present, nothing written to the registry, the archive of the
    # unchanged registry kept: no change at all
    before = storage_snapshot(local.storage)
    stx.cpus = 4
    failed, again = mod.run(Module(module.params, stx))
    assert not failed, again
    assert (again["pulled"], again["present"]) == ([], unique)
    assert storage_snapshot(local.storage) == before
    assert (again["changed"], again["removed"], again["archive"]["kept"]) == (False, [], True)
    # an archive without our state file (an earlier version's) is made again, now with pigz
    # (4 platform cores), and bootstrap's restore command reads it
    os.unlink(os.path.join(os.path.dirname(archive["path"]), mod.ARCHIVE_STATE))
    failed, again = mod.run(Module(module.params, stx))
    assert not failed, again
    assert again["removed"] == [archive["path"]]
    assert (again["archive"]["compressor"], again["archive"]["platform_cores"]) == ("pigz", 4)
    restored = tmp_path / "restored"
    restored.mkdir()
    member = str(local.storage).lstrip("/")
    # PB:roles/bootstrap/prepare-env/tasks/main.yml: pigz -dc <a> | tar -C / -xpf - <member>
    subprocess.run(
        f"pigz -dc {again['archive']['path']} | tar -C {restored} --overwrite -xpf - {member}",
        shell=True, check=True,
    )  # fmt: skip
    served = world.registries.start("restored", password=LOCAL_PASSWORD,
                                    storage=restored / member)  # fmt: skip
    assert skopeo_raw(
        f"{served.host}/docker.io/starlingx/multi:1.0", world.pki, LOCAL_PASSWORD
    ) == skopeo_raw(f"{central}/docker.io/starlingx/multi:1.0", world.pki, CENTRAL_PASSWORD)


def test_check_mode_changes_nothing(world: World, tmp_path: Path, keyring: dict) -> None:
    local = local_registry(world, "local-check")
    release_dir = tmp_path / "pb" / "25.09"
    release_dir.mkdir(parents=True)
    (release_dir / "old.tgz").write_text("x")
    module = Module(
        params_for(
            world,
            "local-check",
            release_dir,
            local_registry=local.host,
            images=["docker.io/starlingx/stx-test:1.0"],
        ),
        StarlingX(world.central.host),
        check_mode=True,
    )
    failed, result = mod.run(module)
    assert not failed, result
    assert result["pulled"] == ["docker.io/starlingx/stx-test:1.0"]
    assert result["archive"]["would_make"] is True
    assert (release_dir / "old.tgz").exists()
    assert not (release_dir / "local_registry_filesystem.tgz").exists()
    assert (
        api.Registry(local.host, "sysinv", LOCAL_PASSWORD, ca_file=str(world.pki.ca)).tags(
            "docker.io/starlingx/stx-test"
        )
        == []
    )


# --------------------------------------------------------------------------- failures


def local_tags(world: World, local: Any, repository: str) -> list[str]:
    client = api.Registry(local.host, "sysinv", LOCAL_PASSWORD, ca_file=str(world.pki.ca))
    return client.tags(repository)


def test_missing_and_broken_images_are_not_found(
    world: World, tmp_path: Path, keyring: dict
) -> None:
    local = local_registry(world, "local-missing")
    release_dir = tmp_path / "pb" / "25.09"
    release_dir.mkdir(parents=True)
    (release_dir / "local_registry_filesystem.tgz").write_text("an older archive")
    images = ["docker.io/starlingx/missing:1", "docker.io/starlingx/broken:1",
              "registry.k8s.io/pause:3.9"]  # fmt: skip
    module = Module(
        params_for(
            world,
            "local-missing",
            release_dir,
            local_registry=local.host,
            images=images,
            retries=5,
            retry_delay=10,
        ),
        StarlingX(world.central.host),
    )
    started = time.monotonic()
    failed, result = mod.run(module)
    assert failed
    assert time.monotonic() - started < 10  # hard failures are not retried
    central = world.central.host
    assert result["msg"].startswith(
        f"Failed to download images ['{central}/docker.io/starlingx/missing:1', "
        f"'{central}/docker.io/starlingx/broken:1']: "
    )
    classes = {entry["image"]: entry["class"] for entry in result["failed_images"]}
    assert classes == {
        "docker.io/starlingx/missing:1": api.NOT_FOUND,
        "docker.io/starlingx/broken:1": api.NOT_FOUND,
    }
    broken = next(
        e for e in result["failed_images"] if e["image"] == "docker.io/starlingx/broken:1"
    )
    assert world.images.broken_layer in broken["reason"]
    assert result["pulled"] == ["registry.k8s.io/pause:3.9"]
    # no tag for what failed; StarlingX's order: the old archive is gone, no new one made
    assert local_tags(world, local, "docker.io/starlingx/broken") == []
    assert local_tags(world, local, "docker.io/starlingx/missing") == []
    assert "archive" not in result
    assert not (release_dir / "local_registry_filesystem.tgz").exists()
    assert result["prestage_images_verified"] is False


def test_wrong_password_is_unauthorized(world: World, tmp_path: Path, keyring: dict) -> None:
    local = local_registry(world, "local-auth")
    release_dir = tmp_path / "pb" / "25.09"
    module = Module(
        params_for(world, "local-auth", release_dir, local_registry=local.host,
                   images=["docker.io/starlingx/stx-test:1.0"], retries=5, retry_delay=10),
        StarlingX(world.central.host, password="not-the-password"),
    )  # fmt: skip
    started = time.monotonic()
    failed, result = mod.run(module)
    assert failed
    assert time.monotonic() - started < 10
    assert [e["class"] for e in result["failed_images"]] == [api.UNAUTHORIZED]
    assert "unauthorized" in result["failed_images"][0]["reason"]
    assert_no_secret(result)
    assert "not-the-password" not in json.dumps(result)


def test_local_password_missing(world: World, tmp_path: Path, keyring: dict) -> None:
    keyring["password"] = None
    module = Module(
        params_for(
            world,
            "none",
            tmp_path / "pb" / "25.09",
            local_registry="127.0.0.1:9",
            images=["docker.io/starlingx/stx-test:1.0"],
        ),
        StarlingX(world.central.host),
    )
    failed, result = mod.run(module)
    assert (failed, result["msg"]) == (True, "Local registry password not found.")


def test_source_registry_down_is_transient(world: World, tmp_path: Path, keyring: dict) -> None:
    local = local_registry(world, "local-down")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    stx = StarlingX(world.central.host)
    stx.parameters["docker-registry"]["url"] = f"127.0.0.1:{closed}/docker.io"
    module = Module(
        params_for(world, "local-down", tmp_path / "pb" / "25.09", local_registry=local.host,
                   images=["docker.io/starlingx/stx-test:1.0"], retries=2, retry_delay=0.1),
        stx,
    )  # fmt: skip
    failed, result = mod.run(module)
    assert failed
    assert [e["class"] for e in result["failed_images"]] == [api.TRANSIENT]
    assert "connection refused" in result["failed_images"][0]["reason"]
    assert (
        result["failed_images"][0]["source"]
        == f"127.0.0.1:{closed}/docker.io/starlingx/stx-test:1.0"
    )
    assert local_tags(world, local, "docker.io/starlingx/stx-test") == []


def test_phase_timeout(world: World, tmp_path: Path, keyring: dict) -> None:
    """A source that accepts connections and never answers: the phase stops at its timeout."""
    local = local_registry(world, "local-timeout")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        stx = StarlingX(world.central.host)
        stx.parameters["docker-registry"]["url"] = f"127.0.0.1:{silent.getsockname()[1]}/docker.io"
        module = Module(
            params_for(world, "local-timeout", tmp_path / "pb" / "25.09",
                       local_registry=local.host, images=["docker.io/starlingx/stx-test:1.0"],
                       retries=100, retry_delay=0.2, timeout=3),
            stx,
        )  # fmt: skip
        started = time.monotonic()
        failed, result = mod.run(module)
    finally:
        silent.close()
    assert failed
    assert time.monotonic() - started < 15
    assert result["prestage_timeout"] is True
    assert result["msg"] == (
        "Prestaging images timed out after 3 seconds (prestage_images_timeout)"
    )
    assert [e["class"] for e in result["failed_images"]] == [api.TIMEOUT]


def test_destination_full(world: World, tmp_path: Path, keyring: dict) -> None:
    """The local registry's storage is a 1 MiB tmpfs (root) - the 3 MiB layer does not fit:
    StarlingX's 'no space left on device' class, and no tag. Without root, a read-only storage
    stands in, and the class is what the registry's answer says (transient)."""
    storage = tmp_path / "small-storage"
    storage.mkdir()
    mounted = False
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(storage)],
                       check=True)  # fmt: skip
        mounted = True
    else:
        storage.chmod(0o555)
    try:
        local = local_registry(world, "local-full", storage=storage)
        module = Module(
            params_for(world, "local-full", tmp_path / "pb" / "25.09", local_registry=local.host,
                       images=["docker.io/starlingx/big:1"], archive=False),
            StarlingX(world.central.host),
        )  # fmt: skip
        failed, result = mod.run(module)
        assert failed
        expected = api.NO_SPACE if mounted else api.TRANSIENT
        assert [e["class"] for e in result["failed_images"]] == [expected], result["failed_images"]
        if mounted:
            assert "no space left on device" in result["failed_images"][0]["reason"]
        assert local_tags(world, local, "docker.io/starlingx/big") == []
        client = api.Registry(local.host, "sysinv", LOCAL_PASSWORD, ca_file=str(world.pki.ca))
        assert client.manifest_digest("docker.io/starlingx/big", "1") is None
    finally:
        for registry in world.registries.started:
            if registry.name == "local-full":
                registry.stop()
        if mounted:
            subprocess.run(["umount", str(storage)], check=True)


# --------------------------------------------------------------------------- software deploy


def test_sw_deploy_keeps_the_install_archive_and_feeds_containerd(
    world: World, tmp_path: Path, keyring: dict
) -> None:
    local = local_registry(world, "local-swd")
    release_dir = tmp_path / "pb" / "25.09"
    release_dir.mkdir(parents=True)
    archive = release_dir / "local_registry_filesystem.tgz"
    archive.write_text("a for-install prestage")
    stx = StarlingX(world.central.host)
    stx.cached = [f"{local.host}/registry.k8s.io/pause:3.9"]  # already in containerd
    images = ["docker.io/starlingx/stx-test:1.0", "registry.k8s.io/pause:3.9"]
    module = Module(
        params_for(
            world,
            "local-swd",
            release_dir,
            local_registry=local.host,
            images=images,
            for_sw_deploy=True,
        ),
        stx,
    )
    failed, result = mod.run(module)
    assert not failed, result
    assert result["pulled"] == images
    assert archive.read_text() == "a for-install prestage"  # SPEC §10: not deleted
    assert result["removed"] == []
    assert "archive" not in result
    assert stx.crictl_pulls == [f"{local.host}/docker.io/starlingx/stx-test:1.0"]
    assert result["crictl_pulled"] == stx.crictl_pulls
    # crictl gets the credentials in its environment, never on its command line
    for argv, env in stx.calls:
        if "crictl" in argv:
            assert LOCAL_PASSWORD not in " ".join(argv)
            if "pull" in argv:
                assert env == {"CRICTL_CREDS": f"sysinv:{LOCAL_PASSWORD}"}
    # a rerun: present in the registry, and containerd gets what it lacks (download_images.py
    # 189-209 does that for images found in the local registry)
    stx.crictl_pulls.clear()
    stx.cached = []
    failed, again = mod.run(Module(module.params, stx))
    assert not failed, again
    assert (again["pulled"], again["present"]) == ([], images)
    assert len(stx.crictl_pulls) == 2


# --------------------------------------------------------------------------- Bearer tokens


def test_local_registry_with_token_auth(world: World, tmp_path: Path, keyring: dict) -> None:
    """StarlingX's registry.local authenticates with tokens (a token server on :9002): the
    same copy against a docker-registry configured with ``auth: token``."""
    tokens = TokenService(world.pki, {"sysinv": LOCAL_PASSWORD}, "test-registry", "test-issuer")
    try:
        local = world.registries.start(
            "local-token",
            token={"realm": tokens.realm, "service": "test-registry", "issuer": "test-issuer",
                   "rootcertbundle": str(world.pki.ca)},
        )  # fmt: skip
        images = ["docker.io/starlingx/stx-test:1.0", "docker.io/starlingx/multi:1.0"]
        module = Module(
            params_for(world, "local-token", tmp_path / "pb" / "25.09",
                       local_registry=local.host, images=images, archive=False),
            StarlingX(world.central.host),
        )  # fmt: skip
        failed, result = mod.run(module)
        assert not failed, result
        assert result["pulled"] == images
        scopes = {scope for request in tokens.requests for scope in request.get("scope", [])}
        assert "repository:docker.io/starlingx/stx-test:pull,push" in scopes
        assert all(request.get("service") == ["test-registry"] for request in tokens.requests)
        # the layer shared by both images was mounted, not uploaded twice
        failed, again = mod.run(Module(module.params, StarlingX(world.central.host)))
        assert (failed, again["present"]) == (False, images)
    finally:
        tokens.stop()


# --------------------------------------------------------------------------- Python 3.9


@pytest.mark.skipif(not os.path.exists(PY39), reason="no Python 3.9")
def test_the_module_runs_on_python39(world: World, tmp_path: Path) -> None:
    """The module file as Ansible ships it to a subcloud: Python 3.9, its standard library, a
    keyring module, StarlingX's CLIs on PATH (stand-ins written here)."""
    local = local_registry(world, "local-py39")
    path = tmp_path / "pythonpath"
    path.mkdir()
    site = Path(sys.modules["ansible"].__file__).parent  # the controller's ansible package
    (path / "ansible").symlink_to(site)
    (path / "ansible_collections").symlink_to(Path(mod.__file__).parents[4])
    (path / "keyring.py").write_text(
        "def get_password(service, user):\n"
        f"    return {LOCAL_PASSWORD!r} if (service, user) == ('sysinv', 'services') else None\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answers = {
        section: yaml.safe_dump(
            [{"name": k, "value": v} for k, v in values.items()], default_flow_style=False
        )
        for section, values in StarlingX(world.central.host).parameters.items()
    }
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    (bin_dir / "system").write_text(
        f"#!{PY39}\n"
        "import json, sys\n"
        f"answers = json.load(open({str(tmp_path / 'answers.json')!r}))\n"
        "if sys.argv[1] == 'service-parameter-list':\n"
        "    print(answers.get(sys.argv[3], '[]'), end='')\n"
        "elif sys.argv[1] == 'host-cpu-list':\n"
        "    print('| 0 | Platform |\\n| 1 | Platform |\\n| 2 | Application |')\n"
    )
    (bin_dir / "openstack").write_text(
        f"#!/bin/sh\nprintf 'username:sysinv password:%s\\n' {CENTRAL_PASSWORD!r}\n"
    )
    for tool in ("system", "openstack"):
        (bin_dir / tool).chmod(0o755)
    release_dir = tmp_path / "pb" / "25.09"
    args = {
        "ANSIBLE_MODULE_ARGS": {
            **params_for(world, "local-py39", release_dir, local_registry=local.host,
                         images=["docker.io/starlingx/stx-test:1.0", "registry.k8s.io/pause:3.9"]),
        }
    }  # fmt: skip
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps(args))
    env = dict(os.environ, PYTHONPATH=str(path), PATH=f"{bin_dir}:{os.environ['PATH']}")
    done = subprocess.run(
        [PY39, "-m", "ansible_collections.distcloud.prestage.plugins.modules.prestage_images",
         str(args_file)],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.stdout, done.stderr
    result = json.loads(done.stdout)
    assert done.returncode == 0, result
    assert result["python_version"] == "3.9.18"
    assert result["pulled"] == ["docker.io/starlingx/stx-test:1.0", "registry.k8s.io/pause:3.9"]
    # gzip: pigz only pays off from 4 platform cores (the stand-in says 2)
    assert (result["archive"]["compressor"], result["archive"]["platform_cores"]) in (
        ("gzip", 2),
        ("gzip", None),  # no pigz installed
    )
    assert Path(result["archive"]["path"]).is_file()
    assert_no_secret(result)


def test_registries_fixture_stops_what_it_started(world: World) -> None:
    assert isinstance(world.registries, Registries)
    assert world.central.process.poll() is None
    assert blob_path(world.central.storage, world.images.broken_layer).exists() is False
