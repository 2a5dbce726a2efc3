#!/usr/bin/python
# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: prestage_sw_deploy
short_description: The subcloud's side of the packages phase of a prestage for software deployment
version_added: 0.2.0
description:
  - Runs on the subcloud, as root, with StarlingX's Python 3.9; the
    C(distcloud.prestage.prestage_sw_deploy) role runs it three times around the system
    controller's two pushes (M(distcloud.prestage.prestage_sync)), following StarlingX's
    sync-software-metadata role and its ostree-metadata-sync.sh (STARLINGX.md §3).
  - O(step=prepare) compares the subcloud's patch level of the release with the system
    controller's and returns RV(up_to_date) when it is the same or higher (StarlingX then ends
    the packages playbook; the prestage versions are refreshed all the same). Otherwise it
    clears the staging directory C(/opt/software/tmp/metadata-sync), removes the release's feed
    of an N-1 subcloud (the system controller pushes all of it), and returns what the system
    controller pushes first (that feed, its USM metadata and central commit list into the
    staging directory).
  - O(step=sync) keeps the subcloud's own C(install_uuid) in an N-1 feed, then, on a subcloud
    with USM, pulls the release's ostree commits from the system controller's feed endpoint
    (C(https://<sc>:8443/iso/<release>/ostree_repo), else C(http://<sc>:8080/...)) into its
    C(rel-<release>) feed and sorts the release's USM metadata into deployed, available (the
    lowest central one with C(prepatched_iso) N) and unavailable as StarlingX does; on a
    subcloud without USM it makes the system controller's metadata of the release available.
    Every check runs before anything changes. It returns what the system controller pushes
    next (C(/opt/software/rel-<release>) of each of its releases, C(software-scripts)).
  - O(step=finish) removes C(/opt/software/tmp), runs C(controllers-software-sync) and
    C(sync-controllers-feed) as StarlingX does, and returns the subcloud's RV(prestage_versions).
extends_documentation_fragment:
  - distcloud.prestage.prestage
  - distcloud.prestage.prestage.step_timeout
options:
  step:
    description: Which part of the sync to run.
    type: str
    required: true
    choices: [prepare, sync, finish]
  precheck:
    description: The registered result of M(distcloud.prestage.prestage_precheck).
    type: dict
    required: true
author:
  - distcloud.prestage contributors (@distcloud-prestage)
"""

EXAMPLES = r"""
- name: Compare the patch levels and stage the sync
  distcloud.prestage.prestage_sw_deploy:
    step: prepare
    release: "25.09"
    for_sw_deploy: true
    precheck: "{{ prestage_precheck }}"
  become: true
  register: prestage_swd_prepare
"""

RETURN = r"""
up_to_date:
  description:
    - The subcloud's patch level of the release is the same as or higher than the system
      controller's.
  type: bool
  returned: success
msg:
  description: What happened (StarlingX's sentence for a patch-level skip).
  type: str
  returned: always
transfers:
  description: (prepare, sync) The rsync runs the system controller makes next.
  type: list
  elements: dict
  returned: success
states:
  description: (sync) The USM state given to each release id, with its source.
  type: list
  elements: dict
  returned: success
prestage_versions:
  description: The subcloud's prestage versions line.
  type: str
  returned: success
remaining:
  description: Seconds left of the phase's time after this step.
  type: int
  returned: always
python_version:
  description: The Python that ran the module.
  type: str
  returned: always
"""

import glob  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.urls import open_url  # noqa: E402

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _content as content,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _install as install,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _stx as stx,
)
from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _sw_deploy as swd,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._phase import (  # noqa: E402
    timeout_message,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._prestage_args import (  # noqa: E402
    RELEASE_ARGS,
    STEP_TIMEOUT_ARGS,
)
from ansible_collections.distcloud.prestage.plugins.module_utils._tables import (  # noqa: E402
    parse_table,
)

ARGUMENT_SPEC = dict(
    **RELEASE_ARGS,
    step=dict(type="str", required=True, choices=["prepare", "sync", "finish"]),
    precheck=dict(type="dict", required=True),
    **STEP_TIMEOUT_ARGS,
)
FEED_HTTPS_PORT = 8443  # ostree-metadata-sync.sh:188-189
FEED_HTTP_PORT = 8080


class Step:
    """One step, with the module, the facts and a deadline."""

    def __init__(self, module):
        self.module = module
        self.release = module.params["release"]
        precheck = module.params["precheck"] or {}
        self.sub = precheck.get("subcloud") or {}
        self.sc = precheck.get("prestage_sc_release_info") or {}
        self.facts = self.sc.get("sw_deploy") or {}
        self.host_release = self.sub.get("sw_version") or ""
        self.deadline = time.monotonic() + max(1, module.params["timeout"])
        self.source = install.prestage_source(self.release, self.host_release)
        self.usm = os.path.exists(swd.SOFTWARE_BIN)
        self.full_feed = swd.full_feed_sync(self.source, self.host_release, self.release)

    def run(self, argv, what):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.timed_out()
        rc, out, err = self.module.run_command(argv, environ_update={"LC_ALL": "C"})
        if rc != 0:
            detail = " ".join((err or out).split())[-400:]
            raise swd.SyncError(f"{what} failed (exit {rc}): {detail}")
        return out

    def timed_out(self):
        self.module.fail_json(
            msg=timeout_message("packages", self.module.params["phase_timeout"]),
            prestage_timeout=True,
            remaining=0,
            python_version=platform.python_version(),
        )

    def versions(self):
        return install.prestage_versions(
            stx.PLATFORM_BACKUP_DIR, stx.metadata_dir(stx.sw_version() or self.host_release)
        )

    # ------------------------------------------------------------------------------ prepare

    def prepare(self):
        if self.facts.get("error"):
            raise swd.SyncError(self.facts["error"])
        if self.usm:
            listed = self.run(
                [
                    "/bin/bash",
                    "-c",
                    f"[ -r {stx.OPENRC} ] && . {stx.OPENRC} >/dev/null 2>&1; software "
                    f"list --release {self.release}",
                ],
                "software list",
            )
            mine = swd.release_parts(
                swd.listed_lines(listed, self.release, ("deployed", "unavailable"))
            )
            skip = swd.patch_level_skip(self.facts.get("releases") or [], mine)
            if skip:
                return {"up_to_date": True, "msg": skip, "transfers": [], "changed": False}
            if self.in_place(listed):
                return {
                    "up_to_date": True,
                    "transfers": [],
                    "changed": False,
                    "msg": "The subcloud already holds the release's software at the system "
                    "controller's patch level (no content transferred)",
                }
        changed = False
        if os.path.lexists(swd.STAGING_DIR):
            shutil.rmtree(swd.STAGING_DIR)
            changed = True
        os.makedirs(swd.STAGING_DIR, mode=0o755)
        runs = []
        feed = stx.feed_release_dir(self.release)
        if self.full_feed:
            # F:142-167: the feed goes, the system controller pushes all of it
            if os.path.lexists(feed):
                shutil.rmtree(feed)
            os.makedirs(feed, mode=0o755)
            changed = True
            runs.append(
                {
                    "what": "release feed",
                    "source": feed + "/",
                    "dest": feed + "/",
                    "options": ["--archive", "--delay-updates", "--delete"],
                }
            )
        runs.append(
            {
                "what": "software metadata",
                "source": self.facts.get("metadata_dir", stx.metadata_dir(self.release)).rstrip("/")
                + "/",
                "dest": os.path.join(swd.STAGING_DIR, "metadata") + "/",
                "options": ["--archive", "--delete"],
            }
        )
        if self.facts.get("commits_file"):
            runs.append(
                {
                    "what": "central commit list",
                    "source": self.facts["commits_file"],
                    "dest": os.path.join(swd.STAGING_DIR, swd.CENTRAL_COMMITS),
                    "options": ["--archive"],
                }
            )
        return {"up_to_date": False, "transfers": runs, "changed": changed}

    def in_place(self, listed):
        """A previous prestage left it all (our departure, SPEC §10: a rerun moves nothing): the
        feed at the system controller's commit, each of its releases listed deployed or
        available, its release directories and scripts as the system controller's."""
        repo = stx.feed_ostree_repo(self.release)
        rc, out, _err = self.module.run_command(
            ["ostree", f"--repo={repo}", "rev-parse", swd.OSTREE_BRANCH]
        )
        if rc != 0 or out.strip() != self.facts.get("sc_commit"):
            return False
        states = {}
        for line in swd.listed_lines(listed, self.release):
            cells = [cell for cell in line.split("|") if cell]
            if len(cells) >= 3:
                states[cells[0]] = cells[2]
        for line in self.facts.get("lines") or []:
            cells = [cell for cell in line.split("|") if cell]
            if not cells or states.get(cells[0]) not in ("deployed", "available"):
                return False
        return all(
            (content.tree_digest(path) or {}).get("digest") == digest
            for path, digest in (self.facts.get("dir_digests") or {}).items()
        )

    # --------------------------------------------------------------------------------- sync

    def sync(self):
        staged = os.path.join(swd.STAGING_DIR, "metadata")
        if not os.path.isdir(staged):
            raise swd.SyncError(f"The system controller's metadata was not staged in {staged}")
        result = {"changed": True}
        if self.full_feed:
            self.keep_install_uuid()
        if self.usm:
            plan = self.plan_states(staged)
            self.pull_commits()
            result["states"] = self.apply_states(plan)
        else:
            result["states"] = self.make_available(staged)
        levels = self.facts.get("releases") or []
        missing = [lv for lv, there in (self.facts.get("release_dirs") or {}).items() if not there]
        if missing:
            raise swd.SyncError(
                "Release directory {} does not exist on the system controller".format(
                    ", ".join(os.path.join(stx.SOFTWARE_DIR, f"rel-{lv}") for lv in missing)
                )
            )
        runs = [
            {
                "what": f"release directory {path}",
                "source": path,
                "dest": stx.SOFTWARE_DIR + "/",
                "options": ["--archive", "--delete"],
            }
            for path in swd.release_dirs_of(levels)
        ]
        if self.facts.get("software_scripts"):
            runs.append(
                {
                    "what": "software scripts",
                    "source": swd.SOFTWARE_SCRIPTS_DIR,
                    "dest": stx.SOFTWARE_DIR + "/",
                    "options": ["--archive", "--delete"],
                }
            )
        result["transfers"] = runs
        return result

    def keep_install_uuid(self):
        """F:169-180: the subcloud's own install_uuid in the release's feed."""
        own = os.path.join(stx.feed_release_dir(self.host_release), "install_uuid")
        if os.path.isfile(own):
            shutil.copyfile(own, os.path.join(stx.feed_release_dir(self.release), "install_uuid"))

    def plan_states(self, staged):
        """Every check before anything changes: each staged metadata file of the release parses
        (StarlingX's script would silently drop the release's whole list, S:238-239), no id
        twice."""
        needle = f"<sw_version>{self.release}"
        for dirpath, _dirs, names in os.walk(staged):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as handle:
                    if needle not in handle.read():
                        continue
                if swd.metadata_field(path, "sw_version") in ("", "None"):
                    raise swd.SyncError(
                        f"Metadata file {name} of the system controller does not parse"
                    )
        backup = tempfile.mkdtemp(prefix="ostree-metadata-sync.")
        own = stx.metadata_dir(self.host_release)
        if os.path.isdir(own):
            shutil.copytree(own, os.path.join(backup, "metadata"), symlinks=True)
        self.backup = backup
        if swd.uses_component_sync(self.release, self.host_release):
            return swd.component_states(self.release, staged, os.path.join(backup, "metadata"))
        component = not swd.version_le(self.release, "26.03")
        return swd.metadata_states(
            self.release,
            str(self.sc.get("sc_release") or ""),
            staged,
            os.path.join(backup, "metadata"),
            component,
        )

    def sc_address(self):
        out = self.run(
            [
                "/bin/bash",
                "-c",
                f"[ -r {stx.OPENRC} ] && . {stx.OPENRC} >/dev/null 2>&1; system "
                "addrpool-list --nowrap",
            ],
            "system addrpool-list",
        )
        for row in parse_table(out):
            if "system-controller-subnet" in row.get("name", ""):
                address = row.get("floating_address", "")
                return f"[{address}]" if ":" in address and "[" not in address else address
        raise swd.SyncError("No system-controller-subnet address pool on the subcloud")

    def feed_url(self):
        """S:427-445: https when the endpoint answers (not verified, as curl -k), else http."""
        address = self.sc_address()
        resource = f"iso/{self.release}/ostree_repo"
        url = f"https://{address}:{FEED_HTTPS_PORT}/{resource}"
        try:
            # only a probe of which endpoint answers, unverified as StarlingX's curl -k
            with open_url(url + "/config", timeout=20, validate_certs=False):
                pass
            return url
        except urllib.error.HTTPError:
            return url  # it answered
        except OSError:
            return f"http://{address}:{FEED_HTTP_PORT}/{resource}"

    def pull_commits(self):
        """S:401-448: the release's commits from the system controller's feed endpoint."""
        repo = stx.feed_ostree_repo(self.release)
        if not os.path.isdir(repo):
            raise swd.SyncError(f"Directory {repo} does not exist on the subcloud")
        url = self.feed_url()
        self.run(
            [
                "ostree",
                f"--repo={repo}",
                "remote",
                "add",
                "--force",
                "--no-gpg-verify",
                "--set=tls-permissive=true",
                f"--set=branches={swd.OSTREE_BRANCH};",
                swd.OSTREE_REMOTE,
                url,
            ],
            "ostree remote add",
        )
        rc, out, err = self.module.run_command(
            [
                "ostree",
                f"--repo={repo}",
                "pull",
                "--mirror",
                "--depth=-1",
                f"{swd.OSTREE_REMOTE}:{swd.OSTREE_BRANCH}",
            ],
            environ_update={"LC_ALL": "C"},
        )
        if rc != 0:
            detail = " ".join((err or out).split())[-300:]
            raise swd.SyncError(f"{swd.PULL_FAILED} ({detail})")

    def remove_release_dirs(self):
        """S:591: the release's rel-<v>.* directories go (the system controller's are pushed
        after the sync)."""
        for path in glob.glob(os.path.join(stx.SOFTWARE_DIR, f"rel-{self.release}.*")):
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(
                path
            )

    def apply_component_states(self, plan):
        """swd.component_states' plan (our departure): a release that becomes available gets
        its product file at the metadata root and its metapackages in available/, replacing any
        copy of that level; nothing else of the subcloud's metadata changes."""
        metadata = stx.metadata_dir(self.host_release)
        self.remove_release_dirs()
        states = []
        for release_id, state, product, packages, disable_prepatched in plan:
            if state != "available":
                states.append({"id": release_id, "state": state, "to": None})
                continue
            stale = swd.metapackages(metadata, swd.level_of(release_id))
            stale.append(os.path.join(metadata, os.path.basename(product)))
            for path in stale:
                if os.path.lexists(path):
                    os.unlink(path)
            if disable_prepatched:
                swd.set_prepatched_iso_n(product)
            available = os.path.join(metadata, "available")
            os.makedirs(available, mode=0o755, exist_ok=True)
            shutil.copy(product, metadata)
            for path in packages:
                shutil.copy(path, available)
            states.append({"id": release_id, "state": state, "to": metadata})
        shutil.rmtree(getattr(self, "backup", ""), ignore_errors=True)
        return states

    def apply_states(self, plan):
        """S:589-708: the release's rel-<v>.* dirs and metadata files go, then each release's
        file lands in its state's directory."""
        if swd.uses_component_sync(self.release, self.host_release):
            return self.apply_component_states(plan)
        metadata = stx.metadata_dir(self.host_release)
        self.remove_release_dirs()
        for dirpath, _dirs, names in os.walk(metadata):
            for name in names:
                if self.release in name:
                    os.unlink(os.path.join(dirpath, name))
        states = []
        for release_id, state, source, disable_prepatched in plan:
            if source is None:
                continue
            if disable_prepatched:
                swd.set_prepatched_iso_n(source)
            target = swd.destination(metadata, state, self.release, self.host_release)
            os.makedirs(target, mode=0o755, exist_ok=True)
            shutil.copy(source, target)
            states.append({"id": release_id, "state": state, "to": target})
        shutil.rmtree(getattr(self, "backup", ""), ignore_errors=True)
        return states

    def make_available(self, staged):
        """N:38-56: without USM, the system controller's metadata files of the release, as
        available."""
        available = os.path.join(stx.metadata_dir(self.host_release), "available")
        os.makedirs(available, mode=0o755, exist_ok=True)
        done = []
        for dirpath, _dirs, names in os.walk(staged):
            for name in names:
                if self.release in name:
                    shutil.copy(os.path.join(dirpath, name), os.path.join(available, name))
                    done.append({"id": name, "state": "available", "to": available})
        return done

    # ------------------------------------------------------------------------------- finish

    def finish(self):
        """U:298-322: /opt/software/tmp goes, then StarlingX's two synchronisation scripts."""
        if os.path.lexists(swd.TMP_DIR):
            shutil.rmtree(swd.TMP_DIR)
        calls = []
        if self.usm:
            for argv in (
                [os.path.join(swd.SCRIPTS_DIR, "controllers-software-sync")],
                [
                    os.path.join(swd.SCRIPTS_DIR, "sync-controllers-feed"),
                    f"--feed={stx.feed_release_dir(self.release)}",
                ],
            ):
                self.run(argv, os.path.basename(argv[0]))
                calls.append(argv)
        return {"changed": True, "calls": calls}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC)
    step = Step(module)
    if (module.params["precheck"] or {}).get("release") != step.release:
        module.fail_json(
            msg="The packages phase needs the registered result of a successful "
            f"distcloud.prestage.prestage_precheck task for release {step.release}"
        )
    try:
        result = getattr(step, module.params["step"])()
    except (swd.SyncError, OSError) as exc:
        if module.params["step"] != "prepare" and os.path.lexists(swd.TMP_DIR):
            shutil.rmtree(swd.TMP_DIR, ignore_errors=True)
        module.fail_json(
            msg=str(exc),
            remaining=int(max(0, step.deadline - time.monotonic())),
            python_version=platform.python_version(),
        )
    if time.monotonic() > step.deadline:
        step.timed_out()
    if module.params["step"] == "finish" or result.get("up_to_date"):
        result["prestage_versions"] = step.versions()
    result["remaining"] = int(max(1, step.deadline - time.monotonic()))
    result["python_version"] = platform.python_version()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
