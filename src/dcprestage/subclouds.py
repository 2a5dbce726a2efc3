"""subcloud list|show|update and subcloud-group add|list|show|update|delete|list-subclouds."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import is_subcloud_name
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _lifecycle as lifecycle
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _source as source
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import NotFoundError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import is_running
from ansible_collections.distcloud.prestage.plugins.plugin_utils._password import sysadmin_password
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import (
    Group,
    Registry,
    Subcloud,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._run import PRESTAGING
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    SubcloudStatus,
)
from dcprestage import _launcher as launcher
from dcprestage._base import Context, ListCommand, PlainCommand, ShowCommand, confirm, decimal

# `subcloud prestage` runs keep their own one-step strategy here, beside the main one
ONE_SUBCLOUD_DIR = "subcloud-prestage"

SUBCLOUD_LIST_FIELDS = (
    "id",
    "name",
    "management",
    "availability",
    "deploy status",
    "sync",
    "backup status",
    "prestage status",
)
SUBCLOUD_FIELDS = (
    "id",
    "name",
    "software_version",
    "management",
    "availability",
    "deploy_status",
    "system_mode",
    "oam_floating_ip",
    "group_id",
    "group_name",
    "sync",
    "backup_status",
    "prestage_status",
    "prestage_versions",
)
# With the dcmanager source, dcmanager's own prestage status and versions, beside ours.
DCMANAGER_LIST_FIELDS = ("dcmanager prestage status", "dcmanager prestage versions")
DCMANAGER_FIELDS = ("dcmanager_prestage_status", "dcmanager_prestage_versions")
GROUP_LIST_FIELDS = ("id", "name", "description")
GROUP_FIELDS = ("id", "name", "description", "update apply type", "max parallel subclouds")


def subcloud_list_fields(dcmanager: bool) -> tuple[str, ...]:
    return SUBCLOUD_LIST_FIELDS + (DCMANAGER_LIST_FIELDS if dcmanager else ())


def subcloud_list_row(
    subcloud: Subcloud, status: SubcloudStatus | None, dcmanager: bool = False
) -> tuple[Any, ...]:
    row = (
        subcloud.id,
        subcloud.name,
        subcloud.management,
        subcloud.availability,
        subcloud.deploy_status,
        subcloud.sync,
        subcloud.backup_status,
        status.prestage_status if status else None,
    )
    return row + (_dcmanager_prestage(subcloud) if dcmanager else ())


def _dcmanager_prestage(subcloud: Subcloud) -> tuple[Any, ...]:
    return (subcloud.dcmanager_prestage_status, subcloud.dcmanager_prestage_versions)


def subcloud_fields(dcmanager: bool) -> tuple[str, ...]:
    return SUBCLOUD_FIELDS + (DCMANAGER_FIELDS if dcmanager else ())


def subcloud_detail(
    registry: Registry, subcloud: Subcloud, status: SubcloudStatus | None, dcmanager: bool = False
) -> tuple[Any, ...]:
    group = registry.group_of(subcloud)
    row = (
        subcloud.id,
        subcloud.name,
        subcloud.software_version,
        subcloud.management,
        subcloud.availability,
        subcloud.deploy_status,
        subcloud.system_mode,
        subcloud.oam_floating_address,
        group.id,
        group.name,
        subcloud.sync,
        subcloud.backup_status,
        status.prestage_status if status else None,
        status.prestage_versions if status else None,
    )
    return row + (_dcmanager_prestage(subcloud) if dcmanager else ())


def group_row(group: Group) -> tuple[Any, ...]:
    return (
        group.id,
        group.name,
        group.description,
        group.update_apply_type,
        group.max_parallel_subclouds,
    )


class ListSubclouds(ListCommand):
    """List subclouds."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        statuses = self.ctx.store.load_statuses()
        dcm = self.ctx.dcmanager
        rows = [
            subcloud_list_row(s, statuses.get(s.name), dcm) for s in self.ctx.registry.subclouds
        ]
        return subcloud_list_fields(dcm), rows


