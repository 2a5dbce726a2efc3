"""lab/labctl/data/stx-lab and software-deploy-stub: the StarlingX commands of a lab host, run with
the Python 3.9 a lab host has, against a scratch host tree (STX_LAB_ROOT).

Expected tables are what the real clients print for the same data (tabulate 'pretty' for the
software client, PrettyTable for cgts/fm clients, yaml.safe_dump for --format yaml), checked
against those libraries when the expectations were written.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import shutil
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from labctl import stxcontent
from labctl.stxcontent import ReleaseMeta

from .conftest import PYTHON39, Registry, StandIns, make_server_cert

SC_STATES = {
    "24.09.0": "unavailable",
    "24.09.1": "unavailable",
    "25.09.0": "deployed",
    "25.09.1": "deployed",
}
LEGACY = "/opt/software/metadata"
COMPONENT = "/opt/software/releases/metadata"


def write_sc_metadata(host: StandIns) -> None:
    stxcontent.write_metadata(host.path(LEGACY), stxcontent.release_metas(SC_STATES), "legacy")


def set_version(host: StandIns, version: str) -> None:
    host.write("/etc/build.info", f'SW_VERSION="{version}"\n')


def test_standins_are_python39_clean():
    """Both compile under Python 3.9's grammar (the lab hosts' python3)."""
    import subprocess  # noqa: PLC0415

    for script in ("stx-lab", "software-deploy-stub"):
        path = Path(__file__).resolve().parents[3] / "lab/labctl/data" / script
        result = subprocess.run(
            [
                str(PYTHON39),
                "-c",
                "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------- software list


def test_software_list_reads_the_state_directories(standins):
    write_sc_metadata(standins)
    assert standins.ok("software", "list") == (
        "+-------------------+-------+-------------+\n"
        "| Release           | RR    |    State    |\n"
        "+-------------------+-------+-------------+\n"
        "| starlingx-24.09.0 | True  | unavailable |\n"
        "| starlingx-24.09.1 | False | unavailable |\n"
        "| starlingx-25.09.0 | True  |  deployed   |\n"
        "| starlingx-25.09.1 | False |  deployed   |\n"
        "+-------------------+-------+-------------+\n"
    )


def test_software_list_rows_after_sed_as_the_playbook_reads_them(standins):
    """`software list --release <v> --state deployed | grep <v> | sed 's/ //g;'`
    (PR:sync-software-metadata/tasks/main.yml:67-73)."""
    write_sc_metadata(standins)
    result = standins.shell(
        "software list --release 25.09 --state deployed | grep 25.09 | sed 's/ //g;'"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "|starlingx-25.09.0|True|deployed|",
        "|starlingx-25.09.1|False|deployed|",
    ]


def test_software_list_release_filter(standins):
    write_sc_metadata(standins)
    out = standins.ok("software", "list", "--release", "24.09")
    assert [line.split()[1] for line in out.splitlines() if line.startswith("| starlingx")] == [
        "starlingx-24.09.0",
        "starlingx-24.09.1",
    ]


def test_software_list_state_filter_wins_over_release(standins):
    """USM's API filters by a valid state and then ignores the release
    (UP:software/software_controller.py:2736-2799)."""
    write_sc_metadata(standins)
    out = standins.ok("software", "list", "--release", "24.09", "--state", "deployed")
    assert "starlingx-25.09.0" in out
    assert "24.09" not in out
    # an unknown state is no filter at all
    assert standins.ok("software", "list", "--state", "bogus") == standins.ok("software", "list")


def test_software_list_no_data(standins):
    assert standins.ok("software", "list") == "No data\n"
    write_sc_metadata(standins)
    assert standins.ok("software", "list", "--release", "22.12") == "No data\n"


def test_software_list_sorts_as_the_client_does(standins):
    """The client sorts release ids with '-', '_' and '.' alike (software-client
    v1/release_shell.py:31-32): stx.25.09.1 before stx-25.09.2, unlike a plain sort."""
    for release_id, version in (("stx-25.09.2", "25.09.2"), ("stx.25.09.1", "25.09.1")):
        meta = ReleaseMeta(release_id, version, "available")
        standins.write(
            f"{LEGACY}/available/{release_id}-metadata.xml", stxcontent.legacy_metadata_xml(meta)
        )
    out = standins.ok("software", "list")
    assert [line.split()[1] for line in out.splitlines() if line.startswith("| stx")] == [
        "stx.25.09.1",
        "stx-25.09.2",
    ]


def test_software_list_skips_a_file_that_fails_to_parse(standins):
    """USM logs and skips it (UP:software/software_functions.py:687-694)."""
    write_sc_metadata(standins)
    standins.write(f"{LEGACY}/available/starlingx-25.09.2-metadata.xml", "<patch><id>starlingx")
    standins.write(
        f"{LEGACY}/available/starlingx-25.09.3-metadata.xml",
        "<patch><id>starlingx-25.09.3</id></patch>",
    )  # no sw_version
    standins.write(f"{LEGACY}/available/notes.txt", "not metadata")
    out = standins.ok("software", "list")
    assert "25.09.2" not in out
    assert "25.09.3" not in out
    assert out.count("| starlingx-") == 4


def test_software_list_reboot_required_unless_n(standins):
    """reboot_required is Y unless the file says N (UP:software/software_functions.py:638-639)."""
    standins.write(
        f"{LEGACY}/deployed/starlingx-25.09.0-metadata.xml",
        "<patch><id>starlingx-25.09.0</id><sw_version>25.09.0</sw_version></patch>",
    )
    assert "| starlingx-25.09.0 | True |" in standins.ok("software", "list")


def test_software_list_on_2610_reads_the_component_layout(standins):
    """A 26.10 host: product files at the root, their state from the metapackages' directories;
    the legacy directories are still read (UP:software/software_functions.py:669-694)."""
    set_version(standins, "26.10")
    write_sc_metadata(standins)
    metas = stxcontent.release_metas({"26.10.0": "deployed", "26.10.1": "available"})
    stxcontent.write_metadata(standins.path(COMPONENT), metas, "component")
    # one metapackage of 26.10.1 being deployed makes the release deploying (release_data.py:58-82)
    source = standins.path(f"{COMPONENT}/available/k8s_26.10.1-metadata.xml")
    target = standins.path(f"{COMPONENT}/deploying/k8s_26.10.1-metadata.xml")
    source.rename(target)
    out = standins.ok("software", "list")
    assert "| starlingx-26.10.0 | True  |  deployed   |" in out
    assert "| starlingx-26.10.1 | False |  deploying  |" in out
    assert "| starlingx-25.09.1 | False |  deployed   |" in out
    assert standins.ok("software", "list", "--state", "deploying").count("| starlingx-") == 1


def test_software_list_before_2610_ignores_the_component_layout(standins):
    set_version(standins, "25.09")
    stxcontent.write_metadata(
        standins.path(COMPONENT), stxcontent.release_metas({"26.10.0": "deployed"}), "component"
    )
    assert standins.ok("software", "list") == "No data\n"


def test_software_deploy_show(standins):
    assert standins.ok("software", "deploy", "show") == "No deploy in progress\n"
    standins.write(
        "/etc/platform/lab/deploy.json",
        json.dumps(
            {"from_release": "25.09.0", "to_release": "25.09.1", "rr": True, "state": "host"}
        ),
    )
    assert standins.ok("software", "--os-region-name", "SystemController", "deploy", "show") == (
        "+--------------+------------+------+-------------+\n"
        "| From Release | To Release |  RR  |    State    |\n"
        "+--------------+------------+------+-------------+\n"
        "| 25.09.0      | 25.09.1    | True | deploy-host |\n"
        "+--------------+------------+------+-------------+\n"
    )


# ------------------------------------------------------------------------------ system


REGISTRY_PARAMETERS = {
    "docker-registry": {
        "url": "registry.central:9001/docker.io",
        "type": "docker",
        "secure": "True",
        "auth-secret": "00000000-0000-4000-8000-000000000004",
    },
    "quay-registry": {"url": "registry.central:9001/quay.io", "type": "docker"},
}


def test_service_parameter_list_yaml(standins):
    """The playbook's query (PB:roles/common/push-docker-images/tasks/get_docker_registry.yml:
    11-27); yaml.safe_dump sorts keys and quotes 'True'."""
    standins.write("/etc/platform/lab/service_parameters.json", json.dumps(REGISTRY_PARAMETERS))
    out = standins.ok(
        "system",
        "service-parameter-list",
        "--section",
        "docker-registry",
        "--column",
        "name",
        "--column",
        "value",
        "--format",
        "yaml",
    )
    assert out == (
        "- name: url\n"
        "  value: registry.central:9001/docker.io\n"
        "- name: type\n"
        "  value: docker\n"
        "- name: secure\n"
        "  value: 'True'\n"
        "- name: auth-secret\n"
        "  value: 00000000-0000-4000-8000-000000000004\n"
        "\n"
    )
    parsed = {item["name"]: item["value"] for item in yaml.safe_load(out)}
    assert parsed == REGISTRY_PARAMETERS["docker-registry"]
    empty = standins.ok(
        "system",
        "service-parameter-list",
        "--section",
        "ghcr-registry",
        "--column",
        "name",
        "--column",
        "value",
        "--format",
        "yaml",
    )
    assert yaml.safe_load(empty) == []


def test_service_parameter_list_table(standins):
    standins.write("/etc/platform/lab/service_parameters.json", json.dumps(REGISTRY_PARAMETERS))
    out = standins.ok(
        "system",
        "service-parameter-list",
        "--section",
        "quay-registry",
        "--column",
        "name",
        "--column",
        "value",
    )
    assert out == (
        "+------+-------------------------------+\n"
        "| name | value                         |\n"
        "+------+-------------------------------+\n"
        "| url  | registry.central:9001/quay.io |\n"
        "| type | docker                        |\n"
        "+------+-------------------------------+\n"
    )


def test_secret_get(standins):
    standins.write(
        "/etc/platform/lab/secrets.json",
        json.dumps({"00000000-0000-4000-8000-000000000004": "username:sysinv password:Pa:ss-w0rd"}),
    )
    out = standins.ok(
        "openstack", "secret", "get", "00000000-0000-4000-8000-000000000004", "-p", "-f", "value"
    )
    assert out == "username:sysinv password:Pa:ss-w0rd\n"
    # how the playbook splits it (get_docker_registry.yml:52-55)
    assert out.split()[0].split("username:")[1] == "sysinv"
    assert out.split()[1].split("password:")[1] == "Pa:ss-w0rd"
    missing = standins.run("openstack", "secret", "get", "nope", "-p", "-f", "value")
    assert missing.returncode == 1
    assert len(missing.stderr.splitlines()) == 1
    assert "not found" in missing.stderr


def test_host_cpu_list_platform_cores(standins):
    """How generate-registry-filesystem-archive counts platform cores
    (PB:roles/common/generate-registry-filesystem-archive/tasks/main.yml:14-37)."""
    count = 'system host-cpu-list controller-0 --nowrap | grep " Platform " | wc -l'
    assert standins.shell(count).stdout.strip() == "2"  # no cpus.json: 2
    standins.write("/etc/platform/lab/cpus.json", '{"platform": 4, "application": 3}')
    assert standins.shell(count).stdout.strip() == "4"
    out = standins.ok("system", "host-cpu-list", "controller-0", "--nowrap")
    header = out.splitlines()[1]
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "uuid",
        "log_core",
        "processor",
        "phy_core",
        "thread",
        "processor_model",
        "assigned_function",
    ]
    assert out.count(" Application ") == 3


def test_addrpool_list_field_14_is_the_system_controller(standins):
    """ostree-metadata-sync.sh finds the SC's address with awk field 14
    (PR:sync-software-metadata/files/ostree-metadata-sync.sh:427-432)."""
    standins.write(
        "/etc/platform/lab/addrpools.json",
        json.dumps(
            [
                {
                    "name": "oam",
                    "network": "10.250.0.0",
                    "prefix": 20,
                    "ranges": ["10.250.0.11-10.250.0.11"],
                    "floating_address": "10.250.0.11",
                },
                {
                    "name": "system-controller-subnet",
                    "network": "10.250.0.0",
                    "prefix": 20,
                    "ranges": ["10.250.0.2-10.250.0.2"],
                    "floating_address": "10.250.0.2",
                },
            ]
        ),
    )
    result = standins.shell(
        "system addrpool-list --nowrap | awk '/system-controller-subnet/ {print $14}'"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "10.250.0.2\n"
    header = standins.ok("system", "addrpool-list", "--nowrap").splitlines()[1]
    assert [cell.strip() for cell in header.strip("|").split("|")][:7] == [
        "uuid",
        "name",
        "network",
        "prefix",
        "order",
        "ranges",
        "floating_address",
    ]


def test_host_show_and_system_show(standins):
    standins.write(
        "/etc/platform/platform.conf",
        "system_mode=duplex\ndistributed_cloud_role=systemcontroller\n",
    )
    standins.write("/etc/platform/lab/controllers.json", '{"controller-0": "standby"}')
    assert "{'Personality': 'Controller-Standby'}" in standins.ok(
        "system", "host-show", "controller-0"
    )
    assert "{'Personality': 'Controller-Active'}" in standins.ok(
        "system", "host-show", "controller-1"
    )
    show = standins.ok("system", "show")
    assert "| distributed_cloud_role | systemcontroller |" in show
    assert "| software_version       | 25.09            |" in show
    missing = standins.run("system", "host-show", "controller-9")
    assert missing.returncode == 1
    assert missing.stderr == "host not found: controller-9\n"


# -------------------------------------------------------------------------------- fm


def test_fm_alarm_list(standins):
    # no alarms: PrettyTable with print_empty=False prints nothing but the newline
    assert standins.ok("fm", "alarm-list", "--mgmt_affecting") == "\n"
    standins.write(
        "/etc/platform/lab/alarms.json",
        json.dumps(
            [
                {
                    "alarm_id": "250.001",
                    "reason": "controller-0 Configuration is out-of-date.",
                    "entity": "host=controller-0",
                    "severity": "major",
                    "mgmt_affecting": True,
                    "timestamp": "2025-01-01T00:00:00.000000",
                }
            ]
        ),
    )
    out = standins.ok("fm", "alarm-list", "--mgmt_affecting")
    header, row = out.splitlines()[1], out.splitlines()[3]
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    assert cells == [
        "Alarm ID",
        "Reason Text",
        "Entity ID",
        "Severity",
        "Management Affecting",
        "Time Stamp",
    ]
    assert [cell.strip() for cell in row.strip("|").split("|")][4] == "True"
    assert "Management Affecting" not in standins.ok("fm", "alarm-list")


# ---------------------------------------------------------------------------- dcmanager


def test_dcmanager_subcloud_deploy_upload_and_show(standins, tmp_path):
    images = tmp_path / "images.lst"
    images.write_text("docker.io/starlingx/stx-pause:25.09\n")
    out = standins.ok(
        "dcmanager",
        "subcloud",
        "deploy",
        "upload",
        "--prestage-images",
        str(images),
        "--release",
        "24.09",
    )
    assert "| prestage_images  | images.lst |" in out
    stored = standins.path("/opt/platform/deploy/24.09/prestage_images_images.lst")
    assert stored.read_text() == images.read_text()
    assert "| software_version | 25.09 |" in standins.ok("dcmanager", "subcloud", "deploy", "show")
    shown = standins.ok("dcmanager", "subcloud", "deploy", "show", "--release", "24.09")
    assert "| prestage_images  | images.lst |" in shown


# ------------------------------------------------------------------- software-deploy


def test_software_deploy_scripts_exit_0_and_log(standins):
    ok = standins.shell(
        "controllers-software-sync && sync-controllers-feed --feed=/var/www/pages/feed/rel-25.09"
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    calls = [
        json.loads(line)
        for line in standins.path("/var/log/lab-calls.log").read_text().splitlines()
    ]
    assert [call["argv"] for call in calls] == [
        ["controllers-software-sync"],
        ["sync-controllers-feed", "--feed=/var/www/pages/feed/rel-25.09"],
    ]
    assert all(isinstance(call["time"], float) for call in calls)
    bad = standins.shell("sync-controllers-feed")
    assert bad.returncode == 1
    assert "'feed' is not provided" in bad.stdout


# ------------------------------------------------------------------------------ crictl


def trust(host: StandIns, registry: str, ca: Path) -> None:
    """The CA in the host's /etc/docker/certs.d/<registry>/ca.crt (as a lab host has it)."""
    host.write(f"/etc/docker/certs.d/{registry}/ca.crt", ca.read_text())


