#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_images_sync
short_description: Copy container images into a subcloud's local registry and archive it
version_added: 0.1.0
description:
  - The subcloud side of the images phase (M(distcloud.prestage.prestage_images) runs it).
  - Runs C(skopeo) on the subcloud, as StarlingX's own prestage does its image downloads there;
    each image of O(images) is copied from its registry (the central registry) into
    O(local_registry), unless the local registry already holds it with the same manifest digest.
    Copies keep digests (C(--preserve-digests), all platforms of a list) and are checked after
    the copy.
  - With O(archive), the registry storage O(registry_storage_dir) is then archived to that path
    (tar, gzip), the archive is tested (the whole stream is read back), and a corrupt or
    incomplete archive is removed and the module fails. An archive whose registry storage has
    not changed since it was made is kept as it is.
  - Checks first that O(docker_dir) has O(docker_min_free_gib) free.
  - Supports check mode (reports which images would be copied).
extends_documentation_fragment:
  - distcloud.prestage.prestage.docker_dir
options:
  images:
    description: Image references, as in the release's image list.
    type: list
    elements: str
    required: true
  central_registry:
    description: Registry of the references that name none (C(host:port)).
    type: str
    default: registry.central:9001
  local_registry:
    description: The subcloud's local registry.
    type: str
    default: registry.local:9001
  registry_auths:
    description: Credentials, one per registry; they are written to a private temporary
      authentication file for C(skopeo) and removed after the run.
    type: list
    elements: dict
    default: []
    suboptions:
      registry:
        description: C(host:port) of the registry.
        type: str
        required: true
      username:
        description: User name.
        type: str
        required: true
      password:
        description: Password.
        type: str
        required: true
  src_tls_verify:
    description: Verify the source registries' certificates.
    type: bool
    default: true
  dest_tls_verify:
    description: Verify the local registry's certificate.
    type: bool
    default: true
  archive:
    description: Archive the registry storage to this path after the copies (prestage for install).
    type: path
  registry_storage_dir:
    description: The local registry's storage.
    type: path
    default: /var/lib/docker-distribution
  docker_min_free_gib:
    description: Free space needed in O(docker_dir).
    type: float
    default: 16
  parallel:
    description: Images handled at once.
    type: int
    default: 4
  retries:
    description: Retries of each registry operation (C(skopeo --retry-times)).
    type: int
    default: 2
  timeout:
    description: Seconds the whole run may take; then it stops and fails with RV(prestage_timeout).
    type: int
    default: 7200
  skopeo:
    description: The skopeo command.
    type: str
    default: skopeo
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Copy the release's images into the local registry
  distcloud.prestage.prestage_images_sync:
    images:
      - registry.central:9001/starlingx/stx-pause:24.09
    archive: /opt/platform-backup/24.09/local_registry_filesystem.tgz
  become: true
"""

RETURN = r"""
copied:
  description: Images copied into the local registry.
  type: list
  elements: str
  returned: always
present:
  description: Images the local registry already held with the same digest.
  type: list
  elements: str
  returned: always
archive:
  description: The archive made or kept (path, size, whether it was made now and tested).
  type: dict
  returned: with O(archive)
prestage_images_verified:
  description: Every image is in the local registry with the source's digest (and the archive
    tested).
  type: bool
  returned: success
prestage_timeout:
  description: The run did not finish within O(timeout).
  type: bool
  returned: on timeout
