"""prestage-strategy create|apply|show|abort|delete and strategy-step list|show."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from ansible_collections.distcloud.prestage.plugins.plugin_utils import _history as history
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _lifecycle as lifecycle
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _logs as logs
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _report as report
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import is_running
from ansible_collections.distcloud.prestage.plugins.plugin_utils._password import sysadmin_password
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    resolve_state_dir,
)
from dcprestage import _launcher as launcher
from dcprestage import _watch as watch
from dcprestage._base import ListCommand, ShowCommand, confirm, decimal


def strategy_table(strategy: model.Strategy, state: str | None = None) -> tuple[Any, Any]:
    return model.STRATEGY_FIELDS, strategy.row(state)


def warn_if_orphaned(strategy: model.Strategy, state_dir: str | None = None) -> None:
    """Say so on stderr when a strategy claims to run but its orchestrator is gone."""
    if warning := report.orphan_warning(strategy, state_dir):
        print(warning, file=sys.stderr)


class CreateStrategy(ShowCommand):
    """Create a prestage strategy (for one subcloud, a subcloud group, or all subclouds)."""

    fields = model.STRATEGY_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--subcloud-apply-type",
            choices=["parallel", "serial"],
            help="Subcloud apply type (parallel or serial).",
        )
        parser.add_argument(
            "--max-parallel-subclouds", type=decimal, help="Maximum number of parallel subclouds."
        )
        parser.add_argument(
            "--stop-on-failure",
            action="store_true",
            help="Do not start any additional subclouds after a failure.",
        )
        parser.add_argument("--group", help="Name or ID of the subcloud group to prestage.")
        parser.add_argument(
            "cloud_name", nargs="?", default=None, help="Name of a single subcloud to prestage."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Skip checking the subcloud for management affecting alarms.",
        )
        parser.add_argument(
            "--release",
            help="Major release (MM.mm) to prestage; default: the system controller's release.",
        )
        parser.add_argument(
            "--for-install",
            action="store_true",
            help="Prestage for subcloud reinstall to the release (the default).",
        )
        parser.add_argument(
            "--for-sw-deploy",
            action="store_true",
            help="Prestage for software deployment of the release.",
        )
        parser.add_argument(
            "--sysadmin-password",
            help="sysadmin password, will be prompted if not provided "
            "(or taken from DCPRESTAGE_SYSADMIN_PASSWORD).",
        )
        parser.add_argument(
            history.RETRY_FLAG,
            action="store_true",
            help="Prestage again the subclouds whose step failed in the last strategy (the "
            "newest of 'strategy-history list'), with its settings.",
        )
        return parser

    # the options a retry takes from the last strategy, as the user typed them
    _RETRY_TAKES = (
        ("cloud_name", "cloud_name"), ("group", "--group"),
        ("subcloud_apply_type", "--subcloud-apply-type"),
        ("max_parallel_subclouds", "--max-parallel-subclouds"),
        ("stop_on_failure", "--stop-on-failure"), ("release", "--release"),
        ("for_install", "--for-install"), ("for_sw_deploy", "--for-sw-deploy"),
        ("force", "--force"),
    )  # fmt: skip

    def _request(self, parsed_args: argparse.Namespace) -> model.CreateRequest:
        """The request of the options, or of the last strategy's failures with --retry-failed."""
        if not parsed_args.retry_failed:
            return model.CreateRequest(
                cloud_name=parsed_args.cloud_name,
                group=parsed_args.group,
                subcloud_apply_type=parsed_args.subcloud_apply_type,
                max_parallel_subclouds=parsed_args.max_parallel_subclouds,
                stop_on_failure=parsed_args.stop_on_failure,
                release=parsed_args.release,
                for_install=parsed_args.for_install,
                for_sw_deploy=parsed_args.for_sw_deploy,
                force=parsed_args.force,
            )
        given = [
            flag
            for key, flag in self._RETRY_TAKES
            if getattr(parsed_args, key) not in (None, False)
        ]
        if problem := history.retry_conflict(history.RETRY_FLAG, given):
            raise PrestageError(problem)
        if self.ctx.store.load_strategy() is not None:
            raise PrestageError(model.MSG_EXISTS)
        request, _record = history.retry_request(self.ctx.store.state_dir)
        return request

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        request = self._request(parsed_args)
        model.validate_request(request)
        ctx = self.ctx
        store = ctx.store
        # Everything that can fail is checked before the password is asked for.
        if store.load_strategy() is not None:
            raise PrestageError(model.MSG_EXISTS)
        model.build_strategy(request, ctx.sc_facts, ctx.registry, store.prestage_statuses())
        password = sysadmin_password(parsed_args.sysadmin_password)
        with store.locked():
            # Another create may have won while the password was typed.
            if store.load_strategy() is not None:
                raise PrestageError(model.MSG_EXISTS)
            record = None
            if parsed_args.retry_failed:  # the history as it is now, under the lock
                request, record = history.retry_request(store.state_dir)
            strategy = model.build_strategy(
                request, ctx.sc_facts, ctx.registry, store.prestage_statuses()
            )
            # logs no strategy owns any more go to the history: this one's start empty
            logs.retire_logs(store, None, strategy.created_at)
            store.save_secret(password)
            try:
                store.save_strategy(strategy)
            except PrestageError:
                with contextlib.suppress(OSError):
                    store.remove_strategy()
                raise
        if record is not None:
            print(history.retry_note(record, strategy), file=sys.stderr)
        return strategy_table(strategy)


