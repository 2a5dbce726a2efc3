"""Consumer checks: what StarlingX's later readers of prestaged content do with it, run against a
lab subcloud, so a test can ask "would this subcloud install / deploy from what was prestaged?"
(STARLINGX.md §6: the consumers are the acceptance tests of prestage).

One function per consumer. Each returns normally (with what it found) or raises
ConsumerFailed whose message is one line saying why the consumer would not take the content.
Commands run as root inside the subcloud's namespaces (nsenter, as labctl.hosts.nsenter does);
scratch files go below the subcloud's own /tmp (written through the host path lab.json maps) and
are removed afterwards. The optional `source` / `repo` / `feed` arguments point a check at a copy
(a directory inside the subcloud) instead of the prestaged content itself, so wrong content can be
shown to fail without touching the subcloud's files.

Citations use STARLINGX.md's prefixes: PB: = starlingx/ansible-playbooks
playbookconfig/src/playbooks/, PR: = PB:roles/prestage/, DC: = starlingx/distcloud
distributedcloud/, MT: = starlingx/metal, UP: = starlingx/update software/.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import pki, registries
from labctl.paths import REGISTRY_USER, SC_NAME, Paths
from labctl.util import LabError, alive, wait_until

PLATFORM_BACKUP = "/opt/platform-backup"
FEED = "/var/www/pages/feed"
LOCAL_REGISTRY = "registry.local:9001"
OSTREE_BRANCH = "starlingx"  # miniboot's ${instbr}
COMMAND_TIMEOUT = 300
# Every manifest type a registry may hold, so it answers with the stored manifest unchanged
# (the digest is the sha256 of those bytes).
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
INDEX_TYPES = MANIFEST_TYPES[1::2]


class ConsumerFailed(LabError):
    """A consumer would not take the prestaged content; str() is the one-line reason."""


# ------------------------------------------------------------------------------- plumbing


def _info(paths: Paths) -> dict[str, Any]:
    try:
        info: dict[str, Any] = json.loads(paths.lab_json.read_text())
    except FileNotFoundError:
        raise LabError("the lab is down (no lab.json): lab/lab up N first") from None
    return info


def _host(paths: Paths, name: str) -> dict[str, Any]:
    info = _info(paths)
    if name == SC_NAME:
        record: dict[str, Any] = info["system_controller"]
        return record
    try:
        record = info["subclouds"][name]
    except KeyError:
        raise LabError(f"{name} is not a lab subcloud ({', '.join(info['subclouds'])})") from None
    return record


def _inside(
    paths: Paths,
    name: str,
    script: str,
    *args: str,
    network: bool = False,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run `sh -c script sh args...` as root in the host's mount + UTS (+ network) namespaces.
    Arguments go as positional parameters ($1, ...): nothing is quoted into the script."""
    pid = _host(paths, name)["init_pid"]
    if not alive(pid):
        raise LabError(f"{name} is not running (lab/lab up?)")
    flags = ["-m", "-u", *(["-n"] if network else [])]
    try:
        return subprocess.run(
            ["nsenter", "-t", str(pid), *flags, "--", "sh", "-c", script, "sh", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise LabError(
            f"{name}: {script.split(maxsplit=1)[0]} ... did not finish in {timeout:.0f}s"
        ) from None


NOISE = ("tar: Exiting with failure status due to previous errors",)


def _why(result: subprocess.CompletedProcess[str], limit: int = 3) -> str:
    """The last lines of a failed command's output, on one line."""
    lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
    lines = [line for line in lines if line and line not in NOISE]
    return "; ".join(lines[-limit:]) or f"exit status {result.returncode}"


def _host_path(paths: Paths, name: str, inside: str) -> Path:
    """Where a path of a lab host lives on this machine (lab.json's path map)."""
    mounts: dict[str, str] = _host(paths, name)["paths"]
    for prefix in sorted(mounts, key=len, reverse=True):
        if inside == prefix or inside.startswith(prefix.rstrip("/") + "/"):
            return Path(mounts[prefix]) / inside[len(prefix) :].lstrip("/")
    raise LabError(f"{inside} is not a path lab.json maps for {name}")


@contextlib.contextmanager
def _scratch(paths: Paths, name: str, what: str) -> Iterator[str]:
    """A fresh directory below the host's /tmp; yields its path as the host sees it, removes it
    afterwards whatever happened."""
    real = Path(
        tempfile.mkdtemp(prefix=f"dcp-consume-{what}-", dir=_host_path(paths, name, "/tmp"))
    )
    try:
        yield f"/tmp/{real.name}"
    finally:
        shutil.rmtree(real, ignore_errors=True)


def _prestage_dir(release: str, source: str | None) -> str:
    return (source or f"{PLATFORM_BACKUP}/{release}").rstrip("/")


# ------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class Image:
    """One image: its public reference (`docker.io/starlingx/stx-pause:25.09`) and its StarlingX
    local name, `registry.local:9001/<public reference>` (PB:roles/common/push-docker-images/
    files/download_images.py: the local registry keeps the public registry as the first path
    component)."""

    registry: str  # docker.io, quay.io, ...
    repository: str  # starlingx/stx-pause
    reference: str  # a tag or a sha256: digest

    @classmethod
    def parse(cls, text: str) -> Image:
        """A public reference or a local name; an image list's `,extra` part is ignored."""
        ref = text.split(",", 1)[0].strip().removeprefix(f"{LOCAL_REGISTRY}/")
        if "@" in ref:
            name, reference = ref.split("@", 1)
        else:
            name, _, reference = ref.rpartition(":")
            if not name or "/" in reference:
                name, reference = ref, "latest"
        first, _, rest = name.partition("/")
        if not rest or not ("." in first or ":" in first or first == "localhost"):
            # docker's normalisation: no registry component means docker.io (library/ for a
            # one-component name)
            first, rest = "docker.io", name if rest else f"library/{name}"
        if not rest or not reference:
            raise LabError(f"not an image reference: {text!r}")
        return cls(first, rest, reference)

    @property
    def path(self) -> str:
        """The repository in the local (and central) registry: <public registry>/<repo>."""
        return f"{self.registry}/{self.repository}"

    @property
    def public(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.path}{sep}{self.reference}"

    @property
    def local(self) -> str:
        return f"{LOCAL_REGISTRY}/{self.public}"


@dataclass(frozen=True)
class _Registry:
    address: str  # host:port as this machine reaches it
    user: str
    password: str
    ca: Path
    label: str  # how messages name it

    def get(self, path: str, accept: str | None = None, method: str = "GET") -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca))
        request = urllib.request.Request(f"https://{self.address}/v2/{path}", method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, context=context, timeout=20) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with contextlib.closing(exc):
                return exc.code, b""
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConsumerFailed(
                f"{self.label} ({self.address}) is unreachable: {reason}"
            ) from None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _manifest_digest(registry: _Registry, image: Image, name: str) -> str:
    """Pull image from registry as a client would: its manifest (and, for an index, every
    manifest it lists) and every blob they reference must be there with the right digests.
    Returns the manifest digest; name is how the message calls the image."""
    status, body = registry.get(
        f"{image.path}/manifests/{image.reference}", ", ".join(MANIFEST_TYPES)
    )
    if status != 200:
        detail = "not found" if status == 404 else f"HTTP {status}"
        raise ConsumerFailed(
            f"{name} is not pullable from {registry.label}: GET /v2/{image.path}/manifests/"
            f"{image.reference} -> {detail}"
        )
    pending = [body]
    while pending:
        manifest = json.loads(pending.pop())
        if manifest.get("mediaType") in INDEX_TYPES or "manifests" in manifest:
            for entry in manifest.get("manifests", []):
                code, child = registry.get(f"{image.path}/manifests/{entry['digest']}",
                                           ", ".join(MANIFEST_TYPES))  # fmt: skip
                if code != 200 or _digest(child) != entry["digest"]:
                    raise ConsumerFailed(
                        f"{name} is not pullable from {registry.label}: manifest "
                        f"{entry['digest']} of its index is missing or corrupt (HTTP {code})"
                    )
                pending.append(child)
            continue
        for blob in [manifest.get("config") or {}, *(manifest.get("layers") or [])]:
            code, data = registry.get(f"{image.path}/blobs/{blob['digest']}")
            if code != 200 or _digest(data) != blob["digest"]:
                got = f"HTTP {code}" if code != 200 else f"content {_digest(data)}"
                raise ConsumerFailed(
                    f"{name} is not pullable from {registry.label}: blob {blob['digest']} "
                    f"is missing or corrupt ({got})"
                )
    return _digest(body)


