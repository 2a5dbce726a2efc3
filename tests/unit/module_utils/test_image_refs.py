"""StarlingX's image rules (plugins/module_utils/_image_refs.py), one test per rule, against
what the real files do:

- the list parsing of PR:prepare-env/tasks/prepare-images-prestage-env.yml:52-75;
- the registries of PB:roles/common/push-docker-images/tasks/get_docker_registr{y,ies}.yml,
  PR:prestage-images/tasks/get_docker_registries.yml:22-68 and update_registry_creds.yml;
- the mapping of PB:roles/common/push-docker-images/files/download_images.py:58-92,123-159.
(PB: = starlingx/ansible-playbooks playbookconfig/src/playbooks/, PR: = PB:roles/prestage/.)
"""

from __future__ import annotations

import random
import subprocess

import pytest
import yaml

from ansible_collections.distcloud.prestage.plugins.module_utils import _image_refs as refs

CENTRAL = "registry.central:9001"


def central_registries() -> dict:
    """A subcloud's registries as StarlingX sets them: each public registry through
    registry.central (ghcr.io, registry.k8s.io and icr.io left unset, so cloned)."""
    by_variable = {
        "k8s_registry": {"url": f"{CENTRAL}/k8s.gcr.io", "type": "docker", "secure": True},
        "gcr_registry": {"url": f"{CENTRAL}/gcr.io", "type": "docker", "secure": True},
        "quay_registry": {
            "url": f"{CENTRAL}/quay.io",
            "type": "docker",
            "secure": True,
            "username": "sysinv",
            "password": "pw1",
        },
        "docker_registry": {
            "url": f"{CENTRAL}/docker.io",
            "type": "docker",
            "secure": True,
            "username": "sysinv",
            "password": "pw1",
        },
        "elastic_registry": {"url": f"{CENTRAL}/docker.elastic.co", "type": "docker"},
    }
    return refs.prestage_registries(refs.docker_registries(by_variable))


# --------------------------------------------------------------------------- the list


def test_list_parsing_is_starlingx_s() -> None:
    text = (
        "# 25.09 images\n"
        "docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0\n"
        "\n"
        "[section]\n"
        "registry.k8s.io/pause:3.9\n"
        "quay.io/jetstack/cert-manager-controller:v1.15.3,ignored,too\n"
        "docker.io/a/b:1 # trailing comment drops the whole line\n"
        "   \n"
        "  spaced/inside:1  \n"
        "registry.k8s.io/pause:3.9\n"
        "\n"
    )
    assert refs.parse_image_list(text) == [
        "docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0",
        "registry.k8s.io/pause:3.9",
        "quay.io/jetstack/cert-manager-controller:v1.15.3",
        "   ",  # a whitespace-only line survives (sed deletes only empty lines)
        "  spaced/inside:1  ",  # only the file's outer whitespace is trimmed (Jinja trim)
        "registry.k8s.io/pause:3.9",  # duplicates are dropped at use, not here
    ]


def test_list_parsing_matches_the_sed_commands(tmp_path) -> None:
    """The same text through StarlingX's two sed commands (prepare-images-prestage-env.yml:53,
    56), then trim and split: the lists agree."""
    text = "a/b:1\n#c\n\n[x]\nd/e:2,f\n  \ng/h:3, x\n  i/j:4\n"
    path = tmp_path / "list"
    path.write_text(text)
    subprocess.run(["sed", "-i", "-e", r"/^$/d; /#/d; /\[/d", str(path)], check=True)
    subprocess.run(["sed", "-i", "s/,.*//", str(path)], check=True)
    assert refs.parse_image_list(text) == path.read_text().strip().split("\n")


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n#\n", "[a]\n,x\n"])
def test_a_list_without_references_is_starlingx_s_error(text: str) -> None:
    images = refs.parse_image_list(text)
    assert images == [""]
    assert refs.image_list_error(images, "/opt/platform/deploy/25.09/prestage_images_l") == (
        "File /opt/platform/deploy/25.09/prestage_images_l contains no image references."
    )
    assert refs.image_list_error([], "f") == "File f contains no image references."
    assert refs.image_list_error(["a/b:1"], "f") is None


