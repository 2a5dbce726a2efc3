# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""The error every user-facing failure of the controller side raises: one clear line."""

from __future__ import annotations


class PrestageError(Exception):
    """A failure the user can act on; str() is the whole message, one line."""

    def __init__(self, message: str) -> None:
        # Multi-line text would break the one-line contract of the CLI and the plugins.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self) -> str:
        return str(self)


class NotFoundError(PrestageError):
    """The thing asked for does not exist (strategy, step, subcloud, group)."""


class StateFileError(PrestageError):
    """A state file is unreadable, corrupt or of a newer schema: never silently replaced."""
