"""The images phase module's own steps (plugins/modules/prestage_images.py) without registries:
StarlingX's messages, the docker space rule, the archive cleanup, the archive itself (real tar
and gzip; a corrupt one), the keyring, and main() through AnsibleModule. The copies against
real registries: tests/integration/images.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.distcloud.prestage.plugins.module_utils import _registry_api as api
from ansible_collections.distcloud.prestage.plugins.modules import prestage_images as mod


class Module:
    def __init__(self, params: dict[str, Any], answers=None, check_mode: bool = False) -> None:
        self.params = {key: spec.get("default") for key, spec in mod.ARGUMENT_SPEC.items()}
        self.params.update(params)
        self.check_mode = check_mode
        self.no_log_values: set[str] = set()
        self.answers = answers or {}
        self.argvs: list[list[str]] = []

    def run_command(self, argv: list[str], **_kwargs: Any) -> tuple[int, str, str]:
        self.argvs.append(list(argv))
        command = argv[4:] if argv[0] == "timeout" else argv
        for prefix, answer in self.answers.items():
            if tuple(command[: len(prefix)]) == prefix:
                return answer(command) if callable(answer) else answer
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr


def registry_storage(root: Path) -> Path:
    storage = root / "var" / "lib" / "docker-distribution"
    link = storage / "docker/registry/v2/repositories/docker.io/a/b/_manifests/tags/1/current"
    link.mkdir(parents=True)
    (link / "link").write_text("sha256:" + "0" * 64)
    return storage


def test_starlingx_messages_are_verbatim() -> None:
    # PR:prepare-env/tasks/prepare-images-prestage-env.yml:26; download_images.py:54;
    # PB:roles/common/generate-registry-filesystem-archive/tasks/main.yml:65
    assert mod.DOCKER_SPACE == (
        "Available docker space is below the minimum required space for images prestage."
    )
    assert mod.LOCAL_PASSWORD_MISSING == "Local registry password not found."
    assert mod.ARCHIVE_CORRUPT == "Registry archive file is corrupted and has been removed."


def test_docker_free_gib_rounds_up_like_df(tmp_path: Path) -> None:
    info = os.statvfs(tmp_path)
    expected = -(-(info.f_bavail * info.f_frsize) // 1024**3)
    assert mod.docker_free_gib(str(tmp_path)) == expected
    df = subprocess.run(
        ["df", "--block-size=G", str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert mod.docker_free_gib(str(tmp_path)) == int(df.stdout.splitlines()[1].split()[3][:-1])
    assert mod.docker_free_gib(str(tmp_path / "missing")) == 0


def test_docker_space_failure(tmp_path: Path) -> None:
    """A refusal before the cleanup changes nothing: the old archive stays."""
    old = tmp_path / "pb" / "25.09" / "local_registry_filesystem.tgz"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old")
    module = Module({
        "release": "25.09", "docker_dir": str(tmp_path), "docker_min_free_gib": 1e9,
        "platform_backup_dir": str(tmp_path / "pb"),
    })  # fmt: skip
    failed, result = mod.run(module)
    assert (failed, result["msg"]) == (True, mod.DOCKER_SPACE)
    assert module.argvs == []
    assert old.read_bytes() == b"old"


def test_image_list_without_references(tmp_path: Path) -> None:
    module = Module({"release": "25.09", "images": [""], "image_list_file": "/x/prestage_images"})
    failed, result = mod.run(module)
    assert (failed, result["msg"]) == (
        True,
        "File /x/prestage_images contains no image references.",
    )


def test_cleanup_archives(tmp_path: Path) -> None:
    names = ["a.tgz", "b.tar.gz", "b.tar.gz.md5", ".h.tgz", "c.txt", "d.tgz.keep"]
    names += [".local_registry_filesystem.tgz.tmp.42", ".local_registry_filesystem.state"]
    names += ["local_registry_filesystem.tgz"]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "dir.tgz").mkdir()
    keep = ("local_registry_filesystem.tgz", ".local_registry_filesystem.state")
    assert mod.cleanup_archives(str(tmp_path), check_mode=True, keep=keep) == [
        str(tmp_path / n) for n in sorted([
            ".local_registry_filesystem.tgz.tmp.42", "a.tgz", "b.tar.gz", "b.tar.gz.md5",
        ])
    ]  # fmt: skip
    assert len(list(tmp_path.iterdir())) == len(names) + 1
    removed = mod.cleanup_archives(str(tmp_path), check_mode=False)
    assert len(removed) == 5
    # the state file is not an archive: it goes only with a remade archive (it is rewritten)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".h.tgz", ".local_registry_filesystem.state", "c.txt", "d.tgz.keep", "dir.tgz"
    ]  # fmt: skip
    assert mod.cleanup_archives(str(tmp_path / "none"), check_mode=False) == []


def test_archive_members_and_compressor(tmp_path: Path) -> None:
    storage = registry_storage(tmp_path)
    release_dir = tmp_path / "pb" / "25.09"
    cores = {("bash", "-c", mod.PLATFORM_CORES): (0, "4\n", "")}
    module = Module({"release": "25.09", "registry_storage_dir": str(storage)}, cores)
    archive = mod.make_archive(module, str(release_dir), 10**12)
    expected = "pigz" if subprocess.run(["which", "pigz"], check=False).returncode == 0 else "gzip"
    assert archive["compressor"] == expected
    with tarfile.open(archive["path"], "r:gz") as tar:
        names = tar.getnames()
    prefix = str(storage).lstrip("/")
    assert (
        f"{prefix}/docker/registry/v2/repositories/docker.io/a/b/_manifests/tags/1/current/link"
        in names
    )
    assert oct(os.stat(archive["path"]).st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in release_dir.iterdir()) == [
        ".local_registry_filesystem.state", "local_registry_filesystem.tgz"
    ]  # fmt: skip
    tar = next(argv for argv in module.argvs if "tar" in argv)
    assert tar[4:] == ["tar", f"--use-compress-program={expected}", "-cf",
                       str(release_dir / f".local_registry_filesystem.tgz.tmp.{os.getpid()}"),
                       str(storage)]  # fmt: skip


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({("gzip", "-t"): (1, "", "gzip: not in gzip format")}, mod.ARCHIVE_CORRUPT),
        ({("tar",): (2, "", "tar: boom")}, "failed (tar rc 2): tar: boom"),
    ],
)
def test_a_bad_archive_leaves_nothing(tmp_path: Path, monkeypatch, answers, message) -> None:
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)  # no pigz: gzip
    storage = registry_storage(tmp_path)
    release_dir = tmp_path / "pb" / "25.09"
    module = Module({"release": "25.09", "registry_storage_dir": str(storage)}, answers)
    with pytest.raises(mod.PhaseError) as info:
        mod.make_archive(module, str(release_dir), 10**12)
    assert message in str(info.value)
    assert list(release_dir.iterdir()) == []


def test_tar_exit_status_one_is_tolerated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)

    def tar(command: list[str]) -> tuple[int, str, str]:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        assert done.returncode == 0
        return 1, "", "tar: file changed as we read it"

    storage = registry_storage(tmp_path)
    module = Module({"release": "25.09", "registry_storage_dir": str(storage)}, {("tar",): tar})
    archive = mod.make_archive(module, str(tmp_path / "pb" / "25.09"), 10**12)
    assert archive["tar_rc"] == 1
    assert os.path.isfile(archive["path"])


def test_missing_registry_storage(tmp_path: Path) -> None:
    module = Module({"release": "25.09", "registry_storage_dir": str(tmp_path / "none")})
    with pytest.raises(mod.PhaseError, match="does not exist"):
        mod.make_archive(module, str(tmp_path / "pb"), 10**12)


@pytest.mark.parametrize(
    ("installed", "value", "message"),
    [
        (True, None, "Local registry password not found."),
        (True, "", "Local registry password not found."),
        (False, None, "Local registry password not found. (no python keyring module)"),
    ],
)
def test_local_registry_password(monkeypatch, installed, value, message) -> None:
    if installed:
        fake = type(sys)("keyring")
        fake.get_password = lambda service, user: value  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "keyring", fake)
    else:
        monkeypatch.setitem(sys.modules, "keyring", None)  # import fails
    with pytest.raises(mod.PhaseError) as info:
        mod.local_registry_password()
    assert str(info.value) == message


def test_read_registries_from_service_parameters() -> None:
    parameters = {
        "docker-registry": [{"name": "url", "value": "registry.central:9001/docker.io"},
                            {"name": "auth-secret", "value": "ref-1"},
                            {"name": "secure", "value": "True"}],
    }  # fmt: skip

    def section(command: list[str]) -> tuple[int, str, str]:
        rows = parameters.get(command[4], [])
        return 0, yaml.safe_dump(rows, default_flow_style=False), ""

    answers = {
        ("bash", "-c", mod.SERVICE_PARAMETERS): section,
        ("bash", "-c", mod.SECRET, "dcprestage", "ref-1"): (0, "username:u password:p4ss\n", ""),
    }
    module = Module({"release": "25.09"}, answers)
    registries = mod.read_registries(module, 10**12)
    assert registries["docker.io"] == {
        "url": "registry.central:9001/docker.io", "secure": True, "username": "u",
        "password": "p4ss",
    }  # fmt: skip
    assert registries["icr.io"]["url"] == "registry.central:9001/icr.io"
    assert registries["quay.io"]["url"] == "registry.central:9001/docker.io"
    assert "p4ss" in module.no_log_values
    # every command is bounded by a timeout and names the section as an argument, not in code
    assert all(argv[:3] == ["timeout", "-k", "10"] for argv in module.argvs)


def test_read_registries_failures() -> None:
    def fail(command: list[str]) -> tuple[int, str, str]:
        return 1, "", "Authorization failed\n"

    module = Module({"release": "25.09"}, {("bash", "-c", mod.SERVICE_PARAMETERS): fail})
    with pytest.raises(mod.PhaseError, match="Cannot read the k8s-registry service parameters"):
        mod.read_registries(module, 10**12)
    no_url = {("bash", "-c", mod.SERVICE_PARAMETERS): (0, "- name: type\n  value: docker\n", "")}
    with pytest.raises(mod.PhaseError, match=r"^k8s_registry's url doesn't exist$"):
        mod.read_registries(Module({"release": "25.09"}, no_url), 10**12)


def test_failure_message() -> None:
    failed = [
        {"source": f"r:1/docker.io/a/b{i}:1", "error": api.RegistryError(api.NOT_FOUND, f"e{i}")}
        for i in range(5)
    ]
    message = mod.failure_message(failed)
    assert message.startswith("Failed to download images ['r:1/docker.io/a/b0:1', ")
    assert message.endswith(": e0; e1; e2 (and 2 more)")


def test_plan_image_invalid_reference() -> None:
    job = mod.plan_image("  spaced/x:1", {"docker.io": {"url": "r:1/docker.io"}}, "l:1")
    assert job["error"].kind == "invalid"
    ecr = {"docker.io": {"url": "r:1/docker.io", "type": "aws-ecr"}}
    job = mod.plan_image("docker.io/a/b:1", ecr, "l:1")
    assert "aws-ecr" in str(job["error"])


def run_main(args: dict[str, Any], monkeypatch, capsys) -> dict[str, Any]:
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kw: (1, "", ""))
    with patch_module_args(args), pytest.raises(SystemExit):
        mod.main()
    return json.loads(capsys.readouterr().out)


def test_main_for_install_without_images(tmp_path: Path, monkeypatch, capsys) -> None:
    """A same-release install without a list still makes the archive (prestage.py:469-487;
    PR:prestage-images/tasks/main.yml:65-70)."""
    storage = registry_storage(tmp_path)
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)
    real = basic.AnsibleModule.run_command
    monkeypatch.setattr(basic.AnsibleModule, "run_command", real)
    with patch_module_args({
        "release": "25.09", "platform_backup_dir": str(tmp_path / "pb"),
        "registry_storage_dir": str(storage), "docker_dir": str(tmp_path),
        "docker_min_free_gib": 0,
    }), pytest.raises(SystemExit) as info:  # fmt: skip
        mod.main()
    result = json.loads(capsys.readouterr().out)
    assert info.value.code == 0, result
    assert result["python_version"] == sys.version.split()[0]
    assert result["archive"]["compressor"] == "gzip"
    assert result["changed"] is True
    assert result["prestage_images_verified"] is True
    assert os.path.isfile(result["archive"]["path"])


def install_args(tmp_path: Path, storage: Path) -> dict[str, Any]:
    return {
        "release": "25.09", "platform_backup_dir": str(tmp_path / "pb"),
        "registry_storage_dir": str(storage), "docker_dir": str(tmp_path),
        "docker_min_free_gib": 0,
    }  # fmt: skip


def test_an_unchanged_archive_is_kept(tmp_path: Path) -> None:
    """A rerun over the same registry keeps the archive (no change); a changed registry or a
    touched archive remakes it."""
    storage = registry_storage(tmp_path)
    archive = tmp_path / "pb" / "25.09" / "local_registry_filesystem.tgz"
    failed, first = mod.run(Module(install_args(tmp_path, storage)))
    assert (failed, first["changed"]) == (False, True), first
    made = os.stat(archive)
    failed, second = mod.run(Module(install_args(tmp_path, storage)))
    assert (failed, second["changed"], second["archive"]["kept"]) == (False, False, True)
    assert second["removed"] == []
    assert os.stat(archive).st_ino == made.st_ino
    (storage / "docker/registry/v2/blobs").mkdir(parents=True)
    (storage / "docker/registry/v2/blobs/data").write_text("new layer")
    failed, third = mod.run(Module(install_args(tmp_path, storage)))
    assert (failed, third["changed"], "kept" in third["archive"]) == (False, True, False)
    with tarfile.open(archive, "r:gz") as tar:
        assert any(name.endswith("/blobs/data") for name in tar.getnames())
    os.utime(archive, ns=(1, 1))
    failed, fourth = mod.run(Module(install_args(tmp_path, storage)))
    assert (failed, fourth["changed"], "kept" in fourth["archive"]) == (False, True, False)
    assert str(archive) in fourth["removed"]


def test_main_fails_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    result = run_main(
        {"release": "25.09", "docker_dir": str(tmp_path), "docker_min_free_gib": 1e9},
        monkeypatch,
        capsys,
    )
    assert result["failed"] is True
    assert result["msg"] == mod.DOCKER_SPACE


def test_main_reports_failed_images_and_no_secret(tmp_path: Path, monkeypatch, capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    fake = type(sys)("keyring")
    fake.get_password = lambda service, user: "Local-Secret-9"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)

    def run_command(self, argv, **_kwargs):
        if mod.SERVICE_PARAMETERS in argv and "docker-registry" in argv:
            rows = [{"name": "url", "value": f"127.0.0.1:{closed}/docker.io"}]
            return 0, yaml.safe_dump(rows), ""
        return 0, "[]\n", ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    args = {"release": "25.09", "for_sw_deploy": True, "docker_dir": str(tmp_path),
            "docker_min_free_gib": 0, "images": ["docker.io/starlingx/a:1"], "retries": 0,
            "local_registry": f"127.0.0.1:{closed}"}  # fmt: skip
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        mod.main()
    output = capsys.readouterr().out
    result = json.loads(output)
    assert info.value.code == 1
    assert result["failed"] is True
    assert result["msg"].startswith("Failed to download images [")
    assert [entry["class"] for entry in result["failed_images"]] == ["transient"]
    assert "Local-Secret-9" not in output


def test_documentation_is_valid_yaml_matching_the_spec() -> None:
    doc = yaml.safe_load(mod.DOCUMENTATION)
    shared = {"release", "for_sw_deploy", "platform_backup_dir", "docker_dir"}
    options = set(doc["options"]) | shared
    assert options == set(mod.ARGUMENT_SPEC)
    assert yaml.safe_load(mod.EXAMPLES)
    returned = yaml.safe_load(mod.RETURN)
    assert {"python_version", "pulled", "present", "failed_images", "archive"} <= set(returned)


def _attempts(*outcomes: api.RegistryError | None):
    """An attempt that gives the outcomes in turn, and the count of calls."""
    calls: list[int] = []

    def attempt() -> api.RegistryError | None:
        calls.append(1)
        return outcomes[len(calls) - 1]

    return attempt, calls


def test_with_retries_retries_transient_errors_only() -> None:
    module = Module({"retries": 2, "retry_delay": 0})
    far = mod.time.monotonic() + 60
    transient = api.RegistryError(api.TRANSIENT, "reset")
    attempt, calls = _attempts(transient, None)
    assert mod.with_retries(module, attempt, far) is None
    assert len(calls) == 2
    attempt, calls = _attempts(transient, transient, transient)
    assert mod.with_retries(module, attempt, far) is transient
    assert len(calls) == 3  # one try and two retries
    hard = api.RegistryError(api.UNAUTHORIZED, "denied")
    attempt, calls = _attempts(hard)
    assert mod.with_retries(module, attempt, far) is hard
    assert len(calls) == 1


def test_with_retries_past_the_deadline_is_a_timeout() -> None:
    module = Module({"retries": 5, "retry_delay": 0})
    attempt, calls = _attempts(api.RegistryError(api.TRANSIENT, "reset"))
    error = mod.with_retries(module, attempt, mod.time.monotonic() - 1)
    assert error is not None
    assert error.kind == api.TIMEOUT
    assert str(error) == "reset (phase deadline reached)"
    assert len(calls) == 1
