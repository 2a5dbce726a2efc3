"""Run the prestage playbook for a strategy, detached from the terminal that applied it.

`dcprestage prestage-strategy apply` starts this module as its own session (`python -m
dcprestage._launcher ...`) and writes the sysadmin password on its stdin, so the password is never
in an argument, an environment variable or a file made for it. The playbook runs through
ansible-runner, which answers ansible-playbook's password prompts from memory; its artifacts (no
password in them) stay in <state_dir>/runner.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from dcprestage._collection import ensure_importable

ensure_importable()

from ansible_collections.distcloud.prestage.plugins.plugin_utils import (  # noqa: E402
    _store as store_module,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._password import (  # noqa: E402
    PASSWORD_ENV,
)

# The collection this code belongs to: <base>/ansible_collections/distcloud/prestage
COLLECTION_ROOT = Path(store_module.__file__).resolve().parents[2]
COLLECTIONS_BASE = Path(store_module.__file__).parents[5]
PLAYBOOK_ENV = "DCPRESTAGE_PLAYBOOK"
# ansible-playbook's prompts for --ask-pass and --ask-become-pass (the latter reads
# "BECOME password[defaults to SSH password]:" when both are asked)
PASSWORD_PROMPTS = (r"SSH password:\s*?$", r"BECOME password.*:\s*?$")


# What the orchestrator (and ansible-playbook under it) inherits: ansible-runner records its whole
# environment in runner/artifacts/<id>/command, so it gets only what a run needs, never whatever
# else the caller exported (cloud credentials, tokens...). $DCPRESTAGE_PASS_ENV (comma-separated
# names) passes more.
PASS_ENV = "DCPRESTAGE_PASS_ENV"
ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "PYTHONPATH", "VIRTUAL_ENV", "SSH_AUTH_SOCK", "KRB5CCNAME", "XDG_RUNTIME_DIR",
    "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
    "ORIGINAL_STDOUT_CALLBACK", "AD_HOC_COMMAND_ID",  # set by ansible-runner itself
})  # fmt: skip
ENV_PREFIXES = ("ANSIBLE_", "DCPRESTAGE_", "LC_", "RUNNER_", "AWX_")


def orchestrator_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a run gets: the names it needs from environ, never the password."""
    extra = {name.strip() for name in environ.get(PASS_ENV, "").split(",") if name.strip()}
    return {
        name: value
        for name, value in environ.items()
        if name != PASSWORD_ENV
        and (name in ENV_NAMES or name in extra or name.startswith(ENV_PREFIXES))
    }


def playbook_path() -> str:
    """The collection's playbooks/prestage.yml, or $DCPRESTAGE_PLAYBOOK (a wrapper of yours)."""
    return os.environ.get(PLAYBOOK_ENV) or str(COLLECTION_ROOT / "playbooks" / "prestage.yml")


def start(
    state_dir: str,
    inventory: str,
    password: str,
    forks: int,
    extra_vars: dict[str, str] | None = None,
) -> int:
    """Start the launcher in its own session; returns its pid at once."""
    log_dir = Path(state_dir) / "logs"
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "dcprestage._launcher",
        "--state-dir", state_dir, "--inventory", inventory, "--forks", str(forks),
        "--project-dir", os.getcwd(),
    ]  # fmt: skip
    for key, value in (extra_vars or {}).items():
        command += ["--extra-var", f"{key}={value}"]
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    log_fd = os.open(log_dir / "orchestrator.log", flags, 0o600)
    try:
        process = subprocess.Popen(
            command,
            # the password goes through stdin only; runner would save an inherited copy
            env=orchestrator_env(os.environ),
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,  # survives the terminal
            close_fds=True,
            text=True,
        )
    finally:
        os.close(log_fd)
    assert process.stdin is not None
    process.stdin.write(password + "\n")
    process.stdin.close()
    return process.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dcprestage._launcher")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--forks", type=int, required=True)
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--extra-var", action="append", default=[])
    options = parser.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n")
    sys.stdin.close()
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)

    # RunnerConfig + Runner rather than ansible_runner.run(): run() dumps its passwords argument
    # to env/passwords in the private data dir, a copy on disk this must not leave.
    from ansible_runner.config.runner import RunnerConfig  # noqa: PLC0415 - detached process only
    from ansible_runner.runner import Runner  # noqa: PLC0415

    extra_vars = dict(item.split("=", 1) for item in options.extra_var)
    extra_vars["prestage_state_dir"] = options.state_dir
    runner_dir = Path(options.state_dir) / "runner"
    runner_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = RunnerConfig(
        private_data_dir=str(runner_dir),
        project_dir=options.project_dir,
        playbook=playbook_path(),
        inventory=options.inventory,
        cmdline=f"--ask-pass --ask-become-pass --forks {max(options.forks, 1)}",
        passwords=dict.fromkeys(PASSWORD_PROMPTS, password),
        extravars=extra_vars,
        envvars={
            "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
                [str(COLLECTIONS_BASE), os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")]
            ).rstrip(os.pathsep),
            "DCPRESTAGE_STATE_DIR": options.state_dir,
        },
        quiet=True,
        rotate_artifacts=10,
    )
    config.prepare()
    config.env = orchestrator_env(config.env)  # what the artifacts record, however we started
    result = Runner(config)
    result.run()
    print(f"prestage run {result.config.ident}: {result.status}, rc {result.rc}", flush=True)
    return 0 if result.rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
