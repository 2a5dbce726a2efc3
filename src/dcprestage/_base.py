"""What every dcprestage command shares: the resolved context and one-line option errors."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Any, NoReturn, cast

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import decimal_int
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _source as source
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (
    PrestageConfig,
    load_config,
    resolve_config_path,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import Registry
from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_query import (
    system_controller_facts,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    resolve_state_dir,
)


class Context:
    """The inventory config, registry and state dir a command works on, read when first used."""

    def __init__(self, inventory: str | None, state_dir: str | None) -> None:
        self._inventory = inventory
        self._state_dir = state_dir

    @functools.cached_property
    def config(self) -> PrestageConfig:
        return load_config(resolve_config_path(self._inventory))

    @functools.cached_property
    def registry(self) -> Registry:
        """The subclouds and groups of the config's source (from dcmanager: without the OAM
        addresses, which only an inventory and `subcloud show` need)."""
        return source.load(self.config, addresses=False)

    def registry_with_address(self, subcloud: str) -> Registry:
        """The registry with this subcloud's OAM floating address read (dcmanager's detail)."""
        if not source.is_dcmanager(self.config):
            return self.registry
        return source.load(self.config, addresses=[subcloud])

    @property
    def keystone_password(self) -> str | None:
        """The dcmanager source's Keystone password, for a run dcprestage starts (its inventory
        reads dcmanager too); None with the registry file."""
        settings = self.config.dcmanager
        return source.keystone_password(settings) if settings is not None else None

    @property
    def dcmanager(self) -> bool:
        """The subclouds come from dcmanager (its prestage status is shown beside ours)."""
        return source.is_dcmanager(self.config)

    @functools.cached_property
    def store(self) -> StateStore:
        return StateStore(resolve_state_dir(self._state_dir))

    @functools.cached_property
    def sc_facts(self) -> dict[str, Any]:
        """What the system controller says about itself (read on it, or kept by a recent run)."""
        return system_controller_facts(self.config, self.store.state_dir)


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Bad options print one line (no usage block) and exit 2, as every error here does."""

    def error(message: str) -> NoReturn:
        # one line even when a value typed on the command line holds a newline
        parser.exit(2, f"{parser.prog}: error: {' '.join(message.split())}\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def decimal(text: str) -> int:
    """argparse type of a number option: ASCII digits only (int() also takes '٣', ' 3' and
    '1_0'); argparse says "invalid int value: '...'" as for type=int."""
    value: int | None = decimal_int(text)
    if value is None:
        raise ValueError(text)
    return value


decimal.__name__ = "int"  # argparse names the type in its message


def confirm(question: str, assume_yes: bool) -> None:
    """Ask only when CLI_CONFIRMATIONS=enabled (as dcmanager does) and --yes was not given."""
    if assume_yes or os.environ.get("CLI_CONFIRMATIONS", "").lower() != "enabled":
        return
    sys.stdout.write(f"{question} [y/N]: ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise PrestageError("Operation cancelled by the user.")


class _ContextMixin:
    app: Any
    # a command that may ask for confirmation (see confirm) takes --yes
    confirms = False
    # The columns the command prints: -c is checked against them before anything is done or said
    # (cliff checks only when printing: after a change was made, or after a warning).
    fields: tuple[str, ...] = ()

    def _check_columns(self, parsed_args: argparse.Namespace) -> None:
        columns = getattr(parsed_args, "columns", None)
        if self.fields and columns and not set(columns) & set(self.fields):
            raise PrestageError(
                f"No recognized column names in {columns}. Recognized columns are {self.fields}."
            )

    @property
    def ctx(self) -> Context:
        return cast(Context, self.app.context)

    def _finish_parser(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        if self.confirms:
            parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        for action in parser._actions:  # cliff's own number options too (--max-width)
            if action.type is int:
                action.type = decimal
        return one_line_errors(parser)


class ShowCommand(_ContextMixin, ShowOne):
    """A command printing one vertical Field/Value table."""

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._check_columns(parsed_args)
        return super().run(parsed_args)

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return self._finish_parser(super().get_parser(prog_name))


class ListCommand(_ContextMixin, Lister):
    """A command printing one table of rows."""

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._check_columns(parsed_args)
        return super().run(parsed_args)

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return self._finish_parser(super().get_parser(prog_name))


class PlainCommand(_ContextMixin, Command):
    """A command that prints nothing on success."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return self._finish_parser(super().get_parser(prog_name))