def test_missing_list_message_is_verbatim() -> None:
    assert refs.IMAGE_LIST_MISSING.format("/x") == "Images list file /x does not exist!"


def test_unique_keeps_the_first_occurrence() -> None:
    assert refs.unique_images(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


# --------------------------------------------------------------------------- registries


def cliff_yaml(parameters: dict[str, str]) -> str:
    """What `system service-parameter-list --column name --column value --format yaml` prints
    (cliff's yaml formatter: yaml.safe_dump of [{name, value}])."""
    rows = [{"name": name, "value": value} for name, value in parameters.items()]
    return yaml.safe_dump(rows, default_flow_style=False)


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"url": f"{CENTRAL}/docker.io", "type": "docker", "secure": "True"},
        {"auth-secret": "http://controller:9311/v1/secrets/1b8f-4c", "url": 'a\'b "c"', "x": ""},
        {"url": "a: b", "long": "word " * 40, "colon": "k:v", "yes": "yes", "null": "null"},
        {"url": "- not an item", "hash": "#x", "t": "\tx", "u": "é\u2028\U0001f600 \\"},
    ],
)
def test_service_parameter_yaml_reads_like_pyyaml(parameters: dict[str, str]) -> None:
    text = cliff_yaml(parameters)
    assert refs.parse_parameter_list(text) == [
        (row["name"], row["value"]) for row in yaml.safe_load(text)
    ]


def test_service_parameter_yaml_fuzz() -> None:
    """Any value cliff may print (folded, quoted, escaped, multi-line) reads back as PyYAML
    reads it."""
    chooser = random.Random(20250901)
    alphabet = [*"abc XYZ:#-'\"\\\u00e9\t,{}[]&*!|>%@`\n", "\u2028", "\U0001f600", "  ", "\n\n"]
    for _round in range(3000):
        value = "".join(chooser.choice(alphabet) for _char in range(chooser.randint(0, 160)))
        text = cliff_yaml({"k": value, "url": f"{CENTRAL}/docker.io"})
        assert refs.parse_parameter_list(text) == [("k", value), ("url", f"{CENTRAL}/docker.io")]


def test_registry_from_parameters() -> None:
    secrets = {"ref-1": "username:admin password:S3cret!"}
    value = refs.registry_from_parameters(
        "docker_registry",
        [
            ("url", f"{CENTRAL}/docker.io"),
            ("type", "docker"),
            ("secure", "True"),
            ("auth-secret", "ref-1"),
            ("additional-overrides", "x"),
        ],
        secrets.__getitem__,
    )
    # get_docker_registry.yml:35-38 (secure to bool), 52-60 (credentials), 63-70 (secret gone)
    assert value == {
        "url": f"{CENTRAL}/docker.io",
        "type": "docker",
        "secure": True,
        "username": "admin",
        "password": "S3cret!",
        "additional-overrides": "x",
    }
    assert refs.registry_from_parameters("gcr_registry", [], secrets.__getitem__) == {}
    assert refs.registry_from_parameters("x", [("secure", "False"), ("url", "u")], None) == {
        "secure": False,
        "url": "u",
    }


def test_registry_without_url_is_starlingx_s_error() -> None:
    with pytest.raises(refs.ImageRefError, match=r"^quay_registry's url doesn't exist$"):
        refs.registry_from_parameters("quay_registry", [("type", "docker")], None)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("username:admin password:pw", ("admin", "pw")),
        ("username:admin password:pw\n", ("admin", "pw")),
        ("username:a:b password:p:w:d", ("a:b", "p:w:d")),
        ("username:admin password:two words", ("admin", "two")),  # split() quirk
    ],
)
def test_secret_format(payload: str, expected: tuple[str, str]) -> None:
    assert refs.parse_registry_secret(payload, "docker_registry") == expected


