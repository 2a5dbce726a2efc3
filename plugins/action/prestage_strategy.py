# Copyright: distcloud.prestage contributors
# Apache License 2.0 (see LICENSE)
"""Action plugin of distcloud.prestage.prestage_strategy (documented in plugins/modules)."""

from __future__ import annotations

import os
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.distcloud.prestage.plugins.module_utils._formats import is_decimal
from ansible_collections.distcloud.prestage.plugins.module_utils._strategy_args import (
    PRESTAGE_STRATEGY_ARGS,
    option_problem,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _history as history
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _lifecycle as lifecycle
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _logs as logs
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _source as source
from ansible_collections.distcloud.prestage.plugins.plugin_utils import _strategy as model
from ansible_collections.distcloud.prestage.plugins.plugin_utils._checks import release_failure
from ansible_collections.distcloud.prestage.plugins.plugin_utils._config import (
    load_config,
    resolve_config_path,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._errors import PrestageError
from ansible_collections.distcloud.prestage.plugins.plugin_utils._orchestrator import (
    orchestrator_record,
)
from ansible_collections.distcloud.prestage.plugins.plugin_utils._registry import Registry
from ansible_collections.distcloud.prestage.plugins.plugin_utils._sc_query import save_facts
from ansible_collections.distcloud.prestage.plugins.plugin_utils._store import (
    StateStore,
    run_state_dir,
)

# Options a survey may leave unanswered: an empty string is "not given".
_OPTIONAL = ("release", "prestage_type", "subcloud_apply_type", "max_parallel_subclouds",
             "stop_on_failure", "force", "group", "limit", "retry_failed")  # fmt: skip
# The options a retry takes from the last strategy: the extra var each comes from
_RETRY_TAKES = {
    "release": "release",
    "subcloud_apply_type": "subcloud_apply_type",
    "max_parallel_subclouds": "max_parallel_subclouds",
    "group": "prestage_group",
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        self._task.args = {
            key: value
            for key, value in self._task.args.items()
            if not (key in _OPTIONAL and (value is None or value == ""))
        }
        problem = option_problem(self._task.args)
        if problem:  # before Ansible's conversions, which take "24.09\n" and "٣"
            result.update(failed=True, msg=problem)
            return result
        _validation, params = self.validate_argument_spec(argument_spec=PRESTAGE_STRATEGY_ARGS)
        try:
            result.update(self._prepare(params, task_vars or {}))
        except PrestageError as exc:
            result.update(failed=True, msg=str(exc))
        return result

    def _prepare(self, params: dict[str, Any], task_vars: dict[str, Any]) -> dict[str, Any]:
        facts = params["sc_facts"]
        if facts.get("failed") or facts.get("unreachable"):
            host = params["system_controller_host"] or "the system controller"
            raise PrestageError(
                f"Cannot read the system controller ({host}): "
                f"{' '.join(str(facts.get('msg') or 'no answer').split())}"
            )
        store = StateStore(run_state_dir(params["state_dir"], task_vars))
        if params["retry_failed"] and (problem := self._retry_conflict(params)):
            raise PrestageError(problem)
        # The play runs in our parent: that process is the orchestrator from now on.
        orchestrator = orchestrator_record(os.getppid(), via=lifecycle.PLAY)
        retried = None
        with store.locked():
            strategy = store.load_strategy()
            if strategy is not None and params["retry_failed"]:
                raise PrestageError(model.MSG_EXISTS)
            if strategy is None:
                if params["retry_failed"]:
                    strategy, retried = self._retry(params, store)
                else:
                    strategy = self._create(params, store)
                lifecycle.claim(strategy, orchestrator, via=lifecycle.PLAY)
                action = "created"
            else:
                action = lifecycle.claim(strategy, orchestrator, via=lifecycle.PLAY, take_over=True)
                if action != lifecycle.TAKEN_OVER:
                    self._check_same(strategy, params)
            if params["forks"] is not None:
                # refused here, before the strategy changes, rather than by the strategy plugin
                model.check_forks(strategy, params["forks"])
            # a deployment started on the system controller since create: nothing starts
            # (STARLINGX.md §5 'SC deploying'), as for every other release rule
            failure = release_failure(facts, strategy.release, strategy.for_sw_deploy)
            if failure:
                raise PrestageError(failure)
            if action == "created":  # logs no strategy owns any more: this one's start empty
                logs.retire_logs(store, None, strategy.created_at)
            store.save_strategy(strategy)
        if params["system_controller_host"]:
            save_facts(store.state_dir, params["system_controller_host"], facts)
        fields = dict(zip(model.STRATEGY_FIELDS, strategy.row(), strict=True))
        return {
            "changed": True,
            "action": action,
            "state_dir": store.state_dir,
            "release": strategy.release,
            "for_sw_deploy": strategy.for_sw_deploy,
            "force": strategy.force,
            "steps": len(strategy.steps),
            "strategy": fields,
            **({"retried": retried} if retried else {}),
        }

    def _retry(self, params: dict[str, Any], store: StateStore) -> tuple[model.Strategy, str]:
        """The strategy again for the subclouds the last one left failed, and the note saying so."""
        request, record = history.retry_request(store.state_dir)
        strategy = model.build_strategy(
            request, params["sc_facts"], self._registry(params), store.prestage_statuses()
        )
        model.check_play_hosts(strategy, params["hosts"])
        return strategy, history.retry_note(record, strategy)

    @staticmethod
    def _retry_conflict(params: dict[str, Any]) -> str | None:
        """The options given beside prestage_retry_failed (a survey's unanswered ones, false and
        the default type are not given)."""
        given = [var for key, var in _RETRY_TAKES.items() if params[key] is not None]
        given += [
            name
            for name, value in (
                ("prestage_type", params["prestage_type"] == "for_sw_deploy"),
                ("stop_on_failure", params["stop_on_failure"]),
                ("force", params["force"]),
            )
            if value
        ]
        return history.retry_conflict(history.RETRY_VAR, given)

    def _create(self, params: dict[str, Any], store: StateStore) -> model.Strategy:
        registry = self._registry(params)
        request = model.CreateRequest(
            subcloud_apply_type=params["subcloud_apply_type"],
            max_parallel_subclouds=params["max_parallel_subclouds"],
            stop_on_failure=params["stop_on_failure"],
            release=params["release"],
            for_sw_deploy=params["prestage_type"] == "for_sw_deploy",
            force=params["force"],
        )
        limit = (params["limit"] or "").strip()
        if params["group"] is not None:
            if registry.find_group(params["group"]) is None:
                raise PrestageError(
                    f"Subcloud group {params['group']} does not exist (prestage_group)"
                )
            request.group = params["group"]  # a survey's group: as -l GROUP
        elif limit and registry.find_group(limit) is not None and not is_decimal(limit):
            request.group = limit  # -l First_10_Subclouds: that group's strategy and settings
        elif limit and registry.find_subcloud(limit) is not None:
            request.cloud_name = limit
        if request.cloud_name is None:
            # only the play's subclouds: those of a limit, or an AWX job slice's share
            request.only = set(params["hosts"])
        return model.build_strategy(
            request, params["sc_facts"], registry, store.prestage_statuses()
        )

    @staticmethod
    def _registry(params: dict[str, Any]) -> Registry:
        """The registry as the play's inventory has it, else the inventory config's source - with
        dcmanager, what dcmanager says now (a subcloud gone offline since the inventory was read
        or cached is skipped); no OAM addresses needed here."""
        if params["registry"]:
            return source.load_file(params["registry"])
        config = load_config(resolve_config_path(params["inventory_config"]))
        return source.load(config, addresses=False)

    @staticmethod
    def _check_same(strategy: model.Strategy, params: dict[str, Any]) -> None:
        """Options given to the play must not contradict the strategy it applies, and its hosts
        must hold the subclouds still to run (checked here, before the strategy changes)."""
        model.check_play_hosts(strategy, params["hosts"])
        wanted_sw_deploy = params["prestage_type"] == "for_sw_deploy"
        if params["release"] and params["release"] != strategy.release:
            raise PrestageError(
                f"The existing prestage strategy is for release {strategy.release}, not "
                f"{params['release']}; delete it first or run without -e release"
            )
        if wanted_sw_deploy and not strategy.for_sw_deploy:
            raise PrestageError(
                "The existing prestage strategy is for install, not for software deployment; "
                "delete it first or run without -e prestage_type"
            )