class ApplyStrategy(ShowCommand):
    """Apply the prestage strategy."""

    fields = model.STRATEGY_FIELDS
    confirms = True

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        ctx = self.ctx
        store = ctx.store
        strategy = store.require_strategy()
        if problem := lifecycle.refusal(strategy):  # before asking and before the lock
            raise problem.error(lifecycle.CLI)
        model.check_registry_holds(strategy, ctx.registry)  # refused here rather than by the run
        inventory = ctx.config.path
        confirm("Apply the prestage strategy?", parsed_args.yes)
        password = store.load_secret() or sysadmin_password(None)
        with store.locked():
            strategy = store.require_strategy()
            lifecycle.claim(strategy, {}, via=lifecycle.CLI)
            pid = launcher.start(
                store.state_dir,
                inventory,
                password,
                model.largest_window(strategy),
                keystone_password=ctx.keystone_password,
            )
            lifecycle.launched(strategy, pid)
            store.save_strategy(strategy)
        return strategy_table(strategy)


class ShowStrategy(ShowCommand):
    """Show the details of the prestage strategy."""

    fields = model.STRATEGY_FIELDS

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        store = self.ctx.store
        strategy = store.require_strategy()
        warn_if_orphaned(strategy)
        return strategy_table(strategy)


class AbortStrategy(ShowCommand):
    """Abort the prestage strategy: subclouds not yet started are not started."""

    fields = model.STRATEGY_FIELDS

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        store = self.ctx.store
        store.require_strategy()  # a missing or unreadable strategy fails before taking the lock
        with store.locked():
            strategy = store.require_strategy()
            alive = is_running(strategy.orchestrator)
            started = store.load_started()
            model.request_abort(strategy, orchestrator_alive=alive, started=started)
            store.save_strategy(strategy)
        if alive and strategy.state in (model.ABORT_REQUESTED, model.ABORTING):
            say_what_abort_waits_for(strategy, started)
        return strategy_table(strategy)


def say_what_abort_waits_for(strategy: model.Strategy, started: set[str]) -> None:
    """The running steps an abort lets finish, and for how long at most."""
    running = [
        s.cloud for s in strategy.steps if s.in_progress or (s.cloud in started and not s.final)
    ]
    if not running:
        return
    shown = ", ".join(running[:10]) + (
        f" and {len(running) - 10} more" if len(running) > 10 else ""
    )
    bound = strategy.orchestrator.get("abort-timeout")
    limit = (
        f" (at most {bound:g} s, then they end aborted)" if isinstance(bound, (int, float)) else ""
    )
    print(
        f"Abort requested: waiting for {len(running)} running steps{limit}: {shown}",
        file=sys.stderr,
    )