@pytest.mark.parametrize(
    "payload", ["", "user:admin pass:pw", "username:admin", "password:pw username:admin"]
)
def test_unknown_secret_format(payload: str) -> None:
    with pytest.raises(refs.ImageRefError, match=r"^Unknown format of the icr_registry secret$"):
        refs.parse_registry_secret(payload, "icr_registry")


def test_ansible_bool() -> None:
    assert [refs.ansible_bool(v) for v in ("True", "yes", "on", "1", True)] == [True] * 5
    assert [refs.ansible_bool(v) for v in ("False", "no", "0", "", None, "t")] == [False] * 6


def test_registries_order_clones_and_defaults() -> None:
    registries = central_registries()
    # get_docker_registries.yml:29-37: the dict order download_images.py matches in
    assert list(registries) == [
        "k8s.gcr.io", "gcr.io", "quay.io", "docker.io", "docker.elastic.co", "ghcr.io",
        "registry.k8s.io", "icr.io",
    ]  # fmt: skip
    docker = registries["docker.io"]
    # PR:prestage-images/tasks/get_docker_registries.yml:22-68: docker.io's value, url re-made
    for name in ("ghcr.io", "registry.k8s.io", "icr.io"):
        assert registries[name] == dict(docker, url=f"{CENTRAL}/{name}")
    # the rest keep their own value
    assert registries["gcr.io"] == {"url": f"{CENTRAL}/gcr.io", "type": "docker", "secure": True}


def test_an_empty_registry_becomes_docker_io_s_value() -> None:
    """update_registry_creds.yml:18-21: an empty registry value is docker.io's, url included."""
    registries = refs.prestage_registries(
        refs.docker_registries({"docker_registry": {"url": f"{CENTRAL}/docker.io"}})
    )
    assert registries["quay.io"] == {"url": f"{CENTRAL}/docker.io"}
    assert registries["registry.k8s.io"] == {"url": f"{CENTRAL}/registry.k8s.io"}


def test_ghcr_given_is_kept() -> None:
    registries = refs.prestage_registries(
        refs.docker_registries({
            "docker_registry": {"url": "docker.io"},
            "ghcr_registry": {"url": "mirror:5000/ghcr"},
        })
    )  # fmt: skip
    assert registries["ghcr.io"] == {"url": "mirror:5000/ghcr"}
    # the url prefix of a plain docker.io url is empty
    assert registries["icr.io"] == {"url": "icr.io"}


def test_no_docker_io_url() -> None:
    with pytest.raises(refs.ImageRefError, match="docker_registry's url doesn't exist"):
        refs.prestage_registries(refs.docker_registries({}))


def test_summary_has_no_credentials() -> None:
    summary = refs.registry_summary(central_registries())
    assert summary["docker.io"] == f"{CENTRAL}/docker.io"
    assert "pw1" not in repr(summary)


