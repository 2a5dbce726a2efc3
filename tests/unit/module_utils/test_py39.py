"""The module_utils run on the managed hosts' Python 3.9 (standard library only): every one of
them imports there, and their pure decisions come out the same as under the controller's Python.

The interpreter is DCPRESTAGE_PYTHON39 (default: pyenv's 3.9.18); the collection is imported from
the work tree's .venv/collections link (scripts/bootstrap), without Ansible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".venv" / "collections"
PYTHON39 = Path(os.environ.get("DCPRESTAGE_PYTHON39", "/root/.pyenv/versions/3.9.18/bin/python3.9"))

SMOKE = r'''
import json
import os
import sys
import tempfile

sys.path.insert(0, sys.argv[1])  # the collections path (isolated mode: no PYTHONPATH)

from ansible_collections.distcloud.prestage.plugins.module_utils import (  # noqa: E402
    _content, _install, _phase, _release, _rsync, _sc_facts, _stx, _subcloud, _sw_deploy,
    _tables,
)

TABLE = """+-------------------+-------+-------------+
| Release           | RR    |    State    |
+-------------------+-------+-------------+
| starlingx-25.09.0 | True  |  deployed   |
| starlingx-25.09.1 | False |  available  |
| starlingx-25.09.2 | False | unavailable |
+-------------------+-------+-------------+
"""


def xml(release_id, commit=None):
    ostree = ""
    if commit is not None:
        ostree = "<contents><ostree><commit1><commit>%s</commit></commit1></ostree>" % commit
        ostree += "</contents>"
    return "<patch><id>%s</id><sw_version>%s</sw_version>%s</patch>" % (
        release_id, release_id.split("-")[1], ostree)


def write(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


out = {"python": list(sys.version_info[:2])}
out["metadata_dir"] = [_stx.metadata_dir(v) for v in ("25.09", "26.10")]
out["pruned"] = [list(_stx.pruned_metadata_dirs(v)) for v in ("22.12", "25.09")]
out["sort"] = sorted(["24.09.10", "24.09.2", "24.09", "starlingx-24.09.1", ".a", "a~", ""],
                     key=_stx.version_sort_key)
out["prune"] = sorted(_stx.prunable_release_dirs(["21.12", "22x12", "24.09", "2212"], "24.09"))
out["version_dir"] = [_stx.is_version_dir(n) for n in ("24x09", "24.09.1")]
out["listed"] = _sw_deploy.listed_lines(TABLE, "25.09", ("deployed", "unavailable"))
out["parts"] = _sw_deploy.release_parts(out["listed"])
out["patch"] = [_sw_deploy.patch_number(x) for x in ("25.09.3", "x.1e1", "abc")]
out["skip"] = _sw_deploy.patch_level_skip(["25.09.1"], ["25.09.2"])
out["le"] = [_sw_deploy.version_le(a, b) for a, b in (("24.09.9", "24.09.10"), ("26.10", "26.03"))]
out["dest"] = _sw_deploy.destination("/m", "available", "26.10", "26.10")
out["empty"] = _sw_deploy.empty_commit_lines(["a:", "b:c"])
out["alarms"] = _subcloud.management_alarms_fail(
    "No alarms: [Fail]\n[1] alarms found, [1] of which are management affecting")
out["reason"] = list(_subcloud.precheck_reason(
    {"release": "24.09", "for_sw_deploy": True, "force": False},
    {"sw_version": "25.09", "health": None}))
out["transient"] = _subcloud.transient_failure(TABLE.replace("available  ", "removing   "))
out["stats"] = _rsync.parse_stats("Literal data: 2,101,518 bytes\nTotal bytes sent: 1,009\n")
out["ssh"] = _rsync.ssh_command(22, "sysadmin", "-o X=1", 40)
out["remote"] = _rsync.remote_rsync_path("pw")
out["table"] = _tables.parse_table(TABLE)
out["timeout"] = _phase.timeout_message("packages", 60)
out["releases"] = _sc_facts.software_releases(TABLE)
out["major"] = [_release.is_major_release("25.09"), _release.major_of("25.09.1")]
out["plan"] = _install.plan("25.09", "24.09", {"ostree": {"checksum": "c", "usage": 5},
                                               "min_supported_release": "24.09"},
                            {"marker": False, "usage": 1}, [], base="/nonexistent")
out["transfers"] = _install.transfers("25.09", ["ostree", "patch_metadata"], "g")
with tempfile.TemporaryDirectory() as tmp:
    write(os.path.join(tmp, "pb", "25.09", "ostree_repo", "a b\\c"), "x")
    write(os.path.join(tmp, "pb", "25.09", "ostree_repo", "objects", "d\ne"), "y")
    write(os.path.join(tmp, "pb", "25.09", ".ostree_rsync_completed"))
    write(os.path.join(tmp, "md", "available", "starlingx-25.09.3-metadata.xml"))
    out["checksum"] = _content.ostree_checksum(os.path.join(tmp, "pb", "25.09"))["checksum"]
    out["versions"] = _install.prestage_versions(os.path.join(tmp, "pb"), os.path.join(tmp, "md"))
    staged, own = os.path.join(tmp, "staged"), os.path.join(tmp, "own")
    write(os.path.join(staged, "deployed", "starlingx-25.09.0-metadata.xml"),
          xml("starlingx-25.09.0"))
    write(os.path.join(staged, "deployed", "starlingx-25.09.1-metadata.xml"),
          xml("starlingx-25.09.1", "c1"))
    write(os.path.join(own, "deployed", "starlingx-25.09.0-metadata.xml"), xml("starlingx-25.09.0"))
    out["states"] = [[i, s, os.path.relpath(f, tmp), p] for i, s, f, p in
                     _sw_deploy.metadata_states("25.09", "25.09", staged, own, False)]
    out["commits"] = [os.path.relpath(line, tmp)
                      for line in _sw_deploy.central_commits("25.09", staged)]
    write(os.path.join(tmp, "up.xml"), "<build><version>25.09</version><supported_upgrades>"
          "<upgrade><version>24.09</version></upgrade></supported_upgrades></build>")
    out["upgrades"] = list(_sc_facts.upgrades_metadata(os.path.join(tmp, "up.xml")))
print(json.dumps(out, sort_keys=True))
'''


def smoke(python: str) -> dict:
    result = subprocess.run(
        [python, "-I", "-c", SMOKE, str(COLLECTIONS)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not PYTHON39.is_file(), reason=f"needs {PYTHON39}")
@pytest.mark.skipif(not (COLLECTIONS / "ansible_collections").is_dir(), reason="needs bootstrap")
def test_module_utils_decide_the_same_on_python_3_9() -> None:
    ours, theirs = smoke(sys.executable), smoke(str(PYTHON39))
    assert theirs.pop("python") == [3, 9]
    ours.pop("python")
    assert theirs == ours
    assert theirs["versions"] == "for-install: 25.09 - for-sw-deploy: 25.09.3"
    assert theirs["states"] == [
        ["starlingx-25.09.0", "deployed", "staged/deployed/starlingx-25.09.0-metadata.xml", False],
        ["starlingx-25.09.1", "available", "staged/deployed/starlingx-25.09.1-metadata.xml", False],
    ]
    assert theirs["reason"][1].startswith("The requested software version (24.09) is lower")