"""

import base64  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _content as content,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    DOCKER_DIR_ARG,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._subcloud import (  # noqa: E402
    GIB,
    docker_space_failure,
)

ARGUMENT_SPEC = dict(
    **DOCKER_DIR_ARG,
    images=dict(type="list", elements="str", required=True),
    central_registry=dict(type="str", default="registry.central:9001"),
    local_registry=dict(type="str", default="registry.local:9001"),
    registry_auths=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            registry=dict(type="str", required=True),
            username=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
        ),
    ),
    src_tls_verify=dict(type="bool", default=True),
    dest_tls_verify=dict(type="bool", default=True),
    archive=dict(type="path"),
    registry_storage_dir=dict(type="path", default="/var/lib/docker-distribution"),
    docker_min_free_gib=dict(type="float", default=16),
    parallel=dict(type="int", default=4),
    retries=dict(type="int", default=2),
    timeout=dict(type="int", default=7200),
    skopeo=dict(type="str", default="skopeo"),
)


class Timeout(Exception):
    pass


class ImageError(Exception):
    pass


def split_reference(reference, default_registry):
    """(registry, repository[:tag|@digest]) of an image reference; docker's rule: the first
    component names a registry when it holds a dot or a colon, or is localhost."""
    first, sep, rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return default_registry, reference


def run(argv, deadline, env=None):
    """(rc, stdout bytes, stderr text) of argv, killed at the deadline (Timeout)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Timeout()
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            timeout=remaining,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Timeout() from None
    return done.returncode, done.stdout, done.stderr.decode("utf-8", "replace")


def one_line(text, limit=400):
    return " ".join((text or "").split())[:limit]


class Registries:
    def __init__(self, module, authfile, deadline):
        self.module = module
        self.params = module.params
        self.authfile = authfile
        self.deadline = deadline
        self.env = dict(os.environ, LC_ALL="C")

    def _common(self, tls_verify):
        argv = [self.params["skopeo"], "--command-timeout", "600s"]
        return argv, [
            "--authfile",
            self.authfile,
            f"--tls-verify={str(tls_verify).lower()}",
        ]

    def digest(self, reference, tls_verify, missing_ok):
        """sha256 digest of the manifest of reference; None when missing_ok and it is absent."""
        head, tail = self._common(tls_verify)
        argv = [*head, "inspect", "--raw", "--retry-times", str(self.params["retries"]), *tail]
        rc, out, err = run([*argv, "docker://" + reference], self.deadline, self.env)
        if rc == 0:
            return "sha256:" + hashlib.sha256(out).hexdigest()
        lowered = err.lower()
        if missing_ok and ("manifest unknown" in lowered or "name unknown" in lowered
                           or "not found" in lowered):  # fmt: skip
            return None
        raise ImageError(f"cannot inspect {reference}: {one_line(err)}")

    def copy(self, source, target):
        argv = [
            self.params["skopeo"], "--command-timeout", "3600s", "copy", "--all",
            "--preserve-digests", "--retry-times", str(self.params["retries"]),
            "--authfile", self.authfile,
            "--src-tls-verify={}".format(str(self.params["src_tls_verify"]).lower()),
            "--dest-tls-verify={}".format(str(self.params["dest_tls_verify"]).lower()),
            "docker://" + source, "docker://" + target,
        ]  # fmt: skip
        rc, _out, err = run(argv, self.deadline, self.env)
        if rc != 0:
            raise ImageError(f"cannot copy {source} to {target}: {one_line(err)}")


def sync_image(registries, reference, check_mode):
    params = registries.params
    registry, path = split_reference(reference, params["central_registry"])
    source = f"{registry}/{path}"
    target = "{}/{}".format(params["local_registry"], path)
    wanted = registries.digest(source, params["src_tls_verify"], missing_ok=False)
    have = registries.digest(target, params["dest_tls_verify"], missing_ok=True)
    if have == wanted:
        return {"image": reference, "target": target, "digest": wanted, "copied": False}
    if check_mode:
        return {"image": reference, "target": target, "digest": wanted, "copied": True}
    registries.copy(source, target)
    after = registries.digest(target, params["dest_tls_verify"], missing_ok=True)
    if after != wanted:
        raise ImageError(f"{target} holds digest {after} after the copy, the source has {wanted}")
    return {"image": reference, "target": target, "digest": wanted, "copied": True}


