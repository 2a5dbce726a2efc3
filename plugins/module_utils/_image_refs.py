# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""StarlingX's image rules for the images phase, as pure functions.

- the image list file, parsed as prestage's prepare-env does;
- the registries dict (public registry name -> url, type, secure, credentials) built from the
  subcloud's docker registry service parameters, as prestage's get_docker_registries does;
- which registry each listed image is pulled from, and its name in the local registry, as
  download_images.py does;
- docker's own reference grammar and normalisation (what ``docker pull`` would contact).

StarlingX's quirks are kept on purpose (each is named where it lives): ``startswith`` matching in
dict order, ``str.split(...)[1]`` cutting, the substring test of an already-prefixed name, the
secret split on whitespace. Citations use STARLINGX.md's prefixes (PB: = starlingx/
ansible-playbooks playbookconfig/src/playbooks/, PR: = PB:roles/prestage/).

Runs on a subcloud's Python 3.9: standard library only, unannotated.
"""

from __future__ import annotations

import re

LOCAL_REGISTRY = "registry.local:9001"

# PR:prepare-env/tasks/prepare-images-prestage-env.yml:36-39 and 72-75 (the messages, verbatim)
IMAGE_LIST_MISSING = "Images list file {} does not exist!"
IMAGE_LIST_EMPTY = "File {} contains no image references."

# PB:roles/common/push-docker-images/tasks/get_docker_registries.yml:17-24 (the registry
# variables, whose '_' become '-' in the service parameter section names,
# get_docker_registry.yml:13) and 29-37 (the public registry each one serves), in that order.
REGISTRY_SECTIONS = (
    ("k8s_registry", "k8s.gcr.io"),
    ("gcr_registry", "gcr.io"),
    ("quay_registry", "quay.io"),
    ("docker_registry", "docker.io"),
    ("elastic_registry", "docker.elastic.co"),
    ("ghcr_registry", "ghcr.io"),
    ("registryk8s_registry", "registry.k8s.io"),
    ("icr_registry", "icr.io"),
)
# PR:prestage-images/tasks/get_docker_registries.yml:27-68: made from docker.io's when missing.
CLONED_FROM_DOCKER_IO = ("ghcr.io", "registry.k8s.io", "icr.io")

# PB:roles/common/push-docker-images/files/download_images.py:42
REGISTRY_PATTERNS = (".io", "docker.elastic.co")

# docker's defaults (distribution/reference normalize.go; docker's registry service)
DOCKER_IO = "docker.io"
DOCKER_IO_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"


class ImageRefError(ValueError):
    """A StarlingX rule failed; str() is StarlingX's message."""


# --------------------------------------------------------------------------- the image list


def parse_image_list(text):
    """The image references of an image list file, as StarlingX reads them.

    PR:prepare-env/tasks/prepare-images-prestage-env.yml:52-65: ``sed -e '/^$/d; /#/d; /\\[/d'``
    deletes the empty lines and every line holding ``#`` or ``[``; ``sed 's/,.*//'`` cuts each
    line at its first ``,``; the whole text is then trimmed (Jinja ``trim``, so only the
    file's leading and trailing whitespace goes) and split on newlines. Whitespace-only lines
    and spaces inside the file survive, as they do in StarlingX; ``[""]`` means no image
    (image_list_error). Duplicates are kept here: StarlingX drops them at use (unique_images).
    """
    kept = []
    for line in (text or "").split("\n"):
        if line == "" or "#" in line or "[" in line:
            continue
        kept.append(line.split(",", 1)[0])
    return "\n".join(kept).strip().split("\n")


def image_list_error(images, path):
    """StarlingX's message when the parsed list holds no image (72-75), else None."""
    if len(images) == 0 or list(images) == [""]:
        return IMAGE_LIST_EMPTY.format(path)
    return None


def unique_images(images):
    """Jinja ``unique`` (PR:prestage-images/tasks/main.yml:45): first occurrence kept."""
    seen = set()
    result = []
    for image in images:
        if image not in seen:
            seen.add(image)
            result.append(image)
    return result


