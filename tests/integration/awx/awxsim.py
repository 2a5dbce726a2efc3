"""What AWX does around a job, done here the same way (AWX itself cannot run on this machine).

- An inventory source "sourced from a project" is synced with `ansible-inventory --list --export
  -i <project>/<source_path> --output ... --playbook-dir ...`, run from the project with the source
  variables as environment variables (awx/main/tasks/jobs.py, RunInventoryUpdate).
- A job runs through ansible-runner: a private data dir with a copy of the project, the synced
  inventory as an executable script (job slicing: every Nth host by name), the extra vars
  (the template's, the survey's and AWX's own awx_* vars) in env/extravars, the Machine
  credential as `-u sysadmin --ask-pass --become-method sudo --ask-become-pass` in env/cmdline and
  its passwords as answers to AWX's prompt patterns, kept in memory (suppress_env_files), and
  runner's own stdout callback (RunJob.build_args / build_env / get_password_prompts).
- A custom credential type's injectors (CredentialType.inject_credential): its `file` template
  rendered into a 0600 file of the private data dir's env/ (its path as `tower.filename`), its
  `env` templates as environment variables of the job, its `extra_vars` into a file passed with
  -e @file; the templates rendered in a Jinja2 sandbox with the credential's inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VENV_BIN = Path(sys.executable).parent

# RunJob.get_password_prompts (sudo's become prompts included) -> the credential field answering
PROMPTS = {
    r"Enter passphrase for .*:\s*?$": "ssh_key_unlock",
    r"Bad passphrase, try again for .*:\s*?$": "",
    r"sudo password.*:\s*?$": "become_password",
    r"SUDO password.*:\s*?$": "become_password",
    r"BECOME password.*:\s*?$": "become_password",
    r"SSH password:\s*?$": "ssh_password",
    r"Password:\s*?$": "ssh_password",
    r"Vault password:\s*?$": "vault_password",
}
# STANDARD_INVENTORY_UPDATE_ENV
INVENTORY_UPDATE_ENV = {
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    "ANSIBLE_INVENTORY_EXPORT": "True",
    "ANSIBLE_VERBOSE_TO_STDERR": "True",
    "ANSIBLE_HOST_PATTERN_MISMATCH": "error",
}


def base_env(collections_path: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: no DCPRESTAGE_*/ANSIBLE_* of the test run, the venv on PATH."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DCPRESTAGE_", "ANSIBLE_", "AWX_", "JOB_"))
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    env.update(extra or {})
    return env


def plain(value: Any) -> Any:
    """ansible-inventory's export with its unsafe markers ({"__ansible_unsafe": text}) read as
    the values they carry (AWX stores them as they are; the job's script inventory reads them
    back as unsafe text)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def installed_env(installed: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Ansible sees only the installed collection (no other collection: the collection has no
    dependency): the work tree (on sys.path through the venv's .pth) and site-packages are not
    scanned."""
    return base_env(str(installed), {"ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false", **(extra or {})})


def sync_inventory(
    project: Path, source_path: str, source_vars: dict[str, str], env: dict[str, str], out: Path
) -> dict[str, Any]:
    """An inventory update of an SCM inventory source; returns the imported data."""
    source = project / source_path
    result = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "--list", "--export", "-i", str(source),
         "--output", str(out), "--playbook-dir", str(source.parent)],
        capture_output=True, text=True, cwd=project, timeout=120, check=False,
        env={**env, **INVENTORY_UPDATE_ENV, **source_vars},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def inventory_script(export: dict[str, Any], slice_number: int = 1, slice_count: int = 1) -> str:
    """The inventory AWX writes for a job (Inventory.get_script_data): imported groups and vars,
    hosts by name, a slice's every slice_count-th host from slice_number on."""
    hostvars = export.get("_meta", {}).get("hostvars", {})
    names = set(hostvars)
    for group in export.values():
        if isinstance(group, dict):
            names.update(group.get("hosts", []))
    hosts = sorted(names)
    if slice_count > 1:
        hosts = hosts[slice_number - 1 :: slice_count]
    kept = set(hosts)
    data: dict[str, Any] = {"all": {}}
    if export.get("all", {}).get("vars"):
        data["all"]["vars"] = export["all"]["vars"]
    grouped: set[str] = set()
    for name, group in export.items():
        if name in ("_meta", "all", "ungrouped") or not isinstance(group, dict):
            continue
        info: dict[str, Any] = {}
        members = [h for h in group.get("hosts", []) if h in kept]
        if members:
            info["hosts"] = members
            grouped.update(members)
        if group.get("children"):
            info["children"] = group["children"]
        if group.get("vars"):
            info["vars"] = group["vars"]
        data[name] = info
    data["all"]["hosts"] = [h for h in hosts if h not in grouped]
    data["_meta"] = {
        "hostvars": {
            h: {**hostvars.get(h, {}), "remote_tower_enabled": "true", "remote_tower_id": i + 1}
            for i, h in enumerate(hosts)
        }
    }
    return f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(data)!r})\n"