# --------------------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("image", "kept", "source", "credentials"),
    [
        # a public name: pulled from <url><rest>, kept under its own name
        ("docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0",
         "docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0",
         f"{CENTRAL}/docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0", ("sysinv", "pw1")),
        ("quay.io/jetstack/cert-manager-controller:v1.15.3",
         "quay.io/jetstack/cert-manager-controller:v1.15.3",
         f"{CENTRAL}/quay.io/jetstack/cert-manager-controller:v1.15.3", ("sysinv", "pw1")),
        # registry.k8s.io through its docker.io clone (docker.io's credentials)
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9",
         f"{CENTRAL}/registry.k8s.io/pause:3.9", ("sysinv", "pw1")),
        ("ghcr.io/fluxcd/helm-controller:v0.37.4", "ghcr.io/fluxcd/helm-controller:v0.37.4",
         f"{CENTRAL}/ghcr.io/fluxcd/helm-controller:v0.37.4", ("sysinv", "pw1")),
        ("k8s.gcr.io/kube-proxy:v1.16.0", "k8s.gcr.io/kube-proxy:v1.16.0",
         f"{CENTRAL}/k8s.gcr.io/kube-proxy:v1.16.0", None),
        # already prefixed with a registry url: pulled as written, kept without the url
        (f"{CENTRAL}/docker.io/starlingx/stx-x:1", "docker.io/starlingx/stx-x:1",
         f"{CENTRAL}/docker.io/starlingx/stx-x:1", ("sysinv", "pw1")),
        # unprefixed: no registry matches; pulled as written, without credentials
        ("busybox:1.36", "busybox:1.36", "busybox:1.36", None),
        ("fluxcd/helm-controller:v1", "fluxcd/helm-controller:v1", "fluxcd/helm-controller:v1",
         None),
        # another registry with a port: as written, without credentials
        ("myregistry.example:5000/team/app:2", "myregistry.example:5000/team/app:2",
         "myregistry.example:5000/team/app:2", None),
    ],
)  # fmt: skip
def test_map_image(image: str, kept: str, source: str, credentials) -> None:
    got_kept, got_source, info = refs.map_image(image, central_registries())
    assert (got_kept, got_source) == (kept, source)
    assert refs.credentials_of(info) == credentials


def test_map_image_quirks() -> None:
    registries = central_registries()
    # startswith on the public name (no "/" needed): "gcr.io" does not take "k8s.gcr.io/..."
    # only because k8s.gcr.io comes first in the dict
    assert refs.map_image("gcr.ioextra/x:1", registries)[1] == f"{CENTRAL}/gcr.ioextra/x:1"
    # str.split(name)[1]: a second occurrence of the name cuts the rest off
    assert refs.map_image("docker.io/a/docker.io-b:1", registries)[1] == (f"{CENTRAL}/docker.io/a/")
    # prefixed by a url: the public name is added unless it occurs anywhere (substring test)
    single = {"docker.io": {"url": "mirror:5000"}}
    assert refs.map_image("mirror:5000/starlingx/x:1", single)[0] == "docker.io/starlingx/x:1"
    assert refs.map_image("mirror:5000/docker.io-x/y:1", single)[0] == "docker.io-x/y:1"
    # an empty registry takes docker.io's url (update_registry_creds.yml:18-21), so with no
    # k8s-registry parameters a docker.io image written with its url lands under k8s.gcr.io
    # (k8s.gcr.io comes first in the dict): why a subcloud has all its registries set
    sparse = refs.prestage_registries(
        refs.docker_registries({"docker_registry": {"url": f"{CENTRAL}/docker.io"}})
    )
    assert refs.map_image(f"{CENTRAL}/docker.io/starlingx/x:1", sparse)[0] == (
        "k8s.gcr.io/starlingx/x:1"
    )
    assert refs.map_image(f"{CENTRAL}/docker.io/starlingx/x:1", registries)[0] == (
        "docker.io/starlingx/x:1"
    )
    # dict order: the first registry whose name or url matches wins
    shared = {"quay.io": {"url": "mirror:5000"}, "docker.io": {"url": "mirror:5000"}}
    assert refs.map_image("mirror:5000/x/y:1", shared)[0] == "quay.io/x/y:1"


@pytest.mark.parametrize(
    ("image", "local"),
    [
        ("docker.io/starlingx/stx-x:1", "registry.local:9001/docker.io/starlingx/stx-x:1"),
        ("registry.k8s.io/pause:3.9", "registry.local:9001/registry.k8s.io/pause:3.9"),
        ("quay.io/jetstack/cm:v1", "registry.local:9001/quay.io/jetstack/cm:v1"),
        ("busybox:1.36", "registry.local:9001/busybox:1.36"),
        ("fluxcd/helm-controller:v1", "registry.local:9001/fluxcd/helm-controller:v1"),
        # a first component with a port (a registry) is dropped
        ("myregistry.example:5000/team/app:2", "registry.local:9001/team/app:2"),
        ("registry.central:9001/myimage:latest", "registry.local:9001/myimage:latest"),
        ("myregistry.example/team/app:2", "registry.local:9001/myregistry.example/team/app:2"),
    ],
)
def test_local_name(image: str, local: str) -> None:
    assert refs.local_image_name(image) == local