# --------------------------------------------------------------------------- registries


def ansible_bool(value):
    """Ansible's ``bool`` filter (get_docker_registry.yml:35-38 turns ``secure`` into one)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).lower() in ("yes", "on", "1", "true")


_YAML_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
    "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
    "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_YAML_HEX = {"x": 2, "u": 4, "U": 8}


def _yaml_unescape(text):
    """The value of a YAML double-quoted scalar's body (its escapes)."""
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\" or index + 1 >= len(text):
            out.append(char)
            index += 1
            continue
        code = text[index + 1]
        if code in _YAML_HEX:
            digits = text[index + 2 : index + 2 + _YAML_HEX[code]]
            try:
                out.append(chr(int(digits, 16)))
            except ValueError:
                out.append("\\" + code)
                index += 2
                continue
            index += 2 + _YAML_HEX[code]
            continue
        out.append(_YAML_ESCAPES.get(code, "\\" + code))
        index += 2
    return "".join(out)


def _fold(lines, double):
    """A YAML flow scalar's lines joined (YAML line folding): the breaks between lines become
    one space, or a newline per empty line between; a double-quoted line ending in an escaping
    backslash joins the next with nothing. Returns the text still quoted / escaped."""
    result = ""
    empties = 0
    started = False
    escaped_break = False
    for line in lines:
        text = line.strip(" \t")
        if not text and started:
            empties += 1
            continue
        if started and not escaped_break:
            result += (("\\n" if double else "\n") * empties) if empties else " "
        started = True
        empties = 0
        trailing = len(text) - len(text.rstrip("\\"))
        escaped_break = double and trailing % 2 == 1
        result += text[:-1] if escaped_break else text
    return result


def _yaml_scalar(lines):
    """The value of a YAML scalar as cliff prints service parameter values (yaml.safe_dump):
    plain, 'single-quoted' or "double-quoted", possibly folded over several lines."""
    first = lines[0].strip(" \t") if lines else ""
    if first.startswith('"'):
        text = _fold(lines, True)
        return _yaml_unescape(text[1:-1] if len(text) >= 2 and text.endswith('"') else text[1:])
    if first.startswith("'"):
        text = _fold(lines, False)
        body = text[1:-1] if len(text) >= 2 and text.endswith("'") else text[1:]
        return body.replace("''", "'")
    text = _fold(lines, False)
    if text in ("~", "null", "Null", "NULL"):
        return None
    return text


def parse_parameter_list(text):
    """[(name, value)] from ``system service-parameter-list ... --column name --column value
    --format yaml`` (a YAML list of {name, value} maps, as cliff's yaml formatter prints it).

    A module cannot count on PyYAML on the subcloud, so this reads just that shape: items
    ``- key: value`` and ``  key: value``, a value continued on more indented lines (YAML
    folding), plain, single- and double-quoted scalars. ``[]`` (or nothing) is no parameter.
    """
    items = []
    current = None
    key = None
    key_indent = 0
    for raw in (text or "").splitlines():
        stripped = raw.lstrip(" ")
        indent = len(raw) - len(stripped)
        if key is not None and (not stripped or indent > key_indent):
            current[key].append(raw)  # a continuation of the value
            continue
        if not stripped or stripped in ("[]", "---", "..."):
            continue
        if stripped.startswith("- ") or stripped == "-":
            current = {}
            items.append(current)
            stripped = stripped[1:].lstrip(" ")
            indent += 2
            key = None
            if not stripped:
                continue
        if current is None:
            continue
        name, sep, value = stripped.partition(":")
        if not sep or (value and value[0] != " "):
            continue
        key = name
        key_indent = indent
        current[key] = [value]
    pairs = []
    for item in items:
        if "name" in item:
            pairs.append((_yaml_scalar(item["name"]), _yaml_scalar(item.get("value", [""]))))
    return pairs


