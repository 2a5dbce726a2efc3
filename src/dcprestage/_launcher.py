"""Run the prestage playbook for a strategy, detached from the terminal that applied it.

`dcprestage prestage-strategy apply` starts this module as its own session (`python -m
dcprestage._launcher ...`) and writes the sysadmin password on its stdin, so the password is never
in an argument, an environment variable or a file made for it. The playbook runs through
ansible-runner, which answers ansible-playbook's password prompts from memory; its artifacts (no
password in them) stay in <state_dir>/runner.

SIGTERM, SIGINT and SIGHUP are passed on to ansible-playbook, which stops admitting, ends the play
and records the steps it was running as interrupted (apply resumes them). After a grace
($DCPRESTAGE_SIGNAL_GRACE seconds, default 20) or at a second signal, the play is killed. Either
way, every process of the run is stopped before this one exits (they carry RUN_ID_ENV), and steps
still recorded as running are recorded as interrupted here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from dcprestage._collection import ensure_importable

ensure_importable()

from ansible_collections.distcloud.prestage.plugins.plugin_utils import (  # noqa: E402
    _run as run_module,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils import (  # noqa: E402
    _source as source,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils import (  # noqa: E402
    _store as store_module,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils import (  # noqa: E402
    _strategy as model,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (  # noqa: E402
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import (  # noqa: E402
    open_private,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (  # noqa: E402
    is_running,
    process_start_ticks,
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
SIGNAL_GRACE_ENV = "DCPRESTAGE_SIGNAL_GRACE"
DEFAULT_SIGNAL_GRACE = 20.0


class Interruption:
    """The signals this process got: the first is passed on to the play; after the grace, or at
    a second one, the play is cancelled (ansible-runner kills its process group)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.signame: str | None = None
        self.count = 0
        self.at = 0.0

    def install(self) -> None:
        for signum in run_module.INTERRUPT_SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.signame is None:
            self.signame = signal.Signals(signum).name
            self.at = time.monotonic()
            print(f"received {self.signame}: stopping the prestage run", flush=True)
        for pid in _children():
            with contextlib.suppress(OSError):
                os.kill(pid, signum if self.count == 1 else signal.SIGKILL)

    def cancel(self) -> bool:
        """ansible-runner's cancel callback."""
        return self.signame is not None and (
            self.count > 1 or time.monotonic() - self.at >= self.grace
        )


def _children() -> list[int]:
    pid, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                if int(handle.read().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def signal_grace() -> float:
    value = os.environ.get(SIGNAL_GRACE_ENV, "")
    try:
        return max(0.0, float(value)) if value else DEFAULT_SIGNAL_GRACE
    except ValueError:
        return DEFAULT_SIGNAL_GRACE


def close_interrupted(state_dir: str, signame: str) -> None:
    """After the play is gone: steps still recorded as running (the play was killed before it
    could say so) stop with the reason, if no other orchestrator has taken the strategy over."""
    store = store_module.StateStore(state_dir)
    try:
        with store.locked():
            strategy = store.load_strategy()
            if strategy is None or strategy.state not in model.RUNNING_STATES:
                return
            if (
                is_running(strategy.orchestrator)
                and strategy.orchestrator.get("pid") != os.getpid()
            ):
                return
            reason = run_module.interrupted_reason(signame)
            stopped = run_module.interrupt_steps(strategy, reason)
            if strategy.state in (model.ABORT_REQUESTED, model.ABORTING):
                model.abandon(strategy)
            store.save_strategy(strategy)
    except (PrestageError, OSError) as exc:
        print(f"Cannot record the interruption in {state_dir}: {exc}", flush=True)
        return
    run_module.log_reason(store, stopped, reason)


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
    *,
    keystone_password: str | None = None,
) -> int:
    """Start the launcher in its own session; returns its pid at once. keystone_password: the
    dcmanager source's (the run's inventory reads dcmanager), handed over like the sysadmin's."""
    log_dir = store_module.StateStore(state_dir).private_subdir(store_module.LOGS_DIR)
    command = [
        sys.executable, "-m", "dcprestage._launcher",
        "--state-dir", state_dir, "--inventory", inventory, "--forks", str(forks),
        "--project-dir", os.getcwd(),
    ]  # fmt: skip
    for key, value in (extra_vars or {}).items():
        command += ["--extra-var", f"{key}={value}"]
    log_fd = open_private(
        os.path.join(log_dir, "orchestrator.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND
    )
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
    process.stdin.write(password + "\n" + (keystone_password or "") + "\n")
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
    interruption = Interruption(signal_grace())
    interruption.install()
    password = sys.stdin.readline().rstrip("\n")
    keystone_password = sys.stdin.readline().rstrip("\n")
    sys.stdin.close()
    os.close(0)
    os.open(os.devnull, os.O_RDONLY)

    # RunnerConfig + Runner rather than ansible_runner.run(): run() dumps its passwords argument
    # to env/passwords in the private data dir, a copy on disk this must not leave.
    from ansible_runner.config.runner import RunnerConfig  # noqa: PLC0415 - detached process only
    from ansible_runner.runner import Runner  # noqa: PLC0415

    run_id = f"{options.state_dir}:{os.getpid()}:{process_start_ticks(os.getpid())}"
    # short (a socket path has a limit), private, this run's only
    control_dir = tempfile.mkdtemp(prefix="dcprestage-cp-")
    keystone_env = {}
    if keystone_password:  # in a file of the run's private dir, removed with it; not in the env
        keystone_file = os.path.join(control_dir, "keystone-password")
        fd = os.open(keystone_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(keystone_password + "\n")
        keystone_env[source.KEYSTONE_PASSWORD_FILE_ENV] = keystone_file
    extra_vars = dict(item.split("=", 1) for item in options.extra_var)
    extra_vars["prestage_state_dir"] = options.state_dir
    runner_dir = store_module.StateStore(options.state_dir).private_subdir(store_module.RUNNER_DIR)
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
            run_module.RUN_ID_ENV: run_id,
            run_module.CONTROL_DIR_ENV: control_dir,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir,
            **keystone_env,
        },
        quiet=True,
        rotate_artifacts=10,
    )
    config.prepare()
    config.env = orchestrator_env(config.env)  # what the artifacts record, however we started
    config.pexpect_timeout = 1  # how often runner looks at the cancel callback
    result = Runner(config, cancel_callback=interruption.cancel)
    try:
        if interruption.signame is None:
            result.run()
    finally:
        # the play is over: its ssh masters and anything else of it go too
        stopped = run_module.stop_run_processes(run_id, control_dir=control_dir)
        shutil.rmtree(control_dir, ignore_errors=True)
    if interruption.signame is not None:
        close_interrupted(options.state_dir, interruption.signame)
        left = f"; stopped {stopped} leftover processes" if stopped else ""
        print(f"prestage run stopped by {interruption.signame}{left}", flush=True)
        return 1
    print(f"prestage run {result.config.ident}: {result.status}, rc {result.rc}", flush=True)
    return 0 if result.rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
