# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.prestage_packages (documented in plugins/modules).

The packages phase: rsync on the controller (plugin_utils/_transfer.py says why not
ansible.posix.synchronize), then one module run on the subcloud that verifies the content and
marks it complete.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.module_utils import _content as content
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (
    PLATFORM_BACKUP_DIR_ARG,
    RELEASE_ARGS,
    SOFTWARE_DIR_ARG,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._prestage_task import (
    become_of,
    phase_timeout_reason,
    remote_shell_factory,
    result_of,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._transfer import (
    Rsync,
    RsyncStats,
    TransferFailed,
    TransferTimeout,
)

VERIFY_MODULE = "distcloud.prestage.prestage_packages_verify"

ARGUMENT_SPEC: dict[str, Any] = dict(
    **RELEASE_ARGS,
    **PLATFORM_BACKUP_DIR_ARG,
    **SOFTWARE_DIR_ARG,
    precheck=dict(type="dict", required=True),
    timeout=dict(type="int", default=3600),
    io_timeout=dict(type="int", default=120),
    min_supported_release=dict(type="str"),
    rsync_path=dict(type="str", default="rsync"),
)

# rsync options shared by every transfer: recurse, keep symlinks, permissions and times; the
# receiving side (root) owns the files.
BASE_OPTIONS = ["--recursive", "--links", "--perms", "--times"]


def install_transfers(info: dict[str, Any], release_dir: str) -> list[dict[str, Any]]:
    """The rsync runs of a for-install packages phase."""
    feed_release_dir = os.path.dirname(info["ostree"]["path"])
    transfers = [
        {
            "what": "ostree_repo",
            "source": feed_release_dir.rstrip("/") + "/",
            "dest": release_dir.rstrip("/") + "/",
            "options": [
                *BASE_OPTIONS,
                # deletions first: a stale completion marker and checksum go before any content
                # changes, and files the feed no longer has go
                "--delete-before",
                "--filter=-s /.ostree_*",  # the feed's own marker files are not sent ...
                "--filter=+ /ostree_repo/***",
                f"--filter=+ /{content.MARKER_FILE}",  # ... and the subcloud's are deleted
                f"--filter=+ /{content.CHECKSUM_FILE}",
                "--filter=- *",  # anything else in <v>/ (images archive) is left alone
            ],
        }
    ]
    metadata = info.get("patch_metadata")
    if metadata:
        software_release_dir = os.path.dirname(metadata["path"])
        transfers.append(
            {
                "what": "patch metadata",
                "source": software_release_dir.rstrip("/") + "/",
                "dest": os.path.join(release_dir, "patches") + "/",
                "options": [
                    *BASE_OPTIONS,
                    "--delete-before",
                    "--filter=+ /metadata/***",
                    "--filter=- *",
                ],
            }
        )
    return transfers


def sw_deploy_transfers(info: dict[str, Any], release_dir: str) -> list[dict[str, Any]]:
    return [
        {
            "what": "software",
            "source": info["software"]["path"].rstrip("/") + "/",
            "dest": release_dir.rstrip("/") + "/",
            # all updated files are put in place at the end, deletions after them: a copy cut
            # short leaves the previous content (and its patch level) as it was
            "options": [*BASE_OPTIONS, "--delete-delay", "--delay-updates"],
        }
    ]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        started = time.monotonic()
        deadline = started + params["timeout"]
        try:
            result.update(self._packages(params, task_vars, deadline))
        except TransferTimeout:
            result.update(
                failed=True,
                prestage_timeout=True,
                msg=phase_timeout_reason("packages", params["timeout"]),
            )
        except TransferFailed as exc:
            result.update(failed=True, msg=f"Transfer to the subcloud failed: {exc}")
        except PrestageError as exc:
            result.update(failed=True, msg=str(exc))
        result["prestage_packages_seconds"] = round(time.monotonic() - started, 3)
        return result

    # ------------------------------------------------------------------ the phase

    def _packages(
        self, params: dict[str, Any], task_vars: dict[str, Any], deadline: float
    ) -> dict[str, Any]:
        precheck = result_of(params["precheck"])
        info = result_of(precheck.get("prestage_sc_release_info"))
        state = result_of(precheck.get("packages"))
        if not info or not state:
            raise PrestageError(
                "The packages phase needs the registered result of a successful "
                "distcloud.prestage.prestage_precheck task (precheck)"
            )
        release = params["release"]
        for_sw_deploy = params["for_sw_deploy"]
        if info.get("release") != release or bool(info.get("for_sw_deploy")) != for_sw_deploy:
            raise PrestageError("The precheck result is for another release or prestage type")
        minimum = params["min_supported_release"] or state.get("min_supported_release")
        stats = RsyncStats()
        out: dict[str, Any] = {"changed": False, "prestage_transfer": stats.as_dict()}

        if state.get("up_to_date"):
            out["prestage_packages_verified"] = True
            out["prestage_versions_found"] = precheck.get("prestage_versions_found")
            out["msg"] = (
                "Already prestaged: the subcloud holds this content (no content transferred)"
                if not for_sw_deploy
                else f"Skipped: the subcloud's patch level {state.get('patch_level')} is the "
                f"same or higher than {state.get('sc_patch_level')}"
            )
            if state.get("old_release_dirs") and not self._task.check_mode:
                verify = self._verify(
                    params,
                    info=info,
                    minimum=minimum,
                    deadline=deadline,
                    task_vars=task_vars,
                    cleanup=True,
                )
                out["changed"] = bool(verify.get("changed"))
                out["removed_release_dirs"] = verify.get("removed_release_dirs", [])
                out["prestage_versions_found"] = verify.get("prestage_versions_found")
            return out

        if for_sw_deploy:
            base = params["software_dir"]
            transfers = sw_deploy_transfers(info, os.path.join(base, release))
        else:
            base = params["platform_backup_dir"]
            transfers = install_transfers(info, os.path.join(base, release))
        rsync = Rsync(
            remote_shell_factory(self, task_vars, params["io_timeout"]),
            become_of(self),
            params["io_timeout"],
            rsync=params["rsync_path"],
        )
        check_mode = bool(self._task.check_mode)
        passes = []
        for transfer in transfers:
            run = rsync.run(
                transfer["source"], transfer["dest"], transfer["options"], deadline, check_mode
            )
            stats.add(run)
            passes.append({"what": transfer["what"], **run.as_dict()})
        out["prestage_transfer"] = {**stats.as_dict(), "passes": passes}
        moved = stats.files_transferred + stats.deleted > 0
        if check_mode:
            out["changed"] = moved
            out["prestage_would_transfer"] = {
                "files": stats.files_transferred,
                "bytes": stats.transferred_file_bytes,
                "deleted": stats.deleted,
            }
            out["msg"] = (
                f"Would transfer {stats.files_transferred} files "
                f"({stats.transferred_file_bytes} bytes) and delete {stats.deleted}"
            )
            return out

        verify = self._verify(
            params, info=info, minimum=minimum, deadline=deadline, task_vars=task_vars
        )
        if not verify.get("verified"):
            # Content that rsync's quick check (size and time) took as equal differs: compare
            # by content once, then verify again.
            repair = rsync.run(
                transfers[0]["source"],
                transfers[0]["dest"],
                [*transfers[0]["options"], "--checksum"],
                deadline,
            )
            stats.add(repair)
            passes.append({"what": transfers[0]["what"] + " (repair, --checksum)",
                           **repair.as_dict()})  # fmt: skip
            for transfer in transfers[1:]:
                again = rsync.run(
                    transfer["source"],
                    transfer["dest"],
                    [*transfer["options"], "--checksum"],
                    deadline,
                )
                stats.add(again)
            out["prestage_transfer"] = {**stats.as_dict(), "passes": passes}
            out["prestage_repaired"] = verify.get("mismatch")
            verify = self._verify(
                params, info=info, minimum=minimum, deadline=deadline, task_vars=task_vars
            )
            if not verify.get("verified"):
                out.update(
                    failed=True,
                    changed=True,
                    msg=(
                        f"Prestaged content of release {release} does not match the system "
                        f"controller's after the transfer ({verify.get('mismatch')}); "
                        "not marked complete"
                    ),
                )
                return out
        out["changed"] = moved or bool(verify.get("changed"))
        out["prestage_packages_verified"] = True
        out["prestage_checksum"] = verify.get("checksum")
        out["removed_release_dirs"] = verify.get("removed_release_dirs", [])
        out["prestage_versions_found"] = verify.get("prestage_versions_found")
        out["msg"] = (
            f"Transferred {stats.files_transferred} files ({stats.literal_bytes} bytes of "
            f"content), deleted {stats.deleted}; content verified"
        )
        return out

    def _verify(
        self,
        params: dict[str, Any],
        *,
        info: dict[str, Any],
        minimum: str | None,
        deadline: float,
        task_vars: dict[str, Any],
        cleanup: bool = False,
    ) -> dict[str, Any]:
        remaining = int(deadline - time.monotonic())
        if remaining <= 0:
            raise TransferTimeout("no time left to verify the content")
        module_args: dict[str, Any] = {
            "release": params["release"],
            "for_sw_deploy": params["for_sw_deploy"],
            "platform_backup_dir": params["platform_backup_dir"],
            "software_dir": params["software_dir"],
            "min_supported_release": minimum,
            "cleanup_only": cleanup,
            "timeout": remaining,
        }
        if params["for_sw_deploy"]:
            module_args["software_digest"] = info["software"]["digest"]
        else:
            module_args["ostree_checksum"] = info["ostree"]["checksum"]
            module_args["patch_metadata_digest"] = (info.get("patch_metadata") or {}).get("digest")
        outcome = self._execute_module(
            module_name=VERIFY_MODULE, module_args=module_args, task_vars=task_vars
        )
        outcome.pop("invocation", None)
        if outcome.get("prestage_timeout"):
            raise TransferTimeout(str(outcome.get("msg")))
        if outcome.get("failed") or outcome.get("unreachable"):
            raise PrestageError(
                f"Verifying the prestaged content failed: {outcome.get('msg') or outcome}"
            )
        return outcome