def parse_registry_secret(payload, name):
    """(username, password) of a registry's barbican secret ``username:<u> password:<p>``.

    PB:roles/common/push-docker-images/tasks/get_docker_registry.yml:46-54: both words must
    appear, else "Unknown format of the <name> secret"; the user is the text after
    ``username:`` in the first whitespace-separated field, the password the text after
    ``password:`` in the second (so neither may hold whitespace; StarlingX's quirk). Where
    StarlingX's template would crash (a field missing its word), the same message is given.
    """
    payload = payload or ""
    message = f"Unknown format of the {name} secret"
    if "username:" not in payload or "password:" not in payload:
        raise ImageRefError(message)
    fields = payload.split()
    try:
        username = fields[0].split("username:")[1]
        password = fields[1].split("password:")[1]
    except IndexError:
        raise ImageRefError(message) from None
    return username, password


def registry_from_parameters(name, parameters, get_secret):
    """The registry variable ``name`` (e.g. docker_registry) from its service parameters.

    PB:roles/common/push-docker-images/tasks/get_docker_registry.yml:18-75: no parameter gives
    ``{}``; otherwise ``url`` is required ("<name>'s url doesn't exist"), ``secure`` becomes a
    bool, ``auth-secret`` (read with get_secret(ref) -> payload) becomes ``username`` and
    ``password`` and is itself dropped; every other parameter is kept as it is.
    """
    running = {}
    for key, value in parameters:
        running[key] = value
    if not running:
        return {}
    if "url" not in running:
        raise ImageRefError(f"{name}'s url doesn't exist")
    if "secure" in running:
        running["secure"] = ansible_bool(running["secure"])
    if "auth-secret" in running:
        username, password = parse_registry_secret(get_secret(running["auth-secret"]), name)
        running["username"] = username
        running["password"] = password
    return {key: value for key, value in running.items() if key != "auth-secret"}


def docker_registries(by_variable):
    """{public registry: value} in StarlingX's order from {registry variable: value}
    (get_docker_registries.yml:26-37; a variable not given is ``{}``)."""
    return {public: by_variable.get(variable) or {} for variable, public in REGISTRY_SECTIONS}


def prestage_registries(registries):
    """The REGISTRIES download_images.py gets for prestage (PR:prestage-images/tasks/main.yml:
    19-40).

    PR:prestage-images/tasks/get_docker_registries.yml:22-68: ghcr.io, registry.k8s.io and
    icr.io, when missing or empty, are docker.io's value with url = docker.io's url with every
    ``docker.io`` removed, plus the registry's name. PR:prestage-images/tasks/
    update_registry_creds.yml:18-21,56-59: any other empty registry becomes docker.io's value
    as it is (its url included). The order stays StarlingX's (Jinja ``combine`` keeps a key's
    place). aws-ecr credential conversion (update_registry_creds.yml:23-54) is not done: such a
    registry keeps its stored credentials (see map_image).
    """
    registries = {key: dict(value or {}) for key, value in registries.items()}
    docker = registries.get(DOCKER_IO) or {}
    if "url" not in docker:
        # StarlingX's template fails on the missing url; say which parameter is missing
        raise ImageRefError("docker_registry's url doesn't exist")
    prefix = docker["url"].replace(DOCKER_IO, "")
    for name in CLONED_FROM_DOCKER_IO:
        if not registries.get(name):
            registries[name] = dict(docker, url=prefix + name)
    for name, value in list(registries.items()):
        if not value:
            registries[name] = dict(docker)
    return registries


def registry_summary(registries):
    """{public registry: url} (what a result may show: no credentials)."""
    return {name: value.get("url") for name, value in registries.items()}


# --------------------------------------------------------------------------- mapping


