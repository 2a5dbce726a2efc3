# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.prestage_images (documented in plugins/modules).

Reads the image list (from the precheck's system controller release info) and the registry
credentials (files on the system controller), then runs distcloud.prestage.prestage_images_sync
once on the subcloud. The credentials reach the module as no_log arguments (over the SSH
channel, never on a command line) and live there in a 0600 file only while it runs.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (
    DOCKER_DIR_ARG,
    PLATFORM_BACKUP_DIR_ARG,
    RELEASE_ARGS,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._prestage_task import (
    phase_timeout_reason,
    result_of,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_release import settings_of

SYNC_MODULE = "distcloud.prestage.prestage_images_sync"

ARGUMENT_SPEC: dict[str, Any] = dict(
    **RELEASE_ARGS,
    **PLATFORM_BACKUP_DIR_ARG,
    **DOCKER_DIR_ARG,
    precheck=dict(type="dict", required=True),
    system_controller=dict(type="dict", default={}),
    timeout=dict(type="int", default=7200),
    registry_storage_dir=dict(type="path", default="/var/lib/docker-distribution"),
    local_registry=dict(type="str", default="registry.local:9001"),
    local_registry_username=dict(type="str"),
    local_registry_password=dict(type="str", no_log=True),
    local_registry_tls_verify=dict(type="bool", default=True),
    parallel=dict(type="int", default=4),
)


def read_secret(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise PrestageError(f"Cannot read the {what} {path}: {exc.strerror}") from None


def auths_from_file(path: str) -> dict[str, tuple[str, str]]:
    """registry -> (user, password) of a containers-auth.json file."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        entries = data.get("auths", {}) if isinstance(data, dict) else {}
    except (OSError, ValueError) as exc:
        raise PrestageError(f"Cannot read the registry auth file {path}: {exc}") from None
    auths: dict[str, tuple[str, str]] = {}
    for registry, entry in entries.items():
        token = entry.get("auth") if isinstance(entry, dict) else None
        if not token:
            continue
        try:
            user, _sep, password = base64.b64decode(token).decode().partition(":")
        except ValueError:
            continue
        auths[str(registry)] = (user, password)
    return auths


def registry_of(reference: str, default: str) -> str:
    first, sep, _rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return default


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            result.update(self._images(params, task_vars))
        except PrestageError as exc:
            result.update(failed=True, msg=str(exc))
        return result

    def _images(self, params: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        precheck = result_of(params["precheck"])
        info = result_of(precheck.get("prestage_sc_release_info"))
        if not info:
            raise PrestageError(
                "The images phase needs the registered result of a successful "
                "distcloud.prestage.prestage_precheck task (precheck)"
            )
        images = list(result_of(info.get("image_list")).get("images") or [])
        if not images:
            return {"changed": False, "skipped": True, "msg": "No image list for this release"}
        settings = settings_of(params["system_controller"])
        central = str(settings["registry"])
        local = params["local_registry"]

        credentials: dict[str, tuple[str, str]] = {}
        if settings.get("registry_auth_file"):
            credentials.update(auths_from_file(settings["registry_auth_file"]))
        username = settings.get("registry_username")
        password = None
        if settings.get("registry_password_file"):
            password = read_secret(settings["registry_password_file"], "registry password file")
        sources = {registry_of(ref, central) for ref in images} | {central}
        if username and password is not None:
            for registry in sources:
                credentials.setdefault(registry, (username, password))
        if params["local_registry_username"] and params["local_registry_password"] is not None:
            credentials[local] = (
                params["local_registry_username"],
                params["local_registry_password"],
            )
        elif username and password is not None:
            credentials.setdefault(local, (username, password))
        wanted = sources | {local}
        auths = [
            {"registry": registry, "username": user, "password": secret}
            for registry, (user, secret) in sorted(credentials.items())
            if registry in wanted
        ]

        release_dir = os.path.join(params["platform_backup_dir"], params["release"])
        module_args: dict[str, Any] = {
            "images": images,
            "central_registry": central,
            "local_registry": local,
            "registry_auths": auths,
            "src_tls_verify": bool(settings.get("registry_tls_verify", True)),
            "dest_tls_verify": params["local_registry_tls_verify"],
            "registry_storage_dir": params["registry_storage_dir"],
            "docker_dir": params["docker_dir"],
            "docker_min_free_gib": float(settings["docker_min_free_gib"]),
            "parallel": params["parallel"],
            "timeout": params["timeout"],
        }
        if not params["for_sw_deploy"]:
            module_args["archive"] = os.path.join(release_dir, content.REGISTRY_ARCHIVE)
        outcome = self._execute_module(
            module_name=SYNC_MODULE, module_args=module_args, task_vars=task_vars
        )
        outcome.pop("invocation", None)
        if outcome.get("prestage_timeout"):
            outcome["msg"] = phase_timeout_reason("images", params["timeout"])
        outcome["prestage_images"] = len(images)
        return outcome