def cri_images(host: StandIns) -> list[dict[str, object]]:
    return json.loads(host.ok("crictl", "images", "--output=json"))["images"]


def test_crictl_pull_fetches_the_image(standins, registry: Registry):
    trust(standins, registry.address, registry.ca)
    ref = f"{registry.address}/{registry.image}"
    out = standins.ok("crictl", "pull", "--creds", f"{registry.user}:{registry.password}", ref)
    assert out.startswith("Image is up to date for sha256:")
    images = cri_images(standins)
    assert len(images) == 1
    assert images[0]["repoTags"] == [ref]
    assert out.split()[-1] == images[0]["id"]
    digest = images[0]["repoDigests"][0].split("@", 1)[1]
    assert images[0]["repoDigests"] == [f"{ref.rsplit(':', 1)[0]}@{digest}"]
    assert int(images[0]["size"]) > 100_000  # manifest, config and both layers were fetched
    # download_images.py reads the tags this way (push-docker-images/files/download_images.py:
    # 162-176)
    assert ref in [tag for image in images for tag in image["repoTags"]]
    table = standins.ok("crictl", "images").splitlines()
    assert table[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
    assert table[1].split()[:2] == [ref.rsplit(":", 1)[0], "25.09"]


def test_crictl_pull_wrong_name(standins, registry: Registry):
    trust(standins, registry.address, registry.ca)
    ref = f"{registry.address}/docker.io/starlingx/no-such-image:25.09"
    result = standins.run("crictl", "pull", "--creds", f"{registry.user}:{registry.password}", ref)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "code = NotFound" in result.stderr
    assert f'"{ref}": {ref}: not found' in result.stderr
    assert cri_images(standins) == []


def test_crictl_pull_wrong_password(standins, registry: Registry):
    trust(standins, registry.address, registry.ca)
    ref = f"{registry.address}/{registry.image}"
    result = standins.run("crictl", "pull", "--creds", f"{registry.user}:wrong", ref)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "401 Unauthorized" in result.stderr
    no_creds = standins.run("crictl", "pull", ref)
    assert no_creds.returncode == 1
    assert "401 Unauthorized" in no_creds.stderr
    assert cri_images(standins) == []


def test_crictl_pull_verifies_tls_with_the_hosts_trust(standins, registry: Registry):
    ref = f"{registry.address}/{registry.image}"
    result = standins.run("crictl", "pull", "--creds", f"{registry.user}:{registry.password}", ref)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "tls: failed to verify certificate" in result.stderr
    # the CA in the host's bundle is trusted too
    standins.write("/etc/ssl/certs/ca-certificates.crt", registry.ca.read_text())
    standins.ok("crictl", "pull", "--creds", f"{registry.user}:{registry.password}", ref)


# A registry with token auth (what StarlingX's registry uses, on :9002): a small stand-in server
# that issues a bearer token for the right basic credentials and serves one image.


class TokenRegistry(http.server.BaseHTTPRequestHandler):
    user, password, token = "sysinv", "t0ken-Pw", "lab-bearer-token"
    blobs: dict[str, bytes] = {}
    manifest = b""

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        if url.path == "/token":
            expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            query = urllib.parse.parse_qs(url.query)
            if self.headers.get("Authorization") != f"Basic {expected}" or query.get("service") != [
                "lab-registry"
            ]:
                self._send(401)
                return
            self._send(200, json.dumps({"token": self.token}).encode())
            return
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            host = self.headers["Host"]
            challenge = (
                f'Bearer realm="https://{host}/token",service="lab-registry",'
                f'scope="repository:lab/image:pull"'
            )
            self._send(401, b"{}", {"WWW-Authenticate": challenge})
            return
        if url.path == "/v2/lab/image/manifests/1.0":
            media = "application/vnd.docker.distribution.manifest.v2+json"
            self._send(200, self.manifest, {"Content-Type": media})
        elif url.path.startswith("/v2/lab/image/blobs/"):
            digest = url.path.rsplit("/", 1)[1]
            if digest in self.blobs:
                self._send(200, self.blobs[digest])
            else:
                self._send(404)
        else:
            self._send(404)


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    from .conftest import make_ca  # noqa: PLC0415

    ca, ca_key = make_ca(tmp_path)
    cert, key = make_server_cert(tmp_path, ca, ca_key)
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer-bytes" * 1000

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    TokenRegistry.blobs = {digest(config): config, digest(layer): layer}
    TokenRegistry.manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": digest(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": digest(layer),
                }
            ],
        }
    ).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_crictl_pull_with_bearer_token_auth(standins, token_registry):
    address, ca = token_registry
    trust(standins, address, ca)
    ref = f"{address}/lab/image:1.0"
    good = standins.run("crictl", "pull", "--creds", "sysinv:t0ken-Pw", ref)
    assert good.returncode == 0, good.stderr
    config_digest = "sha256:" + hashlib.sha256(b'{"architecture":"amd64","os":"linux"}').hexdigest()
    assert good.stdout == f"Image is up to date for {config_digest}\n"
    assert cri_images(standins)[0]["repoTags"] == [ref]
    bad = standins.run("crictl", "pull", "--creds", "sysinv:wrong", ref)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert "failed to fetch oauth token" in bad.stderr
    assert "401" in bad.stderr