class DeleteStrategy(ShowCommand):
    """Delete the prestage strategy (when initial, complete, aborted or failed)."""

    fields = model.STRATEGY_FIELDS
    confirms = True

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        store = self.ctx.store
        model.check_deletable(store.require_strategy())
        confirm("Delete the prestage strategy?", parsed_args.yes)
        with store.locked():
            strategy = store.require_strategy()
            model.check_deletable(strategy)
            deleted_at = model.now()
            # first the record and the logs: either failing is an error before anything is
            # removed (a record written before the logs failed to move goes again)
            name = history.free_label(store, strategy.created_at)
            record = history.save(store, strategy, name, deleted_at)
            try:
                logs.retire_logs(store, strategy.created_at, deleted_at, into=name)
            except PrestageError:
                with contextlib.suppress(OSError):
                    os.unlink(record.path)
                raise
            store.remove_strategy()
            with contextlib.suppress(PrestageError, OSError):
                history.prune(store.state_dir)
        strategy.updated_at = deleted_at
        return strategy_table(strategy, state=model.DELETING)


class ListSteps(ListCommand):
    """List the steps of the prestage strategy, one per subcloud."""

    fields = model.STEP_FIELDS

    _strategy: model.Strategy | None = None  # the one listed (not for --merge)

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--merge",
            nargs="+",
            metavar="STATE_DIR",
            help="List the steps of these state dirs (the slices of an AWX sliced job) as one "
            "strategy, stages and steps in order; --state-dir is not read.",
        )
        parser.add_argument(
            "--watch",
            action="store_true",
            help="Follow the strategy until it is final: redrawn in place on a terminal, a line "
            "per change otherwise.",
        )
        parser.add_argument(
            "--interval",
            type=watch.interval,
            default=watch.DEFAULT_INTERVAL,
            help=f"Seconds between refreshes of --watch (default {watch.DEFAULT_INTERVAL:g}).",
        )
        return parser

    def run(self, parsed_args: argparse.Namespace) -> int:
        if not parsed_args.watch:
            return super().run(parsed_args)
        if parsed_args.merge:
            raise PrestageError("--watch follows one state dir; it cannot be combined with --merge")
        if parsed_args.formatter != "table" or parsed_args.columns:
            raise PrestageError("--watch prints its own view; it cannot be combined with -f or -c")
        store = self.ctx.store
        store.require_strategy()
        try:
            watch.follow(store.load_strategy, parsed_args.interval)
        except KeyboardInterrupt:
            print(file=sys.stdout)
            return 130
        return 0

    def produce_output(self, parsed_args: argparse.Namespace, column_names: Any, data: Any) -> int:
        status = super().produce_output(parsed_args, column_names, data)
        if parsed_args.formatter == "table" and self._strategy is not None:
            # after dcmanager's table, on stderr: the table on stdout stays dcmanager's
            print(model.counts_text(self._strategy), file=sys.stderr)
        return status

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        if parsed_args.merge:
            strategies = report.load_strategies([resolve_state_dir(d) for d in parsed_args.merge])
            steps = report.merge_steps(strategies, self._registry_ids())
            for state_dir, each in strategies:  # after anything that fails: one error line
                warn_if_orphaned(each, state_dir)
            return model.STEP_FIELDS, [step.row() for step in steps]
        strategy = self.ctx.store.require_strategy()
        warn_if_orphaned(strategy)
        self._strategy = strategy
        return model.STEP_FIELDS, [step.row() for step in strategy.steps]

    def _registry_ids(self) -> dict[str, int]:
        """Subcloud ids give the step order; without a registry, names do."""
        try:
            return {subcloud.name: subcloud.id for subcloud in self.ctx.registry.subclouds}
        except PrestageError:
            return {}


class ShowStep(ShowCommand):
    """Show the details of one strategy step."""

    fields = (*model.STEP_DETAIL_FIELDS, *model.STEP_DURATION_FIELDS, model.STEP_ATTEMPTS_FIELD)

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("cloud_name", help="Name of the subcloud of the step.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        strategy = self.ctx.store.require_strategy()
        step = strategy.step(parsed_args.cloud_name)  # an error is one line, without the warning
        warn_if_orphaned(strategy)
        # dcmanager's rows; how long it took once it started, earlier attempts when there were some
        fields: tuple[str, ...] = model.STEP_DETAIL_FIELDS
        values: tuple[Any, ...] = step.row(detailed=True)
        if step.started_at is not None:
            fields, values = (*fields, *model.STEP_DURATION_FIELDS), (*values, *step.duration_row())
        if step.attempts:
            fields, values = (*fields, model.STEP_ATTEMPTS_FIELD), (*values, step.attempts_text())
        return fields, values