def _central(paths: Paths) -> _Registry:
    sc = _host(paths, SC_NAME)
    return _Registry(
        address=str(sc["central_registry_address"]), user=REGISTRY_USER,
        password=paths.central_registry_password.read_text().strip(), ca=paths.ca_cert,
        label="registry.central:9001",
    )  # fmt: skip


def _check_images(paths: Paths, registry: _Registry, images: Sequence[str], consumer: str) -> int:
    """Each image pullable from registry under its local repository path, with the manifest
    digest registry.central has for its public reference. Returns how many were checked."""
    if not images:
        raise LabError(f"{consumer}: no images to check")
    central = _central(paths)
    for text in images:
        image = Image.parse(text)
        want = _manifest_digest(central, image, image.public)
        got = _manifest_digest(registry, image, image.local)
        if got != want:
            raise ConsumerFailed(
                f"{consumer}: {image.local} in {registry.label} has manifest {got}, "
                f"registry.central has {want} for {image.public}"
            )
    return len(images)


def release_images(paths: Paths, release: str) -> list[str]:
    """The public references the system controller's image list for release names (lab.json)."""
    images = _host(paths, SC_NAME).get("content", {}).get("images", {}).get(release)
    if not images:
        raise LabError(f"the system controller lists no images for {release}")
    return [str(image) for image in images]


