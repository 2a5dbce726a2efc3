"""StarlingX's own prestage files, run as oracles by the module_utils tests when a checkout is
at hand (DCPRESTAGE_STX_SOURCES, default /work/stx: starlingx/ansible-playbooks at the commit of
docs STARLINGX.md §1); the tests that need one skip without it.

Nothing is copied from StarlingX: the tests execute its files as they are - shell functions of
sync-software-metadata/files/ostree-metadata-sync.sh sourced into bash, the shell commands of
get-prestage-versions/tasks/main.yml read from the YAML - on the same scratch trees the
collection's functions judge, and compare the answers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

STX_ROOT = Path(os.environ.get("DCPRESTAGE_STX_SOURCES", "/work/stx"))
PRESTAGE_ROLES = STX_ROOT / "ansible-playbooks/playbookconfig/src/playbooks/roles/prestage"
METADATA_SYNC_SH = PRESTAGE_ROLES / "sync-software-metadata/files/ostree-metadata-sync.sh"
GET_PRESTAGE_VERSIONS = PRESTAGE_ROLES / "get-prestage-versions/tasks/main.yml"
PRESTAGE_SW_PACKAGES = PRESTAGE_ROLES.parent.parent / "prestage_sw_packages.yml"

_TOOLS = ("bash", "find", "grep", "sort", "awk", "sed", "mktemp", "xargs", "basename", "cp")
_MISSING_TOOLS = [tool for tool in _TOOLS if shutil.which(tool) is None]

needs_metadata_sync = pytest.mark.skipif(
    not METADATA_SYNC_SH.is_file() or bool(_MISSING_TOOLS),
    reason=f"needs {METADATA_SYNC_SH} and {', '.join(_TOOLS)}",
)
needs_get_prestage_versions = pytest.mark.skipif(
    not GET_PRESTAGE_VERSIONS.is_file()
    or not PRESTAGE_SW_PACKAGES.is_file()
    or bool(_MISSING_TOOLS),
    reason=f"needs {GET_PRESTAGE_VERSIONS} and {', '.join(_TOOLS)}",
)


def _shim(base: Path) -> dict[str, str]:
    """The script's embedded XML helper runs `python` with defusedxml; here `python` is this
    interpreter and defusedxml.ElementTree the standard library's (same answers on the plain
    metadata files of these tests)."""
    bin_dir, lib_dir = base / "bin", base / "lib" / "defusedxml"
    bin_dir.mkdir(parents=True, exist_ok=True)
    lib_dir.mkdir(parents=True, exist_ok=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    python.chmod(0o755)
    (lib_dir / "__init__.py").write_text("")
    (lib_dir / "ElementTree.py").write_text("from xml.etree.ElementTree import *  # noqa: F403\n")
    return {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PYTHONPATH": str(base / "lib"),
        "TERM": "dumb",
        "LC_ALL": "C",
        "HOME": str(base),
    }


def metadata_sync(work: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run body in bash after sourcing ostree-metadata-sync.sh, in work (created)."""
    work.mkdir(parents=True, exist_ok=True)
    env = _shim(work / ".shim")
    script = f". {shlex.quote(str(METADATA_SYNC_SH))}\n{body}\n"
    return subprocess.run(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def script_lines(work: Path, body: str) -> list[str]:
    """stdout lines of body (which must succeed)."""
    result = metadata_sync(work, body)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@dataclass
class Decision:
    """One release of sync_subcloud_metadata's loop, from its log."""

    release_id: str
    state: str
    source: str
    dest: str | None
    prepatched_off: bool


def sync_subcloud_decisions(
    work: Path,
    *,
    release: str,
    sc_release: str,
    staged_parent: Path,
    subcloud_metadata: Path,
    subcloud_release: str,
) -> tuple[list[Decision], subprocess.CompletedProcess[str]]:
    """StarlingX's sync_subcloud_metadata in its dry-run mode (the ostree pull and the copies are
    only logged) on scratch trees: staged_parent holds the system controller's metadata/, and
    subcloud_metadata is the subcloud's METADATA_DIR (the script deletes the release's files
    there, as it does on a subcloud; /opt/software is replaced by a scratch directory)."""
    software = work / "software"
    software.mkdir(parents=True, exist_ok=True)
    body = "\n".join(
        [
            f"SW_VERSION={shlex.quote(release)}",
            f"METADATA_DIR={shlex.quote(str(subcloud_metadata))}",
            f"METADATA_SYNC_DIR={shlex.quote(str(staged_parent))}",
            "DRY_RUN=1",
            "initialize_env",
            f"export SOFTWARE_DIR={shlex.quote(str(software))}",
            f"export SUBCLOUD_MAJOR_VERSION={shlex.quote(subcloud_release)}",
            f"sync_subcloud_metadata {shlex.quote(release)} {shlex.quote(sc_release)}",
        ]
    )
    result = metadata_sync(work, body)
    decisions: list[Decision] = []
    for line in result.stderr.splitlines():
        text = line.strip()
        match = re.match(r"sync_subcloud_metadata: id: (\S+)$", text)
        if match:
            decisions.append(Decision(match.group(1), "", "", None, False))
            continue
        if not decisions:
            continue
        current = decisions[-1]
        match = re.match(r"Using (?:central|subcloud)_metadata_file: (.*)$", text)
        if match:
            current.source = match.group(1)
        match = re.search(r"Setting state to (\w+)\.", text)
        if match:
            current.state = match.group(1)
            current.prepatched_off = "Disabling" in text
        match = re.match(r"DRY_RUN: cp (\S*) (\S+)$", text)
        if match:
            current.dest = match.group(2)
    return decisions, result


def get_prestage_versions_install(work: Path, platform_backup_dir: Path) -> str:
    """The for-install half of get-prestage-versions' printed line: the role's find task (its
    arguments from the YAML, for_install_flag_file from prestage_sw_packages.yml) run by
    ansible-core's own find module, then its Jinja pipeline (dirname, basename, the role's
    regex, sort, join) in Python."""
    tasks = yaml.safe_load(GET_PRESTAGE_VERSIONS.read_text())
    flag = yaml.safe_load(PRESTAGE_SW_PACKAGES.read_text())[0]["vars"]["for_install_flag_file"]
    find = next(task["find"] for task in tasks if "find" in task)
    args = dict(find)
    assert args.pop("paths") == "{{ platform_backup_dir }}"
    assert args.pop("patterns") == "{{ for_install_flag_file }}"
    args.update(paths=str(platform_backup_dir), patterns=flag)
    work.mkdir(parents=True, exist_ok=True)
    (work / "find-args.json").write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    result = subprocess.run(
        [sys.executable, "-m", "ansible.modules.find", str(work / "find-args.json")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    files = json.loads(result.stdout)["files"]
    expression = next(
        task["set_fact"]["versions_list"]
        for task in tasks
        if "versions_list" in task.get("set_fact", {})
    )
    pattern = re.search(r"select\('regex', '([^']+)'\)", expression).group(1)
    names = [os.path.basename(os.path.dirname(f["path"])) for f in files]
    versions = [name for name in names if re.search(pattern, name)]
    return ",".join(sorted(versions)) if versions else "None"


def get_prestage_versions_sw_deploy(work: Path, metadata_dir: Path) -> str:
    """The for-sw-deploy half of get-prestage-versions' printed line, from the role's own shell
    commands (registered versions_product and versions_legacy) and its set_fact logic: the
    product list when it has lines, else the legacy one; sorted, comma-joined, or 'None'."""
    tasks = yaml.safe_load(GET_PRESTAGE_VERSIONS.read_text())
    shells = {task["register"]: task["shell"] for task in tasks if "shell" in task}
    lines: dict[str, list[str]] = {}
    for name in ("versions_product", "versions_legacy"):
        command = shells[name].replace("{{ host_software_metadata_dir }}", str(metadata_dir))
        assert "{{" not in command, command
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        lines[name] = result.stdout.splitlines()
    versions = lines["versions_product"] or lines["versions_legacy"]
    return ",".join(sorted(versions)) if versions else "None"