def test_local_name_with_docker_prefix() -> None:
    assert refs.local_image_name("busybox:1", "r:1", add_docker_prefix=True) == (
        "r:1/docker.io/busybox:1"
    )
    assert refs.local_image_name("fluxcd/x:1", "r:1", add_docker_prefix=True) == (
        "r:1/docker.io/fluxcd/x:1"
    )
    assert refs.local_image_name("quay.io/x:1", "r:1", add_docker_prefix=True) == "r:1/quay.io/x:1"


def test_the_whole_chain_for_the_lab_list() -> None:
    """The image list of STARLINGX.md §7 end to end: pulled from registry.central under the
    public registry prefix, kept in registry.local under the same prefix."""
    registries = central_registries()
    text = (
        "# 25.09 images\n"
        "docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0\n"
        "registry.k8s.io/pause:3.9\n"
        "quay.io/jetstack/cert-manager-controller:v1.15.3,ignored\n"
    )
    chain = []
    for image in refs.unique_images(refs.parse_image_list(text)):
        kept, source, _info = refs.map_image(image, registries)
        chain.append((source, refs.local_image_name(kept)))
    assert chain == [
        (f"{CENTRAL}/docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0",
         "registry.local:9001/docker.io/starlingx/stx-platformclients:stx.11.0-v1.0.0"),
        (f"{CENTRAL}/registry.k8s.io/pause:3.9", "registry.local:9001/registry.k8s.io/pause:3.9"),
        (f"{CENTRAL}/quay.io/jetstack/cert-manager-controller:v1.15.3",
         "registry.local:9001/quay.io/jetstack/cert-manager-controller:v1.15.3"),
    ]  # fmt: skip


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("busybox", ("docker.io", "registry-1.docker.io", "library/busybox", "latest", None)),
        ("busybox:1.36", ("docker.io", "registry-1.docker.io", "library/busybox", "1.36", None)),
        ("fluxcd/x:v1", ("docker.io", "registry-1.docker.io", "fluxcd/x", "v1", None)),
        ("docker.io/starlingx/x:1",
         ("docker.io", "registry-1.docker.io", "starlingx/x", "1", None)),
        ("index.docker.io/redis:7", ("docker.io", "registry-1.docker.io", "library/redis", "7",
                                     None)),
        ("registry.central:9001/docker.io/starlingx/x:1",
         ("registry.central:9001", "registry.central:9001", "docker.io/starlingx/x", "1", None)),
        ("localhost/x", ("localhost", "localhost", "x", "latest", None)),
        ("127.0.0.1:5000/a/b@sha256:" + "a" * 64,
         ("127.0.0.1:5000", "127.0.0.1:5000", "a/b", None, "sha256:" + "a" * 64)),
        ("quay.io/x/y:t@sha256:" + "b" * 64,
         ("quay.io", "quay.io", "x/y", "t", "sha256:" + "b" * 64)),
    ],
)  # fmt: skip
def test_split_reference(reference: str, expected: tuple) -> None:
    parts = refs.split_reference(reference)
    got = (parts["domain"], parts["host"], parts["repository"], parts["tag"], parts["digest"])
    assert got == expected
    assert refs.reference_of(parts) == (expected[4] or expected[3])


@pytest.mark.parametrize(
    "reference",
    ["", "   ", "  a/b:1", "a/b:1 ", "a/UPPER", "a//b", "a/b:", "a/b@sha256:12", "-a/b",
     "a/b:" + "t" * 129],
)  # fmt: skip
def test_invalid_references(reference: str) -> None:
    with pytest.raises(refs.ImageRefError, match="invalid reference format"):
        refs.split_reference(reference)
