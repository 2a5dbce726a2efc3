# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What the system controller says about itself, for `dcprestage` (SPEC §9).

The facts the release rules need (its release, supported upgrades, USM releases, a deployment in
progress) are read on the system controller by the sc_release_info module, run there through
Ansible with the inventory's own connection settings for it - the same way a playbook run reaches
it. A run keeps what it read in the state dir (`sc-facts.json`, 0600), and a command within
FACTS_TTL seconds of it uses that instead of asking again: the checks run again, on fresh facts,
when a step's precheck starts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import PrestageConfig
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import (
    atomic_write,
    read_private,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import StateStore

FACTS_FILE = "sc-facts.json"
FACTS_SCHEMA = 1
FACTS_TTL = 120.0
MODULE = "distcloud.prestage.sc_release_info"
QUERY_TIMEOUT = 120


def facts_path(state_dir: str) -> str:
    return os.path.join(state_dir, FACTS_FILE)


def save_facts(state_dir: str, host: str, facts: dict[str, Any]) -> None:
    """Keep what a run read on the system controller (only the release-independent facts)."""
    kept = {key: facts.get(key) for key in RELEASE_INDEPENDENT}
    atomic_write(facts_path(state_dir), json.dumps(
        {"schema": FACTS_SCHEMA, "host": host, "read_at": time.time(), "facts": kept}
    ), 0o600)  # fmt: skip


# What the release rules use, whatever the release (sc_release_info's keys).
RELEASE_INDEPENDENT = (
    "sc_release", "supported_upgrades", "min_supported_release", "upgrades_error",
    "software_releases", "software_error", "deployment_in_progress",
)  # fmt: skip


def cached_facts(state_dir: str, host: str, now: float | None = None) -> dict[str, Any] | None:
    """The facts a recent run kept, or None (none, too old, another host, unreadable)."""
    try:
        text = read_private(facts_path(state_dir))  # never through a link
    except PrestageError:
        return None
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("schema") != FACTS_SCHEMA:
        return None
    age = (now if now is not None else time.time()) - float(data.get("read_at") or 0)
    facts = data.get("facts")
    if data.get("host") != host or not 0 <= age <= FACTS_TTL or not isinstance(facts, dict):
        return None
    return facts


def system_controller_facts(config: PrestageConfig, state_dir: str) -> dict[str, Any]:
    """The system controller's facts: kept by a recent run, else read on it now."""
    StateStore(state_dir).check()  # a state dir another user could change is refused first
    host = config.system_controller.host
    facts = cached_facts(state_dir, host)
    if facts is None:
        facts = query(config)
        if os.path.isdir(state_dir):
            save_facts(state_dir, host, facts)
    return facts


def query(config: PrestageConfig) -> dict[str, Any]:
    """Run sc_release_info on the system controller host of config's inventory (no content)."""
    import ansible_runner  # noqa: PLC0415 - only commands that ask the SC pay for the import

    host = config.system_controller.host
    private = tempfile.mkdtemp(prefix="dcprestage-sc-query-")
    try:
        os.chmod(private, 0o700)
        runner = ansible_runner.run(
            private_data_dir=private,
            host_pattern=host,
            module=MODULE,
            module_args="content=false",
            inventory=config.path,
            quiet=True,
            timeout=QUERY_TIMEOUT,
            envvars=_query_env(private),
            rotate_artifacts=1,
        )
        result: dict[str, Any] | None = None
        problem = f"no answer (ansible exit {runner.rc})"
        for event in runner.events:
            name = event.get("event", "")
            res = (event.get("event_data") or {}).get("res") or {}
            if name == "runner_on_ok" and isinstance(res, dict):
                result = res
            elif name in ("runner_on_failed", "runner_on_unreachable"):
                problem = " ".join(str(res.get("msg") or name).split())
        if runner.status == "timeout":
            problem = f"no answer within {QUERY_TIMEOUT} seconds"
    finally:
        shutil.rmtree(private, ignore_errors=True)
    if result is None:
        raise PrestageError(f"Cannot read the system controller ({host}): {problem}")
    return {key: result.get(key) for key in RELEASE_INDEPENDENT}


def _query_env(private: str) -> dict[str, str]:
    """The query's environment: ANSIBLE_COLLECTIONS_PATH that holds this collection (the CLI may
    run from anywhere); Ansible's local temporary files and ssh control sockets in the query's
    private directory, removed with it (a command that fails leaves nothing behind, not even
    ~/.ansible); and PATH led by the directory of the running Python when it holds `ansible`
    (ansible-runner runs `ansible` from PATH: the ansible-core of this dcprestage, also when its
    virtualenv is not activated)."""
    here = os.path.dirname(os.path.abspath(__file__))
    base = os.path.normpath(os.path.join(here, "..", "..", "..", "..", ".."))
    paths = [base, os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")]
    env = {
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(p for p in paths if p),
        "ANSIBLE_LOCAL_TEMP": os.path.join(private, "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": os.path.join(private, "cp"),
    }
    bin_dir = os.path.dirname(sys.executable)
    if sys.executable and os.access(os.path.join(bin_dir, "ansible"), os.X_OK):
        env["PATH"] = os.pathsep.join(p for p in (bin_dir, os.environ.get("PATH", "")) if p)
    return env