def map_image(image, registries):
    """(prestage name, source reference, registry value or None) of a listed image.

    PB:roles/common/push-docker-images/files/download_images.py:123-159
    (get_image_list_with_auth_info), registries in dict order, first match wins:
    - the image starts with the registry's public name (e.g. ``docker.io/x/y:t``): pulled from
      ``<url><rest>``, where rest is ``image.split(name)[1]`` (StarlingX's split: a second
      occurrence of the name inside the image cuts it there), kept under its own name;
    - else the image starts with the registry's url (``<url>/x/y:t``): pulled as written, kept as
      ``image.split(url + '/')[1]``, prefixed with the public name unless that name already
      occurs in it (a substring test);
    - no registry matches: pulled as written, without credentials, kept under its own name.
    The third item is the matched registry's value (its ``username``/``password`` are the pull
    credentials when present), None when nothing matched.
    """
    for name, info in registries.items():
        url = info.get("url", "")
        if image.startswith(name):
            return image, url + image.split(name)[1], info
        if url and image.startswith(url):
            kept = image.split(url + "/")[1] if (url + "/") in image else ""
            if name not in kept:
                kept = name + "/" + kept
            return kept, image, info
    return image, image, None


def credentials_of(info):
    """(username, password) of a matched registry value, or None (download_images.py:137-140:
    credentials only when the registry has a username)."""
    if info and "username" in info:
        return info["username"], str(info.get("password", ""))
    return None


def local_image_name(image, local_registry=LOCAL_REGISTRY, add_docker_prefix=False):
    """The image's name in the local registry.

    PB:roles/common/push-docker-images/files/download_images.py:58-92
    (convert_img_for_local_lookup): ``<local registry>/<image>``, where a first path component
    holding a ``:`` (a registry with a port) is dropped first. With add_docker_prefix (not set
    by prestage: ADD_DOCKER_PREFIX, 425-427) a first component that is no registry gets
    ``docker.io/``.
    """
    slash = image.find("/")
    if slash > 0:
        first = image[:slash]
        if ":" in first:
            name = image.split("/", 1)[1]
        elif not any(pattern in first for pattern in REGISTRY_PATTERNS):
            name = DOCKER_IO + "/" + image if add_docker_prefix else image
        else:
            name = image
    else:
        name = DOCKER_IO + "/" + image if add_docker_prefix else image
    return local_registry.rstrip("/") + "/" + name


# --------------------------------------------------------------------------- references

# docker's reference grammar (distribution/reference regexp.go)
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (
    r"(?:" + _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*|\[[0-9A-Fa-f:]+\])"
    r"(?::[0-9]+)?"
)
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    r"^(?P<name>(?:" + _DOMAIN + r"/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*)"
    r"(?::(?P<tag>" + _TAG + r"))?(?:@(?P<digest>" + _DIGEST + r"))?$"
)
_NAME_MAX = 255


def split_reference(reference):
    """docker's reading of a reference: {domain, repository, tag, digest, host}.

    distribution/reference (normalize.go): the first component is the registry when it holds
    a ``.`` or ``:``, is ``localhost`` or has upper case; otherwise the registry is docker.io.
    docker.io (and index.docker.io) repositories of one component get ``library/``; the API
    host of docker.io is registry-1.docker.io; no tag and no digest means ``latest``.
    Raises ImageRefError("invalid reference format: ...") as docker would.
    """
    match = _REFERENCE.match(reference or "")
    if not match or len(match.group("name")) > _NAME_MAX:
        raise ImageRefError(f"invalid reference format: {reference!r}")
    name = match.group("name")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, repository = first, rest
    else:
        domain, repository = DOCKER_IO, name
    if domain == "index.docker.io":
        domain = DOCKER_IO
    if repository != repository.lower():
        raise ImageRefError(f"invalid reference format: repository name must be lowercase: "
                            f"{reference!r}")  # fmt: skip
    if domain == DOCKER_IO and "/" not in repository:
        repository = "library/" + repository
    tag = match.group("tag")
    digest = match.group("digest")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return {
        "domain": domain,
        "host": DOCKER_IO_API if domain == DOCKER_IO else domain,
        "repository": repository,
        "tag": tag,
        "digest": digest,
    }


def reference_of(parts):
    """The manifest reference (digest when there is one, else tag) of split_reference()."""
    return parts["digest"] or parts["tag"]