def test_software_list_on_a_2610_system_controller_built_by_the_lab(standins, tmp_path):
    """The 26.10 SC stxcontent builds: 25.09 in the legacy directories, 26.10 in the component
    layout; `software list` shows both, as USM's load_all reads both
    (UP:software/software_functions.py:669-694)."""
    if shutil.which("ostree") is None:
        pytest.skip("needs ostree")
    set_version(standins, "26.10")
    stxcontent.build_system_controller(
        standins.path("/var"), standins.path("/opt"), tmp_path / "cache", 20_000,
        sc_release="26.10", install_uuid="sc-uuid",
    )  # fmt: skip
    out = standins.ok("software", "list")
    rows = [line.replace(" ", "") for line in out.splitlines() if "| starlingx-" in line]
    assert rows == [
        "|starlingx-25.09.0|True|unavailable|",
        "|starlingx-25.09.1|False|unavailable|",
        "|starlingx-26.10.0|True|deployed|",
        "|starlingx-26.10.1|False|deployed|",
    ]
    # what the release rules read: 25.09 is ready to be installed (any of available, deployed,
    # unavailable: DC:dcmanager/common/utils.py:1596-1630), 26.10 is deployed
    deployed = standins.ok("software", "list", "--release", "26.10", "--state", "deployed")
    assert deployed.count("| starlingx-26.10.") == 2