# ------------------------------------------------------------------------------ consumers


def miniboot(
    paths: Paths,
    subcloud: str,
    release: str,
    *,
    source: str | None = None,
    require_checksum: bool = False,
) -> str:
    """The controller install (miniboot) taking the prestaged ostree repo; returns the commit
    its pull leaves on `starlingx`. source: the prestage directory inside the subcloud
    (default /opt/platform-backup/<release>). require_checksum: also fail when there is no
    .ostree_repo_checksum (prestage writes one, PR:prestage-sw-packages/tasks/main.yml:70-74);
    miniboot itself then falls back to ostree fsck."""
    where = _prestage_dir(release, source)
    repo = f"{where}/ostree_repo"
    fallback = "miniboot would delete it and pull the release from the system controller"
    # MT:kickstart/files/miniboot.cfg:2174: the prestaged repo is used only if it exists.
    if _inside(paths, subcloud, 'test -e "$1"', repo).returncode != 0:
        raise ConsumerFailed(
            f"miniboot: no prestaged {repo} on {subcloud}; miniboot would pull the release "
            "from the system controller"
        )
    checksum_file = f"{where}/.ostree_repo_checksum"
    if _inside(paths, subcloud, 'test -f "$1"', checksum_file).returncode == 0:
        # miniboot.cfg:2176-2191: the checksum recomputed in the release directory with the
        # same command prestage wrote it with, compared with the file's content ($(cat) drops
        # the trailing newline).
        computed = _inside(paths, subcloud,
            "cd \"$1\" && find ostree_repo -type f -exec md5sum {} + | LC_ALL=C sort | md5sum"
            " | awk '{ print $1; }'", where)  # fmt: skip
        stored = _inside(paths, subcloud, 'cat "$1"', checksum_file)
        if computed.returncode != 0 or stored.returncode != 0:
            failed = computed if computed.returncode else stored
            raise ConsumerFailed(f"miniboot: cannot compute the checksum of {repo}: {_why(failed)}")
        got, want = computed.stdout.strip(), stored.stdout.rstrip("\n")
        if got != want:
            raise ConsumerFailed(
                f"miniboot: ostree checksum failed on {repo} (computed {got}, "
                f"{checksum_file} holds {want!r}); {fallback}"
            )
    else:
        if require_checksum:
            raise ConsumerFailed(
                f"miniboot: no {checksum_file} (prestage writes it, "
                "PR:prestage-sw-packages/tasks/main.yml:70-74); miniboot would fall back to "
                "ostree fsck"
            )
        # miniboot.cfg:2192-2200: no checksum file, ostree fsck instead.
        fsck = _inside(paths, subcloud, 'ostree --repo="$1" fsck', repo)
        if fsck.returncode != 0:
            raise ConsumerFailed(f"miniboot: ostree fsck failed on {repo}: {_why(fsck, 1)}; "
                                 f"{fallback}")  # fmt: skip
    with _scratch(paths, subcloud, "miniboot") as scratch:
        # miniboot.cfg:2201-2206 (insturl=file:///<dir>/ostree_repo), 2234-2244 (a fresh
        # archive repo, the remote; --no-gpg-verify unless instgpg=1, :875-884), 2258-2276
        # (pull --depth=-1 --mirror <remote>:<branch>; its 3 tries matter only on a network).
        steps = (
            ("ostree init", 'ostree --repo="$1/repo" init --mode=archive && '
             'echo "min-free-space-percent=0" >>"$1/repo/config"'),
            ("ostree remote add", f'ostree --repo="$1/repo" remote add --no-gpg-verify '
             f'{OSTREE_BRANCH} "file:///$2"'),
            (f"ostree pull --depth=-1 --mirror {OSTREE_BRANCH}:{OSTREE_BRANCH}",
             f'ostree --repo="$1/repo" pull --depth=-1 --mirror {OSTREE_BRANCH}:{OSTREE_BRANCH}'),
            # The install deploys the pulled branch (LAT): a checkout of it must work.
            (f"ostree checkout {OSTREE_BRANCH}",
             f'ostree --repo="$1/repo" checkout {OSTREE_BRANCH} "$1/checkout"'),
            # Stricter than miniboot: a pull from a file:// remote imports objects without
            # verifying them, so an object corrupted before its checksum file was written
            # passes every check above; fsck of what was pulled catches it.
            ("ostree fsck of the pulled repo", 'ostree --repo="$1/repo" fsck'),
        )  # fmt: skip
        for what, script in steps:
            result = _inside(paths, subcloud, script, scratch, repo)
            if result.returncode != 0:
                raise ConsumerFailed(f"miniboot: {what} from {repo} failed: {_why(result, 1)}")
        commit = _inside(paths, subcloud, f'ostree --repo="$1/repo" rev-parse {OSTREE_BRANCH}',
                         scratch)  # fmt: skip
        if commit.returncode != 0:
            raise ConsumerFailed(f"miniboot: no {OSTREE_BRANCH} after the pull: {_why(commit, 1)}")
    return commit.stdout.strip()


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def bootstrap(
    paths: Paths,
    subcloud: str,
    release: str,
    images: Sequence[str],
    *,
    source: str | None = None,
) -> int:
    """Bootstrap populating the local registry from the prestaged registry filesystem, then
    every image of `images` pullable from it under its local name with registry.central's
    manifest digest. Returns the number of images checked."""
    where = _prestage_dir(release, source)
    archive = f"{where}/local_registry_filesystem.tgz"
    # PB:roles/bootstrap/prepare-env/tasks/main.yml:213-216 (images_archive_dir) and 956-972:
    # the prestaged archive is used when it exists; otherwise bootstrap pulls every image.
    if _inside(paths, subcloud, 'test -f "$1"', archive).returncode != 0:
        raise ConsumerFailed(
            f"bootstrap: no {archive} on {subcloud}; bootstrap would not restore a registry "
            "filesystem and would pull every image from the registries"
        )
    with _scratch(paths, subcloud, "bootstrap") as root:
        # PB:roles/bootstrap/bringup-essential-services/tasks/main.yml:174-176, the exact
        # command, with -C <scratch root> instead of -C / (the subcloud's own registry storage
        # stays as it is). Run by sh as Ansible's shell module does: the pipeline's status is
        # tar's (gzip-less input makes tar fail too).
        command = 'pigz -dc "$1" | tar -C "$2" --overwrite -xpf - var/lib/docker-distribution'
        restore = _inside(paths, subcloud, command, archive, root)
        if restore.returncode != 0:
            raise ConsumerFailed(f"bootstrap: restoring {archive} failed: {_why(restore)}")
        storage = _host_path(paths, subcloud, f"{root}/var/lib/docker-distribution")
        with _scratch_registry(paths, storage) as address:
            local = _Registry(
                address=address, user=REGISTRY_USER,
                password=paths.local_registry_password.read_text().strip(), ca=paths.ca_cert,
                label=f"the registry restored from {archive}",
            )  # fmt: skip
            return _check_images(paths, local, images, "bootstrap")


