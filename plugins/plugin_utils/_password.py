# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The sysadmin password prompt, word for word as dcmanager asks it (CLI and playbook alike)."""

from __future__ import annotations

import getpass
import os

from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError

PASSWORD_ENV = "DCPRESTAGE_SYSADMIN_PASSWORD"
PROMPT = "Enter the sysadmin password for the subcloud: "
CONFIRM = "Re-enter sysadmin password to confirm: "


def prompt_for_password() -> str:
    """Ask until a non-empty password is typed twice the same; nothing is echoed."""
    while True:
        try:
            password = getpass.getpass(PROMPT)
            if not password:
                print("Password cannot be empty")
                continue
            if getpass.getpass(CONFIRM) != password:
                print("Passwords did not match")
                continue
            return password
        except (KeyboardInterrupt, EOFError):
            raise PrestageError("Password prompt interrupted.") from None


def prompt_available() -> bool:
    """Whether a terminal can be asked (getpass reads /dev/tty)."""
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def sysadmin_password(given: str | None) -> str:
    """--sysadmin-password, else DCPRESTAGE_SYSADMIN_PASSWORD, else the prompt."""
    if given is not None:
        if not given:
            raise PrestageError("Password cannot be empty")
        return given
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not prompt_available():  # getpass would read stdin, echoed, with a warning
        raise PrestageError(
            f"No sysadmin password: give it with --sysadmin-password or ${PASSWORD_ENV}, or run "
            "from a terminal to be asked"
        )
    return prompt_for_password()