def write_authfile(directory, auths):
    entries = {}
    for auth in auths:
        token = "{}:{}".format(auth["username"], auth["password"])
        entries[auth["registry"]] = {"auth": base64.b64encode(token.encode()).decode()}
    path = os.path.join(directory, "auth.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"auths": entries}, handle)
    return path


def remove_quietly(path):
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def archive_registry(module, deadline, changed_images):
    """Archive the registry storage to params.archive (kept when up to date), tested."""
    params = module.params
    path = params["archive"]
    storage = params["registry_storage_dir"]
    state_path = os.path.join(os.path.dirname(path), content.REGISTRY_ARCHIVE_STATE)
    signature = content.tree_signature(storage)
    if signature is None:
        module.fail_json(msg=f"The local registry storage {storage} does not exist")
    state = {}
    try:
        with open(state_path) as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    try:
        info = os.stat(path)
    except OSError:
        info = None
    if (
        not changed_images
        and info is not None
        and state.get("signature") == signature["signature"]
        and state.get("size") == info.st_size
        and state.get("mtime_ns") == info.st_mtime_ns
    ):
        return {"path": path, "size": info.st_size, "made": False, "tested": False,
                "up_to_date": True}  # fmt: skip
    if module.check_mode:
        return {"path": path, "made": False, "would_make": True}

    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    tmp = f"{path}.tmp.{os.getpid()}"
    remove_quietly(state_path)
    try:
        rc, _out, err = run(["tar", "-C", storage, "-czf", tmp, "."], deadline)
        if rc != 0:
            removed = remove_quietly(tmp)
            remove_quietly(path)
            module.fail_json(
                msg="Archiving the local registry to {} failed: {}{}".format(
                    path, one_line(err), "; the incomplete archive was removed" if removed else ""
                )
            )
        rc, _out, err = run(["tar", "-tzf", tmp], deadline)
        if rc != 0:
            remove_quietly(tmp)
            remove_quietly(path)
            module.fail_json(
                msg=(
                    f"The local registry archive {path} is corrupt ({one_line(err)}); "
                    "it was removed"
                )
            )
    except Timeout:
        remove_quietly(tmp)
        raise
    os.rename(tmp, path)
    info = os.stat(path)
    content.atomic_write(
        state_path,
        json.dumps(
            {
                "signature": signature["signature"],
                "size": info.st_size,
                "mtime_ns": info.st_mtime_ns,
            }
        )
        + "\n",
    )
    return {"path": path, "size": info.st_size, "made": True, "tested": True}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    deadline = time.monotonic() + max(1, params["timeout"])

    free = content.free_bytes(params["docker_dir"])
    if free < params["docker_min_free_gib"] * GIB:
        module.fail_json(
            msg=docker_space_failure(params["docker_dir"], free, params["docker_min_free_gib"])
        )
    if shutil.which(params["skopeo"]) is None:
        module.fail_json(msg="{} is not installed on the subcloud".format(params["skopeo"]))

    workdir = tempfile.mkdtemp(prefix="dcprestage-images-")
    os.chmod(workdir, 0o700)
    results = []
    try:
        registries = Registries(module, write_authfile(workdir, params["registry_auths"]), deadline)
        with ThreadPoolExecutor(max_workers=max(1, params["parallel"])) as pool:
            futures = [
                pool.submit(sync_image, registries, image, module.check_mode)
                for image in params["images"]
            ]
            errors = []
            for future in futures:
                try:
                    results.append(future.result())
                except ImageError as exc:
                    errors.append(str(exc))
        if errors:
            module.fail_json(
                msg="Prestaging images failed: {}".format("; ".join(errors[:3]))
                + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""),
                copied=[r["image"] for r in results if r["copied"]],
            )
        copied = [r["image"] for r in results if r["copied"]]
        outcome = {
            "changed": bool(copied),
            "copied": copied,
            "present": [r["image"] for r in results if not r["copied"]],
        }
        if params["archive"]:
            archive = archive_registry(module, deadline, bool(copied))
            outcome["archive"] = archive
            outcome["changed"] = outcome["changed"] or bool(
                archive.get("made") or archive.get("would_make")
            )
        outcome["prestage_images_verified"] = not module.check_mode
        module.exit_json(**outcome)
    except Timeout:
        module.fail_json(
            msg=f"Prestaging images timed out after {params['timeout']} seconds",
            prestage_timeout=True,
            copied=[r["image"] for r in results if r["copied"]],
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
