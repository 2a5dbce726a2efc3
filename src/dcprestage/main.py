"""dcprestage: dcmanager's prestage commands, run against a subcloud registry and a state dir."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from dcprestage._collection import ensure_importable

ensure_importable()

from cliff.app import App  # noqa: E402
from cliff.commandmanager import CommandManager  # noqa: E402
from cliff.complete import CompleteCommand  # noqa: E402
from cliff.help import HelpCommand  # noqa: E402

from dcprestage import __version__, history, report, strategy, subclouds  # noqa: E402
from dcprestage._base import Context, one_line_errors  # noqa: E402

COMMANDS: dict[str, type] = {
    "prestage-strategy create": strategy.CreateStrategy,
    "prestage-strategy apply": strategy.ApplyStrategy,
    "prestage-strategy show": strategy.ShowStrategy,
    "prestage-strategy abort": strategy.AbortStrategy,
    "prestage-strategy delete": strategy.DeleteStrategy,
    "prestage-strategy report": report.ReportStrategy,
    "strategy-step list": strategy.ListSteps,
    "strategy-step show": strategy.ShowStep,
    "strategy-history list": history.ListHistory,
    "strategy-history show": history.ShowHistory,
    "subcloud list": subclouds.ListSubclouds,
    "subcloud show": subclouds.ShowSubcloud,
    "subcloud update": subclouds.UpdateSubcloud,
    "subcloud prestage": subclouds.PrestageSubcloud,
    "subcloud-group add": subclouds.AddGroup,
    "subcloud-group list": subclouds.ListGroups,
    "subcloud-group show": subclouds.ShowGroup,
    "subcloud-group update": subclouds.UpdateGroup,
    "subcloud-group delete": subclouds.DeleteGroup,
    "subcloud-group list-subclouds": subclouds.ListGroupSubclouds,
}


class DcPrestageApp(App):
    def __init__(self) -> None:
        manager = CommandManager(None)
        for name, command in COMMANDS.items():
            manager.add_command(name, command)
        super().__init__(
            description="Prestage StarlingX subclouds (dcmanager-compatible prestage commands).",
            version=__version__,
            command_manager=manager,
            deferred_help=True,
        )
        self.context: Context | None = None
        # cliff's own commands: bad options are one line, as everywhere else
        self.command_manager.add_command("help", _OneLineHelp)
        self.command_manager.add_command("complete", _OneLineComplete)

    def build_option_parser(
        self,
        description: str | None,
        version: str | None,
        argparse_kwargs: dict[str, Any] | None = None,
    ) -> argparse.ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument(
            "-i",
            "--inventory",
            metavar="CONFIG",
            help="The distcloud.prestage.subclouds inventory config (default: "
            "$DCPRESTAGE_INVENTORY, else ./inventory/subclouds.yml).",
        )
        parser.add_argument(
            "--state-dir",
            metavar="DIR",
            help="Where strategy state lives (default: $DCPRESTAGE_STATE_DIR, else "
            "${XDG_STATE_HOME:-~/.local/state}/distcloud-prestage).",
        )
        return one_line_errors(parser)

    def interact(self) -> None:
        """Global options but no command: a one-line error, never cliff's interactive shell."""
        self.stderr.write(f"{self.NAME}: error: no command given; see '{self.NAME} help'\n")

    def run_subcommand(self, argv: list[str]) -> int:
        # cliff answers an unknown command with a list of suggestions on stdout: one line on stderr
        try:
            self.command_manager.find_command(argv)
        except ValueError:
            matches = self.get_fuzzy_matches(argv[0])
            hint = f"; did you mean: {', '.join(matches)}?" if matches else ""
            given = " ".join(" ".join(argv).split())  # one line, whatever the arguments hold
            self.stderr.write(f"{self.NAME}: '{given}' is not a {self.NAME} command{hint}\n")
            return 2
        return super().run_subcommand(argv)

    def configure_logging(self) -> None:
        """What the console shows: warnings; with -v also progress notes (e.g. the subclouds left
        out of a strategy), each once; library debug lines (stevedore's, ...) only with -vv."""
        super().configure_logging()
        level = {0: logging.WARNING, 1: logging.WARNING, 2: logging.INFO}.get(
            self.options.verbose_level, logging.DEBUG
        )
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stderr:
                handler.setLevel(level)
                handler.addFilter(_OncePerMessage())

    def initialize_app(self, argv: list[str]) -> None:
        self.context = Context(self.options.inventory, self.options.state_dir)


class _OncePerMessage(logging.Filter):
    """Each message once: a command may check a request twice (before asking for a password,
    then under the lock), and the fact it notes is the same fact."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


class _OneLineHelp(HelpCommand):
    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return one_line_errors(super().get_parser(prog_name))


class _OneLineComplete(CompleteCommand):
    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        return one_line_errors(super().get_parser(prog_name))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["help"]  # never drop into an interactive shell from a script
    return DcPrestageApp().run(argv)


if __name__ == "__main__":
    sys.exit(main())
