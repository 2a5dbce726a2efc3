"""prestage-strategy report: a picture of the strategy's run, one self-contained HTML file."""

from __future__ import annotations

import argparse
import os

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import (
    NotFoundError,
    PrestageError,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._files import read_text
from ansible_collections.distcloud.prestage.plugins.plugin_utils._report_file import (
    REPORTS_DIR,
    default_report_path,
    report_title,
    write_report,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import parse_strategy
from dcprestage._base import PlainCommand


def read_strategy_file(path: str) -> model.Strategy:
    """A strategy document (strategy.json, or a history record of one) from a file, read as the
    state store reads strategy.json: one-line errors for a missing, unreadable, corrupt or
    newer-schema file."""
    text = read_text(path)
    if text is None:
        raise NotFoundError(f"Strategy file {path} does not exist")
    return parse_strategy(text, f"Strategy file {path}")


class ReportStrategy(PlainCommand):
    """Write a self-contained HTML picture of the prestage strategy's run (live or finished):
    one bar per subcloud over time, coloured by phase, and the window's occupancy."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--output",
            metavar="FILE",
            help=f"Where to write the report (default: <state dir>/{REPORTS_DIR}/"
            "<the strategy's creation time>.html).",
        )
        parser.add_argument(
            "--file",
            metavar="STRATEGY_JSON",
            help="Report on the strategy document in this file (a strategy.json, or a kept "
            "record of one) instead of the state dir's strategy.",
        )
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        store = self.ctx.store
        if parsed_args.file:
            path = os.path.abspath(parsed_args.file)
            strategy = read_strategy_file(path)
            title = report_title(strategy, path)
        else:
            strategy = store.require_strategy()
            title = report_title(strategy, store.state_dir)
        if parsed_args.output:
            output = os.path.abspath(parsed_args.output)
            if os.path.isdir(output):
                raise PrestageError(f"Cannot write {output}: it is a directory")
        else:
            store.private_subdir(REPORTS_DIR)
            output = default_report_path(store, strategy)
        write_report(strategy, output, title)
        self.app.stdout.write(f"{output}\n")
        return 0
