#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_images
short_description: Prestage a release's container images on a subcloud (images phase)
version_added: 0.1.0
description:
  - The images phase of the C(distcloud.prestage.prestage_install) and
    C(distcloud.prestage.prestage_sw_deploy) roles. Runs on the subcloud as root (C(become)),
    with the subcloud's Python (3.9) and its standard library only (plus C(keyring), which
    StarlingX ships); no docker daemon, no skopeo. It does what StarlingX's
    C(prestage_images.yml) does there, in the same order.
  - 1. The free space of O(docker_dir), as C(df --block-size=G) shows it (rounded up), must be
    at least O(docker_min_free_gib), else it fails with StarlingX's message
    C(Available docker space is below the minimum required space for images prestage.)
  - 2. For install, the image archives of the release directory
    (O(platform_backup_dir)C(/<release>/{*.tar.gz,*.tar.gz.md5,*.tgz})) are deleted, as
    StarlingX does before it makes a new one. A prestage for software deployment does B(not)
    delete them (a deliberate departure from StarlingX, whose cleanup would destroy a valid
    for-install prestage of the same release).
  - 3. When O(images) is not empty, the source registries come from the subcloud's own docker
    registry service parameters (C(system service-parameter-list) of the sections
    C(k8s-registry), C(gcr-registry), C(quay-registry), C(docker-registry),
    C(elastic-registry), C(ghcr-registry), C(registryk8s-registry), C(icr-registry); secrets
    with C(openstack secret get)), normally C(registry.central:9001/<public registry>). Missing
    C(ghcr.io), C(registry.k8s.io) and C(icr.io) registries are derived from C(docker.io)'s.
  - 4. Each image (duplicates dropped) is mapped as StarlingX's C(download_images.py) maps it
    (C(docker.io/x/y:t) is pulled from C(<docker.io url>/x/y:t); C(<url>/docker.io/x/y:t) as
    written; an image no registry matches as written, without credentials) and kept in
    O(local_registry) under C(<local registry>/<public registry>/<repo>:<tag>) (a first
    component with a port is dropped). An image already there is left alone (a rerun copies
    nothing). Otherwise its manifest (or manifest list and every image of it), config and
    layers are copied over the Docker Registry HTTP API v2, digests unchanged, the manifest
    written last (a failed copy leaves no tag). The local registry is logged in to as
    C(sysinv), with the password the python keyring holds for service C(sysinv), user
    C(services).
    O(parallel) images at a time; a transient failure is retried (O(retries), O(retry_delay)),
    the hard failures of C(download_images.py) (not found, unauthorized, forbidden,
    repository denied, no space left on device) are not.
  - 5. For software deployment, each image not yet in containerd's cache is also pulled with
    C(crictl pull) from the local registry. The credentials go to crictl in its
    C(CRICTL_CREDS) environment variable (crictl 1.24 and later), not on its command line
    where StarlingX puts them, so they are not visible in the process list.
  - 6. Any failed image fails the module with C(Failed to download images [...]) (the source
    references, as StarlingX lists them) and the reason of each image in RV(failed_images).
  - 7. With O(archive) (default for install), the whole local registry storage
    O(registry_storage_dir) is archived to
    O(platform_backup_dir)C(/<release>/local_registry_filesystem.tgz), also when O(images) is
    empty (a same-release install), as StarlingX does, with C(tar --use-compress-program=<c> -cf
    <archive> <registry_storage_dir>) (members C(var/lib/docker-distribution/...)), with
    C(pigz) when it is installed and the host has at least 4 platform cores
    (C(system host-cpu-list)), else C(gzip); tar's exit status 1 (a file changed while read)
    is tolerated; the archive is checked with C(<c> -t). It is written under a temporary name
    in the same directory and renamed only once checked, so a half-written archive never
    carries the final name; a corrupt one is removed and the module fails with
    C(Registry archive file is corrupted and has been removed.)
  - 8. A rerun keeps the archive when the module made it from the registry storage as it is
    now (a state file, C(.local_registry_filesystem.state), records the storage's file
    metadata and the archive's size, time and inode), and then reports no change; StarlingX
    remakes it every time. Any change to the storage or the archive remakes it.
  - No password is taken as an argument, written to a file, put on a command line or
    returned.
  - Supports check mode (reads, and reports which images would be copied; changes nothing).
extends_documentation_fragment:
  - distcloud.prestage.prestage
  - distcloud.prestage.prestage.platform_backup_dir
  - distcloud.prestage.prestage.docker_dir
options:
  images:
    description:
      - The image references of the release's image list, as read on the system controller
        (distcloud.prestage's C(_image_refs.parse_image_list), StarlingX's rules).
      - May be empty (a same-release install without a list still makes the archive).
    type: list
    elements: str
    default: []
  image_list_file:
    description:
      - The image list file O(images) was read from, for messages. When given and O(images)
        holds no reference, the module fails with StarlingX's
        C(File <image_list_file> contains no image references.)
    type: str
  archive:
    description:
      - Archive the local registry storage for install. Default true for install, false for
        software deployment.
    type: bool
  registry_storage_dir:
    description: The local registry's storage (what is archived).
    type: path
    default: /var/lib/docker-distribution
  docker_min_free_gib:
    description: Free space (GiB) O(docker_dir) must have (StarlingX requires 16).
    type: float
    default: 16
  local_registry:
    description: The subcloud's local registry, C(host:port).
    type: str
    default: registry.local:9001
  parallel:
    description: Images handled at once (StarlingX's C(MAX_DOWNLOAD_THREAD)).
    type: int
    default: 5
  timeout:
    description:
      - Seconds the whole phase may take (the images phase timeout); then the copies stop and
        the module fails with RV(prestage_timeout).
    type: int
    default: 7200
  retries:
    description:
      - Retries of an image after a transient failure (StarlingX reruns its download script up
        to 10 times, 5 seconds apart, unless a hard failure occurred).
    type: int
    default: 10
  retry_delay:
    description: Seconds between two tries of an image.
    type: float
    default: 5
  registry_ca_file:
    description:
      - A CA bundle trusted, in addition to the system trust and O(docker_certs_dir), to verify
        the registries' certificates.
    type: path
  docker_certs_dir:
    description:
      - docker's per-registry trust directory; C(<dir>/<host:port>/*.crt) are trusted for that
        registry, as the docker daemon trusts them.
    type: path
    default: /etc/docker/certs.d
  command_timeout:
    description: Seconds each StarlingX command (C(system), C(openstack), C(crictl)) may take.
    type: int
    default: 120
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Prestage the release's images for install (and archive the local registry)
  distcloud.prestage.prestage_images:
    release: "25.09"
    images:
      - docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0
      - registry.k8s.io/pause:3.9
    image_list_file: /opt/platform/deploy/25.09/prestage_images_list.txt
  become: true
  register: prestage_images

- name: Prestage the release's images for software deployment
  distcloud.prestage.prestage_images:
    release: "25.09"
    for_sw_deploy: true
    images: "{{ prestage_image_list }}"
  become: true
"""

RETURN = r"""
python_version:
  description: The Python that ran the module on the subcloud.
  type: str
  returned: always
  sample: 3.9.18
images:
  description: The images handled (O(images) without duplicates).
  type: list
  elements: str
  returned: always
pulled:
  description: Images copied into the local registry by this run (would be, in check mode).
  type: list
  elements: str
  returned: always
present:
  description: Images the local registry already held (left alone).
  type: list
  elements: str
  returned: always
failed_images:
  description:
    - The images that failed, each with C(image), C(source) (where it was pulled from),
      C(local) (its local name), C(class) (C(not_found), C(unauthorized), C(forbidden),
      C(repository_denied), C(no_space) - StarlingX's hard failures - or C(transient),
      C(timeout), C(invalid)) and C(reason) (one line).
  type: list
  elements: dict
  returned: always
crictl_pulled:
  description: Local images pulled into containerd with C(crictl pull) (software deployment).
  type: list
  elements: str
  returned: always
local_names:
  description: Each image's name in the local registry.
  type: dict
  returned: always
source_registries:
  description: The source registries (public name to url; no credentials).
  type: dict
  returned: when O(images) is not empty
removed:
  description: Image archives deleted from the release directory before the run (install).
  type: list
  elements: str
  returned: always
docker_free_gib:
  description: Free space of O(docker_dir) in GiB, rounded up as C(df --block-size=G) does.
  type: int
  returned: always
archive:
  description:
    - The registry archive made - C(path), C(size) (bytes), C(compressor) (C(pigz) or
      C(gzip)), C(platform_cores), C(tar_rc) - or C(would_make) in check mode, or C(path),
      C(size) and C(kept) when the archive of an unchanged registry was kept.
  type: dict
  returned: when O(archive)
prestage_images_verified:
  description: Every image is in the local registry (and the archive, when made, checked).
  type: bool
  returned: always
prestage_timeout:
  description: The phase did not finish within O(timeout).
  type: bool
  returned: on timeout
"""

import contextlib  # noqa: E402
import fnmatch  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _content as content,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _image_refs as refs,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _phase as phase,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _registry_api as api,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._caller import (  # noqa: E402
    stop_with_caller,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    DOCKER_DIR_ARG,
    PLATFORM_BACKUP_DIR_ARG,
    RELEASE_ARGS,
)

ARGUMENT_SPEC = dict(
    **RELEASE_ARGS,
    **PLATFORM_BACKUP_DIR_ARG,
    **DOCKER_DIR_ARG,
    images=dict(type="list", elements="str", default=[]),
    image_list_file=dict(type="str"),
    archive=dict(type="bool"),
    registry_storage_dir=dict(type="path", default="/var/lib/docker-distribution"),
    docker_min_free_gib=dict(type="float", default=16),
    local_registry=dict(type="str", default=refs.LOCAL_REGISTRY),
    parallel=dict(type="int", default=5),
    timeout=dict(type="int", default=7200),
    retries=dict(type="int", default=10),
    retry_delay=dict(type="float", default=5),
    registry_ca_file=dict(type="path"),
    docker_certs_dir=dict(type="path", default=api.DOCKER_CERTS_DIR),
    command_timeout=dict(type="int", default=120),
)

GIB = 1024**3
REGISTRY_ARCHIVE = "local_registry_filesystem.tgz"
# PR:prepare-env/tasks/cleanup_prestage_dir.yml:68-78 (Ansible find: files, not hidden)
ARCHIVE_PATTERNS = ("*.tar.gz", "*.tar.gz.md5", "*.tgz")
# What the archive was made from (ours): a rerun keeps an archive whose registry is unchanged.
ARCHIVE_STATE = content.REGISTRY_ARCHIVE_STATE
# Our own leftovers: the archive's temporary name.
OWN_LEFTOVERS = ("." + REGISTRY_ARCHIVE + ".tmp.*",)
# PB:roles/common/push-docker-images/files/download_images.py:51-55
LOCAL_REGISTRY_USER = "sysinv"
KEYRING_SERVICE = ("sysinv", "services")

# StarlingX's messages, verbatim
DOCKER_SPACE = "Available docker space is below the minimum required space for images prestage."
LOCAL_PASSWORD_MISSING = "Local registry password not found."
ARCHIVE_CORRUPT = "Registry archive file is corrupted and has been removed."

# bash scripts; their arguments are positional ("$1"), never spliced into the text
SERVICE_PARAMETERS = (
    "source /etc/platform/openrc >/dev/null 2>&1; exec system service-parameter-list "
    '--section "$1" --column name --column value --format yaml'
)
SECRET = 'source /etc/platform/openrc >/dev/null 2>&1; exec openstack secret get "$1" -p -f value'
PLATFORM_CORES = (
    "source /etc/platform/openrc >/dev/null 2>&1; "
    'system host-cpu-list "$(hostname)" --nowrap | grep " Platform " | wc -l'
)


class PhaseError(Exception):
    """The phase fails with this message (one line)."""


class PhaseTimeout(PhaseError):
    pass


def remaining(deadline):
    return deadline - time.monotonic()


def timeout_argv(deadline, limit=None):
    """``timeout`` (coreutils) in front of a command: the command stops at the deadline."""
    seconds = remaining(deadline)
    if limit is not None:
        seconds = min(seconds, limit)
    if seconds <= 0:
        raise PhaseTimeout("deadline")
    return ["timeout", "-k", "10", str(max(1, int(seconds)))]


def run_script(module, script, args, deadline):
    """(rc, out, err) of a bash script run with positional args, bounded by the command
    timeout and the deadline (rc 124: it timed out)."""
    argv = timeout_argv(deadline, module.params["command_timeout"])
    return module.run_command([*argv, "bash", "-c", script, "dcprestage", *args])


# --------------------------------------------------------------------------- steps


def docker_free_gib(path):
    """Free GiB of path's file system, rounded up as ``df --block-size=G`` rounds; 0 when it
    does not exist (StarlingX's df then prints nothing, which its test reads as 0)."""
    try:
        info = os.statvfs(path)
    except OSError:
        return 0
    available = info.f_bavail * info.f_frsize
    return -(-available // GIB)


def cleanup_archives(release_dir, check_mode, keep=()):
    """Delete the release's image archives (PR:prepare-env/tasks/cleanup_prestage_dir.yml:
    61-81) and our own temporary leftovers, except the names in keep; the paths deleted."""
    removed = []
    try:
        names = sorted(os.listdir(release_dir))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(release_dir, name)
        if name in keep:
            continue
        ours = any(fnmatch.fnmatchcase(name, pattern) for pattern in OWN_LEFTOVERS)
        theirs = not name.startswith(".") and any(
            fnmatch.fnmatchcase(name, pattern) for pattern in ARCHIVE_PATTERNS
        )
        if not (ours or theirs) or not os.path.isfile(path) or os.path.islink(path):
            continue
        if not check_mode:
            os.unlink(path)
        removed.append(path)
    return removed


def read_registries(module, deadline):
    """The prestage registries from the subcloud's service parameters (see _image_refs)."""
    by_variable = {}
    for variable, _public in refs.REGISTRY_SECTIONS:
        section = variable.replace("_", "-")
        rc, out, err = run_script(module, SERVICE_PARAMETERS, [section], deadline)
        if rc != 0:
            raise PhaseError(
                f"Cannot read the {section} service parameters (rc {rc}): "
                + api.one_line(err or out, 200)
            )

        def secret(reference, variable=variable):
            rc, out, err = run_script(module, SECRET, [reference], deadline)
            if rc != 0:
                # stderr only: stdout would be the secret
                raise PhaseError(
                    f"Cannot read the {variable} secret (rc {rc}): " + api.one_line(err, 200)
                )
            return out

        try:
            value = refs.registry_from_parameters(variable, refs.parse_parameter_list(out), secret)
        except refs.ImageRefError as exc:
            raise PhaseError(str(exc)) from None
        if value.get("password"):
            module.no_log_values.add(str(value["password"]))
        by_variable[variable] = value
    try:
        return refs.prestage_registries(refs.docker_registries(by_variable))
    except refs.ImageRefError as exc:
        raise PhaseError(str(exc)) from None


def local_registry_password():
    """The local registry's password (download_images.py:51-55)."""
    try:
        import keyring  # noqa: PLC0415 - StarlingX's, imported only when needed
    except ImportError:
        raise PhaseError(LOCAL_PASSWORD_MISSING + " (no python keyring module)") from None
    try:
        password = keyring.get_password(*KEYRING_SERVICE)
    except Exception as exc:  # any keyring backend failure
        raise PhaseError(LOCAL_PASSWORD_MISSING + f" (keyring: {type(exc).__name__})") from None
    if not password:
        raise PhaseError(LOCAL_PASSWORD_MISSING)
    return str(password)


def plan_image(image, registries, local_registry):
    """What to do for one image: its source, credentials and local name (a failure entry
    when the reference is invalid)."""
    kept, source, info = refs.map_image(image, registries)
    local = refs.local_image_name(kept, local_registry)
    job = {"image": image, "source": source, "local": local}
    try:
        job["source_parts"] = refs.split_reference(source)
        job["local_parts"] = refs.split_reference(local)
    except refs.ImageRefError as exc:
        job["error"] = api.RegistryError(api.INVALID, f"{image}: {exc}")
        return job
    job["credentials"] = refs.credentials_of(info)
    job["insecure"] = bool(info) and info.get("secure") is False
    if info and info.get("type") == "aws-ecr":
        job["error"] = api.RegistryError(
            api.UNAUTHORIZED,
            f"{image}: aws-ecr registry credentials are not supported by this collection",
        )
    return job


class Registries:
    """One api.Registry per (host, credentials, insecure), shared by the image threads."""

    def __init__(self, params, deadline):
        self.params = params
        self.deadline = deadline
        self._pool = {}
        self._lock = threading.Lock()

    def get(self, host, credentials=None, insecure=False):
        username, password = credentials or (None, None)
        key = (host, username, password, insecure)
        with self._lock:
            if key not in self._pool:
                self._pool[key] = self._new(host, username, password, insecure)
            return self._pool[key]

    def _new(self, host, username, password, insecure):
        return api.Registry(
            host,
            username,
            password,
            ca_file=self.params["registry_ca_file"],
            certs_dir=self.params["docker_certs_dir"],
            insecure=insecure,
            deadline=self.deadline,
        )


def crictl_images(module, deadline):
    """Image names in containerd's cache (download_images.py:162-176; [] when unknown)."""
    try:
        rc, out, _err = module.run_command(
            [
                *timeout_argv(deadline, module.params["command_timeout"]),
                "crictl",
                "images",
                "--output=json",
            ]
        )
    except PhaseTimeout:
        return set()
    if rc != 0:
        return set()
    try:
        data = json.loads(out)
    except ValueError:
        return set()
    names = set()
    for image in (data.get("images") if isinstance(data, dict) else None) or []:
        if isinstance(image, dict):
            names.update(image.get("repoTags") or [])
    return names


def crictl_pull(module, local, password, deadline):
    """``crictl pull`` of the local image; None or the failure (one line).

    StarlingX passes ``--creds sysinv:<password>`` on the command line (download_images.py:
    338-341); crictl (cri-tools >= 1.24) reads the same value from CRICTL_CREDS, which only
    root can read in /proc, so the password never shows in the process list.
    """
    try:
        argv = timeout_argv(deadline, module.params["command_timeout"])
    except PhaseTimeout:
        return api.RegistryError(api.TIMEOUT, f"crictl pull {local}: deadline reached")
    rc, out, err = module.run_command(
        [*argv, "crictl", "pull", local],
        environ_update={"CRICTL_CREDS": f"{LOCAL_REGISTRY_USER}:{password}"},
    )
    if rc == 0:
        return None
    kind = api.TIMEOUT if rc == 124 else api.TRANSIENT
    text = api.one_line((err or out).replace(password, "********"), 300)
    return api.RegistryError(kind, f"crictl pull {local} failed (rc {rc}): {text}")


def with_retries(module, attempt, deadline):
    """``attempt()`` (None or a RegistryError) until it succeeds, fails for good or the retries
    run out; None or the last error. A retryable error after the deadline is a timeout."""
    params = module.params
    tries = 0
    while True:
        error = attempt()
        if error is None:
            return None
        if error.retryable and remaining(deadline) <= 0:
            # it was still trying when the phase ran out of time
            error = api.RegistryError(api.TIMEOUT, f"{error} (phase deadline reached)")
        if not error.retryable or tries >= params["retries"]:
            return error
        tries += 1
        time.sleep(max(0, min(params["retry_delay"], remaining(deadline))))


def copy_into_local(module, job, *, registries, local, index, deadline):
    """One try at putting the job's image in the local registry; None or the RegistryError.
    download_images.py:309-350: inspect the local name first, else pull and push."""
    src = job["source_parts"]
    dst = job["local_parts"]
    try:
        if local.manifest_digest(dst["repository"], refs.reference_of(dst), "pull,push"):
            job["state"] = "present"
        elif module.check_mode:
            job["state"] = "pulled"
        else:
            source = registries.get(src["host"], job["credentials"], job["insecure"])
            job["stats"] = api.copy_image(
                source,
                src["repository"],
                refs.reference_of(src),
                local,
                dst["repository"],
                destination_reference=refs.reference_of(dst),
                deadline=deadline,
                index=index,
            )
            job["state"] = "pulled"
    except api.RegistryError as exc:
        return exc
    return None


def sync_image(module, job, *, registries, local, index, deadline, crictl):
    """Copy one image into the local registry unless it is there (and crictl pull it for
    software deployment); the job with its outcome: ``state`` (pulled, present, failed)."""
    if job.get("error") is not None:
        job["state"] = "failed"
        return job
    error = with_retries(
        module,
        lambda: copy_into_local(
            module, job, registries=registries, local=local, index=index, deadline=deadline
        ),
        deadline,
    )
    crictl_wanted = crictl is not None and not module.check_mode
    if error is None and crictl_wanted and job["local"] not in crictl["cached"]:
        error = with_retries(
            module,
            lambda: crictl_pull(module, job["local"], crictl["password"], deadline),
            deadline,
        )
        job["crictl"] = error is None
    if error is not None:
        job["state"] = "failed"
        job["error"] = error
    return job


def sync_images(module, images, registries_value, password, deadline):
    params = module.params
    registries = Registries(params, deadline)
    local = registries.get(params["local_registry"], (LOCAL_REGISTRY_USER, password))
    index = api.BlobIndex()
    crictl = None
    if params["for_sw_deploy"] and not module.check_mode:
        crictl = {"password": password, "cached": crictl_images(module, deadline)}
    jobs = [plan_image(image, registries_value, params["local_registry"]) for image in images]
    with ThreadPoolExecutor(max_workers=max(1, min(params["parallel"], len(jobs)))) as pool:
        futures = [
            pool.submit(
                sync_image,
                module,
                job,
                registries=registries,
                local=local,
                index=index,
                deadline=deadline,
                crictl=crictl,
            )
            for job in jobs
        ]
        return [future.result() for future in futures]


def compressor(module, deadline):
    """(program, platform cores): PB:roles/common/generate-registry-filesystem-archive/tasks/
    main.yml:14-37 - gzip without pigz; with it, pigz on 4 or more platform cores."""
    if shutil.which("pigz") is None:
        return "gzip", None
    _rc, out, _err = run_script(module, PLATFORM_CORES, [], deadline)
    try:
        cores = int(out.strip() or 0)
    except ValueError:
        cores = 0
    return ("pigz" if cores >= 4 else "gzip"), cores


def archive_stamp(path):
    """What identifies the archive file as written (size, mtime, inode); None when absent."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def archive_state(registry, archive_path):
    return {"registry": registry, "archive": archive_stamp(archive_path)}


def current_archive(release_dir, storage):
    """The kept archive's result when the archive in release_dir was made by this module from
    the registry storage as it is now (the state file says so and the archive is untouched);
    else None. A departure from StarlingX, which remakes it on every run: an unchanged
    archive is kept so that a rerun changes nothing."""
    final = os.path.join(release_dir, REGISTRY_ARCHIVE)
    signature = content.tree_signature(storage)
    try:
        with open(os.path.join(release_dir, ARCHIVE_STATE), encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        return None
    if signature is None or archive_stamp(final) is None:
        return None
    if recorded != archive_state(signature["signature"], final):
        return None
    return {"path": final, "size": os.path.getsize(final), "kept": True}


def make_archive(module, release_dir, deadline):
    """The registry archive (generate-registry-filesystem-archive/tasks/main.yml:39-66),
    written under a temporary name and renamed once ``<c> -t`` accepts it."""
    params = module.params
    storage = params["registry_storage_dir"]
    final = os.path.join(release_dir, REGISTRY_ARCHIVE)
    if not os.path.isdir(storage):
        # StarlingX's $(ls -d ...) is then empty and tar refuses to make an empty archive
        raise PhaseError(f"The local registry storage {storage} does not exist")
    signature = content.tree_signature(storage)
    program, cores = compressor(module, deadline)
    if module.check_mode:
        return {"path": final, "would_make": True, "compressor": program, "platform_cores": cores}
    if not os.path.isdir(release_dir):
        os.makedirs(release_dir, 0o755)
    temporary = os.path.join(release_dir, f".{REGISTRY_ARCHIVE}.tmp.{os.getpid()}")
    try:
        # tar strips the leading "/": members are var/lib/docker-distribution/...
        rc, _out, err = module.run_command(
            [
                *timeout_argv(deadline),
                "tar",
                f"--use-compress-program={program}",
                "-cf",
                temporary,
                storage,
            ]
        )
        if rc == 124:
            raise PhaseTimeout("tar")
        if rc >= 2 or rc < 0:
            raise PhaseError(
                f"Archiving the local registry to {final} failed (tar rc {rc}): "
                + api.one_line(err, 300)
            )
        tar_rc = rc
        rc, _out, _err = module.run_command([*timeout_argv(deadline), program, "-t", temporary])
        if rc == 124:
            raise PhaseTimeout("archive test")
        if rc != 0:
            raise PhaseError(ARCHIVE_CORRUPT)
        os.chmod(temporary, 0o644)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        content.atomic_write(
            os.path.join(release_dir, ARCHIVE_STATE),
            json.dumps(archive_state(signature["signature"], final)),
        )
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    return {
        "path": final,
        "size": os.path.getsize(final),
        "compressor": program,
        "platform_cores": cores,
        "tar_rc": tar_rc,
    }


def failure_message(failed):
    """download_images.py:488-490's line (the source references), then the first reasons."""
    sources = [job["source"] for job in failed]
    reasons = "; ".join(str(job["error"]) for job in failed[:3])
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    return f"Failed to download images {sources!r}: {reasons}{more}"


def check_inputs(params, result):
    """Refusals before anything changes: the list against its file, the docker space."""
    if params["image_list_file"]:
        problem = refs.image_list_error(params["images"] or [], params["image_list_file"])
        if problem:
            raise PhaseError(problem)
    # PR:prepare-env/tasks/prepare-images-prestage-env.yml:19-27
    result["docker_free_gib"] = docker_free_gib(params["docker_dir"])
    if result["docker_free_gib"] < params["docker_min_free_gib"]:
        raise PhaseError(DOCKER_SPACE)


def sync_listed_images(module, images, result, deadline):
    """Every listed image into the local registry; each outcome into result. Raises the
    phase's failure when an image could not be had."""
    registries = read_registries(module, deadline)
    result["source_registries"] = refs.registry_summary(registries)
    password = local_registry_password()
    module.no_log_values.add(password)
    failed = []
    for job in sync_images(module, images, registries, password, deadline):
        result["local_names"][job["image"]] = job["local"]
        if job["state"] == "failed":
            failed.append(job)
            error = job["error"]
            result["failed_images"].append({
                "image": job["image"],
                "source": job["source"],
                "local": job["local"],
                "class": error.kind,
                "reason": str(error),
            })  # fmt: skip
        else:
            result[job["state"]].append(job["image"])
        if job.get("crictl"):
            result["crictl_pulled"].append(job["local"])
    result["changed"] = result["changed"] or bool(result["pulled"] or result["crictl_pulled"])
    if failed:
        if any(job["error"].kind == api.TIMEOUT for job in failed):
            raise PhaseTimeout("images")
        raise PhaseError(failure_message(failed))


def refresh_archive(module, release_dir, result, deadline):
    """The registry archive kept when the registry is as it was archived, else remade."""
    kept = current_archive(release_dir, module.params["registry_storage_dir"])
    if kept is not None:
        result["archive"] = kept
        return
    stale = cleanup_archives(release_dir, module.check_mode)
    result["removed"] = sorted(set(result["removed"]) | set(stale))
    result["archive"] = make_archive(module, release_dir, deadline)
    result["changed"] = True


def run(module):
    """The phase; returns (failed, result). The result never holds a password."""
    params = module.params
    deadline = time.monotonic() + max(1, params["timeout"])
    for_install = not params["for_sw_deploy"]
    archive = for_install if params["archive"] is None else params["archive"]
    release_dir = os.path.join(params["platform_backup_dir"], params["release"])
    images = refs.unique_images(params["images"] or [])
    cleaned = False
    result = {
        "changed": False,
        "python_version": platform.python_version(),
        "images": images,
        "pulled": [],
        "present": [],
        "failed_images": [],
        "crictl_pulled": [],
        "local_names": {},
        "removed": [],
        "prestage_images_verified": False,
    }
    try:
        check_inputs(params, result)
        # an archive of the registry as it is now waits: it is kept if the images change nothing
        waiting = archive and current_archive(release_dir, params["registry_storage_dir"])
        keep = (REGISTRY_ARCHIVE, ARCHIVE_STATE) if waiting else ()
        if for_install:
            result["removed"] = cleanup_archives(release_dir, module.check_mode, keep)
            result["changed"] = bool(result["removed"])
            cleaned = True
        if images:
            # PR:prestage-images/tasks/main.yml:16-63 (only with a list)
            sync_listed_images(module, images, result, deadline)
        if archive:
            # PR:prestage-images/tasks/main.yml:65-70 (for install, list or not)
            refresh_archive(module, release_dir, result, deadline)
        result["prestage_images_verified"] = not module.check_mode
        return False, result
    except PhaseTimeout:
        result["prestage_timeout"] = True
        result["msg"] = phase.timeout_message("images", params["timeout"])
    except PhaseError as exc:
        result["msg"] = str(exc)
    except OSError as exc:  # the release directory, the archive: a local file system problem
        result["msg"] = f"Prestaging images failed: {exc}"
    if cleaned and not module.check_mode:
        # past the cleanup, a failed phase leaves no archive, as StarlingX's (which removed it
        # first); a refusal before it (bad input, no space) changes nothing
        with contextlib.suppress(OSError):
            stale = cleanup_archives(release_dir, False)
            result["removed"] = sorted(set(result["removed"]) | set(stale))
    return True, result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    # the pulls stop when the controller's run goes (a signal, an abort, a dead link)
    stop_with_caller()
    failed, result = run(module)
    if failed:
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