class ShowSubcloud(ShowCommand):
    """Show the details of a subcloud."""

    fields = SUBCLOUD_FIELDS + DCMANAGER_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("subcloud", help="Name of the subcloud.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        registry = self.ctx.registry_with_address(parsed_args.subcloud)
        subcloud = registry.subcloud(parsed_args.subcloud)
        status = self.ctx.store.load_statuses().get(subcloud.name)
        dcm = self.ctx.dcmanager
        return subcloud_fields(dcm), subcloud_detail(registry, subcloud, status, dcm)


class UpdateSubcloud(ShowCommand):
    """Update a subcloud's attributes (its subcloud group)."""

    fields = SUBCLOUD_FIELDS + DCMANAGER_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("subcloud", help="Name of the subcloud.")
        parser.add_argument("--group", required=True, help="Name or ID of the subcloud group.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        config = self.ctx.config
        registry = source.move_subcloud(config, parsed_args.subcloud, parsed_args.group)
        _say_where(self.ctx)
        subcloud = registry.subcloud(parsed_args.subcloud)
        status = self.ctx.store.load_statuses().get(subcloud.name)
        dcm = self.ctx.dcmanager
        return subcloud_fields(dcm), subcloud_detail(registry, subcloud, status, dcm)


class AddGroup(ShowCommand):
    """Add a new subcloud group."""

    fields = GROUP_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--name", required=True, help="Name of the subcloud group.")
        parser.add_argument("--description", help="Description of the subcloud group.")
        parser.add_argument(
            "--update_apply_type",
            choices=["parallel", "serial"],
            help="Update apply type for the subclouds of this group (default: parallel).",
        )
        parser.add_argument(
            "--max_parallel_subclouds",
            type=decimal,
            help="Maximum number of subclouds of this group updated at once (default: 2).",
        )
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        group = source.add_group(
            self.ctx.config,
            parsed_args.name,
            description=parsed_args.description,
            update_apply_type=parsed_args.update_apply_type,
            max_parallel_subclouds=parsed_args.max_parallel_subclouds,
        )
        _say_where(self.ctx)
        return GROUP_FIELDS, group_row(group)


class ListGroups(ListCommand):
    """List subcloud groups."""

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        return GROUP_LIST_FIELDS, [(g.id, g.name, g.description) for g in self.ctx.registry.groups]


class _GroupRefCommand(ShowCommand):
    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("group", help="Name or ID of the subcloud group.")
        return parser


class ShowGroup(_GroupRefCommand):
    """Show the details of a subcloud group."""

    fields = GROUP_FIELDS

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        return GROUP_FIELDS, group_row(source.find_group(self.ctx.config, parsed_args.group))


class UpdateGroup(_GroupRefCommand):
    """Update the attributes of a subcloud group."""

    fields = GROUP_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--name", help="New name of the subcloud group.")
        parser.add_argument("--description", help="New description of the subcloud group.")
        parser.add_argument("--update_apply_type", choices=["parallel", "serial"])
        parser.add_argument("--max_parallel_subclouds", type=decimal)
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        group = source.update_group(
            self.ctx.config,
            parsed_args.group,
            name=parsed_args.name,
            description=parsed_args.description,
            update_apply_type=parsed_args.update_apply_type,
            max_parallel_subclouds=parsed_args.max_parallel_subclouds,
        )
        _say_where(self.ctx)
        return GROUP_FIELDS, group_row(group)


class DeleteGroup(PlainCommand):
    """Delete a subcloud group (it must have no subclouds). Prints nothing, as dcmanager."""

    confirms = True

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("group", help="Name or ID of the subcloud group.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> int:
        # a missing group fails before the question
        source.find_group(self.ctx.config, parsed_args.group)
        confirm(f"Delete subcloud group {parsed_args.group}?", parsed_args.yes)
        source.delete_group(self.ctx.config, parsed_args.group)
        _say_where(self.ctx)
        return 0


class ListGroupSubclouds(ListCommand):
    """List the subclouds of a subcloud group."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("group", help="Name or ID of the subcloud group.")
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        registry = self.ctx.registry
        statuses = self.ctx.store.load_statuses()
        members = registry.members(registry.group(parsed_args.group))
        dcm = self.ctx.dcmanager
        rows = [subcloud_list_row(s, statuses.get(s.name), dcm) for s in members]
        return subcloud_list_fields(dcm), rows


class PrestageSubcloud(ShowCommand):
    """Prestage one subcloud now, without a strategy (it runs in the background)."""

    fields = SUBCLOUD_FIELDS + DCMANAGER_FIELDS

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("subcloud", help="Name of the subcloud to prestage.")
        parser.add_argument("--release", help="Major release MM.mm (default: the SC's).")
        parser.add_argument("--for-install", action="store_true", help="Prestage for install.")
        parser.add_argument(
            "--for-sw-deploy", action="store_true", help="Prestage for software deployment."
        )
        parser.add_argument(
            "--force", action="store_true", help="Skip the management affecting alarm check."
        )
        parser.add_argument(
            "--sysadmin-password", help="sysadmin password, will be prompted if not provided."
        )
        return parser

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[Any, Any]:
        ctx = self.ctx
        name = parsed_args.subcloud
        request = model.CreateRequest(
            cloud_name=name,
            release=parsed_args.release,
            for_install=parsed_args.for_install,
            for_sw_deploy=parsed_args.for_sw_deploy,
            force=parsed_args.force,
        )
        if not is_subcloud_name(name):  # no registry holds it; and never a path of the state dir
            raise NotFoundError(f"Subcloud {name} does not exist")
        store = ctx.store
        run_store = StateStore(os.path.join(store.state_dir, ONE_SUBCLOUD_DIR, name))
        # every check first: any skip or failure reason is an error here
        model.build_strategy(request, ctx.sc_facts, ctx.registry, _live_statuses(store, run_store))
        password = sysadmin_password(parsed_args.sysadmin_password)
        with store.locked(), run_store.locked():
            strategy = model.build_strategy(
                request, ctx.sc_facts, ctx.registry, _live_statuses(store, run_store)
            )
            lifecycle.claim(strategy, {}, via=lifecycle.CLI)
            pid = launcher.start(
                run_store.state_dir,
                ctx.config.path,
                password,
                forks=1,
                extra_vars={"prestage_status_dir": store.state_dir,
                            "prestage_log_dir": store.logs_dir},
                keystone_password=ctx.keystone_password,
            )  # fmt: skip
            lifecycle.launched(strategy, pid)
            run_store.save_strategy(strategy)
            store.update_statuses({name: SubcloudStatus(prestage_status=PRESTAGING)})
        registry = ctx.registry_with_address(name)
        subcloud = registry.subcloud(name)
        status = store.load_statuses().get(name)
        dcm = ctx.dcmanager
        return subcloud_fields(dcm), subcloud_detail(registry, subcloud, status, dcm)


def _say_where(ctx: Context) -> None:
    """After an edit of a symlinked registry: which file changed (stderr; stdout is the table)."""
    note = source.edit_note(ctx.config)
    if note:
        print(note, file=sys.stderr)


def _live_statuses(store: StateStore, run_store: StateStore) -> dict[str, str | None]:
    """prestage statuses, with a 'prestaging' left by a one-subcloud run that died cleared."""
    statuses = store.prestage_statuses()
    previous = run_store.load_strategy()
    name = os.path.basename(run_store.state_dir)
    if (
        statuses.get(name) == PRESTAGING
        and previous is not None
        and not is_running(previous.orchestrator)
    ):
        statuses[name] = None
    return statuses