@dataclass
class Job:
    """One AWX job: its id, its private data dir and what ansible-runner returned."""

    job_id: int
    private_data_dir: Path
    status: str = ""
    rc: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    control_path_dir: Path | None = None

    @property
    def artifacts(self) -> Path:
        return self.private_data_dir / "artifacts" / str(self.job_id)

    def stats_event(self) -> dict[str, Any]:
        return next(e for e in self.events if e.get("event") == "playbook_on_stats")

    def stdout(self) -> str:
        return "\n".join(e.get("stdout", "") for e in self.events)


def prepare_job(
    root: Path,
    job_id: int,
    project: Path,
    playbook: str,
    export: dict[str, Any],
    *,
    extra_vars: dict[str, Any],
    password: str,
    slice_number: int = 1,
    slice_count: int = 1,
    workflow_job_id: int | None = None,
    limit: str | None = None,
    copy_project: bool = True,
    credentials: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> tuple[Job, dict[str, Any]]:
    """The private data dir of a job and the ansible_runner.run() arguments AWX would use;
    credentials: (custom credential type, its inputs) besides the Machine credential."""
    pdd = root / f"awx_{job_id}_job"
    (pdd / "inventory").mkdir(parents=True)
    (pdd / "env").mkdir()
    os.chmod(pdd, 0o700)
    if copy_project:  # AWX copies the project's checkout into the job's private data dir
        shutil.copytree(project, pdd / "project", ignore=shutil.ignore_patterns(".git"),
                        symlinks=True)  # fmt: skip
    hosts = pdd / "inventory" / "hosts"
    hosts.write_text(inventory_script(export, slice_number, slice_count))
    os.chmod(hosts, stat.S_IRWXU)
    meta: dict[str, Any] = {}
    for name in ("awx", "tower"):
        meta[f"{name}_job_id"] = job_id
        meta[f"{name}_job_launch_type"] = "workflow" if workflow_job_id else "manual"
        meta[f"{name}_job_template_id"] = 7
        meta[f"{name}_job_template_name"] = "Prestage subclouds"
        if workflow_job_id:
            meta[f"{name}_workflow_job_id"] = workflow_job_id
            meta[f"{name}_workflow_job_name"] = "Prestage subclouds"
    _private_file(pdd / "env" / "extravars", yaml.safe_dump({**extra_vars, **meta}))
    args = ["-u", "sysadmin", "--ask-pass", "--become-method", "sudo", "--ask-become-pass"]
    injected_env: dict[str, str] = {}
    for credential_type, inputs in credentials or []:
        injected_env.update(inject_credential(credential_type, inputs, pdd, args))
    if limit:
        args += ["-l", limit]
    from ansible_runner.utils import args2cmdline  # noqa: PLC0415

    _private_file(pdd / "env" / "cmdline", args2cmdline(*args))
    _private_file(pdd / "env" / "settings", json.dumps(
        {"job_timeout": 0, "suppress_ansible_output": True, "suppress_output_file": True}
    ))  # fmt: skip
    # AWX's is /runner/cp; a socket path must stay under 108 bytes
    control = Path(tempfile.mkdtemp(prefix=f"awx{job_id}cp-"))
    credential = {"ssh_password": password, "become_password": password}
    params = {
        "ident": job_id,
        "private_data_dir": str(pdd),
        "playbook": playbook,
        "inventory": str(hosts),
        "passwords": {prompt: credential.get(key, "") for prompt, key in PROMPTS.items()},
        "suppress_env_files": True,
        "envvars": {
            "JOB_ID": str(job_id),
            "INVENTORY_ID": "3",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "AWX_PRIVATE_DATA_DIR": str(pdd),
            "ANSIBLE_CALLBACKS_ENABLED": "distcloud.prestage.prestage_state",
            "ANSIBLE_HOST_KEY_CHECKING": "False",  # AWX's default setting
            **injected_env,
        },
        "fact_cache_type": "",
        "project_dir": str(pdd / "project" if copy_project else project),
        "quiet": True,
    }
    return Job(job_id, pdd, control_path_dir=control), params


def inject_credential(
    credential_type: dict[str, Any], inputs: dict[str, Any], pdd: Path, args: list[str]
) -> dict[str, str]:
    """A custom credential type's injectors for one job (CredentialType.inject_credential): the
    environment variables it sets; its file written, its extra vars added to args."""
    from jinja2 import sandbox  # noqa: PLC0415

    engine = sandbox.ImmutableSandboxedEnvironment()
    tower = type("TowerNamespace", (), {})()
    namespace: dict[str, Any] = {"tower": tower}
    for key, value in inputs.items():
        if isinstance(value, bool) or len(value):
            namespace[key] = value
    for spec in credential_type["inputs"].get("fields", []):
        if spec.get("format") == "ssh_private_key" and spec["id"] in namespace:
            namespace[spec["id"]] = namespace[spec["id"]].rstrip("\n") + "\n"
    injectors = credential_type.get("injectors", {})
    for label, template in injectors.get("file", {}).items():
        fd, path = tempfile.mkstemp(dir=pdd / "env")
        with os.fdopen(fd, "w") as handle:
            handle.write(engine.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." not in label:
            tower.filename = path
        else:
            if not hasattr(tower, "filename"):
                tower.filename = type("TowerNamespace", (), {})()
            setattr(tower.filename, label.split(".", 1)[1], path)
    env = {name: engine.from_string(template).render(**namespace)
           for name, template in injectors.get("env", {}).items()}  # fmt: skip
    extra_vars = {name: engine.from_string(template).render(**namespace)
                  for name, template in injectors.get("extra_vars", {}).items()}  # fmt: skip
    if extra_vars:  # AWX's safe_dump: every string !unsafe (never templated), the file 0400
        fd, path = tempfile.mkstemp(dir=pdd / "env")
        with os.fdopen(fd, "w") as handle:
            handle.write(yaml.dump(extra_vars, Dumper=_UnsafeDumper))
        os.chmod(path, stat.S_IRUSR)
        args += ["-e", f"@{path}"]
    return env


class _UnsafeDumper(yaml.SafeDumper):
    def represent_data(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.represent_scalar("!unsafe", data)
        return super().represent_data(data)


def start_job(params: dict[str, Any], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start the job as AWX's worker does: ansible_runner.run() in a process of its own, handed
    its parameters (passwords included) on a pipe, never in a file or an argument."""
    process = subprocess.Popen(
        [str(VENV_BIN / "python"), __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env, cwd=params["private_data_dir"],
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write(json.dumps(params))
    process.stdin.close()
    return process


def finish_job(job: Job, process: subprocess.Popen[str], timeout: float = 900) -> Job:
    assert process.stdout is not None
    output = process.stdout.read()
    process.wait(timeout)
    if job.control_path_dir is not None:  # outside the private data dir: nobody else removes it
        shutil.rmtree(job.control_path_dir, ignore_errors=True)
    lines = output.strip().splitlines()
    assert process.returncode == 0 and lines, output[-3000:]
    result = json.loads(lines[-1])
    job.status, job.rc = result["status"], result["rc"]
    events = sorted(
        (job.artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-")[0])
    )
    job.events = [json.loads(p.read_text()) for p in events]
    return job


def run_job(job: Job, params: dict[str, Any], env: dict[str, str]) -> Job:
    return finish_job(job, start_job(params, env))


def _private_file(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    import ansible_runner

    run_params = json.loads(sys.stdin.read())
    outcome = ansible_runner.run(**run_params)
    print(json.dumps({"status": outcome.status, "rc": outcome.rc}))
