"""strategy-history list|show: the strategies kept when they were deleted."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _history as history
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from dcprestage._base import ListCommand, ShowCommand

# cliff's output options that `show --steps` hands on to the step list
_OUTPUT_OPTIONS = ("formatter", "columns", "noindent", "max_width", "fit_width", "print_empty")


class ListHistory(ListCommand):
    """List the kept strategies, newest first (a strategy is kept when it is deleted)."""

    fields = history.LIST_FIELDS

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        store = self.ctx.store
        store.check()
        found, problems = history.records(store.state_dir)
        for problem in problems:  # reported, skipped, left as they are
            print(problem, file=sys.stderr)
        return history.LIST_FIELDS, [history.list_row(record) for record in found]


class ShowHistory(ShowCommand):
    """Show a kept strategy (its name from 'strategy-history list'); --steps lists its steps."""

    fields = history.SHOW_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name", help="Name of the kept strategy (strategy-history list).")
        parser.add_argument(
            "--steps",
            action="store_true",
            help="List its steps (as 'strategy-step list' does) instead.",
        )
        return parser

    def run(self, parsed_args: argparse.Namespace) -> int:
        if not parsed_args.steps:
            return super().run(parsed_args)
        # the step list is a list table: its own command, given this one's output options
        lister = _HistorySteps(self.app, self.app_args, cmd_name=self.cmd_name)
        steps_args = lister.get_parser(self.cmd_name or "").parse_args([parsed_args.name])
        for option in _OUTPUT_OPTIONS:
            if hasattr(parsed_args, option):
                setattr(steps_args, option, getattr(parsed_args, option))
        if steps_args.formatter not in lister.formatters():
            raise PrestageError(
                f"-f {steps_args.formatter} does not list steps; use one of "
                f"{', '.join(sorted(lister.formatters()))}"
            )
        return lister.run(steps_args)

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        store = self.ctx.store
        store.check()
        record = history.load(store.state_dir, parsed_args.name)
        return history.SHOW_FIELDS, history.show_row(record)


class _HistorySteps(ListCommand):
    """The steps of a kept strategy (`strategy-history show NAME --steps`)."""

    fields = model.STEP_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        return parser

    def formatters(self) -> set[str]:
        return set(self._formatter_plugins.names())

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        store = self.ctx.store
        store.check()
        record = history.load(store.state_dir, parsed_args.name)
        return model.STEP_FIELDS, [step.row() for step in record.strategy.steps]
