# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""What the prestage action plugins share: the subcloud as the inventory describes it, the
connection to it (for rsync), the become settings, the phase results.

The few private Ansible attributes the packages phase needs (the ssh connection's
`_build_command`, which yields exactly Ansible's ssh command line for the host) are touched
here only.
"""

from __future__ import annotations

import os
import shlex
import shutil
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import Subcloud
from ansible_collections.distcloud.prestage.plugins.plugin_utils._transfer import (
    Become,
    RemoteShell,
)


def subcloud_from_vars(name: str, task_vars: dict[str, Any]) -> Subcloud:
    """The subcloud as the inventory plugin describes it (subcloud_* host variables); variables
    a plain inventory lacks take dcmanager's values of a deployed, online, managed subcloud."""

    def var(key: str, default: Any) -> Any:
        value = task_vars.get(f"subcloud_{key}")
        return default if value is None else value

    return Subcloud(
        id=int(var("id", 0) or 0),
        name=name,
        group_id=0,
        oam_floating_address=str(task_vars.get("ansible_host") or name),
        software_version=str(var("software_version", "")),
        management=str(var("management", "managed")),
        availability=str(var("availability", "online")),
        deploy_status=str(var("deploy_status", "complete")),
        system_mode=str(var("system_mode", "simplex")),
        sync=str(var("sync", "unknown")),
        backup_status=var("backup_status", None),
    )


def become_of(action: Any) -> Become:
    """The task's become settings (sudo password, user) as the connection got them."""
    if not action._play_context.become:
        return Become(enabled=False)
    plugin = getattr(action._connection, "become", None)
    if plugin is None:
        return Become(enabled=False)
    context = action._play_context

    def option(name: str) -> Any:
        try:
            return plugin.get_option(name, playcontext=context)
        except KeyError:
            return getattr(context, name, None)

    password = option("become_pass") or None
    return Become(
        enabled=True,
        password=str(password) if password is not None else None,
        user=option("become_user") or "root",
        exe=str(option("become_exe") or getattr(plugin, "name", "sudo")).rsplit(".", 1)[-1],
    )


def own_connection_options(io_timeout: int) -> list[str]:
    """ssh options of the transfer's connection: its own TCP connection (not Ansible's
    ControlPersist master, which has no keepalive), whose keepalives notice a dead link within
    about io_timeout seconds. rsync's --timeout cannot: its keepalive writes keep landing in
    ssh's buffers while the link is down, so it never sees a lull."""
    interval = max(1, io_timeout // 4)
    return [
        "-o", "ControlMaster=no", "-o", "ControlPath=none",
        "-o", f"ServerAliveInterval={interval}", "-o", "ServerAliveCountMax=4",
    ]  # fmt: skip


def remote_shell_factory(action: Any, task_vars: dict[str, Any], io_timeout: int) -> Any:
    """A callable returning a fresh RemoteShell for one rsync run (each run needs its own sshpass
    pipe)."""
    connection = action._connection
    transport = getattr(connection, "transport", "") or ""
    build = getattr(connection, "_build_command", None)
    if build is not None and str(transport).endswith("ssh"):

        def from_connection() -> RemoteShell:
            try:
                mechanism = connection.get_option("password_mechanism")
            except KeyError:  # before ansible-core 2.19: sshpass
                mechanism = "sshpass"
            password = connection.get_option("password") or action._play_context.password
            if mechanism == "disable":
                password = None
            host = connection.get_option("host") or action._play_context.remote_addr
            connection.sshpass_pipe = None
            executable = connection.get_option("ssh_executable")
            argv = [
                a.decode() if isinstance(a, bytes) else str(a) for a in build(executable, "ssh")
            ]
            # ssh keeps the first value it gets for an option: ours go right after the command
            at = argv.index(str(executable)) + 1 if str(executable) in argv else len(argv)
            argv[at:at] = own_connection_options(io_timeout)
            pipe = getattr(connection, "sshpass_pipe", None)
            if password and not pipe:
                # ssh_askpass (2.19's default) hands the password over through shared memory
                # to a helper that only Ansible's own ssh runs know; rsync's ssh gets it from
                # sshpass through a descriptor instead
                if shutil.which("sshpass") is None:
                    raise PrestageError(
                        "sshpass is needed on the controller for rsync with a password login"
                    )
                pipe = os.pipe()
                argv = ["sshpass", f"-d{pipe[0]}", *argv]
            if pipe:
                return RemoteShell(
                    ssh=argv,
                    host=str(host),
                    ssh_password=str(password),
                    ssh_password_fd=pipe[0],
                    ssh_password_write_fd=pipe[1],
                )
            return RemoteShell(ssh=argv, host=str(host))

        return from_connection
    return lambda: _plain_shell(task_vars, io_timeout)


def _plain_shell(task_vars: dict[str, Any], io_timeout: int) -> RemoteShell:
    """ssh from the host's variables, for connection plugins without Ansible's ssh command line
    (mitogen, paramiko)."""
    host = str(task_vars.get("ansible_host") or task_vars["inventory_hostname"])
    argv = ["ssh", *own_connection_options(io_timeout)]
    if task_vars.get("ansible_port"):
        argv += ["-o", f"Port={task_vars['ansible_port']}"]
    if task_vars.get("ansible_user"):
        argv += ["-o", f"User={task_vars['ansible_user']}"]
    for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if task_vars.get(key):
            argv += shlex.split(str(task_vars[key]))
    password = task_vars.get("ansible_password") or task_vars.get("ansible_ssh_pass")
    if password:
        read_fd, write_fd = os.pipe()
        return RemoteShell(
            ssh=["sshpass", f"-d{read_fd}", *argv],
            host=host,
            ssh_password=str(password),
            ssh_password_fd=read_fd,
            ssh_password_write_fd=write_fd,
        )
    return RemoteShell(ssh=argv, host=host)


def phase_timeout_reason(phase: str, seconds: int) -> str:
    """A phase that ran out of time, naming the role setting that sets it."""
    return f"Prestaging {phase} timed out after {seconds} seconds (prestage_{phase}_timeout)"


def result_of(value: Any) -> dict[str, Any]:
    """A registered task result (an empty dict for an undefined or skipped one)."""
    return value if isinstance(value, dict) else {}