@contextlib.contextmanager
def _scratch_registry(paths: Paths, storage: Path) -> Iterator[str]:
    """A docker-registry serving storage on a free loopback port of this (the root) network
    namespace, TLS with a lab-CA certificate, the subclouds' htpasswd (user sysinv): yields its
    address; stopped by its pid afterwards, always."""
    work = Path(tempfile.mkdtemp(prefix="dcp-consume-registry-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        address = "127.0.0.1"
        pki.issue_server_cert(paths, work / "server.crt", work / "server.key", "consumer-check",
                              [address, "registry.local"])  # fmt: skip
        for _attempt in range(3):  # a free port may be taken between the probe and the bind
            port = _free_port(address)
            registries.write_config(
                work / "config.yml", listen=f"{address}:{port}", storage=str(storage),
                cert=work / "server.crt", key=work / "server.key", htpasswd=paths.local_htpasswd,
            )  # fmt: skip
            with (work / "registry.log").open("ab") as log:
                process = subprocess.Popen(
                    ["docker-registry", "serve", str(work / "config.yml")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            listen = f"{address}:{port}"
            if _wait_listening(process, address, port) and process.poll() is None:
                yield listen
                return
            _stop(process)
            process = None
        log_tail = (work / "registry.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise LabError(f"the scratch registry did not start: {' '.join(log_tail)}")
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(work, ignore_errors=True)


def _wait_listening(process: subprocess.Popen[bytes], address: str, port: int) -> bool:
    return wait_until(lambda: _listening(address, port) or process.poll() is not None, 20)


def _listening(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, port)) == 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def local_images(
    paths: Paths, subcloud: str, images: Sequence[str], *, crictl: bool = False
) -> int:
    """Each image pullable from the subcloud's registry.local:9001 under its local name with
    the local sysinv login and registry.central's manifest digest; with crictl, also listed by
    `crictl images` with that digest (what a for-sw-deploy images phase leaves, STARLINGX.md §4).
    Returns the number of images checked."""
    record = _host(paths, subcloud)
    registry = _Registry(
        address=str(record["registry"]), user=REGISTRY_USER,
        password=paths.local_registry_password.read_text().strip(), ca=paths.ca_cert,
        label=f"{subcloud}'s {LOCAL_REGISTRY}",
    )  # fmt: skip
    count = _check_images(paths, registry, images, "local images")
    if crictl:
        listed = _inside(paths, subcloud, "crictl images --output=json")
        if listed.returncode != 0:
            raise ConsumerFailed(
                f"local images: crictl images on {subcloud} failed: {_why(listed)}"
            )
        known = json.loads(listed.stdout or "{}").get("images") or []
        central = _central(paths)
        for text in images:
            image = Image.parse(text)
            entry = next((i for i in known if image.local in (i.get("repoTags") or [])), None)
            if entry is None:
                raise ConsumerFailed(f"local images: crictl images on {subcloud} does not list "
                                     f"{image.local}")  # fmt: skip
            want = f"{LOCAL_REGISTRY}/{image.path}@{_manifest_digest(central, image, image.public)}"
            if want not in (entry.get("repoDigests") or []):
                raise ConsumerFailed(
                    f"local images: crictl images on {subcloud} lists {image.local} with "
                    f"{', '.join(entry.get('repoDigests') or ['no digest'])}, not {want}"
                )
    return count


_ROW = re.compile(r"^\|(.*)\|\s*$")


def _software_list(paths: Paths, host: str) -> dict[str, str]:
    """release id -> state, from `software list` on the host, as root after sourcing openrc
    (STARLINGX.md §7: the client's Release | RR | State table)."""
    result = _inside(paths, host, ". /etc/platform/openrc >/dev/null 2>&1; software list")
    if result.returncode != 0:
        raise ConsumerFailed(f"software list on {host} failed: {_why(result)}")
    releases: dict[str, str] = {}
    for line in result.stdout.splitlines():
        match = _ROW.match(line.strip())
        if not match:
            continue
        cells = [cell.strip() for cell in match.group(1).split("|")]
        if len(cells) >= 3 and cells[0] != "Release":
            releases[cells[0]] = cells[-1]
    return releases


def software_list(paths: Paths, subcloud: str, release_id: str, state: str) -> str:
    """`software list` on the subcloud shows release_id in state (a release whose metadata does
    not parse is invisible there, UP:software/software_functions.py:516-694). Returns the
    state."""
    releases = _software_list(paths, subcloud)
    found = releases.get(release_id)
    if found is None:
        shown = ", ".join(f"{r} {s}" for r, s in releases.items()) or "nothing"
        raise ConsumerFailed(f"software list on {subcloud} has no {release_id} (it shows {shown})")
    if found != state:
        raise ConsumerFailed(f"software list on {subcloud} shows {release_id} {found}, not {state}")
    return found


def ostree_log(
    paths: Paths, subcloud: str, release: str, commit: str, *, repo: str | None = None
) -> int:
    """USM's deploy start reading the feed's commits: `ostree log starlingx` of
    /var/www/pages/feed/rel-<release>/ostree_repo (or repo) on the subcloud holds commit, so the
    compose is skipped for a node with prestaged data (UP:software/software_controller.py:
    4969-4986; UP:software/ostree_utils.py:179-199). Returns the commit's position (0 = head)."""
    repo = repo or f"{FEED}/rel-{release}/ostree_repo"
    log = _inside(paths, subcloud, f'ostree --repo="$1" log {OSTREE_BRANCH}', repo)
    if log.returncode != 0:
        raise ConsumerFailed(f"ostree log {OSTREE_BRANCH} of {repo} on {subcloud} failed: "
                             f"{_why(log, 1)}")  # fmt: skip
    commits = [line.split()[1] for line in log.stdout.splitlines()
               if line.lower().startswith("commit ") and len(line.split()) > 1]  # fmt: skip
    if commit not in commits:
        raise ConsumerFailed(
            f"{commit} is not in the {OSTREE_BRANCH} log of {repo} on {subcloud} "
            f"({', '.join(c[:12] for c in commits) or 'no commits'}); USM deploy start would "
            "compose the release from its packages instead"
        )
    return commits.index(commit)


def install_uuid(paths: Paths, subcloud: str, release: str, *, feed: str | None = None) -> str:
    """The software agent's install_uuid check: the feed's rel-<release>/install_uuid (what
    http://controller:<port>/feed/rel-<SW_VERSION>/install_uuid serves; feed = another feed
    directory inside the subcloud) equals INSTALL_UUID of /etc/platform/platform.conf
    (UP:software/software_agent.py:201-226). Returns the uuid."""
    feed = (feed or f"{FEED}/rel-{release}").rstrip("/")
    served = _inside(paths, subcloud, 'cat "$1/install_uuid"', feed)
    if served.returncode != 0:
        raise ConsumerFailed(f"software agent on {subcloud}: {feed}/install_uuid cannot be "
                             f"served: {_why(served, 1)}")  # fmt: skip
    conf = _inside(paths, subcloud, "cat /etc/platform/platform.conf")
    own = next((line.split("=", 1)[1].strip() for line in conf.stdout.splitlines()
                if line.startswith("INSTALL_UUID=")), None)  # fmt: skip
    if not own:
        raise ConsumerFailed(f"software agent on {subcloud}: platform.conf has no INSTALL_UUID")
    controller = served.stdout.rstrip()  # software_agent.py:220: str(req.text).rstrip()
    if controller != own:
        raise ConsumerFailed(
            f"software agent on {subcloud}: {feed}/install_uuid holds {controller!r}, "
            f"platform.conf INSTALL_UUID is {own}: its install_uuid check fails"
        )
    return own


def _major(release_id: str) -> str:
    """DC:dcmanager/common/utils.py:2234-2247 get_major_release."""
    version = release_id.split("-")[1] if "-" in release_id else release_id
    return ".".join(version.split(".")[0:2])


def _build_version(paths: Paths, host: str) -> str:
    text = _host_path(paths, host, "/etc/build.info").read_text()
    match = re.search(r'^SW_VERSION="?([^"\n]*)"?', text, re.MULTILINE)
    if not match:
        raise LabError(f"{host}: /etc/build.info has no SW_VERSION")
    return match.group(1)


def sw_deploy_precheck(paths: Paths, subcloud: str, release_id: str) -> str:
    """dcmanager's sw-deploy strategy pre_check without with_prestage
    (DC:dcmanager/orchestrator/states/software/pre_check.py:134-175, 266-378): the release must
    be in RegionOne (deployed, or any state for an older major release), then in the
    subcloud's USM list. Returns what the step does next."""
    major = _major(release_id)
    # pre_check.py:138-141: a string comparison with the SC's SW_VERSION
    state_filter = None if major < _build_version(paths, SC_NAME) else "deployed"
    region_one = _software_list(paths, SC_NAME).get(release_id)
    if region_one is None or (state_filter and region_one != state_filter):
        raise ConsumerFailed(f"sw-deploy pre_check: Release {release_id} not found or not "
                             "deployed in RegionOne")  # fmt: skip
    releases = _software_list(paths, subcloud)
    state = releases.get(release_id)
    if state is None:
        # pre_check.py:299-306 (handle_exception without with_prestage)
        raise ConsumerFailed(f"sw-deploy pre_check: Release {release_id} is not prestaged.")

    def version(rid: str) -> str:  # the list's sw_version: the release id's version part
        return rid.split("-", 1)[1] if "-" in rid else rid

    # pre_check.py:335-367: the highest deployed release being this one completes the step.
    deployed = [rid for rid, st in releases.items() if st == "deployed"]
    if deployed and max(deployed, key=version) == release_id:
        return f"Release {release_id} is already deployed in subcloud."
    return f"Release {release_id} is prestaged ({state})"


# ---------------------------------------------------------------------- lab/lab consume

CHECKS = {
    "miniboot": "RELEASE [--source DIR] [--require-checksum]",
    "bootstrap": "RELEASE [IMAGE...] [--source DIR]",
    "local-images": "RELEASE [IMAGE...] [--crictl]",
    "software-list": "RELEASE_ID STATE",
    "ostree-log": "RELEASE COMMIT [--source REPO]",
    "install-uuid": "RELEASE [--source FEED_DIR]",
    "sw-deploy-precheck": "RELEASE_ID",
}


def run(  # noqa: PLR0911 - one return per consumer check
    paths: Paths,
    check: str,
    host: str,
    args: Sequence[str],
    *,
    source: str | None = None,
    crictl: bool = False,
    require_checksum: bool = False,
) -> str:
    """One check by its CLI name (CHECKS gives the arguments); returns the 'ok' line's text.
    Images default to the system controller's image list of the release."""
    usage = CHECKS.get(check)
    if usage is None:
        raise LabError(f"unknown check {check!r} (one of: {', '.join(CHECKS)})")
    fixed = 1 if check in ("miniboot", "install-uuid", "sw-deploy-precheck") else 2
    if check in ("bootstrap", "local-images"):
        if not args:
            raise LabError(f"usage: consume {check} HOST {usage}")
    elif len(args) != fixed:
        raise LabError(f"usage: consume {check} HOST {usage}")
    if check == "miniboot":
        commit = miniboot(paths, host, args[0], source=source, require_checksum=require_checksum)
        return (
            f"miniboot on {host} would install {args[0]} from the prestaged repo (commit {commit})"
        )
    if check in ("bootstrap", "local-images"):
        images = list(args[1:]) or release_images(paths, args[0])
        if check == "bootstrap":
            count = bootstrap(paths, host, args[0], images, source=source)
            return (
                f"bootstrap on {host} restores {args[0]}'s registry archive with {count} image(s)"
            )
        count = local_images(paths, host, images, crictl=crictl)
        extra = " and crictl lists them" if crictl else ""
        return f"{host}'s {LOCAL_REGISTRY} serves {count} image(s) with the central digests{extra}"
    if check == "software-list":
        software_list(paths, host, args[0], args[1])
        return f"software list on {host} shows {args[0]} {args[1]}"
    if check == "ostree-log":
        position = ostree_log(paths, host, args[0], args[1], repo=source)
        where = source or f"the rel-{args[0]} feed"
        return f"{where} of {host} holds {args[1]} (log position {position})"
    if check == "install-uuid":
        uuid = install_uuid(paths, host, args[0], feed=source)
        where = f"{source}/install_uuid" if source else f"the rel-{args[0]} install_uuid"
        return f"{where} of {host} matches platform.conf ({uuid})"
    return f"sw-deploy pre_check on {host}: {sw_deploy_precheck(paths, host, args[0])}"
